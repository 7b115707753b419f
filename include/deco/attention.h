/* deco/attention.h — causal attention over the paged KV cache (prefill and
 * decode, any query/KV head ratio, head dims 8..256). The cache, its ragged
 * batches and the ops that write it are in deco/kv.h, included here.
 */
#ifndef DECO_ATTENTION_H
#define DECO_ATTENTION_H

#include "deco/core.h"
#include "deco/kv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Causal attention over the paged cache: token j of sequence s (slot
 * p = kv_lens[s] - n_s + j) attends to slots 0..p of its sequence, whose K/V
 * must already be in the cache (deco_kv_append first).
 *   out[t][h] = softmax_p(scale * q[t][h] · K[p][h / group]) · V[p][h / group]
 * with group = n_heads / n_kv_heads. Softmax and sums in fp32.
 * Rows at or past q_indptr[n_seqs] (up to n_tokens) are never written.
 * Batch metadata that does not hold (in device memory, so unchecked by the
 * host): the CUDA op writes NaN rows for the tokens of a sequence with
 * kv_lens[s] smaller than its token count, and NaN in the rows that attend
 * to a slot without a page (block-table entry outside [0, n_pages)); a
 * sequence whose token range passes n_tokens gets NaN rows on the SIMT path
 * and is left unwritten on the tensor-core path; a sequence whose range
 * decreases gets no rows of its own (its tokens are counted to the
 * sequences around it), and rows of overlapping ranges are undefined. The CPU twin
 * refuses the first such sequence with DECO_STATUS_INVALID_ARGUMENT naming
 * it, the sequences before it written. */
typedef struct deco_attention_args {
  deco_paged_kv_t cache;
  deco_ragged_batch_t batch;
  int n_heads;              /* query heads, a multiple of cache.n_kv_heads */
  float scale;              /* usually 1/sqrt(head_dim) */
  const void *q;            /* [n_tokens][n_heads][head_dim] cache.dtype */
  void *out;                /* [n_tokens][n_heads][head_dim] cache.dtype */
  int q_stride;             /* elements between tokens in q: 0 = n_heads * head_dim, else >= that */
} deco_attention_args_t;
/* Designated defaults: scale 0 must be set (the op refuses it), q_stride 0 (dense). */
#define DECO_ATTENTION_ARGS_INIT                                                                         \
  {.cache = DECO_PAGED_KV_INIT, .batch = DECO_RAGGED_BATCH_INIT, .n_heads = 0, .scale = 0.0f, .q = NULL, \
   .out = NULL, .q_stride = 0}
DECO_API deco_status_t deco_attention(deco_ctx_t *ctx, const deco_attention_args_t *args);

/* Scratch bytes deco_attention needs for these arguments (0 on the CPU, and
 * for arguments it would refuse: deco_ctx_set_workspace, deco/core.h). */
DECO_API size_t deco_attention_workspace_size(deco_ctx_t *ctx, const deco_attention_args_t *args);
/* Name of the kernel path deco_attention picks for these arguments, for
 * benches and logs: "ref" (CPU), "simt", "simt+split", or a tensor-core
 * path ("mma-w4", "mma-w8+split16", ...); "none" for an empty batch,
 * "invalid" for bad arguments. The tensor-core names live in one
 * thread-local buffer shared with deco_tree_attention_path: valid until the
 * next call of either on the same thread. */
DECO_API const char *deco_attention_path(deco_ctx_t *ctx, const deco_attention_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_ATTENTION_H */
