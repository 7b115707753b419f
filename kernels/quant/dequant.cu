/* kernels/quant/dequant.cu — dequantisation on the GPU: out[i] = element i
 * of in (quant_block.h: F32, F16, BF16, Q8_0, Q4_0, Q4_1, decoded exactly to
 * f32), rounded to out_dtype, with the reference's integer code, so both
 * give the same bits. in: the stored bytes, any alignment (read bytewise);
 * out [n]. A load-time op: one thread per element, a grid-stride loop.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "quant/quant_block.h"

static __global__ void dequant_kernel(int type, int dtype, const unsigned char *__restrict__ in, void *out,
                                      size_t n) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    deco_qb_store(out, dtype, i, deco_qb_element(type, in, i));
}

deco_status_t deco_dequant_cuda(const deco_exec_t *exec, const deco_dequant_args_t *a) {
  const int threads = 256;
  size_t blocks = (a->n + threads - 1) / threads;
  const size_t max_blocks = (size_t)(exec->sm_count > 0 ? exec->sm_count : 1) * 32;
  if (blocks > max_blocks) blocks = max_blocks;
  dequant_kernel<<<(unsigned)blocks, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      (int)a->type, (int)a->out_dtype, (const unsigned char *)a->in, a->out, a->n);
  DECO_CUDA_CHECK_LAUNCH(exec, "dequant_kernel");
  return DECO_STATUS_SUCCESS;
}
