/* perf/bench_ops.c — the weight-streaming (skinny) matmul against cuBLAS at
 * the Llama-2-7B projection shapes (k x n: 4096x4096, 4096x11008,
 * 11008x4096, 4096x32000), bf16, m = 1, 8 and 16, L2 flushed before each run;
 * % of the floor (weight bytes / measured copy bandwidth). Spot-checks both
 * paths against fp32 dot products before timing.
 * Run: build/bin/bench_ops [--reps N]   (CSV on stdout, summary on stderr)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bench.h"
#include "deco/deco.h"
#include "linear/matmul_path.h"

typedef struct mm_state {
  deco_ctx_t *ctx;
  deco_matmul_args_t args;
  deco_matmul_path_t path;
} mm_state_t;

static int mm_fn(void *u) {
  mm_state_t *s = u;
  return deco_matmul_cuda_path(s->ctx, &s->args, s->path) != DECO_STATUS_SUCCESS;
}

#define CHECK(expr)                                                                       \
  do {                                                                                    \
    if ((expr) != DECO_STATUS_SUCCESS) {                                                  \
      fprintf(stderr, "bench_ops: %s failed: %s\n", #expr, deco_last_error(ctx));         \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

/* Compares 64 outputs of the last run with fp32 dot products of the bf16
 * inputs (bf16 output: the tolerance of the tests, 1e-2 + 1e-2 |r|). */
static int spot_check(deco_ctx_t *ctx, const deco_matmul_args_t *a, const char *label) {
  const int m = a->m, n = a->n, k = a->k;
  uint16_t *ha = malloc(sizeof(uint16_t) * (size_t)m * k), *hrow = malloc(sizeof(uint16_t) * k);
  uint16_t *hout = malloc(sizeof(uint16_t) * (size_t)m * n);
  CHECK(deco_memcpy(ctx, ha, a->a, sizeof(uint16_t) * (size_t)m * k, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, hout, a->out, sizeof(uint16_t) * (size_t)m * n, DECO_COPY_CTX_TO_HOST));
  int bad = 0;
  for (int s = 0; s < 64; ++s) {
    const int i = (int)(deco_philox_uniform(7, 1, (uint32_t)s, 0, 0) * m) % m;
    const int j = s == 63 ? n - 1 : (int)(deco_philox_uniform(7, 2, (uint32_t)s, 0, 0) * n) % n;
    CHECK(deco_memcpy(ctx, hrow, (const uint16_t *)a->w + (size_t)j * k, sizeof(uint16_t) * k,
                      DECO_COPY_CTX_TO_HOST));
    float ref = 0.0f;
    for (int c = 0; c < k; ++c) ref += deco_bf16_to_f32(ha[(size_t)i * k + c]) * deco_bf16_to_f32(hrow[c]);
    const float got = deco_bf16_to_f32(hout[(size_t)i * n + j]);
    if (!(fabsf(got - ref) <= 1e-2f + 1e-2f * fabsf(ref))) {
      if (bad < 5) fprintf(stderr, "bench_ops: %s out[%d][%d] = %g, expected %g\n", label, i, j, got, ref);
      bad++;
    }
  }
  free(ha);
  free(hrow);
  free(hout);
  return bad;
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
    fprintf(stderr, "bench_ops: no CUDA device\n");
    return 77;
  }
  deco_ctx_config_t cfg = {DECO_BACKEND_CUDA, 0, NULL};
  deco_ctx_t *ctx = NULL;
  if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_ops: %s\n", deco_last_error(NULL));
    return 1;
  }
  deco_bench_t b;
  if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) return 1;
  const char *cmd = deco_bench_command(argc, argv);
  fprintf(stderr, "bench_ops: %s, %d SMs, L2 %zu MB; copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n",
          b.device_name, b.sm_count, b.l2_bytes >> 20, b.copy_gbps, b.gemm_tflops);
  deco_bench_csv_header(stdout);

  static const int shapes[4][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}, {4096, 32000}}; /* k, n */
  static const char *names[4] = {"qkvo", "gate/up", "down", "classifier"};
  static const int per_step[4] = {4 * 32, 2 * 32, 32, 1}; /* GEMMs of this shape in one llama2-7b decode step */
  static const int ms[3] = {1, 8, 16};
  double step_us[3][2] = {{0}}, step_bytes = 0.0;
  int failures = 0;

  for (int si = 0; si < 4; ++si) {
    const int k = shapes[si][0], n = shapes[si][1];
    void *w = NULL, *a = NULL, *out = NULL;
    CHECK(deco_malloc(ctx, &w, (size_t)n * k * 2));
    CHECK(deco_malloc(ctx, &a, (size_t)16 * k * 2));
    CHECK(deco_malloc(ctx, &out, (size_t)16 * n * 2));
    deco_fill_random_args_t fw = {DECO_DTYPE_BF16, (size_t)n * k, 5, (uint32_t)(10 + si),
                                  1.7320508f / sqrtf((float)k), 0.0f, w};
    deco_fill_random_args_t fa = {DECO_DTYPE_BF16, (size_t)16 * k, 6, (uint32_t)(20 + si), 1.0f, 0.0f, a};
    CHECK(deco_fill_random(ctx, &fw));
    CHECK(deco_fill_random(ctx, &fa));
    step_bytes += (double)per_step[si] * n * k * 2;
    for (int mi = 0; mi < 3; ++mi) {
      const int m = ms[mi];
      const deco_matmul_args_t args = {DECO_DTYPE_BF16, DECO_DTYPE_BF16, m, n, k, a, w, out, 0};
      const char *auto_path = deco_matmul_path_cuda(ctx, &args);
      for (int p = 0; p < 2; ++p) {
        mm_state_t st = {ctx, args, p == 0 ? DECO_MATMUL_PATH_SKINNY : DECO_MATMUL_PATH_CUBLAS};
        const char *pname = p == 0 ? "skinny" : "cublas";
        char label[128], path[64];
        snprintf(label, sizeof label, "%s m=%d n=%d k=%d", names[si], m, n, k);
        snprintf(path, sizeof path, "%s%s", pname, strcmp(auto_path, pname) == 0 ? " (auto)" : "");
        CHECK(deco_memset(ctx, out, 0xFF, (size_t)m * n * 2));
        CHECK(deco_matmul_cuda_path(ctx, &args, st.path));
        int bad = spot_check(ctx, &args, label);
        if (bad) {
          fprintf(stderr, "bench_ops: %s (%s): %d of 64 spot checks failed; not timed\n", label, pname, bad);
          failures++;
          continue;
        }
        deco_bench_stats_t s;
        if (deco_bench_time(&b, mm_fn, &st, 5, reps, 1, &s)) return 1;
        const double bytes = 2.0 * ((double)n * k + (double)m * k + (double)m * n);
        const double flops = 2.0 * m * (double)n * k;
        deco_bench_csv_row(stdout, &b, "matmul_bf16", label, path, &s, bytes, flops, cmd);
        step_us[mi][p] += per_step[si] * s.median_us;
      }
    }
    deco_free(ctx, w);
    deco_free(ctx, a);
    deco_free(ctx, out);
  }
  const double floor_us = deco_bench_floor_us(&b, step_bytes, 0.0);
  fprintf(stderr, "bench_ops: llama2-7b projections of one step (sum of per-GEMM medians), weight floor %.0f us:\n",
          floor_us);
  for (int mi = 0; mi < 3; ++mi)
    fprintf(stderr, "  m=%-2d skinny %7.0f us (%3.0f%% of floor)   cublas %7.0f us (%3.0f%% of floor)\n", ms[mi],
            step_us[mi][0], 100.0 * floor_us / step_us[mi][0], step_us[mi][1], 100.0 * floor_us / step_us[mi][1]);
  deco_bench_destroy(&b);
  deco_ctx_destroy(ctx);
  return failures ? 1 : 0;
}
