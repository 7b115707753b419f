/* deco/attention.h — the paged KV cache and causal attention over it
 * (prefill and decode, any query/KV head ratio, head dims 8..256).
 *
 * Paged cache, per layer: K and V pools [n_pages][page_size][n_kv_heads][head_dim];
 * per sequence a row of the block table (page ids) and a length. A ragged
 * batch of sequences is described in device memory (q_indptr, kv_lens), so
 * a captured CUDA graph can be replayed with new sizes.
 *
 * Slots: the tokens of sequence s in this call are its last n_s slots,
 *   n_s = q_indptr[s+1] - q_indptr[s],  token j of s -> slot kv_lens[s] - n_s + j,
 * and slot p lives at page block_table[s][p / page_size], row p % page_size.
 */
#ifndef DECO_ATTENTION_H
#define DECO_ATTENTION_H

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One layer's view of the paged cache. */
typedef struct deco_paged_kv {
  deco_dtype_t dtype;
  int n_kv_heads;
  int head_dim;
  int page_size;              /* >= 1 */
  int n_pages;                /* pages in each pool */
  void *k_pages;              /* [n_pages][page_size][n_kv_heads][head_dim] */
  void *v_pages;              /* same */
  const int32_t *block_table; /* [n_seqs][max_pages_per_seq] */
  int max_pages_per_seq;
} deco_paged_kv_t;

/* A ragged batch of new tokens. The host passes n_tokens as a capacity (grid
 * size); the kernels read the real count q_indptr[n_seqs] from device memory
 * and skip the rest, so graph replays can shrink a batch. */
typedef struct deco_ragged_batch {
  int n_seqs;
  int n_tokens;             /* capacity: >= q_indptr[n_seqs] */
  const int32_t *q_indptr;  /* [n_seqs + 1], q_indptr[0] = 0 */
  const int32_t *kv_lens;   /* [n_seqs]: cache length including this call's tokens */
} deco_ragged_batch_t;

/* Writes each new token's K and V rows into its slot (see above). */
typedef struct deco_kv_append_args {
  deco_paged_kv_t cache;
  deco_ragged_batch_t batch;
  const void *k;            /* [n_tokens][n_kv_heads][head_dim] cache.dtype */
  const void *v;            /* same */
  int kv_stride;            /* elements between tokens in k and in v: 0 = n_kv_heads * head_dim, else >= that */
} deco_kv_append_args_t;
DECO_API deco_status_t deco_kv_append(deco_ctx_t *ctx, const deco_kv_append_args_t *args);

/* Causal attention over the paged cache: token j of sequence s (slot
 * p = kv_lens[s] - n_s + j) attends to slots 0..p of its sequence, whose K/V
 * must already be in the cache (deco_kv_append first).
 *   out[t][h] = softmax_p(scale * q[t][h] · K[p][h / group]) · V[p][h / group]
 * with group = n_heads / n_kv_heads. Softmax and sums in fp32. */
typedef struct deco_attention_args {
  deco_paged_kv_t cache;
  deco_ragged_batch_t batch;
  int n_heads;              /* query heads, a multiple of cache.n_kv_heads */
  float scale;              /* usually 1/sqrt(head_dim) */
  const void *q;            /* [n_tokens][n_heads][head_dim] cache.dtype */
  void *out;                /* [n_tokens][n_heads][head_dim] cache.dtype */
  int q_stride;             /* elements between tokens in q: 0 = n_heads * head_dim, else >= that */
} deco_attention_args_t;
DECO_API deco_status_t deco_attention(deco_ctx_t *ctx, const deco_attention_args_t *args);

/* Scratch bytes deco_attention needs for these arguments (0 on the CPU). */
DECO_API size_t deco_attention_workspace_size(deco_ctx_t *ctx, const deco_attention_args_t *args);
/* Name of the kernel path deco_attention picks for these arguments ("ref",
 * "mma-w4", "mma-w8+split16", "simt", "simt+split"), for benches and logs;
 * valid until the next call on the same thread. */
DECO_API const char *deco_attention_path(deco_ctx_t *ctx, const deco_attention_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_ATTENTION_H */
