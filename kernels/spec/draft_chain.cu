/* kernels/spec/draft_chain.cu — deco_draft_chain on the GPU: one block; its
 * threads find the argmax of the last draft forward's last row (strided
 * scans, then a tree reduction under the shared total order of
 * draft_chain_common.h), and thread 0 writes the chain id and the next
 * forward's batch, as the reference does. Same contract as
 * draft_chain_ref.c; the argument struct is passed by value, its pointers
 * are device memory.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "spec/draft_chain_common.h"

#define CHAIN_THREADS 512

static __global__ void __launch_bounds__(CHAIN_THREADS) draft_chain_kernel(deco_draft_chain_args_t a) {
  __shared__ float sv[CHAIN_THREADS];
  __shared__ int32_t si[CHAIN_THREADS];
  const int t = threadIdx.x;
  /* Every thread reads the count before thread 0 rewrites it (barrier below). */
  const int count = a.stage >= 1 ? a.q_indptr[1] : 0;
  float bv = 0.0f;
  int32_t bi = -1;
  if (count > 0) {
    const float *row = a.logits + (size_t)(count - 1) * (size_t)a.vocab;
    for (int i = t; i < a.vocab; i += CHAIN_THREADS) {
      const float v = row[i];
      if (bi < 0 || deco_draft_chain_above(v, i, bv, bi)) {
        bv = v;
        bi = i;
      }
    }
  }
  sv[t] = bv;
  si[t] = bi;
  __syncthreads();
  for (int half = CHAIN_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) {
      const int32_t oi = si[t + half];
      if (oi >= 0 && (si[t] < 0 || deco_draft_chain_above(sv[t + half], oi, sv[t], si[t]))) {
        sv[t] = sv[t + half];
        si[t] = oi;
      }
    }
    __syncthreads();
  }
  if (t == 0) deco_draft_chain_finish(&a, count, si[0] >= 0 ? si[0] : 0);
}

deco_status_t deco_draft_chain_cuda(const deco_exec_t *exec, const deco_draft_chain_args_t *a) {
  draft_chain_kernel<<<1, CHAIN_THREADS, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "draft_chain_kernel");
  return DECO_STATUS_SUCCESS;
}
