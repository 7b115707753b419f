/* tests/gpu/test_recycle_cuda.c — Token Recycling's ops on the CUDA backend
 * against the C references: top-k of f32 and bf16 logits (V = 259 .. 128256,
 * k = 1 .. 16, many ties, NaN and signed zeros, split and unsplit rows), the
 * draft from a table, the update with duplicate tokens across a batch, and
 * the three chained over several steps. Integer outputs and tables must be
 * identical; outputs are poisoned and followed by guard words. Public API only.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/randtree.h"
#include "common/testutil.h"
#include "gpu_suite.h"
#include "deco/deco.h"

#define EXPECT_OK(st, ctx) cr_assert_eq((st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx))
#define WS_BYTES ((size_t)16 << 20)
#define POISON_I32 ((int32_t)0xABABABAB) /* what int outputs hold before the op (-1 is a real output) */

static deco_test_buf_t ws;

static void setup(void) {
  deco_gpu_suite_setup();
  ws = deco_test_buf_alloc(gpu, WS_BYTES);
  EXPECT_OK(deco_ctx_set_workspace(gpu, ws.ptr, WS_BYTES), gpu);
}

static void teardown(void) {
  deco_ctx_set_workspace(gpu, NULL, 0);
  deco_test_buf_free(&ws);
  deco_gpu_suite_teardown();
}

TestSuite(recycle_cuda, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers (random values: deco_test_rng_next / _int, splitmix64) ---- */

static deco_test_buf_t dev_i32(const int32_t *h, size_t n) {
  deco_test_buf_t b = deco_test_buf_alloc(gpu, sizeof(int32_t) * (n ? n : 1));
  if (n) deco_test_buf_upload(&b, h, sizeof(int32_t) * n);
  return b;
}

/* An int32 output: guarded, every element POISON_I32. */
static deco_test_buf_t dev_out_i32(size_t n) {
  deco_test_buf_t b = deco_test_buf_alloc(gpu, sizeof(int32_t) * (n ? n : 1));
  EXPECT_OK(deco_memset(gpu, b.ptr, 0xAB, sizeof(int32_t) * (n ? n : 1)), gpu);
  return b;
}

static int32_t *host_i32(const deco_test_buf_t *b, size_t n) {
  int32_t *h = malloc(sizeof(int32_t) * (n ? n : 1));
  if (n) deco_test_buf_download(b, h, sizeof(int32_t) * n);
  return h;
}

static void random_table(uint64_t *s, int32_t *t, int V, int k) {
  for (size_t i = 0; i < (size_t)V * k; ++i) t[i] = deco_test_rng_int(s, 0, V - 1);
}

/* Logits: 0 continuous, 1 a few levels (ties everywhere), 2 with NaN,
 * infinities and signed zeros. Rounded to dt (the reference sees the same
 * values). */
static void fill_logits(float *x, size_t n, int kind, uint64_t seed, deco_dtype_t dt) {
  deco_test_fill_uniform(x, n, seed, 1, -4.0f, 4.0f);
  if (kind == 1)
    for (size_t i = 0; i < n; ++i) x[i] = floorf(x[i] * 2.0f) * 0.5f;
  if (kind == 2)
    for (size_t i = 0; i < n; ++i) {
      const int r = (int)((x[i] + 4.0f) * 8.0f) % 8;
      x[i] = r == 0 ? NAN : r == 1 ? INFINITY : r == 2 ? -INFINITY : r == 3 ? -0.0f : r == 4 ? 0.0f : floorf(x[i]);
    }
  deco_test_round_to(x, n, dt);
}

/* ---- top-k ---- */

/* The row count a topk case passes: 0 none (all rows), 1 rows - 2 (at
 * least 1), 2 zero, 3 negative, 4 past n_rows (the last three are what a
 * replayed graph may see once a run is over). */
static int32_t case_count(int use_count, int rows) {
  switch (use_count) {
  case 1: return rows > 2 ? rows - 2 : 1;
  case 2: return 0;
  case 3: return -4;
  case 4: return rows + 5;
  default: return rows;
  }
}

/* rows x V logits of one kind in dt; for each k (every kernel width, and k
 * below it): GPU vs the CPU reference, ids identical, values bit-identical,
 * rows past *row_count untouched. */
static void topk_case(deco_dtype_t dt, int V, int rows, int kind, int use_count, int misalign, uint64_t seed) {
  const size_t n = (size_t)rows * V, es = deco_dtype_size(dt);
  float *x = malloc(sizeof(float) * n);
  fill_logits(x, n, kind, seed, dt);
  void *packed = malloc(es * (n + 1));
  deco_test_pack((char *)packed + (misalign ? es : 0), x, n, dt);
  deco_test_buf_t d_x = deco_test_buf_alloc(gpu, es * (n + 1));
  deco_test_buf_upload(&d_x, packed, es * (n + 1));
  const void *logits = (const char *)d_x.ptr + (misalign ? es : 0);
  const int32_t count = case_count(use_count, rows);
  const int real = count < 0 ? 0 : count < rows ? count : rows; /* rows written */
  deco_test_buf_t d_count = dev_i32(&count, 1);
  const int ks[5] = {1, 3, 8, 11, 16};
  for (int ki = 0; ki < 5; ++ki) {
    const int k = ks[ki];
    if (k > V) continue;
    char what[160];
    snprintf(what, sizeof what, "topk %s V=%d rows=%d k=%d kind=%d count=%d misalign=%d", deco_dtype_name(dt), V, rows,
             k, kind, count, misalign);
    deco_test_buf_t d_ids = dev_out_i32((size_t)rows * k);
    deco_test_buf_t d_vals = deco_test_buf_alloc(gpu, sizeof(float) * rows * k); /* 0xFF poison */
    deco_topk_rows_args_t a = {.n_rows = rows, .vocab = V, .k = k, .dtype = dt, .logits = logits,
                               .row_count = use_count ? (const int32_t *)d_count.ptr : NULL,
                               .ids = (int32_t *)d_ids.ptr, .values = (float *)d_vals.ptr};
    const size_t need = deco_topk_rows_workspace_size(gpu, &a);
    cr_assert_leq(need, WS_BYTES, "%s", what);
    EXPECT_OK(deco_topk_rows(gpu, &a), gpu);
    int32_t *ids = host_i32(&d_ids, (size_t)rows * k);
    float *vals = malloc(sizeof(float) * rows * k);
    deco_test_buf_download(&d_vals, vals, sizeof(float) * rows * k);

    int32_t *ref_ids = malloc(sizeof(int32_t) * rows * k);
    float *ref_vals = malloc(sizeof(float) * rows * k);
    deco_topk_rows_args_t r = {.n_rows = rows, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = x,
                               .row_count = &count, .ids = ref_ids, .values = ref_vals};
    EXPECT_OK(deco_topk_rows(cpu, &r), cpu);
    size_t bad = 0;
    for (int row = 0; row < rows; ++row)
      for (int j = 0; j < k; ++j) {
        const size_t i = (size_t)row * k + j;
        uint32_t vb, rb = 0xFFFFFFFFu;
        memcpy(&vb, &vals[i], 4);
        const int32_t want = row < real ? ref_ids[i] : POISON_I32;
        if (row < real) memcpy(&rb, &ref_vals[i], 4);
        if (ids[i] != want || vb != rb) {
          if (bad < 5)
            fprintf(stderr, "%s: row %d rank %d: id %d value 0x%08x, expected %d 0x%08x\n", what, row, j, ids[i], vb,
                    want, rb);
          bad++;
        }
      }
    cr_expect_eq(bad, 0, "%s: %zu mismatches", what, bad);
    cr_expect(deco_test_buf_guard_ok(&d_ids), "%s: ids guard", what);
    cr_expect(deco_test_buf_guard_ok(&d_vals), "%s: values guard", what);
    free(ids);
    free(vals);
    free(ref_ids);
    free(ref_vals);
    deco_test_buf_free(&d_ids);
    deco_test_buf_free(&d_vals);
  }
  cr_expect(deco_test_buf_guard_ok(&d_x));
  deco_test_buf_free(&d_count);
  deco_test_buf_free(&d_x);
  free(packed);
  free(x);
}

Test(recycle_cuda, small_topk) {
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  const int Vs[4] = {1, 17, 259, 512}, rows[3] = {1, 3, 81};
  uint64_t seed = 100;
  for (int d = 0; d < 2; ++d)
    for (int v = 0; v < 4; ++v)
      for (int r = 0; r < 3; ++r)
        for (int kind = 0; kind < 3; ++kind) topk_case(dts[d], Vs[v], rows[r], kind, r == 2, 0, seed++);
  /* A logits pointer off 16-byte alignment takes the scalar loads. */
  topk_case(DECO_DTYPE_F32, 512, 5, 1, 0, 1, seed++);
  topk_case(DECO_DTYPE_BF16, 512, 5, 0, 1, 1, seed++);
  topk_case(DECO_DTYPE_F32, 4100, 3, 1, 0, 0, seed++); /* split, 16-byte rows: vector loads */
  /* Row counts of zero, below zero and past n_rows. */
  for (int c = 2; c <= 4; ++c) {
    topk_case(DECO_DTYPE_F32, 259, 5, 1, c, 0, seed++);
    topk_case(DECO_DTYPE_BF16, 4100, 3, 2, c, 0, seed++);
  }
}

Test(recycle_cuda, topk_large) {
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  const int Vs[2] = {32000, 128256}, rows[3] = {1, 81, 257};
  uint64_t seed = 500;
  for (int d = 0; d < 2; ++d)
    for (int v = 0; v < 2; ++v)
      for (int r = 0; r < 3; ++r) topk_case(dts[d], Vs[v], rows[r], (r + v) % 3, r == 1, 0, seed++);
  /* Enough rows for one block per row (no split). */
  topk_case(DECO_DTYPE_BF16, 32000, 600, 1, 0, 0, seed++);
  topk_case(DECO_DTYPE_F32, 32001, 7, 0, 0, 0, seed++); /* odd V: scalar loads, split */
  topk_case(DECO_DTYPE_BF16, 32001, 7, 2, 1, 0, seed++); /* bf16 scalar loads, split, NaN, row count */
  topk_case(DECO_DTYPE_F32, 32000, 3, 1, 0, 1, seed++);  /* misaligned base, split */
}

/* ---- draft ---- */

static void draft_case(int V, int k, int n, const int32_t *parent, const int32_t *rank, int B, uint64_t seed) {
  uint64_t s = seed;
  int32_t *table = malloc(sizeof(int32_t) * (size_t)V * k), *roots = malloc(sizeof(int32_t) * B);
  random_table(&s, table, V, k);
  for (int b = 0; b < B; ++b) roots[b] = b > 0 && b % 3 == 0 ? roots[b - 1] : deco_test_rng_int(&s, 0, V - 1);
  deco_test_buf_t d_table = dev_i32(table, (size_t)V * k), d_roots = dev_i32(roots, B);
  deco_test_buf_t d_parent = dev_i32(parent, n), d_rank = dev_i32(rank, n), d_out = dev_out_i32((size_t)B * n);
  deco_recycle_draft_args_t a = {.n_trees = B, .n_nodes = n, .roots = (int32_t *)d_roots.ptr,
                                 .parent = (int32_t *)d_parent.ptr, .rank = (int32_t *)d_rank.ptr,
                                 .table = (int32_t *)d_table.ptr, .vocab = V, .k = k, .tokens = (int32_t *)d_out.ptr};
  EXPECT_OK(deco_recycle_draft(gpu, &a), gpu);
  int32_t *got = host_i32(&d_out, (size_t)B * n), *want = malloc(sizeof(int32_t) * B * n);
  deco_recycle_draft_args_t r = {.n_trees = B, .n_nodes = n, .roots = roots, .parent = parent, .rank = rank,
                                 .table = table, .vocab = V, .k = k, .tokens = want};
  EXPECT_OK(deco_recycle_draft(cpu, &r), cpu);
  char what[96];
  snprintf(what, sizeof what, "draft V=%d k=%d n=%d B=%d", V, k, n, B);
  cr_expect_eq(deco_test_compare_i32(what, got, want, (size_t)B * n), 0, "%s", what);
  cr_expect(deco_test_buf_guard_ok(&d_out), "%s: guard", what);
  free(got);
  free(want);
  free(table);
  free(roots);
  deco_test_buf_free(&d_table);
  deco_test_buf_free(&d_roots);
  deco_test_buf_free(&d_parent);
  deco_test_buf_free(&d_rank);
  deco_test_buf_free(&d_out);
}

Test(recycle_cuda, small_draft) {
  deco_tree_template_t t;
  EXPECT_OK(deco_tree_template_default(&t), NULL);
  uint64_t s = 77;
  int32_t parent[256], rank[256];
  const int ks[3] = {1, 8, 16}, Vs[2] = {259, 32000}, Bs[3] = {1, 7, 64};
  for (int ki = 0; ki < 3; ++ki)
    for (int vi = 0; vi < 2; ++vi)
      for (int bi = 0; bi < 3; ++bi) {
        const int k = ks[ki], V = Vs[vi], B = Bs[bi];
        if (k >= 8) draft_case(V, k, t.n_nodes, t.parent, t.rank, B, deco_test_rng_next(&s));
        for (int shape = 0; shape < 4; ++shape) {
          const int n = shape == 0 ? 1 : shape == 1 ? 256 : deco_test_rng_int(&s, 2, 256);
          parent[0] = -1;
          rank[0] = -1;
          for (int j = 1; j < n; ++j) {
            /* chain, random, 4-ary */
            parent[j] = shape == 1 ? j - 1 : shape == 2 ? deco_test_rng_int(&s, 0, j - 1) : (j - 1) / 4;
            rank[j] = deco_test_rng_int(&s, 0, k - 1);
          }
          draft_case(V, k, n, parent, rank, B, deco_test_rng_next(&s));
        }
      }
}

/* Malformed input: the CUDA kernel writes -1 below anything it cannot use. */
Test(recycle_cuda, small_draft_invalid) {
  const int V = 10, k = 2, n = 8, B = 2;
  int32_t table[10 * 2];
  for (int i = 0; i < V * k; ++i) table[i] = (i * 7 + 3) % V;
  table[3 * k + 1] = V + 5; /* an entry outside [0, vocab) */
  /* node: 1 ok, 2 rank = k, 3 child of 2, 4 parent = itself, 5 the bad
   * entry, 6 child of 5, 7 ok */
  const int32_t parent[8] = {-1, 0, 1, 2, 4, 0, 5, 0}, rank[8] = {-1, 0, 2, 0, 0, 1, 0, 0};
  const int32_t roots[2] = {3, -3};
  deco_test_buf_t d_table = dev_i32(table, V * k), d_roots = dev_i32(roots, B), d_parent = dev_i32(parent, n),
                  d_rank = dev_i32(rank, n), d_out = dev_out_i32(B * n);
  deco_recycle_draft_args_t a = {.n_trees = B, .n_nodes = n, .roots = (int32_t *)d_roots.ptr,
                                 .parent = (int32_t *)d_parent.ptr, .rank = (int32_t *)d_rank.ptr,
                                 .table = (int32_t *)d_table.ptr, .vocab = V, .k = k, .tokens = (int32_t *)d_out.ptr};
  EXPECT_OK(deco_recycle_draft(gpu, &a), gpu);
  int32_t *got = host_i32(&d_out, B * n);
  const int32_t t1 = table[3 * k + 0], t7 = table[3 * k + 0];
  const int32_t want[16] = {3, t1, -1, -1, -1, V + 5, -1, t7, -3, -1, -1, -1, -1, -1, -1, -1};
  cr_expect_eq(deco_test_compare_i32("draft invalid", got, want, B * n), 0);
  cr_expect(deco_test_buf_guard_ok(&d_out));
  /* The reference refuses the same input. */
  deco_recycle_draft_args_t r = {.n_trees = B, .n_nodes = n, .roots = roots, .parent = parent, .rank = rank,
                                 .table = table, .vocab = V, .k = k, .tokens = got};
  cr_expect_eq(deco_recycle_draft(cpu, &r), DECO_STATUS_INVALID_ARGUMENT);
  free(got);
  deco_test_buf_free(&d_table);
  deco_test_buf_free(&d_roots);
  deco_test_buf_free(&d_parent);
  deco_test_buf_free(&d_rank);
  deco_test_buf_free(&d_out);
}

/* ---- update ---- */

/* B trees of sizes 0..max_tree (0: what a replayed step sends once its run
 * is over) after an offset of 0..3 nodes, capacity 1..3 nodes past the end
 * (garbage there); tokens from `distinct` values so that many nodes share
 * one. The GPU table must equal the reference's. */
static void update_case(int V, int k, int B, int max_tree, int fixed, int distinct, uint64_t seed) {
  uint64_t s = seed;
  int32_t *indptr = malloc(sizeof(int32_t) * (B + 1));
  indptr[0] = deco_test_rng_int(&s, 0, 3);
  for (int b = 0; b < B; ++b) indptr[b + 1] = indptr[b] + (fixed ? max_tree : deco_test_rng_int(&s, 0, max_tree));
  const int cap = indptr[B] + deco_test_rng_int(&s, 1, 3);
  int32_t *tokens = malloc(sizeof(int32_t) * cap), *topk = malloc(sizeof(int32_t) * (size_t)cap * k);
  for (int j = 0; j < cap; ++j) {
    const int inside = j >= indptr[0] && j < indptr[B];
    tokens[j] = inside ? deco_test_rng_int(&s, 0, distinct - 1) * (V / distinct) : -5;
    for (int c = 0; c < k; ++c) topk[(size_t)j * k + c] = inside ? deco_test_rng_int(&s, 0, V - 1) : V + 3;
  }
  int32_t *table = malloc(sizeof(int32_t) * (size_t)V * k);
  random_table(&s, table, V, k);
  deco_test_buf_t d_indptr = dev_i32(indptr, B + 1), d_tokens = dev_i32(tokens, cap),
                  d_topk = dev_i32(topk, (size_t)cap * k), d_table = dev_i32(table, (size_t)V * k);
  deco_recycle_update_args_t a = {.n_trees = B, .n_nodes = cap, .tree_indptr = (int32_t *)d_indptr.ptr,
                                  .tokens = (int32_t *)d_tokens.ptr, .topk = (int32_t *)d_topk.ptr,
                                  .table = (int32_t *)d_table.ptr, .vocab = V, .k = k};
  cr_assert_leq(deco_recycle_update_workspace_size(gpu, &a), WS_BYTES);
  EXPECT_OK(deco_recycle_update(gpu, &a), gpu);
  int32_t *got = host_i32(&d_table, (size_t)V * k);
  deco_recycle_update_args_t r = {.n_trees = B, .n_nodes = cap, .tree_indptr = indptr, .tokens = tokens, .topk = topk,
                                  .table = table, .vocab = V, .k = k};
  EXPECT_OK(deco_recycle_update(cpu, &r), cpu);
  char what[96];
  snprintf(what, sizeof what, "update V=%d k=%d B=%d nodes=%d distinct=%d", V, k, B, indptr[B] - indptr[0], distinct);
  cr_expect_eq(deco_test_compare_i32(what, got, table, (size_t)V * k), 0, "%s", what);
  cr_expect(deco_test_buf_guard_ok(&d_table), "%s: guard", what);
  free(got);
  free(indptr);
  free(tokens);
  free(topk);
  free(table);
  deco_test_buf_free(&d_indptr);
  deco_test_buf_free(&d_tokens);
  deco_test_buf_free(&d_topk);
  deco_test_buf_free(&d_table);
}

Test(recycle_cuda, small_update) {
  uint64_t s = 31;
  const int ks[5] = {1, 3, 8, 11, 16}, Vs[2] = {259, 32000}, Bs[3] = {1, 4, 16}, distinct[3] = {1, 5, 200};
  for (int ki = 0; ki < 5; ++ki)
    for (int vi = 0; vi < 2; ++vi)
      for (int bi = 0; bi < 3; ++bi)
        for (int di = 0; di < 3; ++di)
          update_case(Vs[vi], ks[ki], Bs[bi], bi == 2 ? 256 : 81, 0, distinct[di], deco_test_rng_next(&s));
}

Test(recycle_cuda, update_large) {
  uint64_t s = 41;
  const int ks[3] = {1, 8, 16};
  for (int ki = 0; ki < 3; ++ki) {
    update_case(128256, ks[ki], 64, 81, 1, 50, deco_test_rng_next(&s));    /* 5184 nodes: one block */
    update_case(128256, ks[ki], 128, 81, 1, 50, deco_test_rng_next(&s));   /* 10368 nodes: three launches */
    update_case(32000, ks[ki], 200, 256, 0, 3000, deco_test_rng_next(&s)); /* ~25600 nodes */
  }
}

/* Malformed nodes (token or an id outside [0, vocab)) take no part on the
 * GPU: the last valid node of each token wins. */
Test(recycle_cuda, small_update_invalid) {
  const int V = 12, k = 3, B = 2, cap = 7;
  const int32_t indptr[3] = {0, 4, 7};
  const int32_t tokens[7] = {3, 3, 15, 5, -1, 5, 3};
  int32_t topk[7][3];
  for (int j = 0; j < 7; ++j)
    for (int c = 0; c < k; ++c) topk[j][c] = (j + c) % V;
  topk[6][2] = V;  /* token 3's last node is bad: node 1 wins */
  topk[5][0] = -2; /* token 5's last node is bad: node 3 wins */
  int32_t table[12][3];
  for (int i = 0; i < V; ++i)
    for (int c = 0; c < k; ++c) table[i][c] = (i * 5 + c) % V;
  int32_t want[12][3];
  memcpy(want, table, sizeof table);
  memcpy(want[3], topk[1], sizeof want[3]);
  memcpy(want[5], topk[3], sizeof want[5]);
  deco_test_buf_t d_indptr = dev_i32(indptr, B + 1), d_tokens = dev_i32(tokens, cap),
                  d_topk = dev_i32(&topk[0][0], cap * k), d_table = dev_i32(&table[0][0], V * k);
  deco_recycle_update_args_t a = {.n_trees = B, .n_nodes = cap, .tree_indptr = (int32_t *)d_indptr.ptr,
                                  .tokens = (int32_t *)d_tokens.ptr, .topk = (int32_t *)d_topk.ptr,
                                  .table = (int32_t *)d_table.ptr, .vocab = V, .k = k};
  EXPECT_OK(deco_recycle_update(gpu, &a), gpu);
  int32_t *got = host_i32(&d_table, V * k);
  cr_expect_eq(deco_test_compare_i32("update invalid", got, &want[0][0], V * k), 0);
  cr_expect(deco_test_buf_guard_ok(&d_table));
  deco_recycle_update_args_t r = {.n_trees = B, .n_nodes = cap, .tree_indptr = indptr, .tokens = tokens,
                                  .topk = &topk[0][0], .table = &table[0][0], .vocab = V, .k = k};
  cr_expect_eq(deco_recycle_update(cpu, &r), DECO_STATUS_INVALID_ARGUMENT);
  free(got);
  deco_test_buf_free(&d_indptr);
  deco_test_buf_free(&d_tokens);
  deco_test_buf_free(&d_topk);
  deco_test_buf_free(&d_table);
}

/* ---- the three together, several steps ---- */

static void pipeline_case(deco_dtype_t dt, int V, int k, int B, int steps, uint64_t seed) {
  deco_tree_template_t t;
  EXPECT_OK(deco_tree_template_default(&t), NULL);
  const int n = t.n_nodes, N = B * n;
  deco_recycler_t *rg = NULL, *rc = NULL;
  EXPECT_OK(deco_recycler_create(gpu, V, k, &rg), gpu);
  EXPECT_OK(deco_recycler_create(cpu, V, k, &rc), cpu);
  int32_t *indptr = malloc(sizeof(int32_t) * (B + 1)), *roots = malloc(sizeof(int32_t) * B);
  for (int b = 0; b <= B; ++b) indptr[b] = b * n;
  for (int b = 0; b < B; ++b) roots[b] = (b * 37 + 1) % V;
  deco_test_buf_t d_indptr = dev_i32(indptr, B + 1), d_parent = dev_i32(t.parent, n), d_rank = dev_i32(t.rank, n);
  deco_test_buf_t d_roots = dev_i32(roots, B), d_tokens = dev_out_i32(N), d_topk = dev_out_i32((size_t)N * k);
  const size_t es = deco_dtype_size(dt);
  deco_test_buf_t d_logits = deco_test_buf_alloc(gpu, es * (size_t)N * V);
  float *x = malloc(sizeof(float) * (size_t)N * V);
  void *packed = malloc(es * (size_t)N * V);
  int32_t *c_tokens = malloc(sizeof(int32_t) * N), *c_topk = malloc(sizeof(int32_t) * (size_t)N * k);
  char what[96];
  for (int step = 0; step < steps; ++step) {
    snprintf(what, sizeof what, "pipeline %s V=%d k=%d B=%d step %d", deco_dtype_name(dt), V, k, B, step);
    /* Draft on both from the same roots. */
    deco_test_buf_upload(&d_roots, roots, sizeof(int32_t) * B);
    deco_recycle_draft_args_t dg = {.n_trees = B, .n_nodes = n, .roots = (int32_t *)d_roots.ptr,
                                    .parent = (int32_t *)d_parent.ptr, .rank = (int32_t *)d_rank.ptr,
                                    .table = deco_recycler_table(rg), .vocab = V, .k = k,
                                    .tokens = (int32_t *)d_tokens.ptr};
    EXPECT_OK(deco_recycle_draft(gpu, &dg), gpu);
    deco_recycle_draft_args_t dc = {.n_trees = B, .n_nodes = n, .roots = roots, .parent = t.parent, .rank = t.rank,
                                    .table = deco_recycler_table(rc), .vocab = V, .k = k, .tokens = c_tokens};
    EXPECT_OK(deco_recycle_draft(cpu, &dc), cpu);
    int32_t *g_tokens = host_i32(&d_tokens, N);
    cr_assert_eq(deco_test_compare_i32(what, g_tokens, c_tokens, N), 0, "%s: drafts differ", what);
    /* Fresh logits, with many ties every other step; the same values on both. */
    fill_logits(x, (size_t)N * V, step % 2, seed + (uint64_t)step, dt);
    deco_test_pack(packed, x, (size_t)N * V, dt);
    deco_test_buf_upload(&d_logits, packed, es * (size_t)N * V);
    deco_topk_rows_args_t tg = {.n_rows = N, .vocab = V, .k = k, .dtype = dt, .logits = d_logits.ptr, .row_count = NULL,
                                .ids = (int32_t *)d_topk.ptr, .values = NULL};
    EXPECT_OK(deco_topk_rows(gpu, &tg), gpu);
    deco_topk_rows_args_t tc = {.n_rows = N, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = x,
                                .row_count = NULL, .ids = c_topk, .values = NULL};
    EXPECT_OK(deco_topk_rows(cpu, &tc), cpu);
    deco_recycle_update_args_t ug = {.n_trees = B, .n_nodes = N, .tree_indptr = (int32_t *)d_indptr.ptr,
                                     .tokens = (int32_t *)d_tokens.ptr, .topk = (int32_t *)d_topk.ptr,
                                     .table = deco_recycler_table(rg), .vocab = V, .k = k};
    EXPECT_OK(deco_recycle_update(gpu, &ug), gpu);
    deco_recycle_update_args_t uc = {.n_trees = B, .n_nodes = N, .tree_indptr = indptr, .tokens = c_tokens,
                                     .topk = c_topk, .table = deco_recycler_table(rc), .vocab = V, .k = k};
    EXPECT_OK(deco_recycle_update(cpu, &uc), cpu);
    int32_t *g_table = malloc(sizeof(int32_t) * (size_t)V * k);
    EXPECT_OK(deco_memcpy(gpu, g_table, deco_recycler_table(rg), sizeof(int32_t) * (size_t)V * k,
                          DECO_COPY_CTX_TO_HOST),
              gpu);
    cr_assert_eq(deco_test_compare_i32(what, g_table, deco_recycler_table(rc), (size_t)V * k), 0, "%s: tables differ",
                 what);
    /* Next roots: each request's top-1 at its root. */
    for (int b = 0; b < B; ++b) roots[b] = c_topk[(size_t)b * n * k];
    free(g_tokens);
    free(g_table);
  }
  cr_expect(deco_test_buf_guard_ok(&d_tokens));
  cr_expect(deco_test_buf_guard_ok(&d_topk));
  free(x);
  free(packed);
  free(c_tokens);
  free(c_topk);
  free(indptr);
  free(roots);
  deco_test_buf_free(&d_indptr);
  deco_test_buf_free(&d_parent);
  deco_test_buf_free(&d_rank);
  deco_test_buf_free(&d_roots);
  deco_test_buf_free(&d_tokens);
  deco_test_buf_free(&d_topk);
  deco_test_buf_free(&d_logits);
  deco_recycler_destroy(rg);
  deco_recycler_destroy(rc);
}

Test(recycle_cuda, small_pipeline) {
  pipeline_case(DECO_DTYPE_F32, 512, 8, 2, 4, 900);
  pipeline_case(DECO_DTYPE_BF16, 259, 16, 3, 4, 901);
}

Test(recycle_cuda, pipeline_32000) {
  pipeline_case(DECO_DTYPE_BF16, 32000, 8, 4, 3, 910);
  pipeline_case(DECO_DTYPE_F32, 32000, 8, 1, 3, 911);
}

/* ---- state on the device ---- */

Test(recycle_cuda, small_state_round_trip) {
  uint64_t s = 5;
  const int V = 259, k = 8;
  deco_recycler_t *r = NULL, *q = NULL;
  EXPECT_OK(deco_recycler_create(gpu, V, k, &r), gpu);
  EXPECT_OK(deco_recycler_create(gpu, V, k, &q), gpu);
  int32_t *t = malloc(sizeof(int32_t) * V * k);
  random_table(&s, t, V, k);
  EXPECT_OK(deco_memcpy(gpu, deco_recycler_table(r), t, sizeof(int32_t) * V * k, DECO_COPY_HOST_TO_CTX), gpu);
  char path[512];
  snprintf(path, sizeof path, "%s/gpu_state.bin", deco_test_tmpdir());
  EXPECT_OK(deco_recycler_save(r, path), gpu);
  EXPECT_OK(deco_recycler_load(q, path), gpu);
  int32_t *got = malloc(sizeof(int32_t) * V * k);
  EXPECT_OK(deco_memcpy(gpu, got, deco_recycler_table(q), sizeof(int32_t) * V * k, DECO_COPY_CTX_TO_HOST), gpu);
  cr_expect_eq(memcmp(got, t, sizeof(int32_t) * V * k), 0);
  /* A CPU recycler reads the same file. */
  deco_recycler_t *c = NULL;
  EXPECT_OK(deco_recycler_create(cpu, V, k, &c), cpu);
  EXPECT_OK(deco_recycler_load(c, path), cpu);
  cr_expect_eq(memcmp(deco_recycler_table(c), t, sizeof(int32_t) * V * k), 0);
  free(t);
  free(got);
  deco_recycler_destroy(c);
  deco_recycler_destroy(q);
  deco_recycler_destroy(r);
}

/* ---- workspace ---- */

Test(recycle_cuda, small_workspace) {
  float x[4 * 512];
  deco_test_fill_uniform(x, 4 * 512, 3, 1, -1.0f, 1.0f);
  deco_test_buf_t d_x = deco_test_buf_alloc(gpu, sizeof(float) * 32000), d_ids = dev_out_i32(16);
  deco_test_buf_upload(&d_x, x, sizeof x);
  deco_topk_rows_args_t unsplit = {.n_rows = 4, .vocab = 512, .k = 4, .dtype = DECO_DTYPE_F32, .logits = d_x.ptr,
                                   .row_count = NULL, .ids = (int32_t *)d_ids.ptr, .values = NULL};
  deco_topk_rows_args_t split = {.n_rows = 1, .vocab = 32000, .k = 4, .dtype = DECO_DTYPE_F32, .logits = d_x.ptr,
                                 .row_count = NULL, .ids = (int32_t *)d_ids.ptr, .values = NULL};
  cr_expect_eq(deco_topk_rows_workspace_size(gpu, &unsplit), 0);
  const size_t need = deco_topk_rows_workspace_size(gpu, &split);
  cr_expect_gt(need, 0);
  int32_t indptr[2] = {0, 1}, tok[1] = {3}, topk1[4] = {1, 2, 3, 4};
  deco_test_buf_t d_indptr = dev_i32(indptr, 2), d_tok = dev_i32(tok, 1), d_tk = dev_i32(topk1, 4);
  deco_recycler_t *r = NULL;
  EXPECT_OK(deco_recycler_create(gpu, 32000, 4, &r), gpu);
  deco_recycle_update_args_t u = {.n_trees = 1, .n_nodes = 1, .tree_indptr = (int32_t *)d_indptr.ptr,
                                  .tokens = (int32_t *)d_tok.ptr, .topk = (int32_t *)d_tk.ptr,
                                  .table = deco_recycler_table(r), .vocab = 32000, .k = 4};
  cr_expect_eq(deco_recycle_update_workspace_size(gpu, &u), sizeof(int32_t) * 32000);

  EXPECT_OK(deco_ctx_set_workspace(gpu, NULL, 0), gpu);
  EXPECT_OK(deco_topk_rows(gpu, &unsplit), gpu);
  cr_expect_eq(deco_topk_rows(gpu, &split), DECO_STATUS_WORKSPACE_TOO_SMALL);
  cr_expect(strstr(deco_last_error(gpu), "workspace") != NULL, "%s", deco_last_error(gpu));
  cr_expect_eq(deco_recycle_update(gpu, &u), DECO_STATUS_WORKSPACE_TOO_SMALL);
  EXPECT_OK(deco_ctx_set_workspace(gpu, ws.ptr, need - 8), gpu);
  cr_expect_eq(deco_topk_rows(gpu, &split), DECO_STATUS_WORKSPACE_TOO_SMALL);
  EXPECT_OK(deco_ctx_set_workspace(gpu, ws.ptr, need), gpu);
  EXPECT_OK(deco_topk_rows(gpu, &split), gpu);
  EXPECT_OK(deco_ctx_set_workspace(gpu, ws.ptr, WS_BYTES), gpu);
  EXPECT_OK(deco_recycle_update(gpu, &u), gpu);
  int32_t row[4];
  EXPECT_OK(deco_memcpy(gpu, row, deco_recycler_table(r) + 3 * 4, sizeof row, DECO_COPY_CTX_TO_HOST), gpu);
  cr_expect_eq(memcmp(row, topk1, sizeof row), 0);
  /* bf16 is taken, f16 is not. */
  deco_topk_rows_args_t f16 = unsplit;
  f16.dtype = DECO_DTYPE_F16;
  cr_expect_eq(deco_topk_rows(gpu, &f16), DECO_STATUS_UNSUPPORTED);
  deco_recycler_destroy(r);
  deco_test_buf_free(&d_x);
  deco_test_buf_free(&d_ids);
  deco_test_buf_free(&d_indptr);
  deco_test_buf_free(&d_tok);
  deco_test_buf_free(&d_tk);
}
