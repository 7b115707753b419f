/* perf/common/bench.h — what every perf/bench_* driver shares: CUDA-event
 * timing of a callback (warm-up, repetitions, median and spread), the two
 * ceilings measured in the same run (device-to-device copy, bf16 cuBLAS
 * GEMM), an L2 flush, and one CSV row per case with the % of the roofline
 * floor max(bytes / bandwidth, flops / matrix rate) (docs/PERF.md).
 *
 * Usage:
 *   deco_bench_t b;
 *   if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) exit(1);
 *   deco_bench_csv_header(stdout);
 *   deco_bench_stats_t st;
 *   deco_bench_time(&b, my_fn, my_state, 10, 100, DECO_BENCH_FLUSH, &st);  // my_fn enqueues on deco_ctx_stream(ctx)
 *   deco_bench_csv_row(stdout, &b, "matmul", "m=1 n=4096 k=4096", "skinny", &st, bytes, flops, cmd);
 *   deco_bench_destroy(&b);
 * Functions return 0 on success and print the reason to stderr otherwise
 * (benches may print; the library never does).
 */
#ifndef DECO_PERF_BENCH_H
#define DECO_PERF_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "deco/deco.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deco_bench {
  deco_ctx_t *ctx;        /* CUDA context whose stream everything runs on */
  void *stream;           /* cudaStream_t = deco_ctx_stream(ctx) */
  void *ev_start, *ev_stop; /* cudaEvent_t */
  void *flush_buf;        /* device buffer streamed through L2 to evict it */
  size_t flush_bytes;     /* 2 x L2, at least 64 MiB */
  unsigned flush_count;
  int flush_write;        /* 0 (default): flush by reading; 1: by writing (memset, as torch/triton do) */
  void *cublas;           /* cublasHandle_t on the stream (read flush: device-pointer asum) */
  void *flush_sink;       /* device float the read flush reduces into */
  char device_name[256];
  int sm_count;
  size_t l2_bytes;
  double copy_gbps;       /* device-to-device copy, bytes read + written per second / 1e9 */
  double gemm_tflops;     /* 8192^3 bf16 cuBLAS GEMM, fp32 accumulation */
} deco_bench_t;

typedef struct deco_bench_stats {
  double median_us, min_us, max_us, p10_us, p90_us;
  int reps;
} deco_bench_stats_t;

/* Enqueues the work to time on the bench's stream; returns 0 on success. */
typedef int (*deco_bench_fn)(void *user);

/* Creates events and the L2 flush buffer on ctx's device; reads the device
 * name, SM count and L2 size. Ceilings stay 0 until measured. */
int deco_bench_init(deco_bench_t *b, deco_ctx_t *ctx);
void deco_bench_destroy(deco_bench_t *b);

/* Measures copy_gbps (a device-to-device copy of 1 GiB, median of 10,
 * counting read + write) and gemm_tflops (8192^3 bf16 -> bf16 cuBLAS GEMM,
 * CUBLAS_COMPUTE_32F, random inputs, median of 10). Takes about a second. */
int deco_bench_measure_ceilings(deco_bench_t *b);

/* Streams a buffer twice the size of L2 on the stream, so the next kernel
 * starts with a cold L2 (not timed when called by deco_bench_time). By
 * default the buffer is read (a cuBLAS asum into a device scalar), which
 * leaves L2 full of clean lines, as in a decode step whose previous kernels
 * only read weights. A write flush (flush_write = 1) leaves dirty lines whose
 * write-back competes with the timed kernel's reads. */
int deco_bench_flush_l2(deco_bench_t *b);

/* What deco_bench_time does before each timed run (its flags):
 * DECO_BENCH_FLUSH: flushes L2 (deco_bench_flush_l2); the GPU is busy with
 * the flush while the host queues the run. DECO_BENCH_HOLD: holds the
 * stream (a host function on it, released once the run is queued, at most
 * after 2 ms) so that the start event is stamped when the GPU reaches the
 * run: the device time of a call, as inside a CUDA graph, without the
 * host's checks and launch that an idle stream would otherwise count. For
 * single calls of kernels; an eager multi-launch step, whose host time is
 * part of its cost, takes neither (0). */
#define DECO_BENCH_FLUSH 1
#define DECO_BENCH_HOLD 2

/* Runs fn warmup times, then reps times, each between two CUDA events (with
 * what flags ask before each timed run), and fills *st with the median,
 * extremes and 10th/90th percentiles in microseconds. */
int deco_bench_time(deco_bench_t *b, deco_bench_fn fn, void *user, int warmup, int reps, int flags,
                    deco_bench_stats_t *st);

/* Floor in microseconds: max(bytes / copy bandwidth, flops / GEMM rate). */
double deco_bench_floor_us(const deco_bench_t *b, double bytes, double flops);

/* CSV: bench,shape,path,median_us,p10_us,p90_us,gb_s,tflop_s,floor_us,pct_of_floor,device,command
 * pct_of_floor = 100 * floor / median. Fields with commas are quoted. */
void deco_bench_csv_header(FILE *f);
void deco_bench_csv_row(FILE *f, const deco_bench_t *b, const char *bench, const char *shape, const char *path,
                        const deco_bench_stats_t *st, double bytes, double flops, const char *command);

/* The command line that reproduces this run (argv joined by spaces), in a
 * static buffer. */
const char *deco_bench_command(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
