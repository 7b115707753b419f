/* kernels/common/cuda_common.cuh — generic helpers for the CUDA kernels:
 * f32 <-> f16/bf16 loads and stores (round to nearest even, bit-identical to
 * host/core/half.c), warp and block reductions, a dtype dispatch macro, the
 * NaNs the kernels write, and the macros that turn a CUDA error into a deco
 * status with a message (reported through the caller's deco_exec_t).
 * Only op-independent helpers belong here; each op keeps its own kernels.
 */
#ifndef DECO_KERNELS_CUDA_COMMON_CUH
#define DECO_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "common/exec.h"

/* ---- Errors ------------------------------------------------------------------ */

/* Runs a CUDA runtime call; on failure clears the error and returns
 * DECO_STATUS_CUDA_ERROR from the enclosing function with the call's text. */
#define DECO_CUDA_TRY(exec, expr)                                                                  \
  do {                                                                                             \
    cudaError_t deco_cuda_err_ = (expr);                                                           \
    if (deco_cuda_err_ != cudaSuccess) {                                                           \
      (void)cudaGetLastError();                                                                    \
      return DECO_EXEC_FAIL((exec), DECO_STATUS_CUDA_ERROR, "%s: %s", #expr, cudaGetErrorString(deco_cuda_err_)); \
    }                                                                                              \
  } while (0)

/* After a kernel launch: a launch error (bad configuration, no kernel image
 * for this device, ...) becomes DECO_STATUS_CUDA_ERROR naming the kernel. */
#define DECO_CUDA_CHECK_LAUNCH(exec, what)                                                         \
  do {                                                                                             \
    cudaError_t deco_cuda_err_ = cudaGetLastError();                                               \
    if (deco_cuda_err_ != cudaSuccess)                                                             \
      return DECO_EXEC_FAIL((exec), DECO_STATUS_CUDA_ERROR, "%s: %s", (what), cudaGetErrorString(deco_cuda_err_)); \
  } while (0)

/* The stream every op launches on (deco_exec_t). */
#define DECO_CUDA_STREAM(exec) ((cudaStream_t)(exec)->stream)

/* ---- Dtype dispatch ------------------------------------------------------------ */

/* Runs the statement list with T bound to the storage type of dtype (float,
 * __half or __nv_bfloat16). The public entry points have validated dtype. */
#define DECO_DTYPE_SWITCH(dtype, T, ...)       \
  switch (dtype) {                             \
  case DECO_DTYPE_F32: {                       \
    typedef float T;                           \
    __VA_ARGS__;                               \
  } break;                                     \
  case DECO_DTYPE_F16: {                       \
    typedef __half T;                          \
    __VA_ARGS__;                               \
  } break;                                     \
  case DECO_DTYPE_BF16: {                      \
    typedef __nv_bfloat16 T;                   \
    __VA_ARGS__;                               \
  } break;                                     \
  }

/* ---- Conversions ----------------------------------------------------------------- */

__device__ __forceinline__ float deco_to_f32(float x) { return x; }
__device__ __forceinline__ float deco_to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float deco_to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

/* Rounds to nearest even, like deco_f32_to_f16 / deco_f32_to_bf16 on the host. */
template <typename T> __device__ __forceinline__ T deco_from_f32(float x);
template <> __device__ __forceinline__ float deco_from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half deco_from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 deco_from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

/* NaNs the kernels write on purpose; both positive, so their sign bit tells
 * them apart from the tests' 0xFF poison. deco_nan_f32: C's NAN, what the
 * dense ops and causal attention write for invalid input (token ids, pages)
 * as their references do. deco_nan_canonical_f32: the NaN that arithmetic
 * on the GPU yields; tree attention (and its causal mode) writes it for rows
 * it cannot compute, so such a row reads the same whether it was filled or
 * computed from a NaN key. Two values kept apart on purpose: outputs stay
 * bit-identical to those of the kernels that were checked on the GPU. */
__device__ __forceinline__ float deco_nan_f32(void) { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float deco_nan_canonical_f32(void) { return __int_as_float(0x7fffffff); }

/* Eight 16-bit values held in one 16-byte vector, widened to f32. */
template <typename T> __device__ __forceinline__ void deco_unpack8(uint4 v, float f[8]);
template <> __device__ __forceinline__ void deco_unpack8<__half>(uint4 v, float f[8]) {
  const __half2 *h = reinterpret_cast<const __half2 *>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 p = __half22float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}
template <> __device__ __forceinline__ void deco_unpack8<__nv_bfloat16>(uint4 v, float f[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) { /* bf16 -> f32 is a shift: exact */
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

/* ---- Reductions ------------------------------------------------------------------- */

/* Butterfly reductions: every lane ends with the result. */
__device__ __forceinline__ float deco_warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float deco_warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result. scratch: 32 floats of shared memory, reusable after
 * the call returns. Fixed order: the result does not depend on timing. */
__device__ __forceinline__ float deco_block_sum(float x, float *scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  x = deco_warp_sum(x);
  __syncthreads(); /* scratch may still be read by a previous call */
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < n_warps ? scratch[lane] : 0.0f;
  return deco_warp_sum(x);
}

/* ---- Per-device answers ------------------------------------------------------------ */

/* *value = what ask(dev, value) answers for the current device dev, asked
 * once per device and kept in known[dev] (64 slots; the answer must be
 * nonzero, 0 marking a slot not asked yet; a device past the slots is
 * asked every time). Host calls only, none a stream operation, so any may
 * run while a stream is captured. Returns cudaGetDevice's or ask's error. */
template <typename Ask>
static inline cudaError_t deco_cuda_once_per_device(std::atomic<int> *known, int *value, Ask ask) {
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  const bool cache = dev >= 0 && dev < 64;
  if (cache && (*value = known[dev].load(std::memory_order_relaxed)) != 0) return cudaSuccess;
  err = ask(dev, value);
  if (err == cudaSuccess && cache) known[dev].store(*value, std::memory_order_relaxed);
  return err;
}

/* The shared memory one block of the current device may opt in to (227 KiB
 * on sm_90 and sm_100, 163 KiB on sm_80, 99 KiB on sm_86, sm_89 and sm_120):
 * kernels that size their shared memory for Hopper size it down to this. */
static inline cudaError_t deco_cuda_smem_optin(int *bytes) {
  static std::atomic<int> known[64];
  return deco_cuda_once_per_device(known, bytes, [](int dev, int *v) {
    return cudaDeviceGetAttribute(v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  });
}

/* ---- Alignment ----------------------------------------------------------------- */

static inline bool deco_aligned(const void *p, size_t bytes) { return ((uintptr_t)p % bytes) == 0; }

#endif /* DECO_KERNELS_CUDA_COMMON_CUH */
