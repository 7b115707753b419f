/* host/draft/drafter.h — library-private: the table of functions behind
 * deco_drafter_t. The verification pipeline (host/spec) calls only these
 * hooks, so a new draft source (a draft model, layer-parallel or layer-skip
 * self-drafting) is a new file here with its own table and constructor,
 * and nothing in host/spec changes.
 *
 * Call order for a run: plan (checks against the model and sizes, before
 * any step; called again when the step grows), begin (per sequence), then per step draft_host or
 * draft_device, the step's verification, observe_device (enqueued after
 * acceptance and compaction), observe_host (once the emitted ids are on
 * the host; device-resident loops call it once at the end).
 */
#ifndef DECO_HOST_DRAFT_DRAFTER_H
#define DECO_HOST_DRAFT_DRAFTER_H

#include "core/internal.h"
#include "deco/spec.h"

/* What a verified step shows a drafter on the device (context memory):
 * B trees in flat node arrays, every node's logits, acceptance's output. */
typedef struct deco_draft_observation {
  int n_trees;                  /* B */
  int n_nodes;                  /* capacity of the node arrays (grid sizes) */
  const int32_t *tree_indptr;   /* [B + 1] */
  const int32_t *tokens;        /* [n_nodes] */
  const int32_t *row_count;     /* [1] nodes in use (= tree_indptr[B]), or NULL: all n_nodes */
  const float *logits;          /* [n_nodes][vocab] f32 */
  int vocab;
  deco_tree_verify_out_t verdict; /* path, accept_len, bonus per tree */
} deco_draft_observation_t;

/* A device draft of one fixed-shape tree per sequence: tokens[b][0] is the
 * root (already there or set by deco_spec_prepare), the drafter fills
 * nodes 1..n-1. Context memory; enqueued only (capturable). The step's
 * state and sizes are there for drafters that need them (a model's chain
 * drafts at positions len + depth and never past steps); a drafter that
 * needs them fails when state is NULL. */
typedef struct deco_draft_device_args {
  int n_trees;
  const int32_t *roots;           /* [B] */
  int32_t *tokens;                /* [B][n] */
  const int *seqs;                /* [B] host: the sequences' handles (as begun), or NULL */
  const deco_spec_state_t *state; /* [B] the step's state (len, root, done), or NULL */
  int steps;                      /* forward positions of the whole generation (with state) */
} deco_draft_device_args_t;

typedef struct deco_drafter_ops {
  const char *name;
  /* Checks the drafter against the model and sizes (allocates) what its
   * hooks need for the largest step: proto describes it (capacities, and
   * the step's buffers, whose workspace queries need real pointers); raises
   * *workspace_bytes to what its device hooks need. Nothing allocates later. */
  deco_status_t (*plan)(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                        size_t *workspace_bytes);
  /* A sequence starts: its ids so far, the last one the first root. */
  deco_status_t (*begin)(deco_drafter_t *d, deco_model_t *m, int seq, const int32_t *ids, int n_ids);
  /* Lets go of what the drafter holds for sequence seq (keep 0) or for
   * every sequence but seq (keep 1); NULL: it holds nothing per sequence. */
  void (*end)(deco_drafter_t *d, int seq, int keep);
  /* The most steps a run may take, from a size the caller set (0: no such
   * limit; NULL: none). */
  int (*max_steps)(const deco_drafter_t *d);
  /* Host drafting: a tree of at most max_nodes nodes rooted at the
   * sequence's last id (host arrays). */
  deco_status_t (*draft_host)(deco_drafter_t *d, int seq, int32_t *tokens, int32_t *parents, int *n_nodes);
  /* Device drafting (device-resident drafters): the tree of shape_parents. */
  deco_status_t (*draft_device)(deco_drafter_t *d, const deco_draft_device_args_t *a);
  /* After acceptance and compaction, on the device (capturable); NULL: nothing. */
  deco_status_t (*observe_device)(deco_drafter_t *d, const deco_draft_observation_t *o);
  /* The ids a step emitted for a sequence (accepted drafts, then the bonus);
   * NULL: nothing. */
  deco_status_t (*observe_host)(deco_drafter_t *d, int seq, const int32_t *emitted, int n);
  void (*destroy)(deco_drafter_t *d);
  /* How the tree draft_host last made for seq was drawn: *kind, and for a
   * kind other than DETERMINISTIC *q (context memory, [max_nodes][vocab]
   * f32: row i is the distribution node i's children were drawn from).
   * NULL: deterministic drafts. */
  deco_status_t (*draft_probs)(deco_drafter_t *d, int seq, deco_draft_kind_t *kind, const float **q);
  /* How draft_device draws its trees (device-resident drafters; fixed for
   * the drafter): *kind, and for a kind other than DETERMINISTIC *q
   * (context memory, [max_nodes][vocab] f32, row i the distribution node
   * i's children were drawn from, rewritten by every draft_device), once
   * the drafter is planned (DETERMINISTIC before). NULL: deterministic. */
  void (*device_probs)(const deco_drafter_t *d, deco_draft_kind_t *kind, const float **q);
} deco_drafter_ops_t;

struct deco_drafter {
  const deco_drafter_ops_t *ops;
  int max_nodes;                /* nodes per tree, root included */
  int device_resident;          /* draft_device and a fixed shape */
  const int32_t *shape_parents; /* [max_nodes] host: the fixed tree of a device-resident drafter */
  const char *host_only;        /* why a drafter that is not device-resident drafts on the host, or NULL */
  deco_ctx_t *ctx;              /* where its device state lives, or NULL (host-only drafter) */
};

/* The hooks as the pipeline calls them (NULL hooks do nothing). */
deco_status_t deco_drafter_plan(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                                size_t *workspace_bytes);
deco_status_t deco_drafter_draft_device(deco_drafter_t *d, const deco_draft_device_args_t *a);
deco_status_t deco_drafter_observe_device(deco_drafter_t *d, const deco_draft_observation_t *o);
deco_status_t deco_drafter_observe_host(deco_drafter_t *d, int seq, const int32_t *emitted, int n);
/* The drafter's max_steps hook (0 without one). */
int deco_drafter_max_steps(const deco_drafter_t *d);
/* deco_generate runs one sequence at a time: before it begins seq, the
 * drafter lets go of every other sequence it holds. */
void deco_drafter_keep_only(deco_drafter_t *d, int seq);
/* The failure of a device-resident run with a drafter that drafts on the
 * host (UNSUPPORTED, naming why when the drafter says). */
deco_status_t deco_drafter_refuse_device(const deco_drafter_t *d, deco_ctx_t *ctx, const char *op);
/* DETERMINISTIC and NULL for a NULL drafter or one without the hook. */
deco_status_t deco_drafter_draft_probs(deco_drafter_t *d, int seq, deco_draft_kind_t *kind, const float **q);
/* DETERMINISTIC and NULL for a NULL drafter or one without the hook. */
void deco_drafter_device_probs(const deco_drafter_t *d, deco_draft_kind_t *kind, const float **q);

#endif
