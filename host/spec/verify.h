/* host/spec/verify.h — library-private: the verification pipeline that the
 * host engine (engine.c) and the device-resident step (device_step.c)
 * share. For a batch of draft trees whose logits the tree forward wrote:
 *   acceptance (greedy, or lossless sampling with the drafts' kind)
 *   → compaction of the accepted paths in the KV cache
 *   → the drafter's observation (e.g. Token Recycling's table update).
 * Everything reads and writes context memory and is only enqueued, so a
 * device-resident step can be captured in a CUDA graph.
 */
#ifndef DECO_HOST_SPEC_VERIFY_H
#define DECO_HOST_SPEC_VERIFY_H

#include "deco/spec.h"
#include "draft/drafter.h"

typedef struct deco_verify_args {
  int n_trees;                  /* B */
  int n_nodes;                  /* capacity of the flat node arrays (grid sizes) */
  const int32_t *tree_indptr;   /* [B + 1] */
  const int32_t *parents;       /* [n_nodes] local parents */
  const int32_t *tokens;        /* [n_nodes] */
  const int32_t *row_count;     /* [1] nodes in use, or NULL (all n_nodes), for the drafter */
  const float *logits;          /* [n_nodes][vocab] f32 */
  /* Sampling: temperature 0 verifies greedily. */
  float temperature;
  int top_k;
  float top_p;
  const uint64_t *seed;         /* [1] Philox key */
  const uint32_t *offset;       /* [1] Philox counter word 0 */
  deco_draft_kind_t draft_kind; /* how the drafts were drawn (sampling only) */
  const float *draft_probs;     /* [n_nodes][vocab] q, or NULL for DETERMINISTIC */
  /* Compaction: each tree's committed length and block-table row. */
  const int32_t *prefix_lens;   /* [B] */
  const int32_t *block_table;   /* [B][deco_kv_cache_max_pages] */
  deco_tree_verify_out_t out;   /* path [B][256], accept_len [B], bonus [B], nonfinite [B] */
} deco_verify_args_t;

/* The workspace the step's ops need at these sizes (acceptance either way,
 * and the drafter's observation, which is planned here as well). */
deco_status_t deco_verify_plan(deco_model_t *model, deco_drafter_t *drafter, const deco_verify_args_t *a,
                               size_t *workspace_bytes);

/* Enqueues acceptance, compaction and the drafter's observation. */
deco_status_t deco_verify_enqueue(deco_model_t *model, deco_kv_cache_t *cache, deco_drafter_t *drafter,
                                  const deco_verify_args_t *a);

#endif
