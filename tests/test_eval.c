/* tests/test_eval.c — teacher-forced evaluation (deco/eval.h, `deco eval`):
 * the perplexity of stories260K on its greedy fixture against a naive
 * computation written here (one token per forward, log-softmax in long
 * double, windows cut by hand), chunking that changes nothing, KL and top-1
 * of a row against direct sums, a model against itself (KL 0, top-1 1), and
 * the CLI's line, its --text paths (tok512 and a GGUF's own tokenizer) and
 * its errors.
 */
#define _POSIX_C_SOURCE 200809L
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "deco/eval.h"

#define MINI "SmolLM2-135M-mini.gguf"

/* -log p(target) of a row, from its probabilities summed in long double. */
static long double naive_nll_row(const float *l, int vocab, int target) {
  long double z = 0.0L;
  for (int v = 0; v < vocab; ++v) z += expl((long double)l[v]);
  return -logl(expl((long double)l[target]) / z);
}

/* Σ -log p over ids[1..n), each window of w ids fed one token per forward
 * from an empty cache; a later window starts with the previous window's
 * last id (bos < 0) or with bos. */
static long double naive_nll(deco_model_t *m, const int32_t *ids, int n, int w, int bos, int *scored) {
  const int vocab = deco_model_get_hparams(m)->vocab_size;
  float *logits = malloc(sizeof(float) * (size_t)vocab);
  int32_t *win = malloc(sizeof(int32_t) * (size_t)w);
  long double sum = 0.0L;
  *scored = 0;
  for (int next = 1; next < n;) {
    int len = 0;
    win[len++] = next == 1 ? ids[0] : bos >= 0 ? bos : ids[next - 1];
    while (len < w && next < n) win[len++] = ids[next++];
    deco_kv_cache_t *kc;
    int seq;
    cr_assert_eq(deco_kv_cache_create(m, 16, (w + 15) / 16, 1, &kc), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_kv_cache_admit(kc, w, &seq), DECO_STATUS_SUCCESS);
    for (int i = 0; i + 1 < len; ++i) {
      int one = 1;
      deco_forward_args_t a = DECO_FORWARD_ARGS_INIT;
      a.n_seqs = 1;
      a.seqs = &seq;
      a.n_new = &one;
      a.tokens = &win[i];
      a.logits = logits;
      cr_assert_eq(deco_forward(m, kc, &a), DECO_STATUS_SUCCESS);
      sum += naive_nll_row(logits, vocab, win[i + 1]);
      ++*scored;
    }
    deco_kv_cache_destroy(kc);
  }
  free(logits);
  free(win);
  return sum;
}

static int32_t *fixture_ids(int *n) {
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), n);
  cr_assert(ids && *n == 257);
  return ids;
}

/* fp32 logits, sums in double: 1e-5 relative per token. */
static void assert_close(long double got, long double want, const char *what) {
  cr_assert(fabsl(got - want) <= 1e-5L * fabsl(want) + 1e-6L, "%s: %.9Lf, expected %.9Lf", what, got, want);
}

Test(eval, perplexity_equals_a_naive_computation) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int n;
  int32_t *ids = fixture_ids(&n);
  /* One window (seq_len 512 > 257), then windows of 40 ids without and
   * with a BOS restart, each in chunks of 1, 7 and the default. */
  const int windows[] = {0, 40, 40};
  const int bos[] = {-1, -1, 1};
  const int chunks[] = {1, 7, 0};
  for (int k = 0; k < 3; ++k) {
    int scored;
    long double want = naive_nll(m, ids, n, windows[k] ? windows[k] : 512, bos[k], &scored);
    cr_assert_eq(scored, n - 1);
    for (int c = 0; c < 3; ++c) {
      deco_eval_config_t ec = DECO_EVAL_CONFIG_INIT;
      ec.window = windows[k];
      ec.window_bos = bos[k];
      ec.chunk = chunks[c];
      deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
      cr_assert_eq(deco_eval_ids(m, ids, n, &ec, &s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
      cr_assert_eq(s.tokens, n - 1);
      assert_close(s.nll, want, "nll");
      assert_close(log(deco_eval_perplexity(&s)), want / (n - 1), "log ppl");
      cr_assert_eq(s.kl, 0.0);
      cr_assert_eq(s.top1, 0);
    }
  }
  /* A BOS restart changes the context, so the sum (it is not a no-op). */
  int scored;
  cr_assert(fabsl(naive_nll(m, ids, n, 40, 1, &scored) - naive_nll(m, ids, n, 40, -1, &scored)) > 1e-3L);
  /* Sequences add up; one id scores nothing. */
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT, parts = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_ids(m, ids, n, NULL, &s), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_eval_ids(m, ids, 1, NULL, &parts), DECO_STATUS_SUCCESS);
  cr_assert_eq(parts.tokens, 0);
  cr_assert(isnan(deco_eval_perplexity(&parts)));
  cr_assert_eq(deco_eval_ids(m, ids, 100, NULL, &parts), DECO_STATUS_SUCCESS);
  cr_assert_eq(parts.tokens, 99);
  free(ids);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* A model against itself: KL exactly 0, every top-1 agrees, both
 * perplexities equal. */
Test(eval, model_against_itself) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *r = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  int n;
  int32_t *ids = fixture_ids(&n);
  deco_eval_config_t ec = DECO_EVAL_CONFIG_INIT;
  ec.ref = r;
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_ids(m, ids, n, &ec, &s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(s.tokens, n - 1);
  cr_assert_eq(s.kl, 0.0);
  cr_assert_eq(s.top1, n - 1);
  cr_assert_eq(s.nll, s.ref_nll);
  cr_assert_eq(deco_eval_perplexity(&s), deco_eval_ref_perplexity(&s));
  free(ids);
  deco_model_destroy(r);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* One row: nll, KL(R || M) and top-1 against direct sums over
 * probabilities, on random logits of an awkward width. */
Test(eval, row_against_direct_sums) {
  enum { V = 733 };
  static float lm[V], lr[V];
  long double nll = 0, ref_nll = 0, kl = 0;
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  int agree = 0;
  for (int row = 0; row < 5; ++row) {
    deco_test_fill_uniform(lm, V, 11, (uint32_t)row, -8.0f, 8.0f);
    deco_test_fill_uniform(lr, V, 12, (uint32_t)row, -8.0f, 8.0f);
    if (row == 3) memcpy(lr, lm, sizeof lm); /* one row where they agree */
    const int target = (row * 131 + 5) % V;
    long double zm = 0, zr = 0;
    for (int v = 0; v < V; ++v) {
      zm += expl(lm[v]);
      zr += expl(lr[v]);
    }
    for (int v = 0; v < V; ++v) {
      long double pr = expl(lr[v]) / zr, pm = expl(lm[v]) / zm;
      kl += pr * logl(pr / pm);
    }
    nll += -logl(expl(lm[target]) / zm);
    ref_nll += -logl(expl(lr[target]) / zr);
    int am = 0, ar = 0;
    for (int v = 1; v < V; ++v) {
      if (lm[v] > lm[am]) am = v;
      if (lr[v] > lr[ar]) ar = v;
    }
    agree += am == ar;
    cr_assert_eq(deco_eval_add_row(lm, lr, V, target, &s), DECO_STATUS_SUCCESS);
  }
  cr_assert_eq(s.tokens, 5);
  assert_close(s.nll, nll, "nll");
  assert_close(s.ref_nll, ref_nll, "ref_nll");
  cr_assert(fabsl(s.kl - kl) <= 1e-9L + 1e-6L * kl, "kl %.12f, expected %.12Lf", s.kl, kl);
  cr_assert(kl > 0.1L);
  cr_assert_eq(s.top1, agree);
  cr_assert(agree >= 1 && agree < 5, "agree %d", agree);
  /* Ties go to the lower id on both sides: equal rows with a tie agree. */
  float a[4] = {1, 3, 3, 0}, b[4] = {1, 3, 3, 0};
  deco_eval_stats_t t = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_add_row(a, b, 4, 2, &t), DECO_STATUS_SUCCESS);
  cr_assert_eq(t.top1, 1);
  b[1] = 2.5f;
  cr_assert_eq(deco_eval_add_row(a, b, 4, 2, &t), DECO_STATUS_SUCCESS);
  cr_assert_eq(t.top1, 1);
}

Test(eval, bad_arguments) {
  float l[4] = {0, 1, 2, 3};
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_add_row(l, NULL, 4, 4, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_eval_add_row(l, NULL, 4, -1, &s), DECO_STATUS_INVALID_ARGUMENT);
  l[2] = NAN;
  cr_assert_eq(deco_eval_add_row(l, NULL, 4, 0, &s), DECO_STATUS_INVALID_ARGUMENT);
  l[2] = INFINITY;
  cr_assert_eq(deco_eval_add_row(l, NULL, 4, 0, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(s.tokens, 0);

  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32), *tiny;
  cr_assert_eq(deco_model_create_synthetic(ctx, "tiny", DECO_SYNTHETIC_SEED, NULL, &tiny), DECO_STATUS_SUCCESS);
  int32_t ids[3] = {1, 400, 20};
  deco_eval_config_t ec = DECO_EVAL_CONFIG_INIT;
  ec.ref = tiny; /* 259 ids against 512 */
  cr_assert_eq(deco_eval_ids(m, ids, 3, &ec, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "vocabulary") != NULL, "%s", deco_last_error(ctx));
  ids[1] = 512;
  cr_assert_eq(deco_eval_ids(m, ids, 3, NULL, &s), DECO_STATUS_INVALID_ARGUMENT);
  ids[1] = 40;
  ec.ref = NULL;
  ec.window = 1;
  cr_assert_eq(deco_eval_ids(m, ids, 3, &ec, &s), DECO_STATUS_INVALID_ARGUMENT);
  ec.window = 513;
  cr_assert_eq(deco_eval_ids(m, ids, 3, &ec, &s), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(s.tokens, 0);
  deco_model_destroy(tiny);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The config is read by its size (core.h): a caller built before `window`
 * existed gets the defaults whatever lies past its struct; a size of 0 or a
 * struct larger than the library's (even with a tail set) is refused. */
Test(eval, config_read_by_size) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int32_t ids[4] = {1, 403, 407, 261};
  deco_eval_stats_t want = DECO_EVAL_STATS_INIT, got = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_ids(m, ids, 4, NULL, &want), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_eval_config_t older = DECO_EVAL_CONFIG_INIT;
  older.size = offsetof(deco_eval_config_t, window);
  older.window = 1;       /* past the caller's size: not read (1 would be refused) */
  older.window_bos = 600; /* outside the vocabulary: not read either */
  cr_assert_eq(deco_eval_ids(m, ids, 4, &older, &got), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert(got.tokens == 3 && got.nll == want.nll, "%lld tokens, nll %.17g vs %.17g", got.tokens, got.nll,
            want.nll);

  struct {
    deco_eval_config_t c;
    uint64_t tail;
  } newer = {DECO_EVAL_CONFIG_INIT, 1};
  newer.c.size = sizeof newer;
  deco_eval_config_t zero = DECO_EVAL_CONFIG_INIT;
  zero.size = 0;
  const deco_eval_config_t *wrong[2] = {&newer.c, &zero};
  for (int i = 0; i < 2; ++i) {
    deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
    char msg[128];
    snprintf(msg, sizeof msg, "deco_eval_ids: config: size = %zu, expected %zu", wrong[i]->size,
             sizeof(deco_eval_config_t));
    DECO_TEST_REFUSED_NAMING(ctx, deco_eval_ids(m, ids, 4, wrong[i], &s), DECO_STATUS_INVALID_ARGUMENT, NULL, msg);
    cr_assert_eq(s.tokens, 0);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* ---- the CLI ---------------------------------------------------------------- */

static const char *tmp_file(const char *name, const char *text) {
  static char paths[4][4096];
  static int k;
  char *p = paths[k++ % 4];
  snprintf(p, 4096, "%s/%s", deco_test_tmpdir(), name);
  cr_assert_eq(deco_test_write_file(p, text, strlen(text)), 0);
  return p;
}

/* The line over two sequences equals the library's sums. */
Test(eval_cli, ids_line_equals_the_library) {
  int n;
  int32_t *ids = fixture_ids(&n);
  char *line = deco_test_fixture_line("fixtures/stories260K/greedy_bos_256.ids");
  char text[8192];
  snprintf(text, sizeof text, "%s\n1 403 407 261 378\n", line);
  const char *path = tmp_file("two.ids", text);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "eval", "--ids", path, "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "");
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  const int32_t second[] = {1, 403, 407, 261, 378};
  cr_assert_eq(deco_eval_ids(m, ids, n, NULL, &s), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_eval_ids(m, second, 5, NULL, &s), DECO_STATUS_SUCCESS);
  char expect[128];
  snprintf(expect, sizeof expect, "eval: tokens=%d ppl=%.4f", (int)s.tokens, deco_eval_perplexity(&s));
  cr_assert_eq(s.tokens, 256 + 4);
  cr_assert_str_eq(deco_test_last_line(r.err), expect);
  deco_test_run_free(&r);
  /* Against itself: KL 0, top-1 1, the same perplexity. */
  DECO_TEST_RUN_CLI(&r, "eval", "--ids", path, "--ref", deco_test_data_file("models/stories260K.bin"), "--backend",
                    "cpu", "--threads", "2");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char with_ref[256];
  snprintf(with_ref, sizeof with_ref, "%s ref_ppl=%.4f kl=0.000000 top1=1.0000", expect, deco_eval_perplexity(&s));
  cr_assert_str_eq(deco_test_last_line(r.err), with_ref);
  deco_test_run_free(&r);
  free(line);
  free(ids);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* --text with the built-in model: tok512's prompt rule over the file, one
 * sequence (the greedy story is very likely under the model). */
Test(eval_cli, text_with_tok512) {
  const char *story = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
  const char *path = tmp_file("story.txt", story);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "eval", "--text", path, "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_tokenizer_t *tok;
  cr_assert_eq(deco_tokenizer_load(deco_test_data_file("models/tok512.bin"), 512, &tok), DECO_STATUS_SUCCESS);
  int32_t ids[256];
  int n;
  cr_assert_eq(deco_tokenizer_tokenize(tok, story, strlen(story), DECO_TOKENIZE_ADD_SPECIAL, ids, 256, &n),
               DECO_STATUS_SUCCESS);
  cr_assert_eq(ids[0], 1);
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  cr_assert_eq(deco_eval_ids(m, ids, n, NULL, &s), DECO_STATUS_SUCCESS);
  char expect[128];
  snprintf(expect, sizeof expect, "eval: tokens=%d ppl=%.4f", n - 1, deco_eval_perplexity(&s));
  cr_assert_str_eq(deco_test_last_line(r.err), expect);
  cr_assert(deco_eval_perplexity(&s) < 10.0, "ppl %f", deco_eval_perplexity(&s));
  deco_test_run_free(&r);
  deco_tokenizer_destroy(tok);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* --text with a GGUF model: its own tokenizer (SmolLM2: no BOS), the ids
 * of `deco tokenize --file`; the mini model against itself as reference. */
Test(eval_cli, text_with_a_gguf_tokenizer) {
  const char *mini = deco_test_model_file(MINI);
  const char *path = tmp_file("en.txt", "The capital of France is Paris. The capital of Italy is Rome.\n");
  deco_test_run_t r, t;
  DECO_TEST_RUN_CLI(&t, "tokenize", "--model", mini, "--file", path);
  cr_assert_eq(t.status, 0, "%s", t.err);
  int n_ids = 1;
  for (const char *p = t.out; *p; ++p) n_ids += *p == ' ';
  DECO_TEST_RUN_CLI(&r, "eval", "--model", mini, "--ref", mini, "--text", path, "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char head[64];
  snprintf(head, sizeof head, "eval: tokens=%d ppl=", n_ids - 1);
  const char *last = deco_test_last_line(r.err);
  cr_assert(strncmp(last, head, strlen(head)) == 0, "%s (expected %s...)", last, head);
  cr_assert(deco_test_matches("^eval: tokens=[0-9]+ ppl=[0-9]+\\.[0-9]{4} ref_ppl=[0-9]+\\.[0-9]{4} "
                              "kl=0\\.000000 top1=1\\.0000$",
                              last),
            "%s", last);
  deco_test_run_free(&t);
  deco_test_run_free(&r);
}

Test(eval_cli, errors) {
  deco_test_run_t r;
  const char *mini = deco_test_model_file(MINI);
  const char *ok = tmp_file("ok.ids", "1 20 30\n");
  /* Usage: exit 2. */
  DECO_TEST_CLI_ERROR(2, "exactly one of --text FILE and --ids FILE", "eval", "--backend", "cpu");
  DECO_TEST_CLI_ERROR(2, "exactly one of", "eval", "--ids", ok, "--text", ok);
  DECO_TEST_CLI_ERROR(2, "unknown option '--bogus'", "eval", "--ids", ok, "--bogus");
  DECO_TEST_CLI_ERROR(2, "--threads", "eval", "--ids", ok, "--threads", "0");
  DECO_TEST_CLI_ERROR(2, "--dtype: bf16", "eval", "--ids", ok, "--backend", "cpu", "--dtype", "bf16");
  /* Bad input: exit 1. */
  DECO_TEST_CLI_ERROR(1, "empty.ids: no ids to score", "eval", "--ids", tmp_file("empty.ids", ""), "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "blank.ids: no ids to score", "eval", "--ids", tmp_file("blank.ids", "\n\n"), "--backend",
                      "cpu");
  DECO_TEST_CLI_ERROR(1, "nothing to score", "eval", "--ids", tmp_file("single.ids", "1\n5\n"), "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "big.ids:2: id 512 >= vocab 512", "eval", "--ids", tmp_file("big.ids", "1 20\n1 511 512 3\n"),
                      "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "comma.ids:1:", "eval", "--ids", tmp_file("comma.ids", "1,20\n"), "--backend", "cpu");
  static const char nul_ids[] = "1 20 30\n1 2\0 3\n1 4 5\n"; /* not the end of the file */
  const char *nul = tmp_file("nul.ids", "");
  cr_assert_eq(deco_test_write_file(nul, nul_ids, sizeof nul_ids - 1), 0);
  DECO_TEST_CLI_ERROR(1, "nul.ids:2: a NUL byte at column 4", "eval", "--ids", nul, "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "/nonexistent/x.ids", "eval", "--ids", "/nonexistent/x.ids", "--backend", "cpu");
  /* Vocabulary mismatch between the model and the reference, either way. */
  DECO_TEST_RUN_CLI(&r, "eval", "--ids", ok, "--ref", mini, "--backend", "cpu");
  deco_test_cli_error(&r, 1, "--ref: ");
  cr_assert(strstr(r.err, "vocabulary of 49152 ids") && strstr(r.err, "of 512"), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_CLI_ERROR(1, "vocabulary of 512 ids", "eval", "--model", mini, "--ids", ok, "--ref",
                      deco_test_data_file("models/stories260K.bin"), "--backend", "cpu");
  /* Two GGUF files of the same vocabulary size but different token lists
   * (the tiny fixture with its last token renamed): refused, naming both. */
  {
    size_t n = 0;
    unsigned char *b = deco_test_read_file(deco_test_data_file("fixtures/gguf/tiny_f32.gguf"), &n);
    cr_assert_not_null(b);
    unsigned char *key = memmem(b, n, "tokenizer.ggml.tokens", 21);
    cr_assert_not_null(key);
    unsigned char *tok = memmem(key, n - (size_t)(key - b), "tok71", 5);
    cr_assert_not_null(tok, "no token tok71 in the tiny fixture");
    tok[0] = 'T';
    char other[512];
    snprintf(other, sizeof other, "%s/tiny_renamed.gguf", deco_test_tmpdir());
    cr_assert_eq(deco_test_write_file(other, b, n), 0);
    free(b);
    const char *tiny = deco_test_data_file("fixtures/gguf/tiny_f32.gguf");
    const char *tiny_ids = tmp_file("tiny.ids", "1 20 30 40\n");
    DECO_TEST_RUN_CLI(&r, "eval", "--model", tiny, "--ids", tiny_ids, "--ref", other, "--backend", "cpu");
    deco_test_cli_error(&r, 1, "different tokenizers");
    cr_assert(strstr(r.err, "tiny_renamed.gguf") && strstr(r.err, "tiny_f32.gguf"), "%s", r.err);
    deco_test_run_free(&r);
    DECO_TEST_RUN_CLI(&r, "eval", "--model", tiny, "--ids", tiny_ids, "--ref", tiny, "--backend", "cpu");
    cr_assert_eq(r.status, 0, "%s", r.err);
    deco_test_run_free(&r);
  }
  /* Text with no tokenizer, or a tokenizer a GGUF model does not take. */
  DECO_TEST_CLI_ERROR(1, "--text needs --tokenizer", "eval", "--model", deco_test_data_file("models/stories260K.bin"),
                      "--text", ok, "--backend", "cpu");
  DECO_TEST_CLI_ERROR(1, "carries its own vocabulary", "eval", "--model", mini, "--tokenizer",
                      deco_test_data_file("models/tok512.bin"), "--text", ok, "--backend", "cpu");
  /* --help: usage on stdout, exit 0. */
  DECO_TEST_RUN_CLI(&r, "eval", "--help");
  cr_assert_eq(r.status, 0);
  cr_assert(strncmp(r.out, "usage: deco eval", 16) == 0, "%s", r.out);
  deco_test_run_free(&r);
}

/* An id outside the vocabulary, below or above it: the first one is named,
 * with its position. */
Test(eval, the_first_out_of_vocabulary_id_is_named) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_eval_stats_t s = DECO_EVAL_STATS_INIT;
  int32_t ids[4] = {1, 40, -2, 600};
  deco_test_refused(ctx, deco_eval_ids(m, ids, 4, NULL, &s), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_eval_ids: id -2 at 2 outside the vocabulary of 512");
  ids[2] = 3;
  deco_test_refused(ctx, deco_eval_ids(m, ids, 4, NULL, &s), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_eval_ids: id 600 at 3 outside the vocabulary of 512");
  cr_assert_eq(s.tokens, 0);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
