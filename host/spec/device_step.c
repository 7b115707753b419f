/* host/spec/device_step.c — the device-resident step (device_step.h): one
 * block of context memory holds the state and every array of the step,
 * carved by one layout and uploaded once; the step itself is a fixed
 * sequence of enqueued ops (draft, prepare, tree forward, verification,
 * commit) that reads its sizes from that block, so it can be captured.
 */
#include <stdlib.h>
#include <string.h>

#include "model/model_access.h"
#include "spec/device_step.h"
#include "spec/verify.h"
#include "util/arena.h"

/* The step's block (context memory; a host image of the same layout). */
typedef struct step_block {
  deco_spec_state_t *state; /* [1] */
  int32_t *tokens;          /* [n] the tree's tokens */
  int32_t *parents;         /* [n] its shape */
  int32_t *depth;           /* [n] */
  int32_t *positions;       /* [n] */
  int32_t *q_indptr;        /* [2] */
  int32_t *kv_lens;         /* [1] */
  int32_t *prefix;          /* [1] */
  int32_t *tree_indptr;     /* [2] */
  int32_t *row_count;       /* [1] */
  int32_t *path;            /* [DECO_TREE_MAX_NODES] */
  int32_t *accept_len;      /* [1] */
  int32_t *bonus;           /* [1] */
  int32_t *nonfinite;       /* [1] */
  uint64_t *seed;           /* [1] */
  int32_t *table;           /* [P] the sequence's block-table row */
  int32_t *stop_ids;        /* [n_stop_ids] */
  int32_t *out;             /* [out_cap] emitted ids */
} step_block_t;

struct deco_device_step {
  deco_device_step_config_t c;
  int n, P, out_cap;        /* tree nodes, block-table row, output capacity */
  void *block;
  step_block_t dev;
  void *image;
  step_block_t host;
  size_t block_bytes;
  float *logits;            /* [n][vocab] */
};

static void block_layout(deco_arena_t *a, step_block_t *b, int n, int P, int n_stop, int out_cap) {
  const size_t w = sizeof(int32_t);
  b->state = deco_arena_take(a, 1, sizeof(deco_spec_state_t), w);
  b->tokens = deco_arena_take(a, (size_t)n, w, w);
  b->parents = deco_arena_take(a, (size_t)n, w, w);
  b->depth = deco_arena_take(a, (size_t)n, w, w);
  b->positions = deco_arena_take(a, (size_t)n, w, w);
  b->q_indptr = deco_arena_take(a, 2, w, w);
  b->kv_lens = deco_arena_take(a, 1, w, w);
  b->prefix = deco_arena_take(a, 1, w, w);
  b->tree_indptr = deco_arena_take(a, 2, w, w);
  b->row_count = deco_arena_take(a, 1, w, w);
  b->path = deco_arena_take(a, DECO_TREE_MAX_NODES, w, w);
  b->accept_len = deco_arena_take(a, 1, w, w);
  b->bonus = deco_arena_take(a, 1, w, w);
  b->nonfinite = deco_arena_take(a, 1, w, w);
  b->seed = deco_arena_take(a, 1, sizeof(uint64_t), sizeof(uint64_t));
  b->table = deco_arena_take(a, (size_t)P, w, w);
  b->stop_ids = deco_arena_take(a, (size_t)n_stop, w, w);
  b->out = deco_arena_take(a, (size_t)out_cap, w, w);
}

/* The verification of the step's tree (also what the plan sizes): with
 * the drafter's kind and q when it samples its drafts (the chain rule). */
static deco_verify_args_t verify_args(const deco_device_step_t *d) {
  const step_block_t *b = &d->dev;
  deco_draft_kind_t kind;
  const float *q;
  deco_drafter_device_probs(d->c.drafter, &kind, &q);
  return (deco_verify_args_t){.n_trees = 1,
                              .n_nodes = d->n,
                              .tree_indptr = b->tree_indptr,
                              .parents = b->parents,
                              .tokens = b->tokens,
                              .row_count = b->row_count,
                              .logits = d->logits,
                              .temperature = d->c.temperature,
                              .top_k = d->c.top_k,
                              .top_p = d->c.top_p,
                              .seed = b->seed,
                              .offset = &b->state->offset,
                              .draft_kind = kind,
                              .draft_probs = q,
                              .prefix_lens = b->prefix,
                              .block_table = b->table,
                              .out = {.path = b->path,
                                      .accept_len = b->accept_len,
                                      .bonus = b->bonus,
                                      .nonfinite = b->nonfinite}};
}

/* Every buffer of a step and of the prefill, before anything runs. */
static deco_status_t plan(deco_device_step_t *d) {
  deco_model_t *m = d->c.model;
  if (d->c.max_prefill > 0) {
    deco_forward_plan_t prefill = {.max_tokens = d->c.max_prefill, .max_seqs = 1, .causal = 1, .tree = 0};
    DECO_TRY(deco_model_plan(m, d->c.cache, &prefill, NULL));
  }
  deco_forward_plan_t fp = {.max_tokens = d->n, .max_seqs = 1, .causal = 0, .tree = 1, .workspace_bytes = 0};
  const deco_verify_args_t va = verify_args(d);
  DECO_TRY(deco_verify_plan(m, d->c.drafter, &va, &fp.workspace_bytes));
  return deco_model_plan(m, d->c.cache, &fp, NULL);
}

/* The tree's shape (the drafter's, or the root alone) and its depths,
 * which must not decrease: prepare clips a suffix of the nodes. */
static deco_status_t fill_shape(deco_device_step_t *d) {
  static const char op[] = "deco_generate";
  deco_ctx_t *ctx = deco_model_ctx(d->c.model);
  static const int32_t root_only = -1;
  const int32_t *parents = d->c.drafter ? d->c.drafter->shape_parents : &root_only;
  memcpy(d->host.parents, parents, sizeof(int32_t) * (size_t)d->n);
  if (deco_tree_depths(parents, d->n, d->host.depth) != DECO_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the tree: %s", op, deco_last_error(NULL));
  for (int j = 1; j < d->n; ++j)
    if (d->host.depth[j] < d->host.depth[j - 1])
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the template is not breadth first (node %d)", op, j);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_device_step_create(const deco_device_step_config_t *c, deco_device_step_t **out) {
  static const char op[] = "deco_generate";
  deco_ctx_t *ctx = deco_model_ctx(c->model);
  *out = NULL;
  if (c->drafter && !deco_drafter_device_resident(c->drafter)) return deco_drafter_refuse_device(c->drafter, ctx, op);
  deco_device_step_t *d = calloc(1, sizeof *d);
  if (!d) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", op);
  d->c = *c;
  d->n = deco_drafter_max_nodes(c->drafter);
  d->P = deco_kv_cache_max_pages(c->cache);
  d->out_cap = c->steps + 1;
  deco_arena_t a = DECO_ARENA_SIZING;
  block_layout(&a, &d->dev, d->n, d->P, c->n_stop_ids, d->out_cap);
  d->block_bytes = a.bytes;
  d->image = calloc(1, d->block_bytes);
  deco_status_t st = d->image ? DECO_STATUS_SUCCESS : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", op);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &d->block, d->block_bytes);
  if (st == DECO_STATUS_SUCCESS) {
    a = deco_arena_at(d->block);
    block_layout(&a, &d->dev, d->n, d->P, c->n_stop_ids, d->out_cap);
    a = deco_arena_at(d->image);
    block_layout(&a, &d->host, d->n, d->P, c->n_stop_ids, d->out_cap);
    st = fill_shape(d);
  }
  if (st == DECO_STATUS_SUCCESS) {
    *d->host.seed = c->seed;
    if (c->n_stop_ids > 0) memcpy(d->host.stop_ids, c->stop_ids, sizeof(int32_t) * (size_t)c->n_stop_ids);
    d->c.stop_ids = d->dev.stop_ids;
    st = deco_memcpy(ctx, d->block, d->image, d->block_bytes, DECO_COPY_HOST_TO_CTX);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_block_table(c->cache, &c->seq, 1, d->dev.table);
  if (st == DECO_STATUS_SUCCESS)
    st = deco_malloc(ctx, (void **)&d->logits,
                     sizeof(float) * (size_t)d->n * deco_model_get_hparams(c->model)->vocab_size);
  if (st == DECO_STATUS_SUCCESS) st = plan(d);
  if (st != DECO_STATUS_SUCCESS) {
    deco_device_step_destroy(d);
    return st;
  }
  *out = d;
  return DECO_STATUS_SUCCESS;
}

void deco_device_step_destroy(deco_device_step_t *d) {
  if (!d) return;
  deco_ctx_t *ctx = deco_model_ctx(d->c.model);
  deco_free(ctx, d->logits);
  deco_free(ctx, d->block);
  free(d->image);
  free(d);
}

deco_status_t deco_device_step_start(deco_device_step_t *d, int len, int32_t root) {
  const deco_spec_state_t s0 = {
      .len = len, .root = root, .done = len >= d->c.steps, .offset = (uint32_t)len, .n_out = 0, .tokens = 0};
  *d->host.state = s0;
  return deco_memcpy(deco_model_ctx(d->c.model), d->dev.state, d->host.state, sizeof s0, DECO_COPY_HOST_TO_CTX);
}

deco_status_t deco_device_step_enqueue(deco_device_step_t *d) {
  deco_model_t *m = d->c.model;
  deco_ctx_t *ctx = deco_model_ctx(m);
  const step_block_t *b = &d->dev;
  deco_spec_state_t *state = b->state;
  if (d->c.drafter) {
    const deco_draft_device_args_t da = {.n_trees = 1, .roots = &state->root, .tokens = b->tokens,
                                         .seqs = &d->c.seq, .state = state, .steps = d->c.steps};
    DECO_TRY(deco_drafter_draft_device(d->c.drafter, &da));
  }
  const deco_spec_prepare_args_t pa = {.state = state,
                                       .n_nodes = d->n,
                                       .depth = b->depth,
                                       .steps = d->c.steps,
                                       .tokens = b->tokens,
                                       .positions = b->positions,
                                       .q_indptr = b->q_indptr,
                                       .kv_lens = b->kv_lens,
                                       .prefix_lens = b->prefix,
                                       .tree_indptr = b->tree_indptr,
                                       .row_count = b->row_count};
  DECO_TRY(deco_spec_prepare(ctx, &pa));
  const deco_forward_device_args_t fa = {.n_seqs = 1,
                                         .n_tokens = d->n,
                                         .tokens = b->tokens,
                                         .positions = b->positions,
                                         .q_indptr = b->q_indptr,
                                         .kv_lens = b->kv_lens,
                                         .prefix_lens = b->prefix,
                                         .parents = b->parents,
                                         .block_table = b->table,
                                         .logits = d->logits,
                                         .embeds = NULL,
                                         .schedule = NULL};
  DECO_TRY(deco_forward_device(m, d->c.cache, &fa));
  const deco_verify_args_t va = verify_args(d);
  DECO_TRY(deco_verify_enqueue(m, d->c.cache, d->c.drafter, &va));
  const deco_spec_commit_args_t co = {.state = state,
                                      .tokens = b->tokens,
                                      .n_nodes = d->n,
                                      .path = va.out.path,
                                      .accept_len = va.out.accept_len,
                                      .bonus = va.out.bonus,
                                      .steps = d->c.steps,
                                      .stop_ids = d->c.stop_ids,
                                      .n_stop_ids = d->c.n_stop_ids,
                                      .out = b->out,
                                      .out_capacity = d->out_cap,
                                      .nonfinite = va.out.nonfinite};
  return deco_spec_commit(ctx, &co);
}

deco_status_t deco_device_step_state(deco_device_step_t *d, deco_spec_state_t *s) {
  return deco_memcpy(deco_model_ctx(d->c.model), s, d->dev.state, sizeof *s, DECO_COPY_CTX_TO_HOST);
}

deco_status_t deco_device_step_finish(deco_device_step_t *d, const int32_t **ids, int *n_ids) {
  static const char op[] = "deco_generate";
  deco_ctx_t *ctx = deco_model_ctx(d->c.model);
  deco_spec_state_t s;
  DECO_TRY(deco_device_step_state(d, &s));
  if (s.error) return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: a step's verification output was malformed", op);
  if (s.nonfinite) {
    const int node = s.nonfinite - 1;
    return node < d->n ? DECO_FAIL(ctx, DECO_STATUS_NON_FINITE, "%s: the model gave non-finite logits at position %d",
                                   op, s.len + d->host.depth[node])
                       : DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: non-finite flag %d outside the tree", op,
                                   s.nonfinite);
  }
  if (s.n_out < 0 || s.n_out > d->out_cap)
    return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: %d ids emitted, at most %d", op, s.n_out, d->out_cap);
  if (s.n_out > 0)
    DECO_TRY(deco_memcpy(ctx, d->host.out, d->dev.out, sizeof(int32_t) * (size_t)s.n_out, DECO_COPY_CTX_TO_HOST));
  *ids = d->host.out;
  *n_ids = s.n_out;
  /* The host's view of the sequence catches up with the device's. */
  return deco_kv_cache_commit(d->c.cache, d->c.seq, s.len - deco_kv_cache_seq_len(d->c.cache, d->c.seq));
}
