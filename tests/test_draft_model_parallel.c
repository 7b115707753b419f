/* tests/test_draft_model_parallel.c — layer-parallel model drafts (EasySpec,
 * issue 19, one process) on stories260K on the CPU: layer_parallel 1 gives
 * the ids and stats of no grouping; any N keeps greedy output equal to
 * plain greedy, with and without KV calibration, for a layer subset and a
 * separate draft; after calibration the draft's committed K/V equals, bit
 * for bit, a sequential draft fed the accepted ids, while without it the
 * grouped forwards' approximate K/V stays; the calibration costs no draft
 * forward beyond the levels; N beyond the middle layers is
 * refused (library and CLI). The grouped forward's formula itself is
 * checked in tests/test_model_config.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static const int32_t dog_prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
#define N_DOG ((int)(sizeof dog_prompt / sizeof dog_prompt[0]))

static deco_drafter_t *drafter(deco_model_t *m, deco_model_t *draft, const int *layers, int n, int K, int W, int N,
                               int no_calibrate) {
  deco_model_draft_config_t c = deco_test_draft_config(layers, n, K, W, 0, 300);
  c.layer_parallel = N;
  c.no_calibrate = no_calibrate;
  return deco_test_model_drafter(m, draft, &c);
}

Test(draft_parallel, one_layer_per_group_is_no_grouping) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int layers[] = {0, 1, 2, 4};
  static deco_test_capture_t a, b;
  deco_generate_stats_t sa, sb;
  for (int W = 1; W <= 3; W += 2) {
    deco_drafter_t *d0 = drafter(m, NULL, layers, 4, 4, W, 0, 0), *d1 = drafter(m, NULL, layers, 4, 4, W, 1, 0);
    deco_test_greedy(m, d0, dog_prompt, N_DOG, 200, &a, &sa);
    deco_test_greedy(m, d1, dog_prompt, N_DOG, 200, &b, &sb);
    char what[64];
    snprintf(what, sizeof what, "width %d: grouped vs not", W);
    deco_test_same_run(what, &a, &sa, &b, &sb);
    deco_drafter_destroy(d0);
    deco_drafter_destroy(d1);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_parallel, greedy_equals_plain_for_every_group_size) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_t *copy = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  static deco_test_capture_t plain, spec;
  deco_generate_stats_t st;
  deco_test_greedy(m, NULL, dog_prompt, N_DOG, 200, &plain, &st);
  const int all[] = {0, 1, 2, 3, 4}, gap[] = {0, 1, 2, 4};
  static const struct {
    int separate, n_layers, N, W;
  } cases[] = {{0, 5, 2, 1}, {0, 5, 3, 1}, {0, 5, 3, 4}, {0, 4, 2, 1}, {1, 5, 2, 1}, {1, 5, 3, 2}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
    for (int nc = 0; nc < 2; ++nc) {
      deco_drafter_t *d = cases[i].separate ? drafter(m, copy, NULL, 0, 4, cases[i].W, cases[i].N, nc)
                                            : drafter(m, NULL, cases[i].n_layers == 5 ? all : gap,
                                                      cases[i].n_layers, 4, cases[i].W, cases[i].N, nc);
      deco_test_greedy(m, d, dog_prompt, N_DOG, 200, &spec, &st);
      fprintf(stderr, "case %zu (%s, %d layers, N=%d, W=%d, %s): mean_accepted %.3f\n", i,
              cases[i].separate ? "separate" : "subset", cases[i].n_layers, cases[i].N, cases[i].W,
              nc ? "no calibration" : "calibrated", (double)st.tokens / st.forwards);
      cr_assert_eq(spec.n, plain.n);
      cr_assert_eq(memcmp(spec.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n), 0, "case %zu/%d", i, nc);
      cr_assert(st.forwards < st.tokens);
      /* One prefill forward (8 ids), then at most K = 4 per round: the
       * calibration is the first level's forward, not a pass of its own. */
      const long df = deco_drafter_model_forwards(d);
      cr_assert(df > st.forwards && df <= 1 + 4L * st.forwards, "case %zu/%d: %ld draft forwards for %d rounds", i, nc,
                df, st.forwards);
      deco_drafter_destroy(d);
    }
  deco_model_destroy(copy);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Slots [0, n) of one sequence's K and V in every layer. */
static size_t read_kv(deco_kv_cache_t *kc, int seq, int n, float *out) {
  void *k, *v;
  size_t bytes;
  cr_assert_eq(deco_kv_cache_pools(kc, &k, &v, &bytes), DECO_STATUS_SUCCESS);
  const deco_model_hparams_t *hp = deco_model_get_hparams(deco_kv_cache_model(kc));
  const int kvd = hp->n_kv_heads * hp->head_dim, P = deco_kv_cache_max_pages(kc);
  int32_t *table = malloc(sizeof(int32_t) * (size_t)P);
  cr_assert_eq(deco_kv_cache_block_table(kc, &seq, 1, table), DECO_STATUS_SUCCESS); /* CPU: host memory */
  const size_t layer_elems = bytes / sizeof(float) / (size_t)hp->n_layers;
  size_t o = 0;
  for (int l = 0; l < hp->n_layers; ++l)
    for (int t = 0; t < n; ++t)
      for (int w = 0; w < 2; ++w) {
        const float *pool = (const float *)(w ? v : k) + (size_t)l * layer_elems;
        memcpy(out + o, pool + ((size_t)table[t / 16] * 16 + t % 16) * kvd, sizeof(float) * (size_t)kvd);
        o += (size_t)kvd;
      }
  free(table);
  return o;
}

Test(draft_parallel, calibration_leaves_the_sequential_kv) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int all[] = {0, 1, 2, 3, 4};
  for (int nc = 0; nc < 2; ++nc) {
    deco_drafter_t *d = drafter(m, NULL, all, 5, 4, 2, 3, nc);
    static deco_test_capture_t cap;
    deco_generate_stats_t st;
    deco_test_greedy(m, d, dog_prompt, N_DOG, 150, &cap, &st);
    int dseq;
    deco_kv_cache_t *kc = deco_drafter_model_cache(d, 0, &dseq);
    cr_assert_not_null(kc);
    const int n = deco_kv_cache_seq_len(kc, dseq);
    cr_assert(n > 100 && n < cap.n, "%d of %d ids committed", n, cap.n);
    /* A sequential draft (every layer alone) fed ids[0..n) at once. */
    deco_kv_cache_t *ref;
    cr_assert_eq(deco_kv_cache_create(m, 16, 32, 1, &ref), DECO_STATUS_SUCCESS);
    int rseq;
    cr_assert_eq(deco_kv_cache_admit(ref, 400, &rseq), DECO_STATUS_SUCCESS);
    static float logits[512];
    const deco_forward_args_t fa = {.n_seqs = 1, .seqs = &rseq, .n_new = &n, .tokens = cap.ids, .embeds = NULL,
                                    .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits};
    cr_assert_eq(deco_forward(m, ref, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const size_t elems = (size_t)5 * n * 2 * 32;
    float *a = malloc(sizeof(float) * elems), *b = malloc(sizeof(float) * elems);
    cr_assert_eq(read_kv(kc, dseq, n, a), elems);
    cr_assert_eq(read_kv(ref, rseq, n, b), elems);
    size_t diff = 0;
    for (size_t i = 0; i < elems; ++i) diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    fprintf(stderr, "%s: %d committed slots, mean_accepted %.3f, %zu of %zu K/V values differ from sequential\n",
            nc ? "no calibration" : "calibrated", n, (double)st.tokens / st.forwards, diff, elems);
    if (!nc)
      cr_assert_eq(diff, 0, "after calibration the draft's K/V must be the sequential draft's, bit for bit");
    else
      cr_assert_gt(diff, 0, "without calibration the grouped forwards' approximate K/V must remain");
    free(a);
    free(b);
    deco_kv_cache_destroy(ref);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_parallel, more_than_the_middle_layers_is_refused) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
  const int layers[] = {0, 2, 4};
  c.layers = layers;
  c.n_layers = 3;
  c.layer_parallel = 2;
  deco_drafter_t *d = NULL;
  cr_assert_eq(deco_drafter_create_model(m, NULL, &c, &d), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(ctx), "middle layers") != NULL, "%s", deco_last_error(ctx));
  cr_assert_null(d);
  c.layers = NULL;
  c.n_layers = 0;
  c.layer_parallel = 4;
  cr_assert_eq(deco_drafter_create_model(m, m, &c, &d), DECO_STATUS_INVALID_ARGUMENT, "5 layers have 3 middle ones");
  c.layer_parallel = 3;
  cr_assert_eq(deco_drafter_create_model(m, m, &c, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_drafter_destroy(d);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* Drafting twice without an observation between (deco_drafter_draft by
 * hand, e.g. a step that was not verified) must draft the same tree from
 * the same draft-cache state: chains (which commit levels ahead) and trees,
 * with and without layer-parallel calibration. */
Test(draft_parallel, drafting_again_without_an_observation_drafts_the_same) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = deco_test_load_stories(ctx, DECO_DTYPE_F32);
  const int all[] = {0, 1, 2, 3, 4};
  static const struct {
    int K, W, N, nc;
  } cases[] = {{4, 1, 0, 0}, {4, 3, 0, 0}, {4, 1, 3, 1}, {4, 2, 3, 0}, {4, 1, 3, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    deco_drafter_t *d = drafter(m, NULL, all, 5, cases[i].K, cases[i].W, cases[i].N, cases[i].nc);
    static deco_test_capture_t cap;
    deco_generate_stats_t st;
    deco_test_greedy(m, d, dog_prompt, N_DOG, 60, &cap, &st);
    int dseq;
    deco_kv_cache_t *kc = deco_drafter_model_cache(d, 0, &dseq);
    const int len0 = deco_kv_cache_seq_len(kc, dseq);
    int32_t t1[DECO_TREE_MAX_NODES], p1[DECO_TREE_MAX_NODES], t2[DECO_TREE_MAX_NODES], p2[DECO_TREE_MAX_NODES];
    int n1, n2;
    cr_assert_eq(deco_drafter_draft(d, 0, t1, p1, &n1), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const int len1 = deco_kv_cache_seq_len(kc, dseq);
    cr_assert_eq(deco_drafter_draft(d, 0, t2, p2, &n2), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const int len2 = deco_kv_cache_seq_len(kc, dseq);
    fprintf(stderr, "case %zu (K=%d W=%d N=%d nc=%d): len %d -> %d -> %d, nodes %d, %d\n", i, cases[i].K,
            cases[i].W, cases[i].N, cases[i].nc, len0, len1, len2, n1, n2);
    cr_assert_eq(len2, len1, "case %zu: the second draft left the draft cache at %d slots, the first at %d", i, len2,
                 len1);
    cr_assert_eq(n2, n1, "case %zu", i);
    cr_assert_eq(memcmp(t1, t2, sizeof(int32_t) * (size_t)n1), 0, "case %zu: the drafts differ", i);
    cr_assert_eq(memcmp(p1, p2, sizeof(int32_t) * (size_t)n1), 0, "case %zu: the parents differ", i);
    deco_drafter_destroy(d);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
