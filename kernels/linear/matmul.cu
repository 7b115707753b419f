/* kernels/linear/matmul.cu — out = a · wᵀ (llama2.c's weight layout) on the
 * GPU: a [m][k], w [n][k], out [m][n] (out_dtype: dtype or f32), fp32
 * accumulation, optionally out += a · wᵀ. Few rows in f16/bf16 (a decode
 * step) go to a weight-streaming kernel, which keeps the memory system busier
 * than cuBLAS does at m <= 4 (perf/bench_ops); small f32 problems (a tiny
 * model's step) to a one-launch tiled kernel; everything else to cuBLAS.
 */
#include <cublas_v2.h>

#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "linear/matmul_path.h"

/* ---- Weight-streaming kernel for skinny m ---------------------------------------
 * A decode step reads every weight once and does ~m FMAs per weight element,
 * so it is bound by weight bytes. Each block owns SK_ROWS consecutive rows of
 * w (outputs n0..n0+SK_ROWS-1) and all its threads split k between them: the
 * grid is n / SK_ROWS blocks (2048 for n = 4096), enough to fill every SM
 * even for small n, with no second pass (2 rows per block measured faster
 * than 4 or 8 at m = 1..4 on an H100: perf/NOTES.md). Per iteration a thread first issues
 * all its loads — SK_ROWS * U independent 16-byte weight loads (streamed,
 * evict-first) and the m * U activation chunks they meet (L1/L2 hits, reused
 * by the SK_ROWS rows) — and only then computes, so no load waits behind
 * another. U shrinks as m grows to bound the registers. The block's partial
 * sums are reduced in a fixed order: warp shuffles, then warps in index order
 * through shared memory. */
#ifndef SK_THREADS /* overridable for tuning experiments: -DSK_THREADS=... -DSK_ROWS=... */
#define SK_THREADS 128
#endif
#ifndef SK_ROWS
#define SK_ROWS 2
#endif

/* Resident blocks per SM the register budget must allow (loads in flight per
 * SM); above the per-m register need, so it costs no spills. */
#ifndef SK_MIN_BLOCKS
#define SK_MIN_BLOCKS(MT) ((MT) == 1 ? 8 : (MT) == 2 ? 6 : (MT) <= 4 ? 5 : (MT) <= 8 ? 4 : 2)
#endif

template <typename T, int MT, int U>
static __global__ __launch_bounds__(SK_THREADS, SK_MIN_BLOCKS(MT)) void matmul_skinny_kernel(const T *__restrict__ a, /* [m][k] */
                                                                          const T *__restrict__ w, /* [n][k] */
                                                                          void *__restrict__ out,  /* [m][n] */
                                                                          int m, int n, int k, int out_f32,
                                                                          int accumulate) {
  const int kc = k / 8; /* 16-byte chunks per row */
  const int n0 = blockIdx.x * SK_ROWS;
  const uint4 *wrow[SK_ROWS];
#pragma unroll
  for (int r = 0; r < SK_ROWS; ++r) { /* rows past n re-read row n-1; their sums are dropped */
    const int row = n0 + r < n ? n0 + r : n - 1;
    wrow[r] = reinterpret_cast<const uint4 *>(w + (size_t)row * k);
  }
  const uint4 *arows = reinterpret_cast<const uint4 *>(a);

  float acc[SK_ROWS][MT];
#pragma unroll
  for (int r = 0; r < SK_ROWS; ++r)
#pragma unroll
    for (int i = 0; i < MT; ++i) acc[r][i] = 0.0f;

  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  for (int c0 = threadIdx.x; c0 < kc; c0 += SK_THREADS * U) {
    uint4 wv[U][SK_ROWS], av[U][MT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u * SK_THREADS;
#pragma unroll
      for (int r = 0; r < SK_ROWS; ++r) wv[u][r] = c < kc ? __ldcs(wrow[r] + c) : zero;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = c0 + u * SK_THREADS;
#pragma unroll
      for (int i = 0; i < MT; ++i) av[u][i] = (i < m && c < kc) ? __ldg(arows + (size_t)i * kc + c) : zero;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) { /* chunks past kc hold zeros: they add nothing */
      float wf[SK_ROWS][8];
#pragma unroll
      for (int r = 0; r < SK_ROWS; ++r) deco_unpack8<T>(wv[u][r], wf[r]);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        if (i < m) {
          float af[8];
          deco_unpack8<T>(av[u][i], af);
#pragma unroll
          for (int r = 0; r < SK_ROWS; ++r)
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[r][i] = fmaf(wf[r][e], af[e], acc[r][i]);
        }
      }
    }
  }

  __shared__ float red[SK_THREADS / 32][SK_ROWS * MT];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < SK_ROWS; ++r)
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      if (i < m) {
        const float s = deco_warp_sum(acc[r][i]);
        if (lane == 0) red[warp][r * MT + i] = s;
      }
    }
  __syncthreads();
  for (int idx = threadIdx.x; idx < SK_ROWS * MT; idx += SK_THREADS) {
    const int r = idx / MT, i = idx % MT, col = n0 + r;
    if (i >= m || col >= n) continue;
    float s = 0.0f;
#pragma unroll
    for (int wp = 0; wp < SK_THREADS / 32; ++wp) s += red[wp][idx];
    const size_t o = (size_t)i * n + col;
    if (out_f32) {
      float *p = (float *)out;
      p[o] = accumulate ? p[o] + s : s;
    } else {
      T *p = (T *)out;
      p[o] = deco_from_f32<T>(accumulate ? deco_to_f32(p[o]) + s : s);
    }
  }
}

static bool skinny_applies(const deco_matmul_args_t *p, int max_m) {
  return (p->dtype == DECO_DTYPE_F16 || p->dtype == DECO_DTYPE_BF16) && p->m <= max_m && p->k % 8 == 0 &&
         deco_aligned(p->a, 16) && deco_aligned(p->w, 16);
}

template <typename T, int MT>
static deco_status_t skinny_launch_mt(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  constexpr int U = MT <= 2 ? 2 : 1; /* loads in flight vs registers (activation chunks grow with m) */
  const unsigned blocks = (unsigned)((p->n + SK_ROWS - 1) / SK_ROWS);
  matmul_skinny_kernel<T, MT, U><<<blocks, SK_THREADS, 0, DECO_CUDA_STREAM(exec)>>>(
      (const T *)p->a, (const T *)p->w, p->out, p->m, p->n, p->k, p->out_dtype == DECO_DTYPE_F32, p->accumulate);
  DECO_CUDA_CHECK_LAUNCH(exec, "matmul_skinny_kernel");
  return DECO_STATUS_SUCCESS;
}

/* Row counts are bucketed (1, 2, 4, 8, 16) to bound the instantiations; rows
 * past m are skipped at run time. */
template <typename T>
static deco_status_t skinny_launch(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  if (p->m <= 1) return skinny_launch_mt<T, 1>(exec, p);
  if (p->m <= 2) return skinny_launch_mt<T, 2>(exec, p);
  if (p->m <= 4) return skinny_launch_mt<T, 4>(exec, p);
  if (p->m <= 8) return skinny_launch_mt<T, 8>(exec, p);
  return skinny_launch_mt<T, 16>(exec, p);
}

/* ---- Tiled kernel for small problems ---------------------------------------------
 * For f32 and m·n·k up to DECO_MATMUL_TILE_MAX_MACS, cuBLAS launches a split-K
 * GEMM and a reduction kernel (seen with Nsight Compute on an H100 at m = 81
 * for stories260K's projections), and the launch latencies are the cost, not the
 * arithmetic. One CTA per 32×32 block of out, 16×16 threads with 2×2 outputs
 * each; k advances in 32-wide chunks staged in shared memory as fp32,
 * transposed so that the loads (along k) and the reads (along m and n) are
 * both free of bank conflicts. Each output is one fixed-order fp32 sum over k. */
#define TL_TILE 32

template <typename T>
static __global__ __launch_bounds__(256) void matmul_tile_kernel(const T *__restrict__ a, /* [m][k] */
                                                                 const T *__restrict__ w, /* [n][k] */
                                                                 void *__restrict__ out,  /* [m][n] */
                                                                 int m, int n, int k, int out_f32, int accumulate) {
  __shared__ float as[TL_TILE][TL_TILE + 1]; /* [kk][row of a] */
  __shared__ float ws[TL_TILE][TL_TILE + 1]; /* [kk][row of w] */
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * TL_TILE, n0 = blockIdx.x * TL_TILE;
  float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
  for (int k0 = 0; k0 < k; k0 += TL_TILE) {
#pragma unroll
    for (int i = 0; i < TL_TILE * TL_TILE / 256; ++i) {
      const int idx = tid + 256 * i, r = idx / TL_TILE, kk = idx % TL_TILE, gk = k0 + kk;
      const int ra = m0 + r, rw = n0 + r;
      as[kk][r] = ra < m && gk < k ? deco_to_f32(a[(size_t)ra * k + gk]) : 0.0f;
      ws[kk][r] = rw < n && gk < k ? deco_to_f32(w[(size_t)rw * k + gk]) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < TL_TILE; ++kk) {
      const float a0 = as[kk][ty], a1 = as[kk][ty + 16], w0 = ws[kk][tx], w1 = ws[kk][tx + 16];
      acc[0][0] += a0 * w0;
      acc[0][1] += a0 * w1;
      acc[1][0] += a1 * w0;
      acc[1][1] += a1 * w1;
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int row = m0 + ty + 16 * i, col = n0 + tx + 16 * j;
      if (row >= m || col >= n) continue;
      const size_t o = (size_t)row * n + col;
      if (out_f32) {
        float *p = (float *)out;
        p[o] = accumulate ? p[o] + acc[i][j] : acc[i][j];
      } else {
        T *p = (T *)out;
        p[o] = deco_from_f32<T>(accumulate ? deco_to_f32(p[o]) + acc[i][j] : acc[i][j]);
      }
    }
}

/* Only where cuBLAS was seen to split: f32 with several rows. On an H100
 * the kernel takes ~5.7 µs at k = 64 and ~12 µs at k = 172 inside a graph
 * (about 2 µs per k chunk: the chunks' loads do not overlap), so it beats
 * cuBLAS's f32 split-K pair but not its one-kernel bf16 GEMM: with it,
 * stories260K's bf16 recycling step got slower while its f32 step got 19%
 * shorter (perf/NOTES.md). One row (a decode step) stays with cuBLAS's GEMV. */
/* The tiled kernel's grid has a y block per 32 rows: at most 65535. */
static bool tile_grid_fits(int m) { return (m + TL_TILE - 1) / TL_TILE <= 65535; }

static bool tile_applies(const deco_matmul_args_t *p) {
  /* A tall, thin product past the grid stays with cuBLAS. */
  return p->dtype == DECO_DTYPE_F32 && p->m >= 2 && (long long)p->m * p->n * p->k <= DECO_MATMUL_TILE_MAX_MACS &&
         tile_grid_fits(p->m);
}

template <typename T>
static deco_status_t tile_launch(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  const dim3 grid((unsigned)((p->n + TL_TILE - 1) / TL_TILE), (unsigned)((p->m + TL_TILE - 1) / TL_TILE));
  matmul_tile_kernel<T><<<grid, 256, 0, DECO_CUDA_STREAM(exec)>>>((const T *)p->a, (const T *)p->w, p->out, p->m,
                                                                 p->n, p->k, p->out_dtype == DECO_DTYPE_F32,
                                                                 p->accumulate);
  DECO_CUDA_CHECK_LAUNCH(exec, "matmul_tile_kernel");
  return DECO_STATUS_SUCCESS;
}

/* ---- cuBLAS ---------------------------------------------------------------------------
 * Row-major out[m][n] = a[m][k] · w[n][k]ᵀ is column-major C (n × m, ld n) =
 * op_T(W) · A, where W is w read column-major (k × n, ld k) and A is a read
 * column-major (k × m, ld k). CUBLAS_COMPUTE_32F: fp32 accumulation and no
 * TF32 for f32 inputs. The handle (exec->cublas) is bound to exec's stream
 * with its workspace set beforehand (at context creation), so this can be
 * captured in a graph. */
static cudaDataType_t cuda_type(deco_dtype_t d) {
  return d == DECO_DTYPE_F16 ? CUDA_R_16F : d == DECO_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static deco_status_t cublas_launch(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  const float alpha = 1.0f, beta = p->accumulate ? 1.0f : 0.0f;
  cublasStatus_t st = cublasGemmEx((cublasHandle_t)exec->cublas, CUBLAS_OP_T, CUBLAS_OP_N, p->n, p->m, p->k, &alpha,
                                   p->w, cuda_type(p->dtype), p->k, p->a, cuda_type(p->dtype), p->k, &beta, p->out,
                                   cuda_type(p->out_dtype), p->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUBLAS_ERROR, "deco_matmul: cublasGemmEx(m=%d, n=%d, k=%d, %s -> %s): %s",
                          p->m, p->n, p->k, deco_dtype_name(p->dtype), deco_dtype_name(p->out_dtype),
                          cublasGetStatusString(st));
  return DECO_STATUS_SUCCESS;
}

/* n_batch products in one cuBLAS call, the same column-major reading as
 * cublas_launch; stride_a 0 repeats one input. */
deco_status_t deco_matmul_batched_cuda(const deco_exec_t *exec, const deco_matmul_batched_args_t *b) {
  const deco_matmul_args_t *p = &b->mm;
  const float alpha = 1.0f, beta = p->accumulate ? 1.0f : 0.0f;
  cublasStatus_t st = cublasGemmStridedBatchedEx(
      (cublasHandle_t)exec->cublas, CUBLAS_OP_T, CUBLAS_OP_N, p->n, p->m, p->k, &alpha, p->w, cuda_type(p->dtype),
      p->k, b->stride_w, p->a, cuda_type(p->dtype), p->k, b->stride_a, &beta, p->out, cuda_type(p->out_dtype), p->n,
      b->stride_out, b->n_batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUBLAS_ERROR,
                          "deco_matmul_batched: cublasGemmStridedBatchedEx(m=%d, n=%d, k=%d, batch %d, %s -> %s): %s",
                          p->m, p->n, p->k, b->n_batch, deco_dtype_name(p->dtype), deco_dtype_name(p->out_dtype),
                          cublasGetStatusString(st));
  return DECO_STATUS_SUCCESS;
}

/* ---- Dispatch ------------------------------------------------------------------------- */

/* The automatic choice: the weight-streaming kernel for few f16/bf16 rows,
 * the tiled kernel for small f32 problems, cuBLAS for the rest. */
static deco_matmul_path_t auto_path(const deco_matmul_args_t *p) {
  if (skinny_applies(p, DECO_MATMUL_SKINNY_AUTO_MAX_M)) return DECO_MATMUL_PATH_SKINNY;
  return tile_applies(p) ? DECO_MATMUL_PATH_TILE : DECO_MATMUL_PATH_CUBLAS;
}

const char *deco_matmul_path_cuda(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  (void)exec;
  const deco_matmul_path_t path = auto_path(p);
  return path == DECO_MATMUL_PATH_SKINNY ? "skinny" : path == DECO_MATMUL_PATH_TILE ? "tile" : "cublas";
}

deco_status_t deco_matmul_cuda_path(const deco_exec_t *exec, const deco_matmul_args_t *p, deco_matmul_path_t path) {
  if (path == DECO_MATMUL_PATH_AUTO) path = auto_path(p);
  if (path == DECO_MATMUL_PATH_CUBLAS) return cublas_launch(exec, p);
  if (path == DECO_MATMUL_PATH_TILE) {
    /* Any size works; the grid's y dimension bounds m. */
    if (!tile_grid_fits(p->m))
      return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_matmul: the tiled kernel takes m <= %d (got %d)",
                            65535 * TL_TILE, p->m);
    if (p->dtype == DECO_DTYPE_F32) return tile_launch<float>(exec, p);
    if (p->dtype == DECO_DTYPE_F16) return tile_launch<__half>(exec, p);
    return tile_launch<__nv_bfloat16>(exec, p);
  }
  if (!skinny_applies(p, DECO_MATMUL_SKINNY_MAX_M))
    return DECO_EXEC_FAIL(
        exec, DECO_STATUS_UNSUPPORTED,
        "deco_matmul: the skinny kernel needs f16/bf16, m <= %d, k %% 8 == 0 and 16-byte aligned a, w "
        "(got %s, m=%d, k=%d)",
        DECO_MATMUL_SKINNY_MAX_M, deco_dtype_name(p->dtype), p->m, p->k);
  if (p->dtype == DECO_DTYPE_F16) return skinny_launch<__half>(exec, p);
  return skinny_launch<__nv_bfloat16>(exec, p);
}

deco_status_t deco_matmul_cuda(const deco_exec_t *exec, const deco_matmul_args_t *p) {
  return deco_matmul_cuda_path(exec, p, DECO_MATMUL_PATH_AUTO);
}
