/* kernels/spec/spec_step.cu — the device-resident step's bookkeeping on the
 * GPU: one thread runs the same code as the reference (spec_step_common.h),
 * so a captured step needs no host work. The argument structs are passed by
 * value; every pointer in them is device memory.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "spec/spec_step_common.h"

static __global__ void spec_prepare_kernel(deco_spec_prepare_args_t a) { deco_spec_prepare_one(&a); }
static __global__ void spec_commit_kernel(deco_spec_commit_args_t a) { deco_spec_commit_one(&a); }

deco_status_t deco_spec_prepare_cuda(const deco_exec_t *exec, const deco_spec_prepare_args_t *a) {
  spec_prepare_kernel<<<1, 1, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "spec_prepare_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_spec_commit_cuda(const deco_exec_t *exec, const deco_spec_commit_args_t *a) {
  spec_commit_kernel<<<1, 1, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "spec_commit_kernel");
  return DECO_STATUS_SUCCESS;
}
