/* deco/spec.h — speculative decoding on the host layer: train-free draft
 * sources that build draft trees, and the verification step
 * draft tree → tree forward → accept → compact → commit
 * for a batch of sequences.
 */
#ifndef DECO_SPEC_H
#define DECO_SPEC_H

#include "deco/model.h"
#include "deco/recycle.h"
#include "deco/spec_step.h"
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

/* Token Recycling: with a recycler set (NULL unsets it), every step also
 * writes M[token j] <- top-k of node j's raw logits for every node of every
 * tree (rejected ones too; requests in order, nodes breadth first, later
 * writes winning), after acceptance. The recycler must live in the same
 * context, with the model's vocabulary. */
DECO_API deco_status_t deco_spec_engine_set_recycler(deco_spec_engine_t *engine, deco_recycler_t *recycler);

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

/* ---- Generation: the decoding loops ---- */

typedef enum deco_draft_source {
  DECO_DRAFT_NONE = 0,     /* plain autoregressive decoding */
  DECO_DRAFT_LOOKUP = 1,   /* prompt lookup (deco_lookup_draft) */
  DECO_DRAFT_RECYCLE = 2   /* Token Recycling (deco/recycle.h) */
} deco_draft_source_t;

typedef void (*deco_emit_fn)(void *user, int32_t id);

typedef struct deco_generate_config {
  int steps;                /* forward positions including the prompt (llama2.c's -n), <= seq_len */
  float temperature;        /* 0 = greedy */
  float top_p;              /* nucleus when temperature > 0; 1 = off */
  uint64_t seed;            /* Philox key */
  int ignore_eos;           /* 0: stop at ids 1 (BOS) and 2 (EOS) */
  deco_draft_source_t source;
  deco_lookup_config_t lookup;           /* DECO_DRAFT_LOOKUP */
  deco_recycler_t *recycler;             /* DECO_DRAFT_RECYCLE: the table (updated) */
  const deco_tree_template_t *tmpl;      /* DECO_DRAFT_RECYCLE: the tree to fill */
  deco_emit_fn emit;        /* called for the first prompt id, then once per position; may be NULL */
  void *user;
  /* 1: run every step on the device (deco_spec_prepare / deco_spec_commit;
   * DECO_DRAFT_NONE runs as one-node trees, DECO_DRAFT_LOOKUP is not
   * available) — ids are emitted at the end; with graph = 1 (CUDA) the step
   * is captured once as a CUDA graph and replayed. */
  int device_resident;
  int graph;
  /* Optional: decode into this admitted, empty sequence of the caller's
   * cache (reserved for steps + the tree's nodes) instead of a private one,
   * e.g. to inspect the cache afterwards. */
  deco_kv_cache_t *cache;
  int seq;
} deco_generate_config_t;

typedef struct deco_generate_stats {
  int tokens;              /* ids generated after the prompt (the stop id excluded) */
  int forwards;            /* target forwards after the prefill */
  double capture_seconds;  /* host time spent capturing and instantiating the CUDA graph */
} deco_generate_stats_t;

/* Decodes one sequence the way llama2.c's run.c does: the prompt ids but the
 * last are prefilled in one forward, each later position emits one id; with
 * a draft source, each step verifies a draft tree rooted at the last id and
 * emits the accepted drafts and the bonus token (greedy, or lossless
 * sampling with deterministic drafts), never drafting past steps. Ids 1 and
 * 2 end the generation unless ignore_eos (the stop id and whatever a step
 * accepted after it are dropped). Sampling draws use Philox counter
 * (position, 0, ...), so plain and speculative runs are reproducible. */
DECO_API deco_status_t deco_generate(deco_model_t *model, const int32_t *prompt, int n_prompt,
                                     const deco_generate_config_t *config, deco_generate_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SPEC_H */
