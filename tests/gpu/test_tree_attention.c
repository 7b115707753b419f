/* tests/gpu/test_tree_attention.c — CUDA tree attention against the C
 * reference fed the same rounded inputs, for f32/f16/bf16 over random
 * trees of 1..256 nodes, ragged batches, page sizes 1/16 with shuffled page
 * ids, GQA ratios 1/2/4/8, head dims 8/24/64/100/128/256 and prefixes up to
 * ~4K; outputs poisoned and followed by guard words. Shapes are chosen to
 * run every kernel path (generic, mma with 4 or 8 warps, with and without
 * KV splits); bad device-side data must not crash and must stay local.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/randtree.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tree_case.h"
#include "deco/deco.h"



#define MAX_B 8

/* A case: shapes only; contents come from the seed. */
typedef struct gcase {
  deco_dtype_t dtype;
  int hd, n_kv, group, page_size, B, extra_cap;
  int sizes[MAX_B], prefix[MAX_B];
  int shape; /* -1: random per tree */
  uint64_t seed;
} gcase_t;

/* Host data of a case, f32 values already rounded to the case's dtype: the
 * shared builder (tests/common/tree_case.h), five spare pages, parent
 * entries past the real nodes -1. */
typedef deco_test_tree_case_t hcase_t;

static void hcase_build(const gcase_t *g, hcase_t *h) {
  const deco_test_tree_spec_t spec = {.dtype = g->dtype, .B = g->B, .sizes = g->sizes, .prefix = g->prefix,
                                      .n_kv = g->n_kv, .group = g->group, .hd = g->hd, .page_size = g->page_size,
                                      .extra_cap = g->extra_cap, .shape = g->shape, .spare_pages = 5,
                                      .pad_parent = -1, .seed = g->seed};
  deco_test_tree_case_build(&spec, h);
}

static void hcase_free(hcase_t *h) { deco_test_tree_case_free(h); }

static deco_tree_attention_args_t make_args(const gcase_t *g, const hcase_t *h, deco_dtype_t dtype, void *k, void *v,
                                            const int32_t *bt, const int32_t *indptr, const int32_t *parent,
                                            const int32_t *prefix, const void *q, void *out) {
  (void)g;
  return deco_test_tree_case_args(h, dtype, k, v, bt, indptr, parent, prefix, q, out);
}

/* Reference output of every row (f32, on the CPU). */
static float *reference(const gcase_t *g, const hcase_t *h) {
  deco_ctx_t *cpu = deco_test_cpu_ctx();
  float *want = malloc(sizeof(float) * h->q_elems);
  deco_tree_attention_args_t a = make_args(g, h, DECO_DTYPE_F32, h->k, h->v, h->block_table, h->indptr, h->parent,
                                           h->prefix, h->q, want);
  cr_assert_eq(deco_tree_attention(cpu, &a), DECO_STATUS_SUCCESS, "reference: %s", deco_last_error(cpu));
  deco_ctx_destroy(cpu);
  return want;
}

static float tolerance(deco_dtype_t dt) {
  return dt == DECO_DTYPE_F32 ? DECO_TOL_F32_REDUCTION : dt == DECO_DTYPE_F16 ? DECO_TOL_F16 : DECO_TOL_BF16;
}

/* Device copies of a case. */
typedef struct dcase {
  deco_test_buf_t k, v, q, out, bt, indptr, parent, prefix, ws;
  int has_ws;
} dcase_t;

static void dcase_upload(deco_ctx_t *ctx, const gcase_t *g, const hcase_t *h, dcase_t *d) {
  const size_t es = deco_dtype_size(g->dtype);
  void *tmp = malloc(es * (h->pool_elems > h->q_elems ? h->pool_elems : h->q_elems));
  d->k = deco_test_buf_alloc(ctx, es * h->pool_elems);
  deco_test_pack(tmp, h->k, h->pool_elems, g->dtype);
  deco_test_buf_upload(&d->k, tmp, es * h->pool_elems);
  d->v = deco_test_buf_alloc(ctx, es * h->pool_elems);
  deco_test_pack(tmp, h->v, h->pool_elems, g->dtype);
  deco_test_buf_upload(&d->v, tmp, es * h->pool_elems);
  d->q = deco_test_buf_alloc(ctx, es * h->q_elems);
  deco_test_pack(tmp, h->q, h->q_elems, g->dtype);
  deco_test_buf_upload(&d->q, tmp, es * h->q_elems);
  free(tmp);
  d->out = deco_test_buf_alloc(ctx, es * h->q_elems); /* poisoned with 0xFF, guard after */
  size_t bt_bytes = sizeof(int32_t) * (size_t)g->B * h->max_pages;
  d->bt = deco_test_buf_alloc(ctx, bt_bytes);
  deco_test_buf_upload(&d->bt, h->block_table, bt_bytes);
  d->indptr = deco_test_buf_alloc(ctx, sizeof(int32_t) * (size_t)(g->B + 1));
  deco_test_buf_upload(&d->indptr, h->indptr, sizeof(int32_t) * (size_t)(g->B + 1));
  d->parent = deco_test_buf_alloc(ctx, sizeof(int32_t) * (size_t)(h->cap_nodes > 0 ? h->cap_nodes : 1));
  deco_test_buf_upload(&d->parent, h->parent, sizeof(int32_t) * (size_t)(h->cap_nodes > 0 ? h->cap_nodes : 1));
  d->prefix = deco_test_buf_alloc(ctx, sizeof(int32_t) * (size_t)g->B);
  deco_test_buf_upload(&d->prefix, h->prefix, sizeof(int32_t) * (size_t)g->B);
  d->has_ws = 0;
}

static void dcase_free(deco_ctx_t *ctx, dcase_t *d) {
  deco_test_buf_free(&d->k);
  deco_test_buf_free(&d->v);
  deco_test_buf_free(&d->q);
  deco_test_buf_free(&d->out);
  deco_test_buf_free(&d->bt);
  deco_test_buf_free(&d->indptr);
  deco_test_buf_free(&d->parent);
  deco_test_buf_free(&d->prefix);
  if (d->has_ws) deco_test_buf_free(&d->ws);
  deco_ctx_set_workspace(ctx, NULL, 0);
}

static deco_tree_attention_args_t dcase_args(const gcase_t *g, const hcase_t *h, dcase_t *d) {
  return make_args(g, h, g->dtype, d->k.ptr, d->v.ptr, d->bt.ptr, d->indptr.ptr, d->parent.ptr, d->prefix.ptr,
                   d->q.ptr, d->out.ptr);
}

/* Sizes the workspace the op asks for, with guard words after it. */
static void dcase_workspace(deco_ctx_t *ctx, const deco_tree_attention_args_t *a, dcase_t *d) {
  size_t need = deco_tree_attention_workspace_size(ctx, a);
  if (need == 0) return;
  d->ws = deco_test_buf_alloc(ctx, need);
  d->has_ws = 1;
  cr_assert_eq(deco_ctx_set_workspace(ctx, d->ws.ptr, need), DECO_STATUS_SUCCESS);
}

static void describe(const gcase_t *g, const char *path, char *buf, size_t n) {
  int len = snprintf(buf, n, "%s hd %d kv %d group %d page %d B %d [", deco_dtype_name(g->dtype), g->hd, g->n_kv,
                     g->group, g->page_size, g->B);
  for (int b = 0; b < g->B && len < (int)n; ++b)
    len += snprintf(buf + len, n - (size_t)len, "%s%d@%d", b ? " " : "", g->sizes[b], g->prefix[b]);
  if (len < (int)n) snprintf(buf + len, n - (size_t)len, "] %s", path);
}

/* Runs one case end to end; returns the path name (static copy). */
static const char *run_case(deco_ctx_t *ctx, const gcase_t *g) {
  static char path[64];
  hcase_t h;
  hcase_build(g, &h);
  float *want = reference(g, &h);
  dcase_t d;
  dcase_upload(ctx, g, &h, &d);
  deco_tree_attention_args_t a = dcase_args(g, &h, &d);
  snprintf(path, sizeof path, "%s", deco_tree_attention_path(ctx, &a));
  char what[256];
  describe(g, path, what, sizeof what);
  fprintf(stderr, "case: %s\n", what);
  dcase_workspace(ctx, &a, &d);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s: %s", what, deco_last_error(ctx));
  cr_assert_eq(deco_ctx_synchronize(ctx), DECO_STATUS_SUCCESS, "%s: %s", what, deco_last_error(ctx));

  const size_t es = deco_dtype_size(g->dtype), row = (size_t)h.H * g->hd;
  unsigned char *raw = malloc(es * h.q_elems);
  float *got = malloc(sizeof(float) * h.q_elems);
  deco_test_buf_download(&d.out, raw, es * h.q_elems);
  deco_test_unpack(got, raw, (size_t)h.total * row, g->dtype);
  const float tol = tolerance(g->dtype);
  cr_expect_eq(deco_test_compare(what, got, want, (size_t)h.total * row, tol, tol), 0, "%s: differs from the reference",
               what);
  /* Rows past the real node count are not written. */
  for (size_t i = (size_t)h.total * row * es; i < (size_t)h.cap_nodes * row * es; ++i)
    if (raw[i] != 0xFF) {
      cr_expect_fail("%s: row %zu past the real nodes was written", what, i / (row * es));
      break;
    }
  cr_expect(deco_test_buf_guard_ok(&d.out), "%s: output guard overwritten", what);
  if (d.has_ws) cr_expect(deco_test_buf_guard_ok(&d.ws), "%s: workspace guard overwritten", what);
  free(raw);
  free(got);
  free(want);
  dcase_free(ctx, &d);
  hcase_free(&h);
  return path;
}

/* Reference cost of a case, in multiply-adds. */
static double case_cost(const gcase_t *g) {
  double c = 0;
  for (int b = 0; b < g->B; ++b) c += (double)g->sizes[b] * (g->prefix[b] + g->sizes[b]);
  return c * g->n_kv * g->group * g->hd * 2;
}

/* Random cases for one dtype and head dim, trimmed to a reference cost the
 * CPU runs in a fraction of a second. */
static void sweep(deco_dtype_t dtype, int hd, uint64_t seed) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx, "no CUDA device");
  static const int groups[4] = {1, 2, 4, 8};
  static const int prefixes[5] = {0, 1, 37, 1000, 4100};
  uint64_t s = seed;
  for (int k = 0; k < 4; ++k) {
    gcase_t g;
    memset(&g, 0, sizeof g);
    g.dtype = dtype;
    g.hd = hd;
    g.group = groups[(k + hd / 8) % 4];
    g.n_kv = deco_test_rng_int(&s, 1, g.group >= 4 ? 2 : 3);
    g.page_size = (k % 2) ? 16 : 1;
    g.B = deco_test_rng_int(&s, 1, 5);
    g.shape = -1;
    g.seed = deco_test_rng_next(&s);
    g.extra_cap = deco_test_rng_int(&s, 0, 3);
    for (int b = 0; b < g.B; ++b) {
      int r = deco_test_rng_int(&s, 0, 7);
      g.sizes[b] = r == 0 && g.B > 1 ? 0 : r <= 2 ? deco_test_rng_int(&s, 100, 256) : deco_test_rng_int(&s, 1, 64);
      g.prefix[b] = prefixes[deco_test_rng_int(&s, 0, 4)];
    }
    while (case_cost(&g) > 1.5e8) { /* shrink the costliest tree */
      int worst = 0;
      for (int b = 1; b < g.B; ++b)
        if ((double)g.sizes[b] * (g.prefix[b] + g.sizes[b]) > (double)g.sizes[worst] * (g.prefix[worst] + g.sizes[worst]))
          worst = b;
      if (g.sizes[worst] > 1) g.sizes[worst] = (g.sizes[worst] + 1) / 2;
      else g.prefix[worst] /= 2;
    }
    run_case(ctx, &g);
  }
  deco_ctx_destroy(ctx);
}

#define SWEEP(dt, name, hd, seed) \
  Test(tree_attention_gpu, sweep_##name##_hd##hd, .timeout = 300) { sweep(dt, hd, seed); }
SWEEP(DECO_DTYPE_F32, f32, 8, 1)
SWEEP(DECO_DTYPE_F32, f32, 24, 2)
SWEEP(DECO_DTYPE_F32, f32, 64, 3)
SWEEP(DECO_DTYPE_F32, f32, 100, 4)
SWEEP(DECO_DTYPE_F32, f32, 128, 5)
SWEEP(DECO_DTYPE_F32, f32, 256, 6)
SWEEP(DECO_DTYPE_F16, f16, 8, 7)
SWEEP(DECO_DTYPE_F16, f16, 24, 8)
SWEEP(DECO_DTYPE_F16, f16, 64, 9)
SWEEP(DECO_DTYPE_F16, f16, 100, 10)
SWEEP(DECO_DTYPE_F16, f16, 128, 11)
SWEEP(DECO_DTYPE_F16, f16, 256, 12)
SWEEP(DECO_DTYPE_BF16, bf16, 8, 13)
SWEEP(DECO_DTYPE_BF16, bf16, 24, 14)
SWEEP(DECO_DTYPE_BF16, bf16, 64, 15)
SWEEP(DECO_DTYPE_BF16, bf16, 100, 16)
SWEEP(DECO_DTYPE_BF16, bf16, 128, 17)
SWEEP(DECO_DTYPE_BF16, bf16, 256, 18)

static gcase_t mk(deco_dtype_t dt, int hd, int n_kv, int group, int page, int B, const int *sizes, const int *prefix,
                  int shape, uint64_t seed) {
  gcase_t g;
  memset(&g, 0, sizeof g);
  g.dtype = dt;
  g.hd = hd;
  g.n_kv = n_kv;
  g.group = group;
  g.page_size = page;
  g.B = B;
  g.shape = shape;
  g.seed = seed;
  g.extra_cap = 2;
  for (int b = 0; b < B; ++b) {
    g.sizes[b] = sizes[b];
    g.prefix[b] = prefix[b];
  }
  return g;
}

static void expect_path(const char *got, const char *kernel, int split) {
  int ok = strncmp(got, kernel, strlen(kernel)) == 0 && (strstr(got, "+split") != NULL) == split;
  cr_expect(ok, "path %s, expected %s %s a KV split", got, kernel, split ? "with" : "without");
}

/* Every kernel path, each against the reference. Short block tables
 * (<= 256 slots) rule splits out; a single long tree forces them. */
Test(tree_attention_gpu, every_path, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  {
    int s[3] = {64, 100, 37}, p[3] = {100, 17, 0};
    gcase_t g = mk(DECO_DTYPE_BF16, 128, 2, 4, 16, 3, s, p, -1, 41);
    expect_path(run_case(ctx, &g), "mma-w8", 0);
    g.dtype = DECO_DTYPE_F16;
    expect_path(run_case(ctx, &g), "mma-w8", 0);
  }
  {
    int s[4] = {10, 30, 1, 17}, p[4] = {5, 200, 0, 33};
    gcase_t g = mk(DECO_DTYPE_F16, 64, 4, 2, 1, 4, s, p, -1, 42);
    expect_path(run_case(ctx, &g), "mma-w4", 0);
    g.dtype = DECO_DTYPE_BF16;
    expect_path(run_case(ctx, &g), "mma-w4", 0);
  }
  {
    int s[1] = {64}, p[1] = {4100};
    gcase_t g = mk(DECO_DTYPE_BF16, 128, 1, 4, 16, 1, s, p, -1, 43);
    expect_path(run_case(ctx, &g), "mma-w8", 1);
    g.hd = 64;
    g.dtype = DECO_DTYPE_F16;
    expect_path(run_case(ctx, &g), "mma-w8", 1);
  }
  {
    int s[2] = {16, 9}, p[2] = {1000, 37};
    gcase_t g = mk(DECO_DTYPE_F16, 64, 2, 4, 1, 2, s, p, -1, 44);
    expect_path(run_case(ctx, &g), "mma-w4", 1);
    g.hd = 128;
    g.dtype = DECO_DTYPE_BF16;
    g.group = 1; /* 16 rows of one head: only one warp of four has rows */
    expect_path(run_case(ctx, &g), "mma-w4", 1);
  }
  {
    int s[3] = {50, 3, 120}, p[3] = {60, 1, 9};
    gcase_t g = mk(DECO_DTYPE_F32, 100, 2, 2, 1, 3, s, p, -1, 45);
    expect_path(run_case(ctx, &g), "generic", 0);
  }
  {
    int s[1] = {40}, p[1] = {4100};
    gcase_t g = mk(DECO_DTYPE_F32, 8, 2, 4, 16, 1, s, p, -1, 46);
    expect_path(run_case(ctx, &g), "generic", 1);
    g.dtype = DECO_DTYPE_BF16;
    g.hd = 256;
    g.n_kv = 1;
    expect_path(run_case(ctx, &g), "generic", 1);
  }
  deco_ctx_destroy(ctx);
}

/* Split boundaries inside the tree slots: in a star of 256 nodes after a
 * 200-token prefix, the split holding slots 256.. sees none of the early
 * nodes' ancestors, so those rows are empty there (log-sum-exp -inf). */
Test(tree_attention_gpu, splits_with_fully_masked_rows, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  int s[1] = {256}, p[1] = {200};
  gcase_t g = mk(DECO_DTYPE_BF16, 64, 1, 1, 16, 1, s, p, 2, 51);
  g.extra_cap = 0; /* one tree holds at most 256 nodes */
  expect_path(run_case(ctx, &g), "mma-w8", 1);
  g.dtype = DECO_DTYPE_F32;
  expect_path(run_case(ctx, &g), "generic", 1);
  g.shape = 1; /* a chain of 256 */
  g.dtype = DECO_DTYPE_F16;
  g.hd = 128;
  expect_path(run_case(ctx, &g), "mma-w8", 1);
  deco_ctx_destroy(ctx);
}

/* More tensor-core shapes: every GQA ratio, tree shape and page size. */
Test(tree_attention_gpu, mma_shapes, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  static const int groups[4] = {1, 2, 4, 8};
  for (int k = 0; k < 8; ++k) {
    int s[3] = {1 + (k * 37) % 256, 1 + (k * 11) % 40, 16}, p[3] = {(k * 131) % 700, k, 37};
    gcase_t g = mk(k % 2 ? DECO_DTYPE_BF16 : DECO_DTYPE_F16, k % 4 < 2 ? 64 : 128, 1 + k % 2, groups[k % 4],
                   k % 3 ? 16 : 1, 3, s, p, k % 5, 60 + (uint64_t)k);
    if (case_cost(&g) > 3e8) g.sizes[0] /= 2;
    run_case(ctx, &g);
  }
  deco_ctx_destroy(ctx);
}

/* Bad device-side data: trees with bad parents, a too-long prefix or a page
 * id outside the pool get NaN rows (a bad page only in the rows that attend
 * to it); a tree whose node range is broken is skipped; the other trees
 * are exact. Run with and without KV splits, on both kernels. */
static void bad_data_case(deco_dtype_t dt, int hd, int prefix0) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  int s[5] = {20, 12, 30, 9, 25}, p[5] = {prefix0, 5, 40, 3, prefix0};
  gcase_t g = mk(dt, hd, 2, 2, 1, 5, s, p, 0, 70);
  g.extra_cap = 0;
  hcase_t h;
  hcase_build(&g, &h);
  float *want = reference(&g, &h);
  dcase_t d;
  dcase_upload(ctx, &g, &h, &d);
  deco_tree_attention_args_t a = dcase_args(&g, &h, &d);
  const char *path = deco_tree_attention_path(ctx, &a);
  fprintf(stderr, "bad data: %s hd %d prefix %d: %s\n", deco_dtype_name(dt), hd, prefix0, path);
  dcase_workspace(ctx, &a, &d);

  /* tree 1: node 3's parent points forward */
  int32_t bad_parent = 7;
  cr_assert_eq(deco_memcpy(ctx, (int32_t *)d.parent.ptr + h.indptr[1] + 3, &bad_parent, 4, DECO_COPY_HOST_TO_CTX), 0);
  /* tree 2: the page of tree slot L + 5 (page size 1) is outside the pool */
  int32_t bad_page = h.n_pages + 3;
  const int slot = p[2] + 5;
  cr_assert_eq(deco_memcpy(ctx, (int32_t *)d.bt.ptr + 2 * h.max_pages + slot, &bad_page, 4, DECO_COPY_HOST_TO_CTX), 0);
  /* tree 3: prefix longer than its block table; tree 4 untouched */
  int32_t long_prefix = h.max_pages * g.page_size;
  cr_assert_eq(deco_memcpy(ctx, (int32_t *)d.prefix.ptr + 3, &long_prefix, 4, DECO_COPY_HOST_TO_CTX), 0);
  /* Outputs start at 0 so that "written NaN" differs from "skipped". */
  const size_t es = deco_dtype_size(dt), row = (size_t)h.H * hd;
  cr_assert_eq(deco_memset(ctx, d.out.ptr, 0, es * h.q_elems), 0);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_ctx_synchronize(ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  unsigned char *raw = malloc(es * h.q_elems);
  float *got = malloc(sizeof(float) * h.q_elems);
  deco_test_buf_download(&d.out, raw, es * h.q_elems);
  deco_test_unpack(got, raw, h.q_elems, dt);
  const float tol = tolerance(dt);
  for (int b = 0; b < 5; ++b) {
    for (int i = 0; i < s[b]; ++i) {
      const size_t base = (size_t)(h.indptr[b] + i) * row;
      int expect_nan = b == 1 || b == 3;
      if (b == 2) { /* rows whose ancestors include node 5 */
        int j = i;
        while (j > 5) j = h.parent[h.indptr[2] + j];
        expect_nan = j == 5;
      }
      char what[96];
      snprintf(what, sizeof what, "tree %d node %d", b, i);
      if (expect_nan) {
        size_t not_nan = 0;
        for (size_t e = 0; e < row; ++e) not_nan += !isnan(got[base + e]);
        cr_expect_eq(not_nan, 0, "%s: %zu of %zu elements are not NaN", what, not_nan, row);
      } else {
        cr_expect_eq(deco_test_compare(what, got + base, want + base, row, tol, tol), 0, "%s differs", what);
      }
    }
  }
  cr_expect(deco_test_buf_guard_ok(&d.out));
  if (d.has_ws) cr_expect(deco_test_buf_guard_ok(&d.ws));

  /* Broken node ranges (tree 1 runs past the capacity, so tree 2 ends
   * before it starts): both are skipped, the other trees are computed. */
  int32_t bad_indptr = h.cap_nodes + 40;
  cr_assert_eq(deco_memcpy(ctx, (int32_t *)d.indptr.ptr + 2, &bad_indptr, 4, DECO_COPY_HOST_TO_CTX), 0);
  cr_assert_eq(deco_memset(ctx, d.out.ptr, 0, es * h.q_elems), 0);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_ctx_synchronize(ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_test_buf_download(&d.out, raw, es * h.q_elems);
  deco_test_unpack(got, raw, h.q_elems, dt);
  cr_expect_eq(deco_test_compare("tree 0 beside broken ranges", got, want, (size_t)s[0] * row, tol, tol), 0);
  const size_t t4 = (size_t)h.indptr[4] * row;
  cr_expect_eq(deco_test_compare("tree 4 beside broken ranges", got + t4, want + t4, (size_t)s[4] * row, tol, tol), 0);
  size_t written = 0;
  for (size_t e = (size_t)h.indptr[1] * row; e < (size_t)h.indptr[3] * row; ++e) written += got[e] != 0.0f;
  cr_expect_eq(written, 0, "trees 1 and 2 with broken ranges: %zu elements written", written);
  cr_expect(deco_test_buf_guard_ok(&d.out));
  free(raw);
  free(got);
  free(want);
  dcase_free(ctx, &d);
  hcase_free(&h);
  deco_ctx_destroy(ctx);
}

Test(tree_attention_gpu, bad_data_mma, .timeout = 300) { bad_data_case(DECO_DTYPE_BF16, 128, 10); }
Test(tree_attention_gpu, bad_data_mma_split, .timeout = 300) { bad_data_case(DECO_DTYPE_F16, 64, 3000); }
Test(tree_attention_gpu, bad_data_generic, .timeout = 300) { bad_data_case(DECO_DTYPE_F32, 24, 10); }
Test(tree_attention_gpu, bad_data_generic_split, .timeout = 300) { bad_data_case(DECO_DTYPE_BF16, 256, 3000); }

Test(tree_attention_gpu, workspace_too_small, .timeout = 120) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  int s[1] = {64}, p[1] = {4100};
  gcase_t g = mk(DECO_DTYPE_BF16, 128, 1, 4, 16, 1, s, p, -1, 80);
  hcase_t h;
  hcase_build(&g, &h);
  dcase_t d;
  dcase_upload(ctx, &g, &h, &d);
  deco_tree_attention_args_t a = dcase_args(&g, &h, &d);
  size_t need = deco_tree_attention_workspace_size(ctx, &a);
  cr_assert_gt(need, 0, "a split run needs a workspace (%s)", deco_tree_attention_path(ctx, &a));
  cr_expect_eq(deco_tree_attention(ctx, &a), DECO_STATUS_WORKSPACE_TOO_SMALL);
  cr_expect(strstr(deco_last_error(ctx), "workspace") != NULL, "%s", deco_last_error(ctx));
  d.ws = deco_test_buf_alloc(ctx, need);
  d.has_ws = 1;
  cr_assert_eq(deco_ctx_set_workspace(ctx, d.ws.ptr, need - 1), 0);
  cr_expect_eq(deco_tree_attention(ctx, &a), DECO_STATUS_WORKSPACE_TOO_SMALL);
  cr_assert_eq(deco_ctx_set_workspace(ctx, d.ws.ptr, need), 0);
  cr_expect_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_expect_eq(deco_ctx_synchronize(ctx), DECO_STATUS_SUCCESS);
  cr_expect(deco_test_buf_guard_ok(&d.ws));
  /* Argument checks are the same as on the CPU. */
  deco_tree_attention_args_t b = a;
  b.cache.head_dim = 300;
  cr_expect_eq(deco_tree_attention(ctx, &b), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_str_eq(deco_tree_attention_path(ctx, &b), "invalid");
  dcase_free(ctx, &d);
  hcase_free(&h);
  deco_ctx_destroy(ctx);
}
