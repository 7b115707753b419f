/* kernels/init/fill_random.cu — seeded weights for synthetic models, made on
 * the device: u = Philox4x32-10 (Salmon et al. 2011) of counter (i low,
 * i high, tensor, 0) with key seed; out[i] = constant != 0 ? constant :
 * (2u - 1) * scale, rounded once to dtype. out [n] dtype.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "deco/philox.h"

/* Bit-identical to fill_random_ref.c followed by the host's round-to-nearest-
 * even: explicit _rn intrinsics keep nvcc from contracting (2u - 1) * scale
 * into an FMA, which would round differently from the host's two steps. */
template <typename T>
static __global__ void fill_random_kernel(T *__restrict__ out, size_t n, uint32_t seed_lo, uint32_t seed_hi,
                                          uint32_t tensor, float scale, float constant) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float v = constant;
    if (constant == 0.0f) {
      deco_philox_u32x4_t r = deco_philox4x32_10((uint32_t)i, (uint32_t)((uint64_t)i >> 32), tensor, 0, seed_lo,
                                                 seed_hi);
      float u = deco_philox_to_unit(r.v[0]);
      v = __fmul_rn(__fsub_rn(__fmul_rn(2.0f, u), 1.0f), scale);
    }
    out[i] = deco_from_f32<T>(v);
  }
}

template <typename T>
static deco_status_t fill_random_launch(const deco_exec_t *exec, const deco_fill_random_args_t *a) {
  const int threads = 256;
  size_t blocks = (a->n + threads - 1) / threads;
  const size_t max_blocks = (size_t)(exec->sm_count > 0 ? exec->sm_count : 1) * 32;
  if (blocks > max_blocks) blocks = max_blocks;
  fill_random_kernel<T><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      (T *)a->out, a->n, (uint32_t)a->seed, (uint32_t)(a->seed >> 32), a->tensor, a->scale, a->constant);
  DECO_CUDA_CHECK_LAUNCH(exec, "fill_random_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_fill_random_cuda(const deco_exec_t *exec, const deco_fill_random_args_t *a) {
  DECO_DTYPE_SWITCH(a->dtype, T, return fill_random_launch<T>(exec, a));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_fill_random: dtype %d", (int)a->dtype);
}
