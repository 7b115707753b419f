/* deco/spec.h — speculative decoding on the host layer: drafters (draft
 * sources behind one interface), the verification engine
 *   draft tree → tree forward → accept → compact → [drafter observes] → commit
 * for a batch of sequences, and deco_generate, the decoding loops.
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
  size_t size;    /* sizeof(deco_lookup_config_t), for growth: set by the INIT macro */
  int max_ngram;  /* longest suffix tried first (3) */
  int min_ngram;  /* shortest (1) */
  int draft_len;  /* longest continuation a match proposes (10) */
  int max_nodes;  /* draft nodes, root excluded (32), <= 255 */
} deco_lookup_config_t;
#define DECO_LOOKUP_CONFIG_INIT \
  {.size = sizeof(deco_lookup_config_t), .max_ngram = 3, .min_ngram = 1, .draft_len = 10, .max_nodes = 32}

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

/* ---- Drafters ----
 * A drafter proposes a draft tree per sequence and step, rooted at the
 * sequence's last emitted id, and observes what each step accepted. The
 * verification pipeline is the same whatever the drafter: deco_generate
 * with drafter NULL decodes plainly. Drafts are deterministic (trees
 * assembled from lookups or tables), so sampling verifies them with the
 * rule for DECO_DRAFT_DETERMINISTIC drafts (deco/tree.h).
 * A drafter serves one model and one run at a time; it keeps per-sequence
 * state keyed by the cache's sequence handle. */

typedef struct deco_drafter deco_drafter_t;

/* Prompt lookup (deco_lookup_draft over each sequence's prompt and output).
 * Drafts on the host. */
DECO_API deco_status_t deco_drafter_create_lookup(const deco_lookup_config_t *config, deco_drafter_t **out);
/* Token Recycling (deco/recycle.h): fills the template from the table and,
 * after each verification, writes the top-k of every tree node's logits
 * back into it. The recycler is borrowed (it must outlive the drafter; the
 * model must live in its context and have its vocabulary); the template is
 * copied and checked (a valid tree whose ranks the table's k covers).
 * Drafts on the device, so it can run device-resident and in a CUDA graph
 * (then the template must be breadth first). */
DECO_API deco_status_t deco_drafter_create_recycle(deco_recycler_t *recycler, const deco_tree_template_t *tmpl,
                                                   deco_drafter_t **out);
DECO_API void deco_drafter_destroy(deco_drafter_t *drafter);
/* "lookup", "recycle", ... */
DECO_API const char *deco_drafter_name(const deco_drafter_t *drafter);
/* Nodes of the largest tree it proposes, root included (1..256). */
DECO_API int deco_drafter_max_nodes(const deco_drafter_t *drafter);
/* 1 when it drafts on the device (a fixed tree shape), so the whole step
 * can stay in context memory (deco_generate's device_resident, graph). */
DECO_API int deco_drafter_device_resident(const deco_drafter_t *drafter);

/* Driving a drafter by hand (with deco_spec_engine_step; deco_generate does
 * this itself): begin a sequence with its ids so far (prompt; the last one
 * is the first root), then per step draft a tree rooted at the sequence's
 * last id. The engine the drafter is set on lets it observe each step. */
DECO_API deco_status_t deco_drafter_begin(deco_drafter_t *drafter, deco_model_t *model, int seq, const int32_t *ids,
                                          int n_ids);
/* tokens/parents: capacity deco_drafter_max_nodes; *n_nodes >= 1. */
DECO_API deco_status_t deco_drafter_draft(deco_drafter_t *drafter, int seq, int32_t *tokens, int32_t *parents,
                                          int *n_nodes);

/* ---- The verification step ---- */

typedef struct deco_spec_engine deco_spec_engine_t;

/* Scratch for verifying up to max_seqs trees of up to max_nodes nodes each
 * (root included, <= 256) on model/cache. Every buffer a step uses is sized
 * here (the plan): steps allocate nothing. */
DECO_API deco_status_t deco_spec_engine_create(deco_model_t *model, deco_kv_cache_t *cache, int max_seqs,
                                               int max_nodes, deco_spec_engine_t **out);
DECO_API void deco_spec_engine_destroy(deco_spec_engine_t *engine);

/* The drafter that observes every step (NULL: none): after acceptance and
 * compaction it sees the step's trees and logits on the device (Token
 * Recycling updates its table: M[token j] <- top-k of node j's raw logits
 * for every node of every tree, rejected ones too; requests in order, nodes
 * breadth first, later writes winning), then each sequence's emitted ids.
 * Sizes what the drafter's observation needs. */
DECO_API deco_status_t deco_spec_engine_set_drafter(deco_spec_engine_t *engine, deco_drafter_t *drafter);

typedef struct deco_spec_sampling {
  float temperature;  /* 0: greedy verification */
  int top_k;          /* 0 = off */
  float top_p;        /* 1 = off */
  uint64_t seed;      /* Philox key */
  uint32_t offset;    /* Philox counter word 0 for this step (e.g. the root's position) */
} deco_spec_sampling_t;
#define DECO_SPEC_SAMPLING_INIT {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0, .offset = 0}

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

typedef void (*deco_emit_fn)(void *user, int32_t id);

/* Defaults (the INIT macro; zero in any of these fields means the same). */
#define DECO_GENERATE_PAGE_SIZE 16   /* slots per page of the private cache */
#define DECO_GENERATE_REPLAY_CHUNK 8 /* graph replays between two reads of the state */

typedef struct deco_generate_config {
  size_t size;               /* sizeof(deco_generate_config_t), for growth: set by the INIT macro */
  /* What runs */
  int steps;                 /* forward positions including the prompt (llama2.c's -n), 1..seq_len */
  deco_drafter_t *drafter;   /* the draft source; NULL = plain autoregressive decoding */
  /* Sampling, the same law for plain and speculative decoding */
  float temperature;         /* 0 = greedy */
  int top_k;                 /* when temperature > 0: the k most likely ids; 0 = off */
  float top_p;               /* nucleus when temperature > 0; 1 = off */
  uint64_t seed;             /* Philox key */
  /* Stopping */
  int ignore_eos;            /* 1: run to steps whatever is emitted */
  const int32_t *stop_ids;   /* host ids that end the run; NULL = the model's (deco_model_hparams_t) */
  int n_stop_ids;            /* with stop_ids: 1..DECO_SPEC_MAX_STOP_IDS */
  /* Execution */
  /* 1: run every step on the device (deco_spec_prepare / deco_spec_commit;
   * plain decoding runs as one-node trees; the drafter must be
   * device-resident) — ids are emitted at the end; with graph = 1 (CUDA)
   * the step is captured once as a CUDA graph and replayed, reading the
   * state every replay_chunk replays (0 = DECO_GENERATE_REPLAY_CHUNK). */
  int device_resident;
  int graph;
  int replay_chunk;
  /* The cache: decode into this admitted, empty sequence of the caller's
   * cache (reserved for steps + the largest tree) instead of a private one
   * of page_size slots per page (0 = DECO_GENERATE_PAGE_SIZE), e.g. to
   * inspect the cache afterwards. */
  deco_kv_cache_t *cache;
  int seq;
  int page_size;
  /* Output */
  deco_emit_fn emit;         /* called for the first prompt id, then once per position; may be NULL */
  void *user;
} deco_generate_config_t;
#define DECO_GENERATE_CONFIG_INIT                                                                          \
  {.size = sizeof(deco_generate_config_t), .steps = 256, .drafter = NULL, .temperature = 1.0f, .top_k = 0, \
   .top_p = 1.0f, .seed = 0, .ignore_eos = 0, .stop_ids = NULL, .n_stop_ids = 0, .device_resident = 0,      \
   .graph = 0, .replay_chunk = DECO_GENERATE_REPLAY_CHUNK, .cache = NULL, .seq = 0,                        \
   .page_size = DECO_GENERATE_PAGE_SIZE, .emit = NULL, .user = NULL}

typedef struct deco_generate_stats {
  int tokens;              /* ids generated after the prompt (the stop id excluded) */
  int forwards;            /* target forwards after the prefill */
  double capture_seconds;  /* host time spent capturing and instantiating the CUDA graph */
  /* Context allocations after the plan, by the prefill, the steps and a
   * graph capture: 0 when the plan sized every buffer (it must). */
  int step_allocations;
} deco_generate_stats_t;
#define DECO_GENERATE_STATS_INIT {.tokens = 0, .forwards = 0, .capture_seconds = 0.0, .step_allocations = 0}

/* Decodes one sequence the way llama2.c's run.c does: the prompt ids but the
 * last are prefilled in one forward, each later position emits one id; with
 * a drafter, each step verifies a draft tree rooted at the last id and
 * emits the accepted drafts and the bonus token (greedy, or lossless
 * sampling with deterministic drafts), never drafting past steps. A stop id
 * ends the generation unless ignore_eos (the stop id and whatever a step
 * accepted after it are dropped). Sampling draws use Philox counter
 * (position, 0, ...), so plain and speculative runs are reproducible.
 * Every buffer is sized before the first step (the plan). */
DECO_API deco_status_t deco_generate(deco_model_t *model, const int32_t *prompt, int n_prompt,
                                     const deco_generate_config_t *config, deco_generate_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SPEC_H */
