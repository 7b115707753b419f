/* kernels/compress/kv_gram.cu — calibration Grams of KV-head compression
 * (deco/compress.h) on the GPU: one thread per output entry sums its
 * products over the rows in order, in f64, and adds the sum to the entry —
 * no atomics, so the result does not depend on the launch. K/V in f32, f16
 * or bf16 as the cache holds them.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

template <typename T>
static __global__ void kv_gram_v_kernel(const T *__restrict__ v, double *__restrict__ out, int n_rows, int row,
                                        int gd, int n_groups) {
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long per = (long long)gd * gd;
  if (e >= per * n_groups) return;
  const int G = (int)(e / per), i = (int)(e % per / gd), j = (int)(e % gd);
  const T *x = v + (size_t)G * gd;
  double s = 0.0;
  for (int t = 0; t < n_rows; ++t) {
    const T *r = x + (size_t)t * row;
    s += (double)deco_to_f32(r[i]) * (double)deco_to_f32(r[j]);
  }
  out[e] += s;
}

template <typename T>
static __global__ void kv_gram_k_kernel(const T *__restrict__ k, double *__restrict__ out, int n_rows, int row,
                                        int g, int d, int n_groups, int interleaved) {
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const int half = d / 2;
  const long long per = (long long)g * g; /* complex entries per (group, frequency) */
  if (e >= per * half * n_groups) return;
  const int G = (int)(e / (per * half)), f = (int)(e / per % half), p = (int)(e % per / g), q = (int)(e % g);
  const int i0 = interleaved ? 2 * f : f, i1 = interleaved ? 2 * f + 1 : f + half;
  const T *x = k + (size_t)G * g * d;
  double re = 0.0, im = 0.0;
  for (int t = 0; t < n_rows; ++t) {
    const T *r = x + (size_t)t * row;
    const double pr = deco_to_f32(r[p * d + i0]), pi = deco_to_f32(r[p * d + i1]);
    const double qr = deco_to_f32(r[q * d + i0]), qi = deco_to_f32(r[q * d + i1]);
    re += pr * qr + pi * qi;
    im += pi * qr - pr * qi;
  }
  out[2 * e] += re;
  out[2 * e + 1] += im;
}

template <typename T>
static deco_status_t kv_gram_launch(const deco_exec_t *exec, const deco_kv_gram_args_t *a) {
  const int g = a->group, d = a->head_dim, n_groups = a->n_kv_heads / g, row = a->n_kv_heads * d, gd = g * d;
  const int threads = 256;
  if (a->v) {
    const long long n = (long long)gd * gd * n_groups;
    kv_gram_v_kernel<T><<<(unsigned)((n + threads - 1) / threads), threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->v, a->v_gram, a->n_rows, row, gd, n_groups);
    DECO_CUDA_CHECK_LAUNCH(exec, "kv_gram_v_kernel");
  }
  if (a->k) {
    const long long n = (long long)g * g * (d / 2) * n_groups;
    kv_gram_k_kernel<T><<<(unsigned)((n + threads - 1) / threads), threads, 0, DECO_CUDA_STREAM(exec)>>>(
        (const T *)a->k, a->k_gram, a->n_rows, row, g, d, n_groups, a->style == DECO_ROPE_INTERLEAVED);
    DECO_CUDA_CHECK_LAUNCH(exec, "kv_gram_k_kernel");
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_gram_cuda(const deco_exec_t *exec, const deco_kv_gram_args_t *a) {
  switch (a->dtype) {
    case DECO_DTYPE_F32: return kv_gram_launch<float>(exec, a);
    case DECO_DTYPE_F16: return kv_gram_launch<__half>(exec, a);
    case DECO_DTYPE_BF16: return kv_gram_launch<__nv_bfloat16>(exec, a);
    default: return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "deco_kv_gram: unsupported dtype");
  }
}
