/* deco/spec.h — speculative decoding on the host layer: train-free draft
 * sources that build draft trees, and the verification step
 * draft tree → tree forward → accept → compact → commit
 * for a batch of sequences.
 */
#ifndef DECO_SPEC_H
#define DECO_SPEC_H

#include "deco/model.h"
#include "deco/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Prompt lookup (PLD, Saxena 2023; CopySpec) ---- */

typedef struct deco_lookup_config {
  int max_ngram;  /* longest suffix tried first (3) */
  int min_ngram;  /* shortest (1) */
  int draft_len;  /* longest continuation a match proposes (10) */
  int max_nodes;  /* draft nodes, root excluded (32), <= 255 */
} deco_lookup_config_t;

/* Builds a draft tree from the history (prompt + output; its last token is
 * the root). For n = max_ngram .. min_ngram, stopping at the first n with a
 * match: every earlier occurrence of the last n tokens (followed by at least
 * one token), newest first, proposes up to draft_len following tokens; the
 * proposals are inserted newest first into a trie (shared prefixes merged)
 * until max_nodes draft nodes exist. Output: *n_nodes nodes (root included,
 * node 0 = root), tokens[] and parents[] of capacity max_nodes + 1, in
 * topological order. With no match the tree is the root alone. */
DECO_API deco_status_t deco_lookup_draft(const int32_t *history, int n_history, const deco_lookup_config_t *config,
                                         int32_t *tokens, int32_t *parents, int *n_nodes);

/* ---- The verification step ---- */

typedef struct deco_spec_engine deco_spec_engine_t;

/* Scratch for verifying up to max_seqs trees of up to max_nodes nodes each
 * (root included, <= 256) on model/cache. */
DECO_API deco_status_t deco_spec_engine_create(deco_model_t *model, deco_kv_cache_t *cache, int max_seqs,
                                               int max_nodes, deco_spec_engine_t **out);
DECO_API void deco_spec_engine_destroy(deco_spec_engine_t *engine);

typedef struct deco_spec_sampling {
  float temperature;  /* 0: greedy verification */
  int top_k;          /* 0 = off */
  float top_p;        /* 1 = off */
  uint64_t seed;      /* Philox key */
  uint32_t offset;    /* Philox counter word 0 for this step (e.g. the root's position) */
} deco_spec_sampling_t;

/* One step for n_seqs sequences. Tree i has n_nodes[i] nodes whose tokens
 * and parents follow those of tree i-1 in tokens[] / parents[] (host);
 * node 0 of each tree is the sequence's last emitted token, not yet in its
 * cache. Drafts are deterministic (draft kind DECO_DRAFT_DETERMINISTIC).
 * On return, emitted[i * DECO_TREE_MAX_NODES ...] holds the accepted drafts
 * then the bonus token, n_emitted[i] of them (= accept_len >= 1); the
 * cache holds the root and the accepted drafts (n_emitted[i] slots
 * committed); the next root is the bonus token. */
DECO_API deco_status_t deco_spec_engine_step(deco_spec_engine_t *engine, int n_seqs, const int *seqs,
                                             const int *n_nodes, const int32_t *tokens, const int32_t *parents,
                                             const deco_spec_sampling_t *sampling, int32_t *emitted,
                                             int *n_emitted);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SPEC_H */
