/* deco/kv.h — the paged KV cache and the ops that write it: appending new
 * tokens' K/V, and compacting the accepted path of a draft tree.
 *
 * Paged cache, per layer: K and V pools [n_pages][page_size][n_kv_heads][head_dim];
 * per sequence a row of the block table (page ids) and a length. A ragged
 * batch of sequences is described in device memory (q_indptr, kv_lens), so
 * a captured CUDA graph can be replayed with new sizes.
 *
 * Slots: the tokens of sequence s in this call are its last n_s slots,
 *   n_s = q_indptr[s+1] - q_indptr[s],  token j of s -> slot kv_lens[s] - n_s + j,
 * and slot p lives at page block_table[s][p / page_size], row p % page_size.
 *
 * Every argument struct has a DECO_<NAME>_INIT macro of designated
 * initialisers: pointers NULL, counts and sizes 0 (to be set) unless a
 * field's comment names another default, strides 0 (dense), dtype f32.
 */
#ifndef DECO_KV_H
#define DECO_KV_H

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
#define DECO_PAGED_KV_INIT                                                                                 \
  {.dtype = DECO_DTYPE_F32, .n_kv_heads = 0, .head_dim = 0, .page_size = 0, .n_pages = 0, .k_pages = NULL, \
   .v_pages = NULL, .block_table = NULL, .max_pages_per_seq = 0}

/* A ragged batch of new tokens. The host passes n_tokens as a capacity (grid
 * size); the kernels read the real count q_indptr[n_seqs] from device memory
 * and skip the rest, so graph replays can shrink a batch. */
typedef struct deco_ragged_batch {
  int n_seqs;
  int n_tokens;             /* capacity: >= q_indptr[n_seqs] */
  const int32_t *q_indptr;  /* [n_seqs + 1], q_indptr[0] = 0 */
  const int32_t *kv_lens;   /* [n_seqs]: cache length including this call's tokens */
} deco_ragged_batch_t;
#define DECO_RAGGED_BATCH_INIT {.n_seqs = 0, .n_tokens = 0, .q_indptr = NULL, .kv_lens = NULL}

/* Writes each new token's K and V rows into its slot (see above). Device-side
 * values that do not hold: the CUDA op skips (does not write) the tokens at
 * or past q_indptr[n_seqs] and those whose slot is negative or has no page;
 * the CPU twin refuses an inconsistent sequence or a missing page with
 * DECO_STATUS_INVALID_ARGUMENT naming it, the sequences before it written
 * (for a missing page, also that sequence's tokens before the slot). */
typedef struct deco_kv_append_args {
  deco_paged_kv_t cache;
  deco_ragged_batch_t batch;
  const void *k;            /* [n_tokens][n_kv_heads][head_dim] cache.dtype */
  const void *v;            /* same */
  int kv_stride;            /* elements between tokens in k and in v: 0 = n_kv_heads * head_dim, else >= that */
} deco_kv_append_args_t;
#define DECO_KV_APPEND_ARGS_INIT \
  {.cache = DECO_PAGED_KV_INIT, .batch = DECO_RAGGED_BATCH_INIT, .k = NULL, .v = NULL, .kv_stride = 0}
DECO_API deco_status_t deco_kv_append(deco_ctx_t *ctx, const deco_kv_append_args_t *args);

/* KV compaction after tree acceptance (deco/tree.h): for every tree b and
 * every layer, moves slot L_b + path[b][d] to slot L_b + d for d in
 * 1 .. accept_len[b]-1, in one launch, correct when a destination is another
 * accepted node's source. Layer l's pools start at cache.k_pages / v_pages +
 * l * layer_stride elements. Never allocates. A tree that is invalid
 * (accept_len outside 1..256, path[0] != 0, a path that does not increase,
 * a negative prefix length, or a slot L_b + d or L_b + path[b][d], d >= 1,
 * without a page) is not touched: the CUDA op, which reads these on the
 * device, skips it and compacts the others; the C twin returns
 * DECO_STATUS_INVALID_ARGUMENT naming it, having compacted the trees before
 * it and none after. */
typedef struct deco_kv_compact_args {
  deco_paged_kv_t cache;
  int n_layers;                 /* 1 .. 65535 (INIT: 1) */
  size_t layer_stride;          /* elements between consecutive layers' pools */
  int n_trees;
  const int32_t *prefix_lens;   /* [B] */
  const int32_t *path;          /* [B][DECO_TREE_MAX_NODES = 256], acceptance's output */
  const int32_t *accept_len;    /* [B] */
} deco_kv_compact_args_t;
#define DECO_KV_COMPACT_ARGS_INIT                                                                    \
  {.cache = DECO_PAGED_KV_INIT, .n_layers = 1, .layer_stride = 0, .n_trees = 0, .prefix_lens = NULL, \
   .path = NULL, .accept_len = NULL}
DECO_API deco_status_t deco_kv_compact(deco_ctx_t *ctx, const deco_kv_compact_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_KV_H */
