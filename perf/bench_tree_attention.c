/* perf/bench_tree_attention.c — tree attention at the Llama-3-8B attention
 * shape (32 query heads, 8 KV heads, head dim 128), bf16, page size 16,
 * random trees of 16, 64 and 128 nodes over docs/PERF.md's (B, L) grid; floors
 * from the ceilings measured in the same run, and one-token decode attention
 * (deco_attention) on the same cache. Cold caches by rotating copies of the
 * K/V pools (at least 3x L2 streamed between two uses of a copy); --flush
 * uses the shared L2 flush before each run instead.
 * Validates against the C reference on small cases before timing. Shapes:
 * the DECO_CASES_* lists of tests/ops/op_cases.h, which the op harness's
 * table checks too.
 * Run: build/bin/bench_tree_attention [--reps N] [--flush]   (CSV on stdout, table on stderr)
 *      build/bin/bench_tree_attention --only B L nodes [--reps N]   (one case, untimed: for profilers)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/ops/op_cases.h" /* the shapes, shared with the op harness's case table */
#include "common/bench.h"
#include "deco/deco.h"

#define H_Q DECO_CASES_ATT_HEADS
#define H_KV DECO_CASES_ATT_KV_HEADS
#define HD DECO_CASES_ATT_HEAD_DIM
#define PAGE DECO_CASES_ATT_PAGE
#define MAX_NODES 128 /* the largest of DECO_CASES_TREE_SIZES (checked in main) */
#define BF16_TOL 1e-2f /* the tests' bf16 tolerance (tests/common/tolerances.h) */
#define MAX_COPIES 8

static deco_ctx_t *ctx;

#define CHECK(expr)                                                                        \
  do {                                                                                     \
    if ((expr) != DECO_STATUS_SUCCESS) {                                                   \
      fprintf(stderr, "bench_tree_attention: %s failed: %s\n", #expr, deco_last_error(ctx)); \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* KV pools of one (B, L), sized for the largest tree; trees, queries and
 * block table of one tree size; the decode attention on the same cache. */
typedef struct bcase {
  int B, L, n, pages_per_seq, n_pages, max_pages;
  void *k, *v, *q, *out, *out_dec, *ws;
  int n_copies, next_copy;      /* timed runs rotate over copies of the pools */
  void *kc[MAX_COPIES], *vc[MAX_COPIES];
  int32_t *bt, *indptr, *parent, *prefix, *q_indptr, *kv_lens;
  int32_t *h_parent, *h_perm;
  deco_tree_attention_args_t ta;
  deco_attention_args_t da;
  double bytes, flops;
} bcase_t;

static void *dalloc(size_t bytes) {
  void *p = NULL;
  CHECK(deco_malloc(ctx, &p, bytes));
  return p;
}

static void upload(void *dst, const void *src, size_t bytes) {
  CHECK(deco_memcpy(ctx, dst, src, bytes, DECO_COPY_HOST_TO_CTX));
}

/* cold_bytes > 0: enough pool copies that rotating over them streams at
 * least that many bytes between two uses of the same copy. */
static void pools_create(bcase_t *c, int B, int L, uint64_t seed, size_t cold_bytes) {
  memset(c, 0, sizeof *c);
  c->B = B;
  c->L = L;
  c->pages_per_seq = (L + MAX_NODES + PAGE - 1) / PAGE;
  c->n_pages = B * c->pages_per_seq;
  const size_t pool = (size_t)c->n_pages * PAGE * H_KV * HD;
  c->n_copies = 1;
  if (cold_bytes > 0) c->n_copies = (int)((cold_bytes + 4 * pool - 1) / (4 * pool)) + 1;
  if (c->n_copies > MAX_COPIES) c->n_copies = MAX_COPIES;
  for (int i = 0; i < c->n_copies; ++i) {
    c->kc[i] = dalloc(pool * 2);
    c->vc[i] = dalloc(pool * 2);
    deco_fill_random_args_t fk = {.dtype = DECO_DTYPE_BF16, .n = pool, .seed = seed, .tensor = 1, .scale = 1.0f,
                                  .constant = 0.0f, .out = c->kc[i]};
    deco_fill_random_args_t fv = {.dtype = DECO_DTYPE_BF16, .n = pool, .seed = seed, .tensor = 2, .scale = 1.0f,
                                  .constant = 0.0f, .out = c->vc[i]};
    CHECK(deco_fill_random(ctx, &fk));
    CHECK(deco_fill_random(ctx, &fv));
  }
  c->k = c->kc[0];
  c->v = c->vc[0];
  const size_t qn = (size_t)B * MAX_NODES * H_Q * HD;
  c->q = dalloc(qn * 2);
  c->out = dalloc(qn * 2);
  c->out_dec = dalloc((size_t)B * H_Q * HD * 2);
  deco_fill_random_args_t fq = {.dtype = DECO_DTYPE_BF16, .n = qn, .seed = seed, .tensor = 3, .scale = 2.0f,
                                .constant = 0.0f, .out = c->q};
  CHECK(deco_fill_random(ctx, &fq));
  /* Pages of each sequence scattered over the pool. */
  c->h_perm = malloc(sizeof(int32_t) * (size_t)c->n_pages);
  uint64_t s = seed;
  for (int i = 0; i < c->n_pages; ++i) c->h_perm[i] = i;
  for (int i = c->n_pages - 1; i > 0; --i) {
    int j = (int)(rng_next(&s) % (uint64_t)(i + 1)), t = c->h_perm[i];
    c->h_perm[i] = c->h_perm[j];
    c->h_perm[j] = t;
  }
  c->bt = dalloc(sizeof(int32_t) * (size_t)c->n_pages);
  c->indptr = dalloc(sizeof(int32_t) * (size_t)(B + 1));
  c->parent = dalloc(sizeof(int32_t) * (size_t)B * MAX_NODES);
  c->prefix = dalloc(sizeof(int32_t) * (size_t)B);
  c->q_indptr = dalloc(sizeof(int32_t) * (size_t)(B + 1));
  c->kv_lens = dalloc(sizeof(int32_t) * (size_t)B);
  c->h_parent = malloc(sizeof(int32_t) * (size_t)B * MAX_NODES);
}

static void pools_destroy(bcase_t *c) {
  void *bufs[] = {c->q, c->out, c->out_dec, c->ws, c->bt, c->indptr, c->parent, c->prefix, c->q_indptr, c->kv_lens};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i) deco_free(ctx, bufs[i]);
  for (int i = 0; i < c->n_copies; ++i) {
    deco_free(ctx, c->kc[i]);
    deco_free(ctx, c->vc[i]);
  }
  free(c->h_parent);
  free(c->h_perm);
  deco_ctx_set_workspace(ctx, NULL, 0);
}

/* Trees of n nodes (random shape, fixed seed) over prefix L; the decode
 * case is one token per sequence at slot L (the root's). */
static void trees_setup(bcase_t *c, int n, uint64_t seed) {
  const int B = c->B, L = c->L;
  c->n = n;
  c->max_pages = (L + n + PAGE - 1) / PAGE;
  int32_t *bt = calloc((size_t)B * c->max_pages, sizeof(int32_t));
  for (int b = 0; b < B; ++b)
    for (int p = 0; p < c->max_pages; ++p) bt[b * c->max_pages + p] = c->h_perm[b * c->pages_per_seq + p];
  upload(c->bt, bt, sizeof(int32_t) * (size_t)B * c->max_pages);
  free(bt);
  uint64_t s = seed;
  int32_t *indptr = malloc(sizeof(int32_t) * (size_t)(B + 1)), *prefix = malloc(sizeof(int32_t) * (size_t)B);
  int32_t *kv_lens = malloc(sizeof(int32_t) * (size_t)B), *depth = malloc(sizeof(int32_t) * (size_t)n);
  double key_rows = 0.0; /* sum over nodes of the slots each attends to */
  for (int b = 0; b <= B; ++b) indptr[b] = b * n;
  for (int b = 0; b < B; ++b) {
    int32_t *par = c->h_parent + (size_t)b * n;
    par[0] = -1;
    for (int i = 1; i < n; ++i) par[i] = (int32_t)(rng_next(&s) % (uint64_t)i);
    CHECK(deco_tree_depths(par, n, depth));
    for (int i = 0; i < n; ++i) key_rows += L + depth[i] + 1;
    prefix[b] = L;
    kv_lens[b] = L + 1;
  }
  upload(c->indptr, indptr, sizeof(int32_t) * (size_t)(B + 1));
  upload(c->parent, c->h_parent, sizeof(int32_t) * (size_t)B * n);
  upload(c->prefix, prefix, sizeof(int32_t) * (size_t)B);
  for (int b = 0; b <= B; ++b) indptr[b] = b;
  upload(c->q_indptr, indptr, sizeof(int32_t) * (size_t)(B + 1));
  upload(c->kv_lens, kv_lens, sizeof(int32_t) * (size_t)B);
  free(indptr);
  free(prefix);
  free(kv_lens);
  free(depth);

  deco_paged_kv_t cache = {.dtype = DECO_DTYPE_BF16, .n_kv_heads = H_KV, .head_dim = HD, .page_size = PAGE,
                           .n_pages = c->n_pages, .k_pages = c->k, .v_pages = c->v, .block_table = c->bt,
                           .max_pages_per_seq = c->max_pages};
  memset(&c->ta, 0, sizeof c->ta);
  c->ta.cache = cache;
  c->ta.tree.n_trees = B;
  c->ta.tree.n_nodes = B * n;
  c->ta.tree.tree_indptr = c->indptr;
  c->ta.tree.parent = c->parent;
  c->ta.prefix_lens = c->prefix;
  c->ta.n_heads = H_Q;
  c->ta.scale = 1.0f / sqrtf((float)HD);
  c->ta.q = c->q;
  c->ta.out = c->out;
  memset(&c->da, 0, sizeof c->da);
  c->da.cache = cache;
  c->da.batch.n_seqs = B;
  c->da.batch.n_tokens = B;
  c->da.batch.q_indptr = c->q_indptr;
  c->da.batch.kv_lens = c->kv_lens;
  c->da.n_heads = H_Q;
  c->da.scale = c->ta.scale;
  c->da.q = c->q;
  c->da.out = c->out_dec;
  size_t ws = deco_tree_attention_workspace_size(ctx, &c->ta), wd = deco_attention_workspace_size(ctx, &c->da);
  if (wd > ws) ws = wd;
  deco_free(ctx, c->ws);
  c->ws = NULL;
  if (ws) c->ws = dalloc(ws);
  CHECK(deco_ctx_set_workspace(ctx, c->ws, ws));
  /* Each K/V slot read once, q read and out written once. */
  c->bytes = 2.0 * 2.0 * B * (double)(L + n) * H_KV * HD + 2.0 * 2.0 * B * (double)n * H_Q * HD;
  c->flops = 4.0 * key_rows * H_Q * HD;
}

/* Compares the GPU output of the current trees with the reference on the
 * same bf16 inputs (every element). Small cases only. */
static int validate(bcase_t *c) {
  const size_t pool = (size_t)c->n_pages * PAGE * H_KV * HD, qn = (size_t)c->B * c->n * H_Q * HD;
  uint16_t *raw = malloc(2 * (pool > qn ? pool : qn));
  float *k = malloc(sizeof(float) * pool), *v = malloc(sizeof(float) * pool);
  float *q = malloc(sizeof(float) * qn), *got = malloc(sizeof(float) * qn), *want = malloc(sizeof(float) * qn);
  CHECK(deco_memcpy(ctx, raw, c->k, pool * 2, DECO_COPY_CTX_TO_HOST));
  for (size_t i = 0; i < pool; ++i) k[i] = deco_bf16_to_f32(raw[i]);
  CHECK(deco_memcpy(ctx, raw, c->v, pool * 2, DECO_COPY_CTX_TO_HOST));
  for (size_t i = 0; i < pool; ++i) v[i] = deco_bf16_to_f32(raw[i]);
  CHECK(deco_memcpy(ctx, raw, c->q, qn * 2, DECO_COPY_CTX_TO_HOST));
  for (size_t i = 0; i < qn; ++i) q[i] = deco_bf16_to_f32(raw[i]);
  CHECK(deco_memset(ctx, c->out, 0xFF, qn * 2));
  CHECK(deco_tree_attention(ctx, &c->ta));
  CHECK(deco_memcpy(ctx, raw, c->out, qn * 2, DECO_COPY_CTX_TO_HOST));
  for (size_t i = 0; i < qn; ++i) got[i] = deco_bf16_to_f32(raw[i]);

  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CPU;
  deco_ctx_t *cpu = NULL;
  CHECK(deco_ctx_create(&cfg, &cpu));
  int32_t *bt = malloc(sizeof(int32_t) * (size_t)c->B * c->max_pages), *indptr = malloc(sizeof(int32_t) * (c->B + 1));
  int32_t *prefix = malloc(sizeof(int32_t) * (size_t)c->B);
  CHECK(deco_memcpy(ctx, bt, c->bt, sizeof(int32_t) * (size_t)c->B * c->max_pages, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, indptr, c->indptr, sizeof(int32_t) * (c->B + 1), DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, prefix, c->prefix, sizeof(int32_t) * (size_t)c->B, DECO_COPY_CTX_TO_HOST));
  deco_tree_attention_args_t r = c->ta;
  r.cache.dtype = DECO_DTYPE_F32;
  r.cache.k_pages = k;
  r.cache.v_pages = v;
  r.cache.block_table = bt;
  r.tree.tree_indptr = indptr;
  r.tree.parent = c->h_parent;
  r.prefix_lens = prefix;
  r.q = q;
  r.out = want;
  if (deco_tree_attention(cpu, &r) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_tree_attention: reference failed: %s\n", deco_last_error(cpu));
    exit(1);
  }
  size_t bad = 0;
  double max_err = 0.0;
  for (size_t i = 0; i < qn; ++i) {
    double d = fabs((double)got[i] - want[i]);
    if (!(d <= BF16_TOL + BF16_TOL * fabs(want[i]))) {
      if (bad < 5) fprintf(stderr, "  out[%zu] = %g, expected %g\n", i, got[i], want[i]);
      bad++;
    }
    if (!(d <= max_err)) max_err = d;
  }
  fprintf(stderr, "bench_tree_attention: check B=%d L=%d n=%d (%s): %zu of %zu outside tolerance, max |diff| %.3g\n",
          c->B, c->L, c->n, deco_tree_attention_path(ctx, &c->ta), bad, qn, max_err);
  deco_ctx_destroy(cpu);
  free(bt);
  free(indptr);
  free(prefix);
  free(raw);
  free(k);
  free(v);
  free(q);
  free(got);
  free(want);
  return bad != 0;
}

/* Points both ops at the next copy of the pools. */
static void rotate(bcase_t *c) {
  const int i = c->next_copy;
  c->next_copy = (i + 1) % c->n_copies;
  c->ta.cache.k_pages = c->da.cache.k_pages = c->kc[i];
  c->ta.cache.v_pages = c->da.cache.v_pages = c->vc[i];
}
static int tree_fn(void *u) {
  rotate(u);
  return deco_tree_attention(ctx, &((bcase_t *)u)->ta) != DECO_STATUS_SUCCESS;
}
static int decode_fn(void *u) {
  rotate(u);
  return deco_attention(ctx, &((bcase_t *)u)->da) != DECO_STATUS_SUCCESS;
}

int main(int argc, char **argv) {
  int reps = 100, only_b = 0, only_l = 0, only_n = 0, flush = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--flush") == 0) flush = 1;
    else if (strcmp(argv[i], "--only") == 0 && i + 3 < argc) {
      only_b = atoi(argv[++i]);
      only_l = atoi(argv[++i]);
      only_n = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--reps N] [--flush] [--only B L nodes]\n", argv[0]);
      return 2;
    }
  }
  if (deco_cuda_device_count() == 0) {
    fprintf(stderr, "bench_tree_attention: no CUDA device\n");
    return 77;
  }
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_tree_attention: %s\n", deco_last_error(NULL));
    return 1;
  }

  if (only_b > 0) { /* one case, no checks or ceilings: for profilers */
    if (only_n < 1 || only_n > MAX_NODES || only_l < 0) return 2;
    bcase_t c;
    pools_create(&c, only_b, only_l, 7, 0);
    trees_setup(&c, only_n, 300);
    for (int r = 0; r < reps; ++r) CHECK(deco_tree_attention(ctx, &c.ta));
    CHECK(deco_ctx_synchronize(ctx));
    fprintf(stderr, "bench_tree_attention: ran B=%d L=%d n=%d (%s) %d times\n", only_b, only_l, only_n,
            deco_tree_attention_path(ctx, &c.ta), reps);
    pools_destroy(&c);
    deco_ctx_destroy(ctx);
    return 0;
  }

  /* Correctness first: split and unsplit runs of every tree size. */
  const int(*checks)[2] = DECO_CASES_TREE_CHECKS;
  const int *sizes = DECO_CASES_TREE_SIZES;
  for (int ni = 0; ni < 3; ++ni)
    if (sizes[ni] > MAX_NODES) {
      fprintf(stderr, "bench_tree_attention: tree size %d above MAX_NODES %d\n", sizes[ni], MAX_NODES);
      return 1;
    }
  int failures = 0;
  for (int ci = 0; ci < 3; ++ci) {
    bcase_t c;
    pools_create(&c, checks[ci][0], checks[ci][1], 100 + (uint64_t)ci, 0);
    for (int ni = 0; ni < 3; ++ni) {
      trees_setup(&c, sizes[ni], 200 + (uint64_t)ni);
      failures += validate(&c);
    }
    pools_destroy(&c);
  }
  if (failures) {
    fprintf(stderr, "bench_tree_attention: %d validation cases failed; nothing timed\n", failures);
    return 1;
  }

  deco_bench_t b;
  if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) return 1;
  const char *cmd = deco_bench_command(argc, argv);
  fprintf(stderr, "bench_tree_attention: %s, %d SMs, L2 %zu MB; copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n",
          b.device_name, b.sm_count, b.l2_bytes >> 20, b.copy_gbps, b.gemm_tflops);
  deco_bench_csv_header(stdout);
  fprintf(stderr, "%3s %6s %4s %9s %9s %9s %7s %9s %-18s\n", "B", "L", "n", "tree_us", "mem_fl", "math_fl", "%floor",
          "decode_us", "path");
  const int(*grid)[2] = DECO_CASES_TREE_GRID;
  for (int gi = 0; gi < 5; ++gi) {
    bcase_t c;
    pools_create(&c, grid[gi][0], grid[gi][1], 7 + (uint64_t)gi, flush ? 0 : 3 * b.l2_bytes);
    double decode_us = 0.0;
    for (int ni = 0; ni < 3; ++ni) {
      trees_setup(&c, sizes[ni], 300 + (uint64_t)ni);
      char shape[96], path[64];
      snprintf(shape, sizeof shape, "B=%d L=%d nodes=%d heads=%d/%d hd=%d page=%d", c.B, c.L, c.n, H_Q, H_KV, HD, PAGE);
      snprintf(path, sizeof path, "%s", deco_tree_attention_path(ctx, &c.ta));
      deco_bench_stats_t st;
      if (ni == 0) { /* decode attention does not depend on the tree */
        if (deco_bench_time(&b, decode_fn, &c, 10, reps, flush ? DECO_BENCH_FLUSH : DECO_BENCH_HOLD, &st)) return 1;
        decode_us = st.median_us;
        char dshape[64];
        snprintf(dshape, sizeof dshape, "B=%d L=%d heads=%d/%d hd=%d page=%d", c.B, c.L + 1, H_Q, H_KV, HD, PAGE);
        const double dbytes = 2.0 * 2.0 * c.B * (double)(c.L + 1) * H_KV * HD + 2.0 * 2.0 * c.B * H_Q * HD;
        char dpath[64];
        snprintf(dpath, sizeof dpath, "deco_attention:%s", deco_attention_path(ctx, &c.da));
        deco_bench_csv_row(stdout, &b, "decode_attention_bf16", dshape, dpath, &st, dbytes,
                           4.0 * c.B * (double)(c.L + 1) * H_Q * HD, cmd);
      }
      if (deco_bench_time(&b, tree_fn, &c, 10, reps, flush ? DECO_BENCH_FLUSH : DECO_BENCH_HOLD, &st)) return 1;
      deco_bench_csv_row(stdout, &b, "tree_attention_bf16", shape, path, &st, c.bytes, c.flops, cmd);
      const double mem_floor = deco_bench_floor_us(&b, c.bytes, 0.0), math_floor = deco_bench_floor_us(&b, 0.0, c.flops);
      const double fl = mem_floor > math_floor ? mem_floor : math_floor;
      fprintf(stderr, "%3d %6d %4d %9.2f %9.2f %9.2f %6.0f%% %9.2f %-18s\n", c.B, c.L, c.n, st.median_us, mem_floor,
              math_floor, 100.0 * fl / st.median_us, decode_us, path);
    }
    pools_destroy(&c);
  }
  deco_bench_destroy(&b);
  deco_ctx_destroy(ctx);
  return 0;
}
