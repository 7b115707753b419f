/* kernels/init/convert.cu — dtype conversion on the GPU: out[i] =
 * out_dtype(in[i]) for any pair of f32/f16/bf16, through f32 (exact for
 * f16/bf16 inputs), rounded to nearest even. in, out [n].
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

template <typename TI, typename TO>
static __global__ void convert_kernel(const TI *in, TO *out, size_t n) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = deco_from_f32<TO>(deco_to_f32(in[i]));
}

template <typename TI, typename TO>
static deco_status_t convert_launch(const deco_exec_t *exec, const deco_convert_args_t *a) {
  const int threads = 256;
  size_t blocks = (a->n + threads - 1) / threads;
  const size_t max_blocks = (size_t)(exec->sm_count > 0 ? exec->sm_count : 1) * 32;
  if (blocks > max_blocks) blocks = max_blocks;
  convert_kernel<TI, TO><<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>((const TI *)a->in, (TO *)a->out,
                                                                                  a->n);
  DECO_CUDA_CHECK_LAUNCH(exec, "convert_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_convert_cuda(const deco_exec_t *exec, const deco_convert_args_t *a) {
  DECO_DTYPE_SWITCH(a->in_dtype, TI, DECO_DTYPE_SWITCH(a->out_dtype, TO, return convert_launch<TI, TO>(exec, a)));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_convert: dtypes %d -> %d", (int)a->in_dtype,
                        (int)a->out_dtype);
}
