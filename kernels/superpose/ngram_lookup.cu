/* kernels/superpose/ngram_lookup.cu — the n-gram lookup of superposed
 * decoding on the GPU (deco/superpose_ops.h): one thread per (draft,
 * candidate) evaluates deco_ngram_prob, the same header code as the C
 * reference, over the table in device memory. The drafts of one prompt
 * probe the same few slots, so those reads hit in cache; a table is at
 * most half full, so a probe for an unseen context ends after a couple of
 * slots.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

#define LOOKUP_THREADS 128

static __global__ void __launch_bounds__(LOOKUP_THREADS) ngram_lookup_kernel(deco_ngram_lookup_args_t a) {
  const long long i = (long long)blockIdx.x * LOOKUP_THREADS + threadIdx.x;
  if (i >= (long long)a.n_rows * a.m) return;
  const int r = (int)(i / a.m), j = (int)(i % a.m);
  int len = a.ctx_len[r];
  len = len < 0 ? 0 : len > DECO_NGRAM_CONTEXT ? DECO_NGRAM_CONTEXT : len;
  const int32_t token = a.cands[(size_t)(r / a.rows_per_group) * a.m + j];
  a.probs[i] = deco_ngram_prob(&a.table, a.ctx + (size_t)r * DECO_NGRAM_CONTEXT, len, token, a.lambda);
}

deco_status_t deco_ngram_lookup_cuda(const deco_exec_t *exec, const deco_ngram_lookup_args_t *a) {
  const long long n = (long long)a->n_rows * a->m;
  const unsigned grid = (unsigned)((n + LOOKUP_THREADS - 1) / LOOKUP_THREADS);
  ngram_lookup_kernel<<<grid, LOOKUP_THREADS, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "ngram_lookup_kernel");
  return DECO_STATUS_SUCCESS;
}
