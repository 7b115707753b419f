/* kernels/common/probe.cu — deco_kernels_probe (probe.h). */
#include <cuda_runtime.h>

#include "common/probe.h"

/* Empty; built for the architectures every kernel is built for. */
__global__ void deco_probe_kernel() {}

extern "C" int deco_kernels_probe(void) {
  cudaFuncAttributes fa;
  const cudaError_t err = cudaFuncGetAttributes(&fa, deco_probe_kernel);
  if (err != cudaSuccess) (void)cudaGetLastError();
  return (int)err;
}
