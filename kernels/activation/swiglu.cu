/* kernels/activation/swiglu.cu — SwiGLU (Shazeer 2020) elementwise:
 * out[i] = gate[i] * (1 / (1 + expf(-gate[i]))) * up[i] in fp32, as in
 * swiglu_ref.c. gate, up, out [n] dtype; out may alias gate or up.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

__device__ __forceinline__ float swiglu_one(float g, float u) {
  float val = g * (1.0f / (1.0f + expf(-g)));
  return val * u;
}

/* Grid-stride over 16-byte vectors (pointers checked aligned by the launcher);
 * the tail (n not a multiple of the vector) is done element by element.
 * No __restrict__: out may alias an input, each element is read before it is
 * written by the same thread. */
template <typename T>
static __global__ void swiglu_vec_kernel(const T *gate, const T *up, T *out, size_t n) {
  constexpr int V = 16 / sizeof(T);
  const size_t n_vec = n / V;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_vec; i += stride) {
    uint4 g = reinterpret_cast<const uint4 *>(gate)[i];
    uint4 u = reinterpret_cast<const uint4 *>(up)[i];
    uint4 o;
    const T *gs = reinterpret_cast<const T *>(&g);
    const T *us = reinterpret_cast<const T *>(&u);
    T *os = reinterpret_cast<T *>(&o);
#pragma unroll
    for (int e = 0; e < V; ++e) os[e] = deco_from_f32<T>(swiglu_one(deco_to_f32(gs[e]), deco_to_f32(us[e])));
    reinterpret_cast<uint4 *>(out)[i] = o;
  }
  for (size_t i = n_vec * V + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = deco_from_f32<T>(swiglu_one(deco_to_f32(gate[i]), deco_to_f32(up[i])));
}

template <typename T>
static __global__ void swiglu_kernel(const T *gate, const T *up, T *out, size_t n) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = deco_from_f32<T>(swiglu_one(deco_to_f32(gate[i]), deco_to_f32(up[i])));
}

template <typename T>
static deco_status_t swiglu_launch(deco_ctx_t *ctx, const deco_swiglu_args_t *a) {
  const int threads = 256;
  const bool vec = deco_aligned(a->gate, 16) && deco_aligned(a->up, 16) && deco_aligned(a->out, 16);
  const size_t work = vec ? a->n / (16 / sizeof(T)) + 1 : a->n;
  size_t blocks = (work + threads - 1) / threads;
  const size_t max_blocks = (size_t)(ctx->sm_count > 0 ? ctx->sm_count : 1) * 16;
  if (blocks > max_blocks) blocks = max_blocks;
  if (vec)
    swiglu_vec_kernel<T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(ctx)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, a->n);
  else
    swiglu_kernel<T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(ctx)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, a->n);
  DECO_CUDA_CHECK_LAUNCH(ctx, "swiglu_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_swiglu_cuda(deco_ctx_t *ctx, const deco_swiglu_args_t *a) {
  DECO_DTYPE_SWITCH(a->dtype, T, return swiglu_launch<T>(ctx, a));
  return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "deco_swiglu: dtype %d", (int)a->dtype);
}
