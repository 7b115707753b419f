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
 * assembled from lookups or tables, greedy model drafts), so sampling
 * verifies them with the rule for DECO_DRAFT_DETERMINISTIC drafts
 * (deco/tree.h), except sampled model drafts, verified with their kind and
 * draft probabilities.
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
/* ---- Model drafts ----
 * A draft model with the target's vocabulary proposes a chain or a tree
 * per step: a separate checkpoint, or the target itself restricted to a
 * list of its layers (self-speculative drafting; the embedding, the final
 * norm and the classifier are the target's). The draft keeps its own paged
 * KV cache: each level of the tree is one tree forward of the draft (the
 * tokens the draft has not seen yet, the root, and every node above the
 * frontier; a chain's level forwards only its new node, the nodes above
 * being committed ahead in the draft cache until the observation), and
 * after verification the accepted path's K/V is compacted
 * and committed as the target's is; what was never forwarded (a leaf that
 * was accepted, the bonus) enters the next round's first forward.
 * Shapes: depth draft_len; width 1 is a chain, width W > 1 a tree whose
 * nodes take their draft's W most likely tokens (ties: lower id), levels
 * filled best path probability first under max_nodes.
 * temperature 0: greedy drafts (argmax / top-w), verified with the rule for
 * deterministic drafts. temperature > 0: a chain (width 1) is drawn from
 * q = softmax(draft logits / temperature) and verified with the chain rule
 * and q; a tree with sample_siblings draws each node's W children from q
 * without replacement (multi-draft); a top-w tree is deterministic at any
 * temperature. Draws: Philox, key seed, counter (root position,
 * 0x44524654, node, draw). */
typedef struct deco_model_draft_config {
  size_t size;          /* sizeof(deco_model_draft_config_t), for growth: set by the INIT macro */
  /* The draft: a separate model (deco_drafter_create_model's draft), or
   * the target's layers[0..n_layers) (strictly increasing, in range). */
  const int *layers;
  int n_layers;
  /* Shape */
  int draft_len;        /* depth of the drafts (4), 1..255 */
  int width;            /* children per node (1: a chain) */
  int max_nodes;        /* draft nodes, root excluded (0: draft_len * width, at most 255) */
  /* Drawing */
  float temperature;    /* 0 (the default): greedy drafts; set it to the verifier's (which defaults to
                           1.0 in DECO_GENERATE_CONFIG_INIT) */
  int sample_siblings;  /* width > 1 and temperature > 0: siblings drawn from q (0: top-w) */
  uint64_t seed;        /* Philox key of the draws */
  /* Layer-parallel drafting (EasySpec): > 1 runs the draft's middle layers
   * (all but its first and last) in groups of this many consecutive layers
   * whose attentions read the group's input (deco_layer_schedule_t; a
   * group never spans a gap of a layer list; a trailing smaller group is
   * allowed); more than the middle layers is an error. 0 or 1: off. */
  int layer_parallel;
  /* With layer_parallel > 1: 0 calibrates — the accepted ids and the bonus
   * are forwarded again sequentially (the ordinary schedule) at the next
   * round's start, overwriting the approximate K/V, and the root's first
   * draft level runs sequentially too; 1 keeps the approximate K/V. */
  int no_calibrate;
  /* Sizes */
  int max_len;          /* positions a sequence reaches (0: the draft's seq_len), for its cache, which
                           reserves max_len + 256 slots a sequence: below seq_len, deco_generate refuses
                           more steps than max_len + 256 - max_nodes (a chain: - min(draft_len,
                           max_nodes); a device-resident top-w tree: - its shape's nodes, root included) */
  int max_seqs;         /* sequences at once (0: 1) */
  /* Tokenizers: when both are nonzero they must be equal (e.g. FNV-1a 64
   * of each model's vocabulary). */
  uint64_t target_tokenizer_hash;
  uint64_t draft_tokenizer_hash;
} deco_model_draft_config_t;
#define DECO_MODEL_DRAFT_CONFIG_INIT                                                                        \
  {.size = sizeof(deco_model_draft_config_t), .layers = NULL, .n_layers = 0, .draft_len = 4, .width = 1,    \
   .max_nodes = 0, .temperature = 0.0f, .sample_siblings = 0, .seed = 0, .layer_parallel = 0,                 \
   .no_calibrate = 0, .max_len = 0, .max_seqs = 0,                                                           \
   .target_tokenizer_hash = 0, .draft_tokenizer_hash = 0}

/* A model drafter for target: draft is a separate model in the target's
 * context with the same vocabulary size (borrowed: it must outlive the
 * drafter), or NULL for the target restricted to config->layers (a view
 * sharing its weights, deco_model_create_view). A vocabulary size or
 * tokenizer hash that differs is refused. The host loop drafts level by
 * level, one forward of the draft model each (eagerly on CUDA too). A
 * chain — width 1, layer_parallel <= 1, K = min(draft_len, max_nodes) <=
 * 254, greedy (temperature 0) or sampled — is also device-resident: inside
 * deco_generate's device-resident step (a CUDA graph with graph = 1) it
 * drafts K draft forwards on the device (deco_draft_chain, deco/spec_step.h),
 * each draft the argmax or, at temperature > 0, a draw from
 * q = softmax(draft logits / temperature) keyed like the host loop's, whose
 * q row acceptance reads (the chain rule); on the CPU the ids are the host
 * loop's. A draft row with a NaN or no finite maximum drafts its argmax
 * with q the point mass there, on both loops. Then max_len must cover the
 * run's steps. A top-w tree (width > 1, siblings not sampled: top-w at any
 * temperature) is device-resident too, with a fixed shape of max_nodes
 * drafts (<= 254): level l = 1..draft_len takes ceil(drafts left / levels
 * left) children, at most W per node, those of the smallest rank sum (the
 * ranks along the path, a child's rank its place among its siblings; ties:
 * the earlier parent, the lower rank), laid out by parent and rank; level l is
 * one tree forward of the draft over the nodes above it, deco_topk_rows
 * and deco_draft_chain's tree mode give node j the id of its rank among
 * its siblings in its parent's top W, and the draft cache is compacted
 * along the accepted path. The host loop's tree (ranked by path
 * probability) differs; both are lossless. Then max_len must cover the
 * run's steps plus the tree's nodes. Sampled siblings and layer-parallel
 * drafts stay on the host loop: the device loop refuses them, naming why. */
DECO_API deco_status_t deco_drafter_create_model(deco_model_t *target, deco_model_t *draft,
                                                 const deco_model_draft_config_t *config, deco_drafter_t **out);
/* The model the drafter drafts with (the view for a layer subset). */
DECO_API deco_model_t *deco_drafter_model(const deco_drafter_t *drafter);
/* The draft's cache (K/V of each sequence's committed tokens, for tests),
 * or NULL before the plan; *seq gets the draft cache's handle of seq.
 * Between a host draft and its observation the committed length also
 * counts a chain's levels committed ahead and, calibrating, the pending
 * ids: read it after an observation. */
DECO_API deco_kv_cache_t *deco_drafter_model_cache(const deco_drafter_t *drafter, int seq, int *draft_seq);
/* The draft forwards a model drafter has run (prefills, draft levels and,
 * calibrating, the sequential re-runs they include), or -1 for another
 * drafter. A calibrating round costs no forward beyond its draft levels.
 * Device-resident steps count K as they are enqueued (a CUDA graph's
 * replays are not counted). */
DECO_API long deco_drafter_model_forwards(const deco_drafter_t *drafter);
/* The tokens in those forwards, or -1 for another drafter: what drafting
 * cost in draft-model tokens. The host loop forwards a chain's round as
 * its pending ids and then one token per level (the levels above are
 * committed ahead and taken back at observe), a tree's every level over
 * all nodes above its frontier; a device-resident forward counts its
 * capacity (2 tokens for a chain). */
DECO_API long deco_drafter_model_tokens(const deco_drafter_t *drafter);

DECO_API void deco_drafter_destroy(deco_drafter_t *drafter);
/* "lookup", "recycle", "model", ... */
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
/* Ends sequence seq: the drafter lets go of what it holds for it (a model
 * drafter's draft-cache sequence, of which it holds config.max_seqs), so
 * that other sequences can begin. deco_generate, which runs one sequence
 * at a time, lets go of every other sequence before it begins its own; the
 * last one's state stays until then, for inspection. A seq never begun is
 * no error. */
DECO_API void deco_drafter_end(deco_drafter_t *drafter, int seq);
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
  float temperature;  /* 0 (the default here): greedy verification; DECO_GENERATE_CONFIG_INIT's is 1.0 */
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
 * committed); the next root is the bonus token. With a drafter set whose
 * drafts were sampled (a model drafter at temperature > 0), acceptance
 * uses their kind and q, and n_seqs must be 1. */
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
  float temperature;         /* 0 = greedy; the default is 1.0 (sampling), unlike
                                DECO_SPEC_SAMPLING_INIT and DECO_MODEL_DRAFT_CONFIG_INIT (0) */
  int top_k;                 /* when temperature > 0: the k most likely ids; 0 = off */
  float top_p;               /* nucleus when temperature > 0; 1 = off */
  uint64_t seed;             /* Philox key */
  /* Stopping */
  int ignore_eos;            /* 1: run to steps whatever is emitted */
  const int32_t *stop_ids;   /* host ids that end the run; NULL = the model's (deco_model_hparams_t) */
  int n_stop_ids;            /* with stop_ids: 1..DECO_SPEC_MAX_STOP_IDS */
  /* Execution */
  /* 1: run every step on the device (deco_spec_prepare / deco_spec_commit;
   * plain decoding runs as one-node trees, so sampled plain decoding draws
   * by acceptance's rule: the same law as the host sampler, other ids; the
   * drafter must be device-resident) — ids are emitted at the end; with graph = 1 (CUDA)
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
  /* Host time of the prefill forward, from its launch (after the work
   * queued before it) to its logits on the device: 0 for a one-id prompt.
   * What a run's time less this and capture_seconds leaves is the
   * decoding's, which includes a drafter's begin (a model draft's own
   * prompt forward). */
  double prefill_seconds;
} deco_generate_stats_t;
#define DECO_GENERATE_STATS_INIT \
  {.tokens = 0, .forwards = 0, .capture_seconds = 0.0, .step_allocations = 0, .prefill_seconds = 0.0}

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
