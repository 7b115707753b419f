/* kernels/linear/matmul_path.h — library-internal: which CUDA path
 * deco_matmul takes (the weight-streaming kernel for few rows, the tiled
 * kernel for small f32 problems, or cuBLAS),
 * and a way to force one, for benches and tests that link the static library.
 */
#ifndef DECO_KERNELS_MATMUL_PATH_H
#define DECO_KERNELS_MATMUL_PATH_H

#include "common/exec.h"
#include "deco/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum deco_matmul_path {
  DECO_MATMUL_PATH_AUTO = 0,   /* what deco_matmul does */
  DECO_MATMUL_PATH_SKINNY = 1, /* weight-streaming kernel: f16/bf16, k % 8 == 0, 16-byte aligned a and w */
  DECO_MATMUL_PATH_CUBLAS = 2, /* cublasGemmEx, CUBLAS_COMPUTE_32F */
  DECO_MATMUL_PATH_TILE = 3    /* one-launch 32x32-tiled kernel, any dtype (auto: small f32) */
} deco_matmul_path_t;

/* Rows the automatic dispatch sends to the skinny kernel (m <= this): on an
 * H100 it beats cuBLAS at m = 1, 2 and ties at 4; at m = 8 its FP32 FMAs
 * (8 per weight element) make it slower than cuBLAS (perf/NOTES.md). */
#define DECO_MATMUL_SKINNY_AUTO_MAX_M 4
/* Rows the skinny kernel accepts when forced (for measuring the crossover). */
#define DECO_MATMUL_SKINNY_MAX_M 16

/* m·n·k up to which the automatic dispatch takes the tiled kernel for f32
 * with m >= 2: a tiny model's projections, where cuBLAS's split-K GEMM and its
 * reduction are two launches for a few microseconds of arithmetic. */
#define DECO_MATMUL_TILE_MAX_MACS (1LL << 23)

/* "skinny", "tile" or "cublas": the path deco_matmul takes for these validated args. */
const char *deco_matmul_path_cuda(const deco_exec_t *exec, const deco_matmul_args_t *args);

/* deco_matmul on the CUDA backend with the path chosen by the caller (args
 * must be valid, as after deco_matmul's checks). Forcing the skinny kernel
 * where it does not apply returns DECO_STATUS_UNSUPPORTED. */
deco_status_t deco_matmul_cuda_path(const deco_exec_t *exec, const deco_matmul_args_t *args, deco_matmul_path_t path);

#ifdef __cplusplus
}
#endif
#endif
