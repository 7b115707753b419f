/* kernels/activation/swiglu.cu — SwiGLU (Shazeer 2020) elementwise:
 * out[i] = gate[i] * (1 / (1 + expf(-gate[i]))) * up[i] in fp32, as in
 * swiglu_ref.c. gate, up, out [n] dtype; out may alias gate or up. With
 * row_len, gate and up are rows of row_len elements in_stride apart (out
 * dense, not aliased).
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

/* Rows: element (r, c) of out [rows][len] from gate/up row r at r * stride.
 * U elements per thread step: 16-byte vectors when len, stride and the
 * pointers allow, else one. */
template <typename T, typename U>
static __global__ void swiglu_rows_kernel(const T *gate, const T *up, T *__restrict__ out, size_t rows, size_t len,
                                          size_t stride) {
  constexpr int V = sizeof(U) / sizeof(T);
  const size_t per_row = len / V, total = rows * per_row;
  const size_t step = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
    const size_t r = total <= UINT32_MAX ? (size_t)((uint32_t)i / (uint32_t)per_row) : i / per_row;
    const size_t cv = i - r * per_row, src = r * stride + cv * V;
    U g = *reinterpret_cast<const U *>(gate + src);
    U u = *reinterpret_cast<const U *>(up + src);
    U o;
    const T *gs = reinterpret_cast<const T *>(&g);
    const T *us = reinterpret_cast<const T *>(&u);
    T *os = reinterpret_cast<T *>(&o);
#pragma unroll
    for (int e = 0; e < V; ++e) os[e] = deco_from_f32<T>(swiglu_one(deco_to_f32(gs[e]), deco_to_f32(us[e])));
    *reinterpret_cast<U *>(out + r * len + cv * V) = o;
  }
}

template <typename T>
static deco_status_t swiglu_rows_launch(const deco_exec_t *exec, const deco_swiglu_args_t *a) {
  const int threads = 256;
  const size_t len = (size_t)a->row_len, stride = (size_t)a->in_stride, rows = a->n / len;
  constexpr size_t V = 16 / sizeof(T);
  const bool vec = len % V == 0 && stride % V == 0 && deco_aligned(a->gate, 16) && deco_aligned(a->up, 16) &&
                   deco_aligned(a->out, 16);
  size_t blocks = ((vec ? a->n / V : a->n) + threads - 1) / threads;
  const size_t max_blocks = (size_t)(exec->sm_count > 0 ? exec->sm_count : 1) * 16;
  if (blocks > max_blocks) blocks = max_blocks;
  if (vec)
    swiglu_rows_kernel<T, uint4><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, rows, len, stride);
  else
    swiglu_rows_kernel<T, T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, rows, len, stride);
  DECO_CUDA_CHECK_LAUNCH(exec, "swiglu_rows_kernel");
  return DECO_STATUS_SUCCESS;
}

template <typename T>
static deco_status_t swiglu_launch(const deco_exec_t *exec, const deco_swiglu_args_t *a) {
  if (a->row_len) return swiglu_rows_launch<T>(exec, a);
  const int threads = 256;
  const bool vec = deco_aligned(a->gate, 16) && deco_aligned(a->up, 16) && deco_aligned(a->out, 16);
  const size_t work = vec ? a->n / (16 / sizeof(T)) + 1 : a->n;
  size_t blocks = (work + threads - 1) / threads;
  const size_t max_blocks = (size_t)(exec->sm_count > 0 ? exec->sm_count : 1) * 16;
  if (blocks > max_blocks) blocks = max_blocks;
  if (vec)
    swiglu_vec_kernel<T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, a->n);
  else
    swiglu_kernel<T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->gate, (const T *)a->up, (T *)a->out, a->n);
  DECO_CUDA_CHECK_LAUNCH(exec, "swiglu_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_swiglu_cuda(const deco_exec_t *exec, const deco_swiglu_args_t *a) {
  DECO_DTYPE_SWITCH(a->dtype, T, return swiglu_launch<T>(exec, a));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_swiglu: dtype %d", (int)a->dtype);
}
