/* kernels/embedding/embedding.cu — embedding gather on the GPU: out[t] =
 * f32(table[tokens[t]]) for an f32/f16/bf16 table, or out[t] = embeds[t]
 * when tokens is NULL. table [vocab][dim], out [n_tokens][dim] f32.
 * Ids outside [0, vocab) give a row of NaN, as in embedding_ref.c.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

/* One block per token; threads stride over the row (consecutive threads,
 * consecutive elements: coalesced). */
template <typename T>
static __global__ void embedding_kernel(const T *__restrict__ table,      /* [vocab][dim] */
                                        const int32_t *__restrict__ tokens, /* [n_tokens] or NULL */
                                        const float *__restrict__ embeds,   /* [n_tokens][dim] */
                                        float *__restrict__ out,            /* [n_tokens][dim] */
                                        int vocab, int dim) {
  const size_t t = blockIdx.x;
  float *row = out + t * (size_t)dim;
  if (tokens == NULL) {
    const float *src = embeds + t * (size_t)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] = src[i];
    return;
  }
  const int id = tokens[t];
  if (id < 0 || id >= vocab) {
    for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] = deco_nan_f32();
    return;
  }
  const T *src = table + (size_t)id * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] = deco_to_f32(src[i]);
}

template <typename T>
static deco_status_t embedding_launch(const deco_exec_t *exec, const deco_embedding_args_t *a) {
  const int threads = a->dim >= 256 ? 256 : (a->dim + 31) / 32 * 32;
  embedding_kernel<T><<<a->n_tokens, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      (const T *)a->table, a->tokens, a->embeds, a->out, a->vocab, a->dim);
  DECO_CUDA_CHECK_LAUNCH(exec, "embedding_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_embedding_cuda(const deco_exec_t *exec, const deco_embedding_args_t *a) {
  if (a->tokens == NULL) return embedding_launch<float>(exec, a);
  DECO_DTYPE_SWITCH(a->dtype, T, return embedding_launch<T>(exec, a));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_embedding: dtype %d", (int)a->dtype);
}
