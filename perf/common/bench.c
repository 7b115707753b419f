/* perf/common/bench.c — see bench.h: event timing, measured ceilings, L2
 * flush and CSV rows for the perf/bench_* drivers.
 */
#define _POSIX_C_SOURCE 200809L /* common/wall.h's clock */
#include "common/bench.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wall.h" /* wall_csv_field */

#define BENCH_CUDA(expr)                                                                            \
  do {                                                                                              \
    cudaError_t e_ = (expr);                                                                        \
    if (e_ != cudaSuccess) {                                                                        \
      fprintf(stderr, "bench: %s failed: %s (%s:%d)\n", #expr, cudaGetErrorString(e_), __FILE__, __LINE__); \
      return 1;                                                                                     \
    }                                                                                               \
  } while (0)

int deco_bench_init(deco_bench_t *b, deco_ctx_t *ctx) {
  memset(b, 0, sizeof *b);
  if (!ctx || deco_ctx_backend(ctx) != DECO_BACKEND_CUDA) {
    fprintf(stderr, "bench: needs a CUDA context\n");
    return 1;
  }
  b->ctx = ctx;
  b->stream = deco_ctx_stream(ctx);
  int dev = 0;
  BENCH_CUDA(cudaGetDevice(&dev));
  struct cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, dev));
  snprintf(b->device_name, sizeof b->device_name, "%s", prop.name);
  b->sm_count = prop.multiProcessorCount;
  b->l2_bytes = (size_t)prop.l2CacheSize;
  b->flush_bytes = 2 * b->l2_bytes;
  if (b->flush_bytes < ((size_t)64 << 20)) b->flush_bytes = (size_t)64 << 20;
  BENCH_CUDA(cudaMalloc(&b->flush_buf, b->flush_bytes));
  BENCH_CUDA(cudaMemsetAsync(b->flush_buf, 0, b->flush_bytes, (cudaStream_t)b->stream));
  BENCH_CUDA(cudaMalloc(&b->flush_sink, sizeof(float)));
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench: cublasCreate failed\n");
    return 1;
  }
  b->cublas = h;
  if (cublasSetStream(h, (cudaStream_t)b->stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench: cublasSetStream / cublasSetPointerMode failed\n");
    return 1;
  }
  cudaEvent_t e0, e1;
  BENCH_CUDA(cudaEventCreate(&e0));
  BENCH_CUDA(cudaEventCreate(&e1));
  b->ev_start = e0;
  b->ev_stop = e1;
  return 0;
}

void deco_bench_destroy(deco_bench_t *b) {
  if (b->ev_start) cudaEventDestroy((cudaEvent_t)b->ev_start);
  if (b->ev_stop) cudaEventDestroy((cudaEvent_t)b->ev_stop);
  if (b->flush_buf) cudaFree(b->flush_buf);
  if (b->flush_sink) cudaFree(b->flush_sink);
  if (b->cublas) cublasDestroy((cublasHandle_t)b->cublas);
  memset(b, 0, sizeof *b);
}

int deco_bench_flush_l2(deco_bench_t *b) {
  if (b->flush_write) {
    /* A different byte each time, so no layer can skip the writes. */
    BENCH_CUDA(cudaMemsetAsync(b->flush_buf, (int)(b->flush_count++ & 0x7f), b->flush_bytes, (cudaStream_t)b->stream));
    return 0;
  }
  /* Read every byte once; the scalar result lands in device memory (no sync). */
  if (cublasSasum((cublasHandle_t)b->cublas, (int)(b->flush_bytes / sizeof(float)), (const float *)b->flush_buf, 1,
                  (float *)b->flush_sink) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench: cublasSasum (L2 flush) failed\n");
    return 1;
  }
  return 0;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, c = *(const double *)y;
  return a < c ? -1 : a > c;
}

/* Linear-interpolated percentile of sorted v[0..n). */
static double percentile(const double *v, int n, double p) {
  if (n == 1) return v[0];
  double pos = p * (n - 1);
  int i = (int)pos;
  if (i >= n - 1) return v[n - 1];
  return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* DECO_BENCH_HOLD's host function: the stream waits in it until the host
 * has queued the timed run (open), or 2 ms have passed (timed_out), so that
 * a run that waits for its own stream still ends; that run's time then
 * counts part of the host's work, which deco_bench_time reports. */
typedef struct bench_gate {
  atomic_int open, timed_out;
} bench_gate_t;

static void CUDART_CB bench_gate_hold(void *arg) {
  bench_gate_t *g = arg;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!atomic_load_explicit(&g->open, memory_order_acquire)) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > 2e-3) {
      atomic_store_explicit(&g->timed_out, 1, memory_order_relaxed);
      break;
    }
  }
}

int deco_bench_time(deco_bench_t *b, deco_bench_fn fn, void *user, int warmup, int reps, int flags,
                    deco_bench_stats_t *st) {
  const int flush_l2 = flags & DECO_BENCH_FLUSH, hold = flags & DECO_BENCH_HOLD;
  cudaStream_t s = (cudaStream_t)b->stream;
  cudaEvent_t e0 = (cudaEvent_t)b->ev_start, e1 = (cudaEvent_t)b->ev_stop;
  if (reps < 1) reps = 1;
  for (int i = 0; i < warmup; ++i) {
    if (fn(user)) {
      fprintf(stderr, "bench: the timed function failed during warm-up: %s\n", deco_last_error(b->ctx));
      return 1;
    }
  }
  BENCH_CUDA(cudaStreamSynchronize(s));
  double *t = malloc(sizeof(double) * reps);
  int held_out = 0; /* runs the hold let go of before they were queued */
  for (int i = 0; i < reps; ++i) {
    if (flush_l2 && deco_bench_flush_l2(b)) {
      free(t);
      return 1;
    }
    bench_gate_t gate;
    atomic_init(&gate.open, 0);
    atomic_init(&gate.timed_out, 0);
    if (hold && cudaLaunchHostFunc(s, bench_gate_hold, &gate) != cudaSuccess) {
      fprintf(stderr, "bench: cudaLaunchHostFunc (holding the stream) failed\n");
      free(t);
      return 1;
    }
    const cudaError_t r0 = cudaEventRecord(e0, s);
    int rc = fn(user);
    const cudaError_t r1 = cudaEventRecord(e1, s);
    atomic_store_explicit(&gate.open, 1, memory_order_release);
    /* The gate lives until the stream has passed it: e1 comes after it,
     * or, where e1 was not recorded, the whole stream. */
    cudaError_t err = r1 == cudaSuccess ? cudaEventSynchronize(e1) : cudaStreamSynchronize(s);
    if (err == cudaSuccess) err = r0 != cudaSuccess ? r0 : r1;
    float ms = 0.0f;
    if (rc || err != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
      fprintf(stderr, "bench: timed run %d failed: %s / %s\n", i, deco_last_error(b->ctx), cudaGetErrorString(err));
      free(t);
      return 1;
    }
    held_out += atomic_load_explicit(&gate.timed_out, memory_order_relaxed);
    t[i] = 1000.0 * ms;
  }
  if (held_out)
    fprintf(stderr, "bench: %d of %d runs were still being queued when the 2 ms hold let go: their times count "
                    "host work\n", held_out, reps);
  qsort(t, (size_t)reps, sizeof(double), cmp_double);
  st->reps = reps;
  st->min_us = t[0];
  st->max_us = t[reps - 1];
  st->median_us = percentile(t, reps, 0.5);
  st->p10_us = percentile(t, reps, 0.1);
  st->p90_us = percentile(t, reps, 0.9);
  free(t);
  return 0;
}

/* ---- Ceilings ---------------------------------------------------------------------- */

typedef struct copy_state {
  void *dst, *src;
  size_t bytes;
  cudaStream_t s;
} copy_state_t;

static int copy_fn(void *u) {
  copy_state_t *c = u;
  return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, c->s) != cudaSuccess;
}

typedef struct gemm_state {
  cublasHandle_t h;
  void *a, *bm, *c;
  int n;
} gemm_state_t;

static int gemm_fn(void *u) {
  gemm_state_t *g = u;
  const float alpha = 1.0f, beta = 0.0f;
  return cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, g->n, g->n, g->n, &alpha, g->a, CUDA_R_16BF, g->n, g->bm,
                      CUDA_R_16BF, g->n, &beta, g->c, CUDA_R_16BF, g->n, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS;
}

int deco_bench_measure_ceilings(deco_bench_t *b) {
  cudaStream_t s = (cudaStream_t)b->stream;
  deco_bench_stats_t st;

  /* Copy: 1 GiB each way; random content (deco_fill_random) so nothing is trivially compressible. */
  copy_state_t c = {NULL, NULL, (size_t)1 << 30, s};
  BENCH_CUDA(cudaMalloc(&c.src, c.bytes));
  BENCH_CUDA(cudaMalloc(&c.dst, c.bytes));
  deco_fill_random_args_t fr = {.dtype = DECO_DTYPE_F32, .n = c.bytes / 4, .seed = 1, .tensor = 900, .scale = 1.0f,
                                .constant = 0.0f, .out = c.src};
  int rc = deco_fill_random(b->ctx, &fr) != DECO_STATUS_SUCCESS;
  if (!rc) rc = deco_bench_time(b, copy_fn, &c, 2, 10, DECO_BENCH_HOLD, &st);
  cudaFree(c.src);
  cudaFree(c.dst);
  if (rc) return 1;
  b->copy_gbps = 2.0 * (double)c.bytes / (st.median_us * 1e-6) / 1e9;

  /* GEMM: 8192^3 bf16, fp32 accumulation. */
  gemm_state_t g = {NULL, NULL, NULL, NULL, 8192};
  const size_t elems = (size_t)g.n * g.n;
  if (cublasCreate(&g.h) != CUBLAS_STATUS_SUCCESS || cublasSetStream(g.h, s) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench: cublasCreate failed\n");
    return 1;
  }
  BENCH_CUDA(cudaMalloc(&g.a, elems * 2));
  BENCH_CUDA(cudaMalloc(&g.bm, elems * 2));
  BENCH_CUDA(cudaMalloc(&g.c, elems * 2));
  deco_fill_random_args_t fa = {.dtype = DECO_DTYPE_BF16, .n = elems, .seed = 2, .tensor = 901, .scale = 1.0f,
                                .constant = 0.0f, .out = g.a};
  deco_fill_random_args_t fb = {.dtype = DECO_DTYPE_BF16, .n = elems, .seed = 3, .tensor = 902, .scale = 1.0f,
                                .constant = 0.0f, .out = g.bm};
  rc = deco_fill_random(b->ctx, &fa) != DECO_STATUS_SUCCESS || deco_fill_random(b->ctx, &fb) != DECO_STATUS_SUCCESS;
  if (!rc) rc = deco_bench_time(b, gemm_fn, &g, 3, 10, DECO_BENCH_HOLD, &st);
  cudaFree(g.a);
  cudaFree(g.bm);
  cudaFree(g.c);
  cublasDestroy(g.h);
  if (rc) return 1;
  b->gemm_tflops = 2.0 * (double)g.n * g.n * g.n / (st.median_us * 1e-6) / 1e12;
  return 0;
}

double deco_bench_floor_us(const deco_bench_t *b, double bytes, double flops) {
  double t_mem = b->copy_gbps > 0 ? bytes / (b->copy_gbps * 1e9) : 0.0;
  double t_math = b->gemm_tflops > 0 ? flops / (b->gemm_tflops * 1e12) : 0.0;
  return 1e6 * (t_mem > t_math ? t_mem : t_math);
}

/* ---- CSV ----------------------------------------------------------------------------- */

void deco_bench_csv_header(FILE *f) {
  fprintf(f, "bench,shape,path,median_us,p10_us,p90_us,gb_s,tflop_s,floor_us,pct_of_floor,device,command\n");
}

void deco_bench_csv_row(FILE *f, const deco_bench_t *b, const char *bench, const char *shape, const char *path,
                        const deco_bench_stats_t *st, double bytes, double flops, const char *command) {
  const double sec = st->median_us * 1e-6;
  const double floor_us = deco_bench_floor_us(b, bytes, flops);
  wall_csv_field(f, bench);
  fputc(',', f);
  wall_csv_field(f, shape);
  fputc(',', f);
  wall_csv_field(f, path);
  fprintf(f, ",%.2f,%.2f,%.2f,%.1f,%.2f,%.2f,%.1f,", st->median_us, st->p10_us, st->p90_us, bytes / sec / 1e9,
          flops / sec / 1e12, floor_us, 100.0 * floor_us / st->median_us);
  wall_csv_field(f, b->device_name);
  fputc(',', f);
  wall_csv_field(f, command);
  fputc('\n', f);
  fflush(f);
}

const char *deco_bench_command(int argc, char **argv) {
  static char buf[1024];
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < argc && len + 2 < sizeof buf; ++i) {
    int w = snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", argv[i]);
    if (w < 0) break;
    len += (size_t)w;
    if (len >= sizeof buf) len = sizeof buf - 1;
  }
  return buf;
}
