/* kernels/norm/rmsnorm.cu — RMSNorm (Zhang & Sennrich 2019) with a fused
 * residual add, in llama2.c's order: residual += add; ss = sum x^2 (fp32);
 * out = weight * (x * (1 / sqrt(ss / dim + eps))), out in dtype.
 * residual [n_rows][dim] f32 in/out; add, out [n_rows][dim] dtype; weight [dim].
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

/* One block per row. Each thread owns the same strided elements in both
 * passes, so it re-reads residual values it wrote itself (no barrier needed
 * between the add and the second pass beyond the reduction's). */
template <typename T>
static __global__ void rmsnorm_kernel(float *residual,  /* [n_rows][dim] */
                                      const T *add,     /* [n_rows][dim] or NULL */
                                      const T *weight,  /* [dim] */
                                      T *out,           /* [n_rows][dim] */
                                      int dim, float eps) {
  __shared__ float scratch[32];
  const size_t r = blockIdx.x;
  float *x = residual + r * (size_t)dim;
  float ss = 0.0f;
  if (add) {
    const T *d = add + r * (size_t)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      float v = x[i] + deco_to_f32(d[i]);
      x[i] = v;
      ss += v * v;
    }
  } else {
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      float v = x[i];
      ss += v * v;
    }
  }
  ss = deco_block_sum(ss, scratch);
  /* Same operation order as the reference: divide, add eps, 1/sqrt (IEEE). */
  ss /= (float)dim;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  T *o = out + r * (size_t)dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    o[i] = deco_from_f32<T>(__fmul_rn(deco_to_f32(weight[i]), __fmul_rn(ss, x[i])));
}

template <typename T>
static deco_status_t rmsnorm_launch(const deco_exec_t *exec, const deco_rmsnorm_args_t *a) {
  /* About four elements per thread, one warp for small rows. */
  int threads = (a->dim / 4 + 31) / 32 * 32;
  threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
  rmsnorm_kernel<T><<<a->n_rows, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      a->residual, (const T *)a->add, (const T *)a->weight, (T *)a->out, a->dim, a->eps);
  DECO_CUDA_CHECK_LAUNCH(exec, "rmsnorm_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_rmsnorm_cuda(const deco_exec_t *exec, const deco_rmsnorm_args_t *a) {
  DECO_DTYPE_SWITCH(a->dtype, T, return rmsnorm_launch<T>(exec, a));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_rmsnorm: dtype %d", (int)a->dtype);
}
