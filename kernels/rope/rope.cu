/* kernels/rope/rope.cu — rotary position embedding (RoFormer, Su et al.
 * 2021) in place, interleaved pairs (2j, 2j+1) or half-split pairs
 * (j, j + head_dim/2), angle = position * theta^(-2j/head_dim) in fp32.
 * q [n_tokens][n_heads][head_dim], k [n_tokens][n_kv_heads][head_dim], dtype,
 * tokens qs / ks elements apart.
 */
#include <math.h>

#include "common/cuda_common.cuh"
#include "common/op_impl.h"

/* The frequencies are computed on the host with the same powf expression as
 * rope_ref.c, so both backends rotate by bit-identical angles (a one-ulp
 * difference in a frequency is multiplied by the position). */
struct rope_freqs {
  float f[128];
};

/* One block per token; threads stride over the (head, pair) items of q then k.
 * Accurate cosf/sinf (not __cosf) and no FMA contraction in the rotation,
 * so f32 results match the reference to a few ulps. */
template <typename T>
static __global__ void rope_kernel(const int32_t *__restrict__ positions, /* [n_tokens] */
                                   T *q,                                  /* [n_tokens][n_heads][head_dim] or NULL */
                                   T *k,                                  /* [n_tokens][n_kv_heads][head_dim] or NULL */
                                   size_t qs, size_t ks, /* elements between tokens */
                                   int n_heads, int n_kv_heads, int head_dim, int interleaved,
                                   const rope_freqs freqs) {
  const size_t t = blockIdx.x;
  const int half = head_dim / 2;
  const int nq = q ? n_heads : 0, nk = k ? n_kv_heads : 0;
  const int items = (nq + nk) * half;
  const float pos = (float)positions[t];
  for (int idx = threadIdx.x; idx < items; idx += blockDim.x) {
    int h = idx / half, j = idx - h * half;
    T *v = h < nq ? q + t * qs + (size_t)h * head_dim : k + t * ks + (size_t)(h - nq) * head_dim;
    float val = __fmul_rn(pos, freqs.f[j]);
    float fcr = cosf(val), fci = sinf(val);
    int i0 = interleaved ? 2 * j : j;
    int i1 = interleaved ? 2 * j + 1 : j + half;
    float v0 = deco_to_f32(v[i0]), v1 = deco_to_f32(v[i1]);
    v[i0] = deco_from_f32<T>(__fsub_rn(__fmul_rn(v0, fcr), __fmul_rn(v1, fci)));
    v[i1] = deco_from_f32<T>(__fadd_rn(__fmul_rn(v0, fci), __fmul_rn(v1, fcr)));
  }
}

template <typename T>
static deco_status_t rope_launch(const deco_exec_t *exec, const deco_rope_args_t *a, const rope_freqs &freqs) {
  const int items = ((a->q ? a->n_heads : 0) + (a->k ? a->n_kv_heads : 0)) * (a->head_dim / 2);
  int threads = (items + 31) / 32 * 32;
  threads = threads > 256 ? 256 : threads;
  rope_kernel<T><<<a->n_tokens, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      a->positions, (T *)a->q, (T *)a->k,
      a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * a->head_dim,
      a->k_stride ? (size_t)a->k_stride : (size_t)a->n_kv_heads * a->head_dim, a->n_heads, a->n_kv_heads, a->head_dim,
      a->style == DECO_ROPE_INTERLEAVED, freqs);
  DECO_CUDA_CHECK_LAUNCH(exec, "rope_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_rope_cuda(const deco_exec_t *exec, const deco_rope_args_t *a) {
  rope_freqs freqs;
  for (int j = 0; j < a->head_dim / 2; ++j)
    freqs.f[j] = 1.0f / powf(a->theta, (float)(2 * j) / (float)a->head_dim);
  DECO_DTYPE_SWITCH(a->dtype, T, return rope_launch<T>(exec, a, freqs));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_rope: dtype %d", (int)a->dtype);
}
