/* deco/spec_step.h — the device-resident speculative step's bookkeeping
 * ops (deco_spec_prepare, deco_spec_commit), the state they keep in
 * context memory, and the op that drafts a model's chain inside the step
 * (deco_draft_chain). Kernel-level: no model or host-layer type appears here,
 * so engines can drive the step with their own forward.
 */
#ifndef DECO_SPEC_STEP_H
#define DECO_SPEC_STEP_H

#include "deco/core.h"
#include "deco/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The device-resident step ----
 * Everything one speculative step needs lives in context memory, so the
 * step (draft → prepare → tree forward → accept → compact → [recycle update]
 * → commit) can be captured once in a CUDA graph and replayed with no host
 * work in between. Once `done` is set, replays change nothing: the commit
 * does nothing, and acceptance and the table update see empty trees. */
typedef struct deco_spec_state {
  int32_t len;      /* committed slots = the position of the root */
  int32_t root;     /* the root's token: the last emitted id */
  int32_t done;     /* 1 once a stop id, the step limit or an error ended the run */
  int32_t error;    /* 1: a step's verification output was malformed */
  int32_t n_out;    /* ids written to the output */
  int32_t tokens;   /* ids generated after the prompt (stop id excluded) */
  int32_t forwards; /* steps that ran */
  uint32_t offset;  /* Philox counter word 0 of the next acceptance (= len) */
  int32_t nonfinite; /* 0, or 1 + the node of the step that ended the run whose logits
                        were not finite (its root at position len; nothing committed) */
} deco_spec_state_t;
#define DECO_SPEC_STATE_INIT                                                                                 \
  {.len = 0, .root = 0, .done = 0, .error = 0, .n_out = 0, .tokens = 0, .forwards = 0, .offset = 0,          \
   .nonfinite = 0}

/* Before the forward: tokens[0] <- root; the nodes deeper than
 * steps - len - 1 (a suffix, since the template is breadth first) get token
 * 0 and are left out of the tree that acceptance and the update see
 * (tree_indptr = {0, m}, row_count = m; m = 0 once done); positions =
 * len + depth; kv_lens = len + n; prefix_lens = len; q_indptr = {0, n}, or
 * {0, 0} once done, so that a replay after the end writes no KV slot. */
typedef struct deco_spec_prepare_args {
  deco_spec_state_t *state;  /* [1] */
  int n_nodes;               /* n: the template's nodes, root included */
  const int32_t *depth;      /* [n] non-decreasing */
  int steps;                 /* forward positions of the whole generation */
  int32_t *tokens;           /* [n] in/out */
  int32_t *positions;        /* [n] out */
  int32_t *q_indptr;         /* [2] out: the forward's batch */
  int32_t *kv_lens;          /* [1] out */
  int32_t *prefix_lens;      /* [1] out */
  int32_t *tree_indptr;      /* [2] out */
  int32_t *row_count;        /* [1] out */
} deco_spec_prepare_args_t;
#define DECO_SPEC_PREPARE_ARGS_INIT                                                                          \
  {.state = NULL, .n_nodes = 0, .depth = NULL, .steps = 0, .tokens = NULL, .positions = NULL,                \
   .q_indptr = NULL, .kv_lens = NULL, .prefix_lens = NULL, .tree_indptr = NULL, .row_count = NULL}
DECO_API deco_status_t deco_spec_prepare(deco_ctx_t *ctx, const deco_spec_prepare_args_t *args);

/* The most stop ids a commit compares each emitted id with. */
#define DECO_SPEC_MAX_STOP_IDS 64

/* After acceptance and compaction: emits the accepted drafts and the bonus
 * into out, up to the first stop id (the stop id and whatever follows it
 * are dropped; no stop ids: never stops), then len += accept_len,
 * root = bonus, offset = len; done when a stop id was met, len reached
 * steps, or the verification output was malformed (error). When
 * acceptance flagged non-finite logits (nonfinite[0] != 0), nothing is
 * emitted or committed: state.nonfinite takes the flag and the run is done. */
typedef struct deco_spec_commit_args {
  deco_spec_state_t *state;  /* [1] */
  const int32_t *tokens;     /* [n] the step's tree tokens */
  int n_nodes;
  const int32_t *path;       /* [DECO_TREE_MAX_NODES] */
  const int32_t *accept_len; /* [1] */
  const int32_t *bonus;      /* [1] */
  int steps;
  const int32_t *stop_ids;   /* [n_stop_ids] context memory (e.g. the model's), or NULL when n_stop_ids = 0 */
  int n_stop_ids;            /* 0..DECO_SPEC_MAX_STOP_IDS */
  int32_t *out;              /* [out_capacity] generated ids */
  int out_capacity;
  const int32_t *nonfinite;  /* [1] acceptance's flag (deco_tree_verify_out_t), or NULL */
} deco_spec_commit_args_t;
#define DECO_SPEC_COMMIT_ARGS_INIT                                                                           \
  {.state = NULL, .tokens = NULL, .n_nodes = 0, .path = NULL, .accept_len = NULL, .bonus = NULL, .steps = 0, \
   .stop_ids = NULL, .n_stop_ids = 0, .out = NULL, .out_capacity = 0, .nonfinite = NULL}
DECO_API deco_status_t deco_spec_commit(deco_ctx_t *ctx, const deco_spec_commit_args_t *args);

/* ---- Model-drafted chains inside the step ----
 * A draft model's chain of K drafts (each the argmax of the draft's
 * logits, or drawn from them: sampled chains below) drafted on the device, one draft forward
 * (deco_forward_device, tree mode, at most two tokens) per level: forward 1
 * runs {prev, root} at positions {len - 1, len} (prev: the id at len - 1,
 * whose K/V it rewrites; just {root} at {len} when len = 0), forward l >= 2
 * runs {chain[l - 1]} at len + l - 1; the last row of forward l gives
 * chain[l]. The draft's cache then needs no compaction (an accepted path
 * is a prefix of the chain), and it holds exact K/V below len - 1 at each
 * step's start. One op, by stage:
 *   DECO_DRAFT_CHAIN_START: forward 1's batch;
 *   l = 1..K: chain[l] <- the argmax of forward l's last row (the largest
 *     value, equal values: the lower id, NaN below every number; T > 0: a
 *     draw, below), or 0 when forward l was empty; then, for l < K,
 *     forward l + 1's batch;
 *   DECO_DRAFT_CHAIN_OBSERVE (after acceptance, before the commit):
 *     prev <- chain[path[accept_len - 1]], the id at the next step's
 *     len - 1 (nothing once done, or for an accept_len outside [1, K + 1]).
 * A forward is empty (q_indptr = {0, 0}) once done, when its draft lies
 * deeper than the step verifies (depth l > steps - len - 1, a clipped
 * node), or when it would reach slot max_slots (the cache's reservation).
 * The batch: tokens/positions [2], q_indptr {0, n}, kv_lens {len + l},
 * prefix_lens {its first position}; an empty one has kv_lens = prefix_lens
 * = its first position, at most max_slots.
 *
 * Sampled chains (temperature T > 0): at level l the op also writes q row
 * l - 1 (the distribution node l - 1's child is drawn from, as the chain
 * rule of deco_tree_accept_sample reads it) and draws chain[l] from it:
 *   - the row is usable when it holds no NaN and its largest value m is
 *     finite: q[i] = (float)(exp((row[i] - m) / T) / z), exp and
 *     z = sum_i exp((row[i] - m) / T) in double; then with
 *     u = deco_philox_uniform(seed, len, DECO_DRAFT_CHAIN_STREAM, l - 1, 0)
 *     and total = the double sum of the q[i] written, chain[l] is the
 *     first id i with q[i] > 0 whose running sum (ids in increasing order)
 *     exceeds u * total, or the last id with q[i] > 0 when rounding leaves
 *     none;
 *   - otherwise (a NaN, an infinite maximum, every value -inf) q is the
 *     point mass at the argmax above and chain[l] that argmax;
 *   - an empty forward writes the point mass at id 0 and chain[l] = 0 (a
 *     clipped node: verification never reads it).
 * The draw is the host model drafter's (the same key, counter and rule),
 * so on the CPU, where the reference sums in increasing id order like the
 * host drafter, both loops draw the same ids. The CUDA kernel computes the
 * weights in f32 (expf) and sums them and the running sums in double in
 * another order: q may differ in the last bits and an id may differ where
 * u * total falls on a boundary between two ids. That
 * is lossless all the same: q as written is the distribution the id was
 * drawn from (up to its sum's rounding), and acceptance reads that q.
 * T = 0 draws nothing and leaves q alone (q may be NULL).
 *
 * Top-w trees (width W > 1, deterministic): the step's tree is a fixed
 * breadth-first shape of n nodes, shape[j] the parent of node j
 * (shape[0] = -1, parents non-decreasing, so siblings are consecutive and
 * the nodes of depth < l are a prefix of m_l nodes), depth at most K =
 * draft_len. Node j's rank is j minus the index of its first sibling
 * (rank < W). Forward l runs {prev} (at len - 1, when len >= 1 and
 * prev >= 0; h = 1, else h = 0) and nodes 0..m_l - 1 (node j at position
 * len + depth(j), slot len + j) with the tree parents fparents (written at
 * the start: the shape shifted by h under prev); the deepest level that is
 * forwarded is K - 1, so leaves have no K/V. After forward l, topk holds
 * the W best ids of each of its rows (deco_topk_rows, k = W, of the
 * forward's logits with row_count = q_indptr + 1), and:
 *   DECO_DRAFT_CHAIN_START: forward 1's batch and fparents [h + n];
 *   l = 1..K: every node j of depth l takes chain[j] <- topk[h + shape[j]]
 *     [rank(j)] (the parent's row), or 0 when forward l was empty; then,
 *     for l < K, forward l + 1's batch;
 *   DECO_DRAFT_CHAIN_OBSERVE: as for a chain, with path[accept_len - 1] a
 *     node below n (accept_len in [1, K + 1]).
 * Forward l is empty once done, for l > steps - len - 1, or when
 * len + m_l > max_slots; else q_indptr = {0, h + m_l}, kv_lens
 * {len + m_l}, prefix_lens {len - h}; an empty one has kv_lens =
 * prefix_lens = min(len - h, max_slots). temperature and q are not read
 * (a top-w tree is verified with the deterministic rule at any
 * temperature). A chain is the tree of width 1; width <= 1 keeps the chain
 * mode above. */
#define DECO_DRAFT_CHAIN_START 0
#define DECO_DRAFT_CHAIN_OBSERVE (-1)
/* Philox counter word 1 of a model draft's draws (the host drafter's too). */
#define DECO_DRAFT_CHAIN_STREAM 0x44524654u
typedef struct deco_draft_chain_args {
  int stage;                      /* DECO_DRAFT_CHAIN_START, a level 1..draft_len, or DECO_DRAFT_CHAIN_OBSERVE */
  int draft_len;                  /* K: 1..DECO_TREE_MAX_NODES - 1 */
  int steps;                      /* forward positions of the whole generation */
  int max_slots;                  /* slots the draft cache reserved for the sequence */
  int vocab;
  const deco_spec_state_t *state; /* [1] len, root, done */
  const float *logits;            /* [2][vocab] f32: the last draft forward's rows (levels) */
  int32_t *chain;                 /* [K + 1] the step's tree tokens (chain[0], the root, is not touched) */
  int32_t *prev;                  /* [1] the id at position len - 1, or -1 when len = 0 */
  const int32_t *path;            /* [DECO_TREE_MAX_NODES] acceptance's path (observe) */
  const int32_t *accept_len;      /* [1] (observe) */
  int32_t *tokens;                /* [2] the draft forward's batch, out (start, levels < K) */
  int32_t *positions;             /* [2] */
  int32_t *q_indptr;              /* [2] in at a level (the count of the forward just run), out */
  int32_t *kv_lens;               /* [1] */
  int32_t *prefix_lens;           /* [1] */
  float temperature;              /* 0: the argmax; > 0 (finite): a draw from q (above) */
  uint64_t seed;                  /* the draws' Philox key (temperature > 0) */
  float *q;                       /* [K][vocab] f32 out (temperature > 0): level l writes row l - 1 */
  /* Top-w trees (width > 1; above): */
  int width;                      /* W: 0 or 1 = a chain; 2..DECO_TOPK_MAX_K: a tree */
  int n_nodes;                    /* n: 2..DECO_TREE_MAX_NODES - 1 (tokens, positions: [n + 1]) */
  const int32_t *shape;           /* [n] the tree's parents */
  const int32_t *topk;            /* [n + 1][W] the last forward's top-W ids per row (levels) */
  int32_t *fparents;              /* [n + 1] the draft forwards' tree parents, out (start) */
} deco_draft_chain_args_t;
#define DECO_DRAFT_CHAIN_ARGS_INIT                                                                           \
  {.stage = DECO_DRAFT_CHAIN_START, .draft_len = 0, .steps = 0, .max_slots = 0, .vocab = 0, .state = NULL,   \
   .logits = NULL, .chain = NULL, .prev = NULL, .path = NULL, .accept_len = NULL, .tokens = NULL,            \
   .positions = NULL, .q_indptr = NULL, .kv_lens = NULL, .prefix_lens = NULL, .temperature = 0.0f,           \
   .seed = 0, .q = NULL, .width = 0, .n_nodes = 0, .shape = NULL, .topk = NULL, .fparents = NULL}
DECO_API deco_status_t deco_draft_chain(deco_ctx_t *ctx, const deco_draft_chain_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SPEC_STEP_H */
