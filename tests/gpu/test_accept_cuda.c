/* tests/gpu/test_accept_cuda.c — greedy and stochastic tree acceptance on the
 * CUDA backend against the C reference (the CPU backend fed the same logits,
 * bf16 ones converted to f32): greedy exact; sampling decisions exact for the
 * same seed except where the tests' model finds a decision within
 * DECO_TOL_THRESHOLD of its threshold (counted and printed); a chi-square
 * test of the GPU's joint law of the first two tokens with the batch as
 * trials; malformed trees; poisoned outputs and guard words.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../accept_model.h"
#include "common/testutil.h"
#include "gpu_suite.h"
#include "common/tolerances.h"
#include "deco/deco.h"

DECO_GPU_SUITE(accept_cuda, 300);

static uint32_t rng_u32(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}
static int rng_int(uint64_t *s, int n) { return (int)(rng_u32(s) % (uint32_t)n); }

static int argmax_low(const float *row, int V) {
  int b = 0;
  for (int y = 1; y < V; ++y)
    if (row[y] > row[b]) b = y;
  return b;
}

/* A ragged batch on the host, its logits already rounded to dtype. */
typedef struct hbatch {
  int B, N, V;
  int32_t *indptr, *parent, *tokens;
  float *logits, *q;
} hbatch_t;

static void hbatch_free(hbatch_t *h) {
  free(h->indptr), free(h->parent), free(h->tokens), free(h->logits), free(h->q);
}

/* Trees of up to max_n nodes; tokens favour the parent's argmax (paths
 * grow), with duplicate siblings and some out-of-range tokens. coarse:
 * logits on a grid of 4 values (argmax ties) instead of uniform. */
static hbatch_t make_batch(uint64_t seed, int B, int V, int max_n, int chain, int coarse, deco_dtype_t dt) {
  hbatch_t h = {B, 0, V, NULL, NULL, NULL, NULL, NULL};
  uint64_t s = seed;
  h.indptr = malloc((B + 1) * sizeof(int32_t));
  h.indptr[0] = 0;
  for (int t = 0; t < B; ++t) h.indptr[t + 1] = h.indptr[t] + 1 + rng_int(&s, max_n);
  h.N = h.indptr[B] + 3; /* capacity above the real count */
  h.parent = malloc(h.N * sizeof(int32_t));
  h.tokens = malloc(h.N * sizeof(int32_t));
  h.logits = malloc((size_t)h.N * V * sizeof(float));
  h.q = malloc((size_t)h.N * V * sizeof(float));
  deco_test_fill_uniform(h.logits, (size_t)h.N * V, seed, 1, -4.0f, 4.0f);
  if (coarse)
    for (size_t i = 0; i < (size_t)h.N * V; ++i) h.logits[i] = floorf(h.logits[i]) * 0.5f;
  deco_test_round_to(h.logits, (size_t)h.N * V, dt);
  deco_test_fill_uniform(h.q, (size_t)h.N * V, seed, 2, -2.0f, 2.0f);
  for (int i = 0; i < h.N; ++i) {
    double sum = 0.0;
    float *q = h.q + (size_t)i * V;
    for (int y = 0; y < V; ++y) sum += (q[y] = expf(q[y]));
    for (int y = 0; y < V; ++y) q[y] = (float)(q[y] / sum);
  }
  for (int t = 0; t < B; ++t) {
    int lo = h.indptr[t], n = h.indptr[t + 1] - lo;
    h.parent[lo] = -1;
    for (int i = 1; i < n; ++i) {
      int span = 1 + rng_int(&s, 6);
      int lo2 = i - span < 0 ? 0 : i - span;
      h.parent[lo + i] = chain ? i - 1 : lo2 + rng_int(&s, i - lo2);
    }
    h.tokens[lo] = rng_int(&s, V);
    for (int i = 1; i < n; ++i) {
      int p = h.parent[lo + i], r = rng_int(&s, 20);
      if (r == 0) h.tokens[lo + i] = V + rng_int(&s, 5);
      else if (r < 13) h.tokens[lo + i] = argmax_low(h.logits + (size_t)(lo + p) * V, V);
      else if (r < 15 && i > 1 && h.parent[lo + i - 1] == p) h.tokens[lo + i] = h.tokens[lo + i - 1];
      else h.tokens[lo + i] = rng_int(&s, V);
    }
  }
  for (int i = h.indptr[B]; i < h.N; ++i) h.parent[i] = h.tokens[i] = 12345; /* past the real nodes */
  return h;
}

/* Device copies of a batch. */
typedef struct dbatch {
  deco_test_buf_t indptr, parent, tokens, logits, q, path, len, bonus, seed, offset;
} dbatch_t;

static dbatch_t upload(const hbatch_t *h, deco_dtype_t dt) {
  dbatch_t d;
  const size_t es = deco_dtype_size(dt), nv = (size_t)h->N * h->V;
  d.indptr = deco_test_buf_alloc(gpu, (h->B + 1) * sizeof(int32_t));
  deco_test_buf_upload(&d.indptr, h->indptr, (h->B + 1) * sizeof(int32_t));
  d.parent = deco_test_buf_alloc(gpu, h->N * sizeof(int32_t));
  deco_test_buf_upload(&d.parent, h->parent, h->N * sizeof(int32_t));
  d.tokens = deco_test_buf_alloc(gpu, h->N * sizeof(int32_t));
  deco_test_buf_upload(&d.tokens, h->tokens, h->N * sizeof(int32_t));
  void *tmp = malloc(nv * es);
  deco_test_pack(tmp, h->logits, nv, dt);
  d.logits = deco_test_buf_alloc(gpu, nv * es);
  deco_test_buf_upload(&d.logits, tmp, nv * es);
  free(tmp);
  d.q = deco_test_buf_alloc(gpu, nv * sizeof(float));
  deco_test_buf_upload(&d.q, h->q, nv * sizeof(float));
  d.path = deco_test_buf_alloc(gpu, (size_t)h->B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  d.len = deco_test_buf_alloc(gpu, h->B * sizeof(int32_t));
  d.bonus = deco_test_buf_alloc(gpu, h->B * sizeof(int32_t));
  d.seed = deco_test_buf_alloc(gpu, sizeof(uint64_t));
  d.offset = deco_test_buf_alloc(gpu, sizeof(uint32_t));
  return d;
}

static void dbatch_free(dbatch_t *d) {
  deco_test_buf_t *all[] = {&d->indptr, &d->parent, &d->tokens, &d->logits, &d->q, &d->path, &d->len, &d->bonus,
                            &d->seed, &d->offset};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) deco_test_buf_free(all[i]);
}

static void check_guards(dbatch_t *d) {
  cr_assert(deco_test_buf_guard_ok(&d->path), "path guard overwritten");
  cr_assert(deco_test_buf_guard_ok(&d->len), "accept_len guard overwritten");
  cr_assert(deco_test_buf_guard_ok(&d->bonus), "bonus guard overwritten");
}

/* ---- greedy ---- */

static void greedy_case(uint64_t seed, int B, int V, int max_n, int coarse, deco_dtype_t dt) {
  hbatch_t h = make_batch(seed, B, V, max_n, 0, coarse, dt);
  dbatch_t d = upload(&h, dt);
  int32_t *path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *len = malloc(B * sizeof(int32_t));
  int32_t *bonus = malloc(B * sizeof(int32_t));
  int32_t *gpath = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *glen = malloc(B * sizeof(int32_t));
  int32_t *gbonus = malloc(B * sizeof(int32_t));
  deco_tree_accept_greedy_args_t a = {.tree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = h.indptr,
                                               .parent = h.parent},
                                      .tokens = h.tokens, .logits_dtype = DECO_DTYPE_F32, .logits = h.logits,
                                      .vocab = V, .out = {.path = path, .accept_len = len, .bonus = bonus}};
  cr_assert_eq(deco_tree_accept_greedy(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  deco_tree_accept_greedy_args_t g = {.tree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = d.indptr.ptr,
                                               .parent = d.parent.ptr},
                                      .tokens = d.tokens.ptr, .logits_dtype = dt, .logits = d.logits.ptr, .vocab = V,
                                      .out = {.path = d.path.ptr, .accept_len = d.len.ptr, .bonus = d.bonus.ptr}};
  cr_assert_eq(deco_tree_accept_greedy_workspace_size(gpu, &g), 0);
  cr_assert_eq(deco_tree_accept_greedy(gpu, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  deco_test_buf_download(&d.path, gpath, (size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  deco_test_buf_download(&d.len, glen, B * sizeof(int32_t));
  deco_test_buf_download(&d.bonus, gbonus, B * sizeof(int32_t));
  check_guards(&d);
  long acc = 0;
  for (int t = 0; t < B; ++t) acc += len[t];
  printf("greedy %s B=%d V=%d max_n=%d%s: mean accept_len %.2f\n", deco_dtype_name(dt), B, V, max_n,
         coarse ? " (ties)" : "", (double)acc / B);
  cr_assert_eq(deco_test_compare_i32("accept_len", glen, len, B), 0, "B=%d V=%d", B, V);
  cr_assert_eq(deco_test_compare_i32("bonus", gbonus, bonus, B), 0, "B=%d V=%d", B, V);
  cr_assert_eq(deco_test_compare_i32("path", gpath, path, (size_t)B * DECO_TREE_MAX_NODES), 0, "B=%d V=%d", B, V);
  free(path), free(len), free(bonus), free(gpath), free(glen), free(gbonus);
  dbatch_free(&d);
  hbatch_free(&h);
}

Test(accept_cuda, greedy_small_vocab_ties) {
  greedy_case(1, 1, 7, 5, 1, DECO_DTYPE_F32);
  greedy_case(2, 33, 37, 256, 1, DECO_DTYPE_F32);
  greedy_case(3, 19, 1000, 64, 1, DECO_DTYPE_BF16);
  greedy_case(4, 200, 129, 20, 1, DECO_DTYPE_F32);
}

Test(accept_cuda, greedy_large_vocab_teams) {
  /* B small and V large: teams of up to 8 CTAs split the vocabulary */
  greedy_case(5, 1, 32000, 64, 1, DECO_DTYPE_F32);
  greedy_case(6, 3, 50257, 40, 1, DECO_DTYPE_BF16);
  greedy_case(7, 2, 128256, 16, 0, DECO_DTYPE_F32);
  greedy_case(8, 5, 32003, 30, 0, DECO_DTYPE_BF16); /* rows not 16-byte aligned */
  greedy_case(9, 64, 32000, 8, 1, DECO_DTYPE_F32);
}

Test(accept_cuda, malformed_tree_marked) {
  hbatch_t h = make_batch(11, 3, 50, 10, 0, 0, DECO_DTYPE_F32);
  int lo = h.indptr[1];
  if (h.indptr[2] - lo < 2) h.indptr[2] = lo + 2; /* keep tree 1 at least two nodes */
  h.parent[lo + 1] = 5; /* not an earlier node */
  dbatch_t d = upload(&h, DECO_DTYPE_F32);
  deco_tree_accept_greedy_args_t g = {.tree = {.n_trees = 3, .n_nodes = h.N, .tree_indptr = d.indptr.ptr,
                                               .parent = d.parent.ptr},
                                      .tokens = d.tokens.ptr, .logits_dtype = DECO_DTYPE_F32, .logits = d.logits.ptr,
                                      .vocab = 50,
                                      .out = {.path = d.path.ptr, .accept_len = d.len.ptr, .bonus = d.bonus.ptr}};
  cr_assert_eq(deco_tree_accept_greedy(gpu, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  int32_t len[3], bonus[3];
  deco_test_buf_download(&d.len, len, sizeof len);
  deco_test_buf_download(&d.bonus, bonus, sizeof bonus);
  cr_assert(len[0] >= 1 && len[2] >= 1);
  cr_assert_eq(len[1], 0, "malformed tree: accept_len %d, expected 0", len[1]);
  cr_assert_eq(bonus[1], -1);
  dbatch_free(&d);
  hbatch_free(&h);
}

/* ---- non-finite logits ---- */

/* Puts a NaN, +inf or -inf into one logit of some rows: tree t % 4 == 0
 * stays clean; otherwise a random node's row (greedy) or the root's row
 * (sampling, whose walk stops at the first such row) gets one. */
static void spoil_rows(hbatch_t *h, uint64_t seed, int root_only) {
  uint64_t s = seed;
  const float bad[3] = {NAN, INFINITY, -INFINITY};
  for (int t = 0; t < h->B; ++t) {
    if (t % 4 == 0) continue;
    int lo = h->indptr[t], n = h->indptr[t + 1] - lo;
    int v = root_only ? 0 : rng_int(&s, n);
    h->logits[(size_t)(lo + v) * h->V + rng_int(&s, h->V)] = bad[t % 3];
  }
}

/* The flag (1 + the first node read whose row is not finite), the path and
 * the bonus must be the reference's; the flag is written for every tree. */
static void nonfinite_case(uint64_t seed, int B, int V, int max_n, int sample, deco_dtype_t dt) {
  hbatch_t h = make_batch(seed, B, V, max_n, 0, 0, dt);
  spoil_rows(&h, seed + 1, sample);
  dbatch_t d = upload(&h, dt);
  deco_test_buf_t dflag = deco_test_buf_alloc(gpu, B * sizeof(int32_t));
  deco_test_buf_poison(&dflag);
  deco_test_buf_poison(&d.path);
  deco_test_buf_poison(&d.len);
  deco_test_buf_poison(&d.bonus);
  uint64_t sd = seed;
  uint32_t off = 5;
  deco_test_buf_upload(&d.seed, &sd, sizeof sd);
  deco_test_buf_upload(&d.offset, &off, sizeof off);
  int32_t *path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *len = malloc(B * sizeof(int32_t));
  int32_t *bonus = malloc(B * sizeof(int32_t)), *flag = malloc(B * sizeof(int32_t));
  int32_t *gpath = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *glen = malloc(B * sizeof(int32_t));
  int32_t *gbonus = malloc(B * sizeof(int32_t)), *gflag = malloc(B * sizeof(int32_t));
  const deco_tree_verify_out_t ho = {.path = path, .accept_len = len, .bonus = bonus, .nonfinite = flag};
  const deco_tree_verify_out_t go = {
      .path = d.path.ptr, .accept_len = d.len.ptr, .bonus = d.bonus.ptr, .nonfinite = dflag.ptr};
  const deco_tree_batch_t htree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = h.indptr, .parent = h.parent};
  const deco_tree_batch_t gtree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = d.indptr.ptr, .parent = d.parent.ptr};
  if (sample) {
    deco_tree_accept_sample_args_t a = {.tree = htree, .tokens = h.tokens, .logits_dtype = DECO_DTYPE_F32,
                                        .logits = h.logits, .vocab = V, .temperature = 0.8f, .top_k = 0,
                                        .top_p = 1.0f, .draft_kind = DECO_DRAFT_DETERMINISTIC, .seed = &sd,
                                        .offset = &off, .out = ho};
    cr_assert_eq(deco_tree_accept_sample(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    a.tree = gtree, a.tokens = d.tokens.ptr, a.logits_dtype = dt, a.logits = d.logits.ptr;
    a.seed = d.seed.ptr, a.offset = d.offset.ptr, a.out = go;
    cr_assert_eq(deco_tree_accept_sample(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  } else {
    deco_tree_accept_greedy_args_t a = {.tree = htree, .tokens = h.tokens, .logits_dtype = DECO_DTYPE_F32,
                                        .logits = h.logits, .vocab = V, .out = ho};
    cr_assert_eq(deco_tree_accept_greedy(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    a.tree = gtree, a.tokens = d.tokens.ptr, a.logits_dtype = dt, a.logits = d.logits.ptr, a.out = go;
    cr_assert_eq(deco_tree_accept_greedy(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  }
  deco_test_buf_download(&d.path, gpath, (size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  deco_test_buf_download(&d.len, glen, B * sizeof(int32_t));
  deco_test_buf_download(&d.bonus, gbonus, B * sizeof(int32_t));
  deco_test_buf_download(&dflag, gflag, B * sizeof(int32_t));
  check_guards(&d);
  cr_assert(deco_test_buf_guard_ok(&dflag), "nonfinite guard overwritten");
  int flagged = 0;
  for (int t = 0; t < B; ++t) flagged += flag[t] != 0;
  printf("non-finite %s %s B=%d V=%d: %d trees flagged by the reference\n", sample ? "sample" : "greedy",
         deco_dtype_name(dt), B, V, flagged);
  cr_assert_gt(flagged, 0, "the case must flag some trees");
  cr_assert_eq(deco_test_compare_i32("nonfinite", gflag, flag, B), 0);
  cr_assert_eq(deco_test_compare_i32("accept_len", glen, len, B), 0);
  cr_assert_eq(deco_test_compare_i32("bonus", gbonus, bonus, B), 0);
  cr_assert_eq(deco_test_compare_i32("path", gpath, path, (size_t)B * DECO_TREE_MAX_NODES), 0);
  free(path), free(len), free(bonus), free(flag), free(gpath), free(glen), free(gbonus), free(gflag);
  deco_test_buf_free(&dflag);
  dbatch_free(&d);
  hbatch_free(&h);
}

Test(accept_cuda, non_finite_rows_flagged_like_the_reference) {
  nonfinite_case(21, 40, 37, 30, 0, DECO_DTYPE_F32);
  nonfinite_case(22, 9, 32000, 20, 0, DECO_DTYPE_F32);  /* teams split the vocabulary */
  nonfinite_case(23, 9, 32003, 20, 0, DECO_DTYPE_BF16); /* bf16 keeps NaN and inf */
  nonfinite_case(24, 40, 37, 30, 1, DECO_DTYPE_F32);
  nonfinite_case(25, 9, 32000, 20, 1, DECO_DTYPE_BF16);
}

/* ---- sampling against the reference ---- */

typedef struct sstats {
  long trees, mismatches, excused, near;
} sstats_t;

static void sample_case(uint64_t seed, int B, int V, int max_n, deco_draft_kind_t kind, float T, int k, float p,
                        deco_dtype_t dt, sstats_t *st) {
  int chain = kind == DECO_DRAFT_CHAIN;
  hbatch_t h = make_batch(seed, B, V, max_n, chain, seed % 3 == 0, dt);
  dbatch_t d = upload(&h, dt);
  uint64_t sd = seed * 7919u;
  uint32_t off = (uint32_t)seed * 13u;
  deco_test_buf_upload(&d.seed, &sd, sizeof sd);
  deco_test_buf_upload(&d.offset, &off, sizeof off);
  int32_t *path = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *len = malloc(B * sizeof(int32_t));
  int32_t *bonus = malloc(B * sizeof(int32_t));
  int32_t *gpath = malloc((size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t)), *glen = malloc(B * sizeof(int32_t));
  int32_t *gbonus = malloc(B * sizeof(int32_t));
  const float *q = kind == DECO_DRAFT_DETERMINISTIC ? NULL : h.q;
  deco_tree_accept_sample_args_t a = {.tree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = h.indptr,
                                               .parent = h.parent},
                                      .tokens = h.tokens, .logits_dtype = DECO_DTYPE_F32, .logits = h.logits,
                                      .vocab = V, .temperature = T, .top_k = k, .top_p = p, .draft_kind = kind,
                                      .draft_probs = q, .seed = &sd, .offset = &off,
                                      .out = {.path = path, .accept_len = len, .bonus = bonus}};
  cr_assert_eq(deco_tree_accept_sample(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  deco_tree_accept_sample_args_t g = {.tree = {.n_trees = B, .n_nodes = h.N, .tree_indptr = d.indptr.ptr,
                                               .parent = d.parent.ptr},
                                      .tokens = d.tokens.ptr, .logits_dtype = dt, .logits = d.logits.ptr, .vocab = V,
                                      .temperature = T, .top_k = k, .top_p = p, .draft_kind = kind,
                                      .draft_probs = q ? d.q.ptr : NULL, .seed = d.seed.ptr, .offset = d.offset.ptr,
                                      .out = {.path = d.path.ptr, .accept_len = d.len.ptr, .bonus = d.bonus.ptr}};
  cr_assert_eq(deco_tree_accept_sample_workspace_size(gpu, &g), 0);
  cr_assert_eq(deco_tree_accept_sample(gpu, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  deco_test_buf_download(&d.path, gpath, (size_t)B * DECO_TREE_MAX_NODES * sizeof(int32_t));
  deco_test_buf_download(&d.len, glen, B * sizeof(int32_t));
  deco_test_buf_download(&d.bonus, gbonus, B * sizeof(int32_t));
  check_guards(&d);
  for (int t = 0; t < B; ++t) {
    int lo = h.indptr[t], n = h.indptr[t + 1] - lo;
    model_args_t m = {V, T, k, p, kind, sd, off, (uint32_t)t};
    int32_t mpath[DECO_TREE_MAX_NODES], mbonus;
    double margin = 1.0;
    int mlen = model_walk(&m, n, h.parent + lo, h.tokens + lo, h.logits + (size_t)lo * V, h.q + (size_t)lo * V,
                          MODEL_CORRECT, mpath, &mbonus, &margin);
    cr_assert_eq(mlen, len[t], "model and reference disagree (tree %d)", t);
    int same = glen[t] == len[t] && gbonus[t] == bonus[t];
    for (int i = 0; i < DECO_TREE_MAX_NODES && same; ++i)
      same = gpath[(size_t)t * DECO_TREE_MAX_NODES + i] == path[(size_t)t * DECO_TREE_MAX_NODES + i];
    st->trees++;
    if (margin < DECO_TOL_THRESHOLD) st->near++;
    if (!same) {
      st->mismatches++;
      if (margin < DECO_TOL_THRESHOLD) {
        st->excused++;
        printf("  excused: %s V=%d kind %d T %g k %d p %g tree %d: margin %.2e (gpu len %d bonus %d, cpu len %d bonus %d)\n",
               deco_dtype_name(dt), V, (int)kind, T, k, p, t, margin, glen[t], gbonus[t], len[t], bonus[t]);
      } else {
        cr_assert_fail("%s V=%d kind %d T %g top_k %d top_p %g tree %d: gpu len %d bonus %d, cpu len %d bonus %d, margin %.2e",
                deco_dtype_name(dt), V, (int)kind, T, k, p, t, glen[t], gbonus[t], len[t], bonus[t], margin);
      }
    }
  }
  free(path), free(len), free(bonus), free(gpath), free(glen), free(gbonus);
  dbatch_free(&d);
  hbatch_free(&h);
}

static void sample_sweep(int V, int B, int max_n, deco_dtype_t dt, uint64_t seed0) {
  const deco_draft_kind_t kinds[4] = {DECO_DRAFT_DETERMINISTIC, DECO_DRAFT_CHAIN, DECO_DRAFT_TREE_WITH_REPLACEMENT,
                                      DECO_DRAFT_TREE_WITHOUT_REPLACEMENT};
  const struct { float T; int k; float p; } f[5] = {
      {1.0f, 0, 1.0f}, {0.6f, 20, 1.0f}, {1.0f, 0, 0.9f}, {0.8f, 50, 0.7f}, {1.5f, 1, 1.0f}};
  sstats_t st = {0, 0, 0, 0};
  for (int ki = 0; ki < 4; ++ki)
    for (int fi = 0; fi < 5; ++fi)
      sample_case(seed0 + ki * 5 + fi, B, V, max_n, kinds[ki], f[fi].T, f[fi].k, f[fi].p, dt, &st);
  printf("sample %s V=%d B=%d: %ld trees, %ld near-threshold decisions, %ld mismatches (%ld excused)\n",
         deco_dtype_name(dt), V, B, st.trees, st.near, st.mismatches, st.excused);
}

Test(accept_cuda, sample_matches_reference_small_vocab) {
  sample_sweep(37, 40, 24, DECO_DTYPE_F32, 100);
  sample_sweep(1000, 24, 16, DECO_DTYPE_BF16, 200);
}

Test(accept_cuda, sample_matches_reference_large_vocab) {
  sample_sweep(32000, 3, 12, DECO_DTYPE_F32, 300);
  sample_sweep(50257, 2, 8, DECO_DTYPE_BF16, 400);
  sample_sweep(32003, 40, 6, DECO_DTYPE_F32, 500);
}

/* ---- losslessness on the GPU: the batch as trials ---- */

#define GV 12
#define GTRIALS 100000
#define GCTX 200

Test(accept_cuda, lossless_joint_law) {
  /* Synthetic contexts: root 0, child of x = x + 1, grandchild = 13 + 12 x + y. */
  static float lg[GCTX][GV], qg[GCTX][GV];
  for (int c = 0; c < GCTX; ++c) {
    deco_test_fill_uniform(lg[c], GV, 77, (uint32_t)c, -1.5f, 1.5f);
    deco_test_fill_uniform(qg[c], GV, 78, (uint32_t)c, -1.0f, 1.0f);
    double s = 0.0;
    for (int y = 0; y < GV; ++y) s += (qg[c][y] = expf(qg[c][y]) + expf(lg[c][y]));
    for (int y = 0; y < GV; ++y) qg[c][y] = (float)(qg[c][y] / s);
  }
  const struct { deco_draft_kind_t kind; float T; int k; float p; const char *name; } cases[3] = {
      {DECO_DRAFT_TREE_WITHOUT_REPLACEMENT, 1.0f, 0, 0.8f, "tree without replacement, top-p 0.8"},
      {DECO_DRAFT_CHAIN, 0.8f, 5, 1.0f, "chain, top-k 5"},
      {DECO_DRAFT_DETERMINISTIC, 1.2f, 0, 1.0f, "deterministic, temperature"}};
  for (int ci = 0; ci < 3; ++ci) {
    /* root with 3 children, each with 2 (a chain 0-1-2 for CHAIN) */
    static const int32_t tpar[10] = {-1, 0, 0, 0, 1, 1, 2, 2, 3, 3};
    static const int32_t cpar[3] = {-1, 0, 1};
    const int n = cases[ci].kind == DECO_DRAFT_CHAIN ? 3 : 10;
    const int32_t *par = n == 3 ? cpar : tpar;
    hbatch_t h = {GTRIALS, GTRIALS * n, GV, NULL, NULL, NULL, NULL, NULL};
    h.indptr = malloc((GTRIALS + 1) * sizeof(int32_t));
    h.parent = malloc(h.N * sizeof(int32_t));
    h.tokens = malloc(h.N * sizeof(int32_t));
    h.logits = malloc((size_t)h.N * GV * sizeof(float));
    h.q = malloc((size_t)h.N * GV * sizeof(float));
    for (int t = 0; t < GTRIALS; ++t) {
      int lo = t * n, ctx[10];
      h.indptr[t] = lo;
      unsigned char taken[10][GV];
      memset(taken, 0, sizeof taken);
      for (int i = 0; i < n; ++i) {
        h.parent[lo + i] = par[i];
        int x = 0;
        if (i == 0) {
          ctx[0] = 0;
        } else {
          const float *q = qg[ctx[par[i]]];
          if (cases[ci].kind == DECO_DRAFT_DETERMINISTIC) {
            x = -1;
            for (int y = 0; y < GV; ++y)
              if (!taken[par[i]][y] && (x < 0 || q[y] > q[x])) x = y;
          } else {
            double tot = 0.0, cum = 0.0;
            for (int y = 0; y < GV; ++y) tot += taken[par[i]][y] ? 0.0 : q[y];
            double thr = deco_philox_uniform(91, (uint32_t)t, 5, (uint32_t)i, 3) * tot;
            for (x = 0; x < GV - 1; ++x) {
              if (taken[par[i]][x]) continue;
              cum += q[x];
              if (cum > thr) break;
            }
            while (taken[par[i]][x]) --x;
          }
          if (cases[ci].kind != DECO_DRAFT_TREE_WITH_REPLACEMENT) taken[par[i]][x] = 1;
          ctx[i] = par[i] == 0 ? 1 + x : 13 + 12 * (ctx[par[i]] - 1) + x;
        }
        h.tokens[lo + i] = x;
        memcpy(h.logits + (size_t)(lo + i) * GV, lg[ctx[i]], sizeof lg[0]);
        memcpy(h.q + (size_t)(lo + i) * GV, qg[ctx[i]], sizeof qg[0]);
      }
    }
    h.indptr[GTRIALS] = h.N;
    dbatch_t d = upload(&h, DECO_DTYPE_F32);
    uint64_t sd = 4242 + ci;
    uint32_t off = 0;
    deco_test_buf_upload(&d.seed, &sd, sizeof sd);
    deco_test_buf_upload(&d.offset, &off, sizeof off);
    deco_tree_accept_sample_args_t g = {.tree = {.n_trees = GTRIALS, .n_nodes = h.N, .tree_indptr = d.indptr.ptr,
                                                 .parent = d.parent.ptr},
                                        .tokens = d.tokens.ptr, .logits_dtype = DECO_DTYPE_F32, .logits = d.logits.ptr,
                                        .vocab = GV, .temperature = cases[ci].T, .top_k = cases[ci].k,
                                        .top_p = cases[ci].p, .draft_kind = cases[ci].kind,
                                        .draft_probs = cases[ci].kind == DECO_DRAFT_DETERMINISTIC ? NULL : d.q.ptr,
                                        .seed = d.seed.ptr, .offset = d.offset.ptr,
                                        .out = {.path = d.path.ptr, .accept_len = d.len.ptr, .bonus = d.bonus.ptr}};
    cr_assert_eq(deco_tree_accept_sample(gpu, &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    int32_t *path = malloc((size_t)GTRIALS * DECO_TREE_MAX_NODES * sizeof(int32_t));
    int32_t *len = malloc(GTRIALS * sizeof(int32_t)), *bonus = malloc(GTRIALS * sizeof(int32_t));
    deco_test_buf_download(&d.path, path, (size_t)GTRIALS * DECO_TREE_MAX_NODES * sizeof(int32_t));
    deco_test_buf_download(&d.len, len, GTRIALS * sizeof(int32_t));
    deco_test_buf_download(&d.bonus, bonus, GTRIALS * sizeof(int32_t));
    /* second step on the GPU for trials whose first token was the bonus */
    int32_t *first = malloc(GTRIALS * sizeof(int32_t)), *second = malloc(GTRIALS * sizeof(int32_t));
    int32_t *idx2 = malloc(GTRIALS * sizeof(int32_t));
    int n2 = 0;
    long acc = 0;
    for (int t = 0; t < GTRIALS; ++t) {
      const int32_t *pt = path + (size_t)t * DECO_TREE_MAX_NODES;
      acc += len[t] - 1;
      first[t] = len[t] >= 2 ? h.tokens[t * n + pt[1]] : bonus[t];
      if (len[t] >= 3) second[t] = h.tokens[t * n + pt[2]];
      else if (len[t] == 2) second[t] = bonus[t];
      else idx2[n2++] = t;
    }
    if (n2 > 0) {
      hbatch_t h2 = {n2, n2, GV, malloc((n2 + 1) * sizeof(int32_t)), malloc(n2 * sizeof(int32_t)),
                     calloc(n2, sizeof(int32_t)), malloc((size_t)n2 * GV * sizeof(float)),
                     malloc((size_t)n2 * GV * sizeof(float))};
      for (int i = 0; i < n2; ++i) {
        h2.indptr[i] = i;
        h2.parent[i] = -1;
        memcpy(h2.logits + (size_t)i * GV, lg[1 + first[idx2[i]]], sizeof lg[0]);
        memcpy(h2.q + (size_t)i * GV, qg[0], sizeof qg[0]);
      }
      h2.indptr[n2] = n2;
      dbatch_t d2 = upload(&h2, DECO_DTYPE_F32);
      uint32_t off2 = 1;
      deco_test_buf_upload(&d2.seed, &sd, sizeof sd);
      deco_test_buf_upload(&d2.offset, &off2, sizeof off2);
      deco_tree_accept_sample_args_t g2 = {.tree = {.n_trees = n2, .n_nodes = n2, .tree_indptr = d2.indptr.ptr,
                                                    .parent = d2.parent.ptr},
                                           .tokens = d2.tokens.ptr, .logits_dtype = DECO_DTYPE_F32,
                                           .logits = d2.logits.ptr, .vocab = GV, .temperature = cases[ci].T,
                                           .top_k = cases[ci].k, .top_p = cases[ci].p,
                                           .draft_kind = DECO_DRAFT_DETERMINISTIC, .draft_probs = NULL,
                                           .seed = d2.seed.ptr, .offset = d2.offset.ptr,
                                           .out = {.path = d2.path.ptr, .accept_len = d2.len.ptr,
                                                   .bonus = d2.bonus.ptr}};
      cr_assert_eq(deco_tree_accept_sample(gpu, &g2), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
      int32_t *b2 = malloc(n2 * sizeof(int32_t));
      deco_test_buf_download(&d2.bonus, b2, n2 * sizeof(int32_t));
      for (int i = 0; i < n2; ++i) second[idx2[i]] = b2[i];
      free(b2);
      dbatch_free(&d2);
      hbatch_free(&h2);
    }
    long counts[GV * GV];
    memset(counts, 0, sizeof counts);
    for (int t = 0; t < GTRIALS; ++t) {
      cr_assert(first[t] >= 0 && first[t] < GV && second[t] >= 0 && second[t] < GV, "token out of range");
      counts[first[t] * GV + second[t]]++;
    }
    double expect[GV * GV], p0[GV], p1[GV];
    model_target_probs(lg[0], GV, cases[ci].T, cases[ci].k, cases[ci].p, p0);
    for (int x = 0; x < GV; ++x) {
      model_target_probs(lg[1 + x], GV, cases[ci].T, cases[ci].k, cases[ci].p, p1);
      for (int y = 0; y < GV; ++y) expect[x * GV + y] = p0[x] * p1[y];
    }
    model_chi2_t r = model_chi2_test(counts, expect, GV * GV, GTRIALS, DECO_TEST_ALPHA / 3);
    printf("gpu lossless [%s]: chi2 %.1f df %d p %.3g, outside support %ld, mean accepted drafts %.2f, "
           "detects a chi-square distance >= %.2e\n",
           cases[ci].name, r.stat, r.df, r.pvalue, r.outside, (double)acc / GTRIALS, r.min_effect);
    cr_assert_eq(r.outside, 0, "%s: draws outside the support", cases[ci].name);
    cr_assert(r.pvalue > DECO_TEST_ALPHA / 3, "%s: the GPU's joint law is rejected (p %.3g)", cases[ci].name,
              r.pvalue);
    free(path), free(len), free(bonus), free(first), free(second), free(idx2);
    dbatch_free(&d);
    hbatch_free(&h);
  }
}
