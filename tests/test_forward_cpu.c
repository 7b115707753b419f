/* tests/test_forward_cpu.c — the CPU forward on the real stories260K model
 * reproduces llama2.c: logits of the first 32 positions within
 * 1e-4 + 1e-4|r|, and the greedy id fixtures exactly. Also the forward's
 * batching invariances and argument checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/core/internal.h" /* the context's workspace pointer */
#include "common/testutil.h"
#include "common/tolerances.h"

static deco_ctx_t *ctx;
static deco_model_t *model;

static void load(void) {
  ctx = deco_test_cpu_ctx();
  deco_status_t st = deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), NULL, &model);
  cr_assert_eq(st, DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

static void unload(void) {
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  model = NULL;
  ctx = NULL;
}

static deco_kv_cache_t *new_cache(int max_seqs) {
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(model, 16, 64 * max_seqs, max_seqs, &kc), DECO_STATUS_SUCCESS);
  return kc;
}

Test(forward_cpu, config_of_stories260K) {
  load();
  const deco_model_hparams_t *c = deco_model_get_hparams(model);
  cr_assert_eq(c->dim, 64);
  cr_assert_eq(c->n_layers, 5);
  cr_assert_eq(c->n_heads, 8);
  cr_assert_eq(c->n_kv_heads, 4);
  cr_assert_eq(c->head_dim, 8);
  cr_assert_eq(c->vocab_size, 512);
  cr_assert_eq(c->shared_classifier, 1);
  cr_assert_eq(deco_model_weight_bytes(model), 4 * (size_t)(264128 - 4096));
  unload();
}

/* Teacher-forced logits, token by token and as one prefill. */
Test(forward_cpu, logits_match_llama2c_fixture) {
  load();
  int n_ids;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n_ids);
  size_t bytes;
  float *expect = deco_test_read_file(deco_test_data_file("fixtures/stories260K/logits_bos_32.f32"), &bytes);
  cr_assert(ids && expect && bytes == 32 * 512 * sizeof(float));
  float *logits = malloc(sizeof(float) * 32 * 512);
  /* Token by token. */
  deco_kv_cache_t *kc = new_cache(1);
  int seq, one = 1;
  cr_assert_eq(deco_kv_cache_admit(kc, 64, &seq), DECO_STATUS_SUCCESS);
  for (int p = 0; p < 32; ++p) {
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &one, .tokens = ids + p, .embeds = NULL,
                              .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits + (size_t)p * 512};
    cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  }
  cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 32);
  cr_assert_eq(deco_test_compare("logits (decode)", logits, expect, 32 * 512, DECO_TOL_FIXTURE_ATOL, DECO_TOL_FIXTURE_RTOL), 0);
  /* One prefill of 32 tokens, all logits. */
  cr_assert_eq(deco_kv_cache_release(kc, seq), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 64, &seq), DECO_STATUS_SUCCESS);
  int n = 32;
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_ALL, .logits = logits};
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_test_compare("logits (prefill)", logits, expect, 32 * 512, DECO_TOL_FIXTURE_ATOL, DECO_TOL_FIXTURE_RTOL), 0);
  deco_kv_cache_destroy(kc);
  free(logits);
  free(expect);
  free(ids);
  unload();
}

/* Greedy decoding through the library reproduces a fixture's ids. */
static void greedy_matches(const int32_t *prompt, int n_prompt, const char *ids_file, int steps) {
  int n_expect;
  int32_t *expect = deco_test_read_ids(deco_test_data_file(ids_file), &n_expect);
  cr_assert(expect);
  cr_assert_eq(n_expect, steps + 1);
  deco_kv_cache_t *kc = new_cache(1);
  int seq;
  cr_assert_eq(deco_kv_cache_admit(kc, steps, &seq), DECO_STATUS_SUCCESS);
  int32_t *got = malloc(sizeof(int32_t) * (size_t)(steps + 1));
  float logits[512];
  got[0] = prompt[0];
  int32_t token = prompt[0];
  for (int pos = 0; pos < steps; ++pos) {
    int one = 1;
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &one, .tokens = &token, .embeds = NULL,
                              .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits};
    cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    token = pos + 1 < n_prompt ? prompt[pos + 1] : deco_argmax(logits, 512);
    got[pos + 1] = token;
  }
  cr_assert_eq(deco_test_compare_i32(ids_file, got, expect, (size_t)steps + 1), 0);
  deco_kv_cache_destroy(kc);
  free(got);
  free(expect);
}

Test(forward_cpu, greedy_from_bos_matches_fixture) {
  load();
  int32_t bos = 1;
  greedy_matches(&bos, 1, "fixtures/stories260K/greedy_bos_256.ids", 256);
  unload();
}

Test(forward_cpu, greedy_dog_prompt_matches_fixture) {
  load();
  int n_prompt;
  int32_t *prompt = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_prompt);
  cr_assert(prompt);
  greedy_matches(prompt, n_prompt, "fixtures/stories260K/greedy_dog_200.ids", 200);
  free(prompt);
  unload();
}

Test(forward_cpu, batched_sequences_match_single) {
  load();
  /* Two sequences with different prompts in one batch give the same logits
   * as each alone (ragged prefill, then a batched decode step). */
  int32_t a[7] = {1, 403, 407, 261, 378, 432, 383}, b[3] = {1, 286, 261};
  float la[512], lb[512], both[2 * 512];
  deco_kv_cache_t *kc = new_cache(2);
  int s0, s1;
  cr_assert_eq(deco_kv_cache_admit(kc, 32, &s0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 32, &s1), DECO_STATUS_SUCCESS);
  int n7 = 7, n3 = 3;
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &s0, .n_new = &n7, .tokens = a, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = la};
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS);
  deco_forward_args_t fb = {.n_seqs = 1, .seqs = &s1, .n_new = &n3, .tokens = b, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = lb};
  cr_assert_eq(deco_forward(model, kc, &fb), DECO_STATUS_SUCCESS);
  deco_kv_cache_t *kc2 = new_cache(2);
  int t0, t1;
  cr_assert_eq(deco_kv_cache_admit(kc2, 32, &t0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc2, 32, &t1), DECO_STATUS_SUCCESS);
  int32_t ab[10];
  memcpy(ab, a, sizeof a);
  memcpy(ab + 7, b, sizeof b);
  int seqs[2] = {t1, t0}, ns[2] = {7, 3};
  seqs[0] = t0;
  seqs[1] = t1;
  deco_forward_args_t fab = {.n_seqs = 2, .seqs = seqs, .n_new = ns, .tokens = ab, .embeds = NULL, .parents = NULL,
                             .logits_mode = DECO_LOGITS_LAST, .logits = both};
  cr_assert_eq(deco_forward(model, kc2, &fab), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_test_compare("seq a", both, la, 512, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  cr_assert_eq(deco_test_compare("seq b", both + 512, lb, 512, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  /* A decode step of both sequences at once, in the other order. */
  int32_t next[2] = {300, 301};
  int order[2] = {t1, t0}, ones[2] = {1, 1};
  deco_forward_args_t step = {.n_seqs = 2, .seqs = order, .n_new = ones, .tokens = next, .embeds = NULL,
                              .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = both};
  cr_assert_eq(deco_forward(model, kc2, &step), DECO_STATUS_SUCCESS);
  int one = 1;
  deco_forward_args_t sa = {.n_seqs = 1, .seqs = &s0, .n_new = &one, .tokens = &next[1], .embeds = NULL,
                            .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = la};
  deco_forward_args_t sb = {.n_seqs = 1, .seqs = &s1, .n_new = &one, .tokens = &next[0], .embeds = NULL,
                            .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = lb};
  cr_assert_eq(deco_forward(model, kc, &sa), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(model, kc, &sb), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_test_compare("step b", both, lb, 512, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  cr_assert_eq(deco_test_compare("step a", both + 512, la, 512, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  deco_kv_cache_destroy(kc);
  deco_kv_cache_destroy(kc2);
  unload();
}

Test(forward_cpu, embeddings_input_equals_token_input) {
  load();
  /* Feeding the embedding rows themselves gives the same logits. */
  int32_t ids[3] = {1, 403, 407};
  float emb[3 * 64], l1[3 * 512], l2[3 * 512];
  deco_embedding_args_t e = {.dtype = DECO_DTYPE_F32, .n_tokens = 3, .vocab = 512, .dim = 64, .table = NULL,
                             .tokens = ids, .embeds = NULL, .out = emb};
  /* The table is the model's; read it back through a one-row-per-id forward-free path. */
  float *table = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), NULL);
  e.table = (const char *)table + 28;
  cr_assert_eq(deco_embedding(ctx, &e), DECO_STATUS_SUCCESS);
  deco_kv_cache_t *kc = new_cache(2);
  int s0, s1, n = 3;
  cr_assert_eq(deco_kv_cache_admit(kc, 16, &s0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 16, &s1), DECO_STATUS_SUCCESS);
  deco_forward_args_t a = {.n_seqs = 1, .seqs = &s0, .n_new = &n, .tokens = ids, .embeds = NULL, .parents = NULL,
                           .logits_mode = DECO_LOGITS_ALL, .logits = l1};
  deco_forward_args_t b = {.n_seqs = 1, .seqs = &s1, .n_new = &n, .tokens = NULL, .embeds = emb, .parents = NULL,
                           .logits_mode = DECO_LOGITS_ALL, .logits = l2};
  cr_assert_eq(deco_forward(model, kc, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(model, kc, &b), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(l1, l2, sizeof l1), 0, "embeddings input differs from token input");
  free(table);
  deco_kv_cache_destroy(kc);
  unload();
}

Test(forward_cpu, tail_logits_are_the_last_rows_of_all) {
  load();
  /* DECO_LOGITS_TAIL gives each sequence's last n_tail rows of what
   * DECO_LOGITS_ALL gives, in order: one sequence, then two in one batch
   * (rows gathered per sequence, and one block when every n_new is n_tail). */
  int32_t ab[10] = {1, 403, 407, 261, 378, 432, 383, 1, 286, 261};
  static float all[10 * 512], tail[6 * 512];
  for (int two = 0; two < 3; ++two) {
    deco_kv_cache_t *ka = new_cache(2), *kt = new_cache(2);
    int sa[2], st[2];
    for (int i = 0; i < 2; ++i) {
      cr_assert_eq(deco_kv_cache_admit(ka, 32, &sa[i]), DECO_STATUS_SUCCESS);
      cr_assert_eq(deco_kv_cache_admit(kt, 32, &st[i]), DECO_STATUS_SUCCESS);
    }
    /* The third case: every sequence's n_new is n_tail (one block of rows). */
    int ns[2] = {two == 2 ? 3 : 7, 3};
    const int S = two ? 2 : 1, n_tail = two == 1 ? 2 : 3;
    deco_forward_args_t fa = {.n_seqs = S, .seqs = sa, .n_new = ns, .tokens = ab, .logits_mode = DECO_LOGITS_ALL,
                              .logits = all};
    cr_assert_eq(deco_forward(model, ka, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    deco_forward_args_t ft = {.n_seqs = S, .seqs = st, .n_new = ns, .tokens = ab, .logits_mode = DECO_LOGITS_TAIL,
                              .logits = tail, .n_tail = n_tail};
    cr_assert_eq(deco_forward(model, kt, &ft), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    int end = 0;
    for (int i = 0; i < S; ++i) {
      end += ns[i];
      for (int r = 0; r < n_tail; ++r) {
        char what[64];
        snprintf(what, sizeof what, "%d sequence(s): sequence %d, tail row %d", S, i, r);
        cr_assert_eq(deco_test_compare(what, tail + (size_t)(i * n_tail + r) * 512,
                                       all + (size_t)(end - n_tail + r) * 512, 512, DECO_TOL_F32_REDUCTION,
                                       DECO_TOL_F32_REDUCTION),
                     0);
      }
    }
    /* n_tail outside [1, every n_new]: refused, nothing committed. */
    ft.n_tail = two ? 4 : 0;
    cr_assert_eq(deco_forward(model, kt, &ft), DECO_STATUS_INVALID_ARGUMENT);
    cr_assert(strstr(deco_last_error(ctx), "n_tail") != NULL, "%s", deco_last_error(ctx));
    cr_assert_eq(deco_kv_cache_seq_len(kt, st[0]), ns[0]);
    deco_kv_cache_destroy(ka);
    deco_kv_cache_destroy(kt);
  }
  unload();
}

/* Plans a forward of one token with ws bytes of workspace for the caller's
 * ops on a cache of model m, runs it, and destroys the cache. */
static void plan_and_forward(deco_model_t *m, size_t ws) {
  deco_ctx_t *c = deco_model_ctx(m);
  deco_kv_cache_t *kc;
  int seq, one = 1;
  cr_assert_eq(deco_kv_cache_create(m, 16, 1, 1, &kc), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  cr_assert_eq(deco_kv_cache_admit(kc, 16, &seq), DECO_STATUS_SUCCESS);
  deco_forward_plan_t p = DECO_FORWARD_PLAN_INIT;
  p.workspace_bytes = ws;
  cr_assert_eq(deco_model_plan(m, kc, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  const int32_t tok = 1;
  float *logits;
  cr_assert_eq(deco_malloc(c, (void **)&logits, sizeof(float) * 512), DECO_STATUS_SUCCESS);
  deco_forward_args_t a = DECO_FORWARD_ARGS_INIT;
  a.n_seqs = 1;
  a.seqs = &seq;
  a.n_new = &one;
  a.tokens = &tok;
  a.logits = logits;
  cr_assert_eq(deco_forward(m, kc, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  deco_free(c, logits);
  deco_kv_cache_destroy(kc);
}

/* A workspace smaller than a model needs is replaced by the model's own
 * (model.h, "Planning"); destroying the model gives the caller's back,
 * whichever models on the context displaced which. */
Test(forward_cpu, destroy_restores_the_callers_workspace) {
  deco_ctx_t *c = deco_test_cpu_ctx();
  void *mine;
  cr_assert_eq(deco_malloc(c, &mine, 256), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ctx_set_workspace(c, mine, 64), DECO_STATUS_SUCCESS);

  deco_model_t *m = deco_test_load_stories(c, DECO_DTYPE_F32);
  plan_and_forward(m, 1 << 16);
  cr_assert(c->workspace != mine && deco_ctx_workspace_bytes(c) >= (size_t)1 << 16, "the model's is lent");
  deco_model_destroy(m);
  cr_assert(c->workspace == mine && deco_ctx_workspace_bytes(c) == 64, "%p, %zu bytes", c->workspace,
            deco_ctx_workspace_bytes(c));

  /* A view displaces the caller's, its base then displaces the view's;
   * the view goes first (its buffer freed), then the base. */
  m = deco_test_load_stories(c, DECO_DTYPE_F32);
  deco_model_t *view;
  const deco_layer_schedule_t all = DECO_LAYER_SCHEDULE_INIT;
  cr_assert_eq(deco_model_create_view(m, &all, &view), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  plan_and_forward(view, 1 << 12);
  void *lent_by_view = c->workspace;
  cr_assert(lent_by_view != mine);
  plan_and_forward(m, 1 << 16);
  cr_assert(c->workspace != lent_by_view && c->workspace != mine);
  deco_model_destroy(view);
  cr_assert(c->workspace != lent_by_view && deco_ctx_workspace_bytes(c) >= (size_t)1 << 16);
  deco_model_destroy(m);
  cr_assert(c->workspace == mine && deco_ctx_workspace_bytes(c) == 64, "%p, %zu bytes", c->workspace,
            deco_ctx_workspace_bytes(c));

  /* A workspace the caller sets while a model's is lent stays. */
  m = deco_test_load_stories(c, DECO_DTYPE_F32);
  plan_and_forward(m, 1 << 16);
  cr_assert_eq(deco_ctx_set_workspace(c, (char *)mine + 128, 128), DECO_STATUS_SUCCESS);
  deco_model_destroy(m);
  cr_assert(c->workspace == (char *)mine + 128 && deco_ctx_workspace_bytes(c) == 128);
  deco_free(c, mine);
  deco_ctx_destroy(c);
}

Test(forward_cpu, bad_arguments) {
  load();
  deco_kv_cache_t *kc = new_cache(1);
  int seq;
  cr_assert_eq(deco_kv_cache_admit(kc, 8, &seq), DECO_STATUS_SUCCESS);
  float logits[512];
  int32_t bad = 512, ok = 5;
  int one = 1, other = seq + 1;
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &one, .tokens = &bad, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "vocabulary") != NULL, "%s", deco_last_error(ctx));
  fa.tokens = &ok;
  fa.seqs = &other;
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT);
  fa.seqs = &seq;
  cr_assert_eq(deco_forward(NULL, kc, &fa), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 0, "a failed forward must not commit");
  deco_kv_cache_destroy(kc);
  unload();
}

/* Every argument check of deco_forward, deco_forward_device and
 * deco_model_plan names what it refused, in these words. */
Test(forward_cpu, argument_errors_name_what_they_refuse) {
  load();
  deco_kv_cache_t *kc = new_cache(2);
  int s0, s1;
  cr_assert_eq(deco_kv_cache_admit(kc, 8, &s0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_kv_cache_admit(kc, 600, &s1), DECO_STATUS_SUCCESS);
  static float logits[2 * 600 * 512];
  static int32_t ids[600];
  int32_t par[3] = {-1, 0, 1};
  int n[2] = {1, 1}, seqs[2] = {s0, s0};
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = seqs, .n_new = n, .tokens = ids, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  fa.n_seqs = 3;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: a->n_seqs = 3 outside [1, 2]");
  fa.n_seqs = 1;
  fa.seqs = NULL;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_NULL_POINTER, "deco_forward: a->seqs is NULL");
  fa.seqs = seqs;
  fa.n_new = NULL;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_NULL_POINTER, "deco_forward: a->n_new is NULL");
  fa.n_new = n;
  fa.logits = NULL;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_NULL_POINTER, "deco_forward: a->logits is NULL");
  fa.logits = logits;
  fa.tokens = NULL;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_NULL_POINTER,
                 "deco_forward: tokens and embeds are both NULL");
  fa.tokens = ids;
  fa.logits_mode = (deco_logits_mode_t)7;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT, "deco_forward: logits_mode = 7");
  fa.logits_mode = DECO_LOGITS_LAST;
  seqs[0] = -1;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: seqs[0] = -1 is not an admitted sequence");
  seqs[0] = s0;
  fa.n_seqs = 2;
  {
    char want[96];
    snprintf(want, sizeof want, "deco_forward: sequence %d appears twice in the batch", s0);
    deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT, want);
  }
  fa.n_seqs = 1;
  n[0] = 0;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: n_new[0] = 0 outside [1, 1048576]");
  fa.parents = par;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: n_new[0] = 0 outside [1, 256]");
  fa.parents = NULL;
  n[0] = 3;
  fa.logits_mode = DECO_LOGITS_TAIL;
  fa.n_tail = 4;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: n_tail = 4 outside [1, n_new[0] = 3]");
  fa.logits_mode = DECO_LOGITS_LAST;
  n[0] = 17;
  {
    char want[96];
    snprintf(want, sizeof want, "deco_forward: sequence %d has 0 + 17 slots but reserved 16", s0);
    deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_CAPACITY, want);
  }
  seqs[0] = s1;
  n[0] = 513;
  {
    char want[96];
    snprintf(want, sizeof want, "deco_forward: sequence %d would reach position 512 >= seq_len 512", s1);
    deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_CAPACITY, want);
  }
  n[0] = 3;
  ids[2] = 512;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                 "deco_forward: tokens[2] = 512 outside the vocabulary [0, 512)");
  ids[2] = 0;
  cr_assert_eq(deco_kv_cache_seq_len(kc, s0), 0, "a refused forward must not commit");
  cr_assert_eq(deco_kv_cache_seq_len(kc, s1), 0, "a refused forward must not commit");

  /* The device forward's batch is in context memory: only host-known
   * sizes and pointers are checked (none is read before they pass). */
  static const struct {
    deco_status_t status;
    const char *message;
  } device[] = {
      {DECO_STATUS_INVALID_ARGUMENT, "deco_forward_device: a->n_seqs = 0 outside [1, 2]"},
      {DECO_STATUS_INVALID_ARGUMENT, "deco_forward_device: a->n_tokens = 0 outside [1, 1048576]"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: tokens and embeds are both NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->positions is NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->q_indptr is NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->kv_lens is NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->block_table is NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->logits is NULL"},
      {DECO_STATUS_NULL_POINTER, "deco_forward_device: a->prefix_lens is NULL"},
      {DECO_STATUS_INVALID_ARGUMENT, "deco_forward_device: 257 tokens for 1 trees of at most 256 nodes"},
  };
  for (int i = 0; i < (int)(sizeof device / sizeof device[0]); ++i) {
    deco_forward_device_args_t da = DECO_FORWARD_DEVICE_ARGS_INIT;
    da.n_seqs = 1, da.n_tokens = 1, da.tokens = ids, da.positions = ids, da.q_indptr = ids, da.kv_lens = ids;
    da.block_table = ids, da.logits = logits;
    switch (i) {
    case 0: da.n_seqs = 0; break;
    case 1: da.n_tokens = 0; break;
    case 2: da.tokens = NULL; break;
    case 3: da.positions = NULL; break;
    case 4: da.q_indptr = NULL; break;
    case 5: da.kv_lens = NULL; break;
    case 6: da.block_table = NULL; break;
    case 7: da.logits = NULL; break;
    case 8: da.parents = par; break;
    default: da.parents = par, da.prefix_lens = ids, da.n_tokens = 257; break;
    }
    deco_test_refused(ctx, deco_forward_device(model, kc, &da), device[i].status, device[i].message);
  }

  static const char *const plan[] = {
      "deco_model_plan: p->max_seqs = 3 outside [1, 2]", "deco_model_plan: p->max_tokens = 1 outside [2, 1048576]",
      "deco_model_plan: p->causal = 2 outside [0, 1]", "deco_model_plan: p->tree = -1 outside [0, 1]",
      "deco_model_plan: 600 tokens for 2 trees of at most 256 nodes"};
  for (int i = 0; i < (int)(sizeof plan / sizeof plan[0]); ++i) {
    deco_forward_plan_t p = DECO_FORWARD_PLAN_INIT;
    p.max_seqs = i == 0 ? 3 : 2;
    p.max_tokens = i <= 1 ? 1 : 600;
    p.causal = i == 2 ? 2 : 1;
    p.tree = i == 3 ? -1 : i == 4;
    deco_test_refused(ctx, deco_model_plan(model, kc, &p, NULL), DECO_STATUS_INVALID_ARGUMENT, plan[i]);
  }
  deco_kv_cache_destroy(kc);
  unload();
}

/* An id outside the vocabulary, below or above it: the first one in the
 * batch is named, counted over all its sequences. */
Test(forward_cpu, the_first_out_of_vocabulary_token_is_named) {
  load();
  deco_kv_cache_t *kc = new_cache(2);
  int seqs[2], n[2] = {3, 1};
  for (int s = 0; s < 2; ++s) cr_assert_eq(deco_kv_cache_admit(kc, 8, &seqs[s]), DECO_STATUS_SUCCESS);
  static float logits[2 * 512];
  int32_t ids[4] = {5, -1, 512, 7};
  deco_forward_args_t fa = {.n_seqs = 2, .seqs = seqs, .n_new = n, .tokens = ids, .embeds = NULL, .parents = NULL,
                            .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_forward: tokens[1] = -1 outside the vocabulary [0, 512)");
  ids[1] = 511;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_forward: tokens[2] = 512 outside the vocabulary [0, 512)");
  ids[2] = 0;
  ids[3] = 1000;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_forward: tokens[3] = 1000 outside the vocabulary [0, 512)");
  ids[3] = 7;
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_kv_cache_destroy(kc);
  unload();
}

/* A plan's sizes are what it holds: the scratch rounds a plan of 16 tokens
 * up to 64, so its scratch_bytes equal a 64-token plan's, and a later
 * smaller plan reports the same buffers. */
Test(forward_cpu, plan_sizes_are_what_is_held) {
  deco_ctx_t *c = deco_test_cpu_ctx();
  deco_forward_sizes_t sizes[3];
  const int tokens[3] = {16, 64, 4};
  for (int k = 0; k < 2; ++k) {
    deco_model_t *m = deco_test_load_stories(c, DECO_DTYPE_F32);
    deco_kv_cache_t *kc;
    cr_assert_eq(deco_kv_cache_create(m, 16, 64, 1, &kc), DECO_STATUS_SUCCESS);
    for (int i = k; i < 3; i += 2) {
      deco_forward_plan_t p = DECO_FORWARD_PLAN_INIT;
      p.max_tokens = tokens[i];
      sizes[i] = (deco_forward_sizes_t)DECO_FORWARD_SIZES_INIT;
      cr_assert_eq(deco_model_plan(m, kc, &p, &sizes[i]), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
    }
    deco_kv_cache_destroy(kc);
    deco_model_destroy(m);
  }
  cr_assert_gt(sizes[0].scratch_bytes, 0);
  cr_assert_eq(sizes[0].scratch_bytes, sizes[1].scratch_bytes, "16 tokens: %zu bytes, 64 tokens: %zu",
               sizes[0].scratch_bytes, sizes[1].scratch_bytes);
  cr_assert_eq(sizes[2].scratch_bytes, sizes[0].scratch_bytes, "after 16, a 4-token plan holds the same");
  deco_ctx_destroy(c);
}

/* A held plan (deco_model_hold_plan): tests/common's check. */
Test(forward_cpu, held_plan_refuses_growth) {
  deco_ctx_t *c = deco_test_cpu_ctx();
  deco_test_held_plan(c);
  deco_ctx_destroy(c);
}

/* A held base keeps the workspace its view lent: the view may not grow
 * (free) it while the base holds, and may once the hold is released or the
 * held base is gone. */
Test(forward_cpu, held_plan_keeps_a_workspace_another_model_lent) {
  deco_ctx_t *c = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(c, DECO_DTYPE_F32), *view;
  const deco_layer_schedule_t all = DECO_LAYER_SCHEDULE_INIT;
  cr_assert_eq(deco_model_create_view(m, &all, &view), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  deco_kv_cache_t *kc, *kcv; /* the base's and the view's */
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 1, &kc), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  cr_assert_eq(deco_kv_cache_create(view, 16, 4, 1, &kcv), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  deco_forward_plan_t p = DECO_FORWARD_PLAN_INIT;
  p.workspace_bytes = 1 << 16;
  cr_assert_eq(deco_model_plan(view, kcv, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  void *lent = c->workspace;
  p.workspace_bytes = 1 << 12;
  cr_assert_eq(deco_model_plan(m, kc, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  cr_assert(c->workspace == lent, "the base plans within the view's workspace");
  cr_assert_eq(deco_model_hold_plan(m, 1), DECO_STATUS_SUCCESS);

  p.workspace_bytes = 1 << 20;
  deco_test_refused(c, deco_model_plan(view, kcv, &p, NULL), DECO_STATUS_CAPACITY,
                    "held plan (deco_model_hold_plan): 1048576 bytes of workspace needed, the plan has 81920");
  cr_assert(c->workspace == lent);
  cr_assert_eq(deco_model_hold_plan(m, 1), DECO_STATUS_SUCCESS, "holding twice counts once");
  cr_assert_eq(deco_model_hold_plan(m, 0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_model_plan(view, kcv, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  cr_assert(c->workspace != lent && deco_ctx_workspace_bytes(c) >= (size_t)1 << 20);

  /* Destroying a held model releases its hold. */
  cr_assert_eq(deco_model_hold_plan(view, 1), DECO_STATUS_SUCCESS);
  p.workspace_bytes = (size_t)1 << 22;
  cr_assert_eq(deco_model_plan(m, kc, &p, NULL), DECO_STATUS_CAPACITY);
  deco_kv_cache_destroy(kcv);
  deco_model_destroy(view);
  cr_assert_eq(deco_model_plan(m, kc, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(c));
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
  deco_ctx_destroy(c);
}

/* A tree batch's refusals found while laying out its positions: a parent
 * array that is no tree, and a node past the model's seq_len (trees skip
 * the chain's seq_len check). Nothing is committed. */
Test(forward_cpu, tree_batch_layout_errors_name_the_tree_and_node) {
  load();
  deco_kv_cache_t *kc = new_cache(2);
  int s;
  cr_assert_eq(deco_kv_cache_admit(kc, 600, &s), DECO_STATUS_SUCCESS);
  static float logits[3 * 512];
  static int32_t ids[510];
  int n = 3;
  int32_t par[3] = {-1, 2, 0};
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &s, .n_new = &n, .tokens = ids, .parents = par,
                            .logits_mode = DECO_LOGITS_ALL, .logits = logits};
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_forward: tree 0: deco_tree_validate: node 1 has parent 2, expected 0 <= parent < 1 "
                    "(topological order)");
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 0, "a refused forward must not commit");
  /* 510 tokens in, then a chain of 3 reaches position 512. */
  n = 510;
  fa.parents = NULL;
  fa.logits_mode = DECO_LOGITS_LAST;
  cr_assert_eq(deco_forward(model, kc, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 510);
  n = 3;
  par[1] = 0;
  par[2] = 1;
  fa.parents = par;
  fa.logits_mode = DECO_LOGITS_ALL;
  deco_test_refused(ctx, deco_forward(model, kc, &fa), DECO_STATUS_CAPACITY,
                    "deco_forward: tree 0 node 2 at position 512 >= seq_len 512");
  cr_assert_eq(deco_kv_cache_seq_len(kc, s), 510, "a refused forward must not commit");
  deco_kv_cache_destroy(kc);
  unload();
}
