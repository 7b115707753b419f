/* perf/bench_recycle.c — Token Recycling's ops: per-row top-k of logits
 * (f32, bf16; V = 32000 and 128256; the template's 81 rows per request and
 * docs/PERF.md's PyTorch comparison shapes) against the floor of reading the
 * logits once, then the draft and the update at batch 1 and 64. Top-k is
 * checked against the C reference before it is timed.
 * Run: build/bin/bench_recycle [--reps N]   (CSV on stdout, summary on stderr)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bench.h"
#include "deco/deco.h"

#define CHECK(expr)                                                                       \
  do {                                                                                    \
    if ((expr) != DECO_STATUS_SUCCESS) {                                                  \
      fprintf(stderr, "bench_recycle: %s failed: %s\n", #expr, deco_last_error(ctx));     \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

typedef struct topk_state {
  deco_ctx_t *ctx;
  deco_topk_rows_args_t a;
} topk_state_t;
static int topk_fn(void *u) {
  topk_state_t *s = u;
  return deco_topk_rows(s->ctx, &s->a) != DECO_STATUS_SUCCESS;
}
typedef struct draft_state {
  deco_ctx_t *ctx;
  deco_recycle_draft_args_t a;
} draft_state_t;
static int draft_fn(void *u) {
  draft_state_t *s = u;
  return deco_recycle_draft(s->ctx, &s->a) != DECO_STATUS_SUCCESS;
}
typedef struct update_state {
  deco_ctx_t *ctx;
  deco_recycle_update_args_t a;
} update_state_t;
static int update_fn(void *u) {
  update_state_t *s = u;
  return deco_recycle_update(s->ctx, &s->a) != DECO_STATUS_SUCCESS;
}

int main(int argc, char **argv) {
  int reps = 100;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--reps N]\n", argv[0]);
      return 2;
    }
  }
  if (deco_cuda_device_count() == 0) {
    fprintf(stderr, "bench_recycle: no CUDA device\n");
    return 77;
  }
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  deco_ctx_t *ctx = NULL, *cpu = NULL;
  deco_ctx_config_t ccfg = DECO_CTX_CONFIG_INIT;
  ccfg.backend = DECO_BACKEND_CPU;
  if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS || deco_ctx_create(&ccfg, &cpu) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_recycle: %s\n", deco_last_error(NULL));
    return 1;
  }
  deco_bench_t b;
  if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) return 1;
  const char *cmd = deco_bench_command(argc, argv);
  fprintf(stderr, "bench_recycle: %s, %d SMs, L2 %zu MB; copy %.0f GB/s (read + write)\n", b.device_name, b.sm_count,
          b.l2_bytes >> 20, b.copy_gbps);
  deco_bench_csv_header(stdout);
  const size_t ws_bytes = (size_t)64 << 20;
  void *ws = NULL;
  CHECK(deco_malloc(ctx, &ws, ws_bytes));
  CHECK(deco_ctx_set_workspace(ctx, ws, ws_bytes));
  int failures = 0;

  /* rows, vocab, k: a request's template (81), 8 requests, and docs/PERF.md's
   * PyTorch shapes (top-3 of 3 x 32000: 78 us; top-8 of 8 x 128256: 125 us). */
  static const int cases[][3] = {{81, 32000, 8},  {81, 128256, 8},  {81, 128256, 16}, {648, 128256, 8},
                                 {648, 32000, 8}, {3, 32000, 3},    {8, 128256, 8},   {1, 128256, 8}};
  const int n_cases = (int)(sizeof cases / sizeof cases[0]);
  for (int dt_i = 0; dt_i < 2; ++dt_i) {
    const deco_dtype_t dt = dt_i ? DECO_DTYPE_BF16 : DECO_DTYPE_F32;
    for (int c = 0; c < n_cases; ++c) {
      const int rows = cases[c][0], V = cases[c][1], k = cases[c][2];
      const size_t n = (size_t)rows * V, es = deco_dtype_size(dt);
      void *x = NULL;
      int32_t *ids = NULL;
      CHECK(deco_malloc(ctx, &x, n * es));
      CHECK(deco_malloc(ctx, (void **)&ids, sizeof(int32_t) * rows * k));
      /* Normal logits, rounded to the dtype on the device. */
      deco_fill_random_args_t fr = {.dtype = dt, .n = n, .seed = 11, .tensor = (uint32_t)(c + 16 * dt_i), .scale = 3.0f,
                                    .constant = 0.0f, .out = x};
      CHECK(deco_fill_random(ctx, &fr));
      topk_state_t st = {ctx, {rows, V, k, dt, x, NULL, ids, NULL}};
      CHECK(deco_topk_rows(ctx, &st.a));
      /* Check against the reference on the same values. */
      void *hraw = malloc(n * es);
      float *hx = malloc(sizeof(float) * n);
      int32_t *got = malloc(sizeof(int32_t) * rows * k), *want = malloc(sizeof(int32_t) * rows * k);
      CHECK(deco_memcpy(ctx, hraw, x, n * es, DECO_COPY_CTX_TO_HOST));
      CHECK(deco_memcpy(ctx, got, ids, sizeof(int32_t) * rows * k, DECO_COPY_CTX_TO_HOST));
      for (size_t i = 0; i < n; ++i)
        hx[i] = dt == DECO_DTYPE_F32 ? ((float *)hraw)[i] : deco_bf16_to_f32(((uint16_t *)hraw)[i]);
      deco_topk_rows_args_t ra = {.n_rows = rows, .vocab = V, .k = k, .dtype = DECO_DTYPE_F32, .logits = hx,
                                  .row_count = NULL, .ids = want, .values = NULL};
      if (deco_topk_rows(cpu, &ra) != DECO_STATUS_SUCCESS) return 1;
      char label[96];
      snprintf(label, sizeof label, "rows=%d V=%d k=%d %s", rows, V, k, deco_dtype_name(dt));
      if (memcmp(got, want, sizeof(int32_t) * rows * k) != 0) {
        fprintf(stderr, "bench_recycle: topk %s differs from the reference; not timed\n", label);
        failures++;
      } else {
        for (int flush = 1; flush >= 0; --flush) {
          deco_bench_stats_t s;
          if (deco_bench_time(&b, topk_fn, &st, 5, reps, flush ? DECO_BENCH_FLUSH : DECO_BENCH_HOLD, &s)) return 1;
          const double bytes = (double)n * es + 4.0 * rows * k;
          deco_bench_csv_row(stdout, &b, "topk_rows", label, flush ? "cold L2" : "warm L2", &s, bytes, 0.0, cmd);
          if (flush)
            fprintf(stderr, "  topk %-28s %8.1f us, floor (read once) %6.1f us = %3.0f%%, workspace %zu B\n", label,
                    s.median_us, deco_bench_floor_us(&b, bytes, 0.0),
                    100.0 * deco_bench_floor_us(&b, bytes, 0.0) / s.median_us,
                    deco_topk_rows_workspace_size(ctx, &st.a));
        }
      }
      free(hraw);
      free(hx);
      free(got);
      free(want);
      deco_free(ctx, x);
      deco_free(ctx, ids);
    }
  }

  /* Draft and update: the official template, B = 1 and 64, vocab 128256. */
  deco_tree_template_t t;
  if (deco_tree_template_default(&t) != DECO_STATUS_SUCCESS) return 1;
  const int V = 128256, k = 8, n = t.n_nodes;
  deco_recycler_t *r = NULL;
  CHECK(deco_recycler_create(ctx, V, k, &r));
  int32_t *d_parent = NULL, *d_rank = NULL, *d_roots = NULL, *d_tokens = NULL, *d_topk = NULL, *d_indptr = NULL;
  CHECK(deco_malloc(ctx, (void **)&d_parent, sizeof(int32_t) * n));
  CHECK(deco_malloc(ctx, (void **)&d_rank, sizeof(int32_t) * n));
  CHECK(deco_memcpy(ctx, d_parent, t.parent, sizeof(int32_t) * n, DECO_COPY_HOST_TO_CTX));
  CHECK(deco_memcpy(ctx, d_rank, t.rank, sizeof(int32_t) * n, DECO_COPY_HOST_TO_CTX));
  const int Bs[2] = {1, 64};
  for (int bi = 0; bi < 2; ++bi) {
    const int B = Bs[bi], N = B * n;
    int32_t *h = malloc(sizeof(int32_t) * ((size_t)N * k + B + 1));
    CHECK(deco_malloc(ctx, (void **)&d_roots, sizeof(int32_t) * B));
    CHECK(deco_malloc(ctx, (void **)&d_tokens, sizeof(int32_t) * N));
    CHECK(deco_malloc(ctx, (void **)&d_topk, sizeof(int32_t) * (size_t)N * k));
    CHECK(deco_malloc(ctx, (void **)&d_indptr, sizeof(int32_t) * (B + 1)));
    for (int i = 0; i < B; ++i) h[i] = (i * 7919) % V;
    CHECK(deco_memcpy(ctx, d_roots, h, sizeof(int32_t) * B, DECO_COPY_HOST_TO_CTX));
    for (int i = 0; i <= B; ++i) h[i] = i * n;
    CHECK(deco_memcpy(ctx, d_indptr, h, sizeof(int32_t) * (B + 1), DECO_COPY_HOST_TO_CTX));
    for (size_t i = 0; i < (size_t)N * k; ++i) h[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    CHECK(deco_memcpy(ctx, d_topk, h, sizeof(int32_t) * (size_t)N * k, DECO_COPY_HOST_TO_CTX));
    update_state_t us = {ctx, {B, N, d_indptr, d_tokens, d_topk, deco_recycler_table(r), V, k}};
    draft_state_t ds = {ctx, {B, n, d_roots, d_parent, d_rank, deco_recycler_table(r), V, k, d_tokens}};
    CHECK(deco_recycle_draft(ctx, &ds.a));
    CHECK(deco_recycle_update(ctx, &us.a)); /* a warm table: drafts reach many rows */
    char label[64];
    deco_bench_stats_t s;
    snprintf(label, sizeof label, "B=%d nodes=%d V=%d k=%d", B, N, V, k);
    if (deco_bench_time(&b, draft_fn, &ds, 5, reps, DECO_BENCH_HOLD, &s)) return 1;
    deco_bench_csv_row(stdout, &b, "recycle_draft", label, "warm L2", &s, 4.0 * N * 2, 0.0, cmd);
    fprintf(stderr, "  draft  %-28s %8.1f us\n", label, s.median_us);
    if (deco_bench_time(&b, update_fn, &us, 5, reps, DECO_BENCH_HOLD, &s)) return 1;
    deco_bench_csv_row(stdout, &b, "recycle_update", label, "warm L2", &s, 4.0 * N * (2.0 * k + 3), 0.0, cmd);
    fprintf(stderr, "  update %-28s %8.1f us\n", label, s.median_us);
    free(h);
    deco_free(ctx, d_roots);
    deco_free(ctx, d_tokens);
    deco_free(ctx, d_topk);
    deco_free(ctx, d_indptr);
  }
  deco_free(ctx, d_parent);
  deco_free(ctx, d_rank);
  deco_recycler_destroy(r);
  deco_ctx_set_workspace(ctx, NULL, 0);
  deco_free(ctx, ws);
  deco_bench_destroy(&b);
  deco_ctx_destroy(ctx);
  deco_ctx_destroy(cpu);
  return failures ? 1 : 0;
}
