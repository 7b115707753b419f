/* deco/spec_step.h — the device-resident speculative step's bookkeeping
 * ops (deco_spec_prepare, deco_spec_commit) and the state they keep in
 * context memory. Kernel-level: no model or host-layer type appears here,
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

#ifdef __cplusplus
}
#endif
#endif /* DECO_SPEC_STEP_H */
