/* host/spec/verify.c — the verification pipeline (verify.h): acceptance,
 * compaction, the drafter's observation, one sequence of ops for the host
 * engine and the device-resident step alike.
 */
#include "spec/verify.h"

#include "model/model_access.h"

static deco_tree_accept_greedy_args_t greedy_args(const deco_verify_args_t *a, int vocab) {
  return (deco_tree_accept_greedy_args_t){
      .tree = {.n_trees = a->n_trees, .n_nodes = a->n_nodes, .tree_indptr = a->tree_indptr, .parent = a->parents},
      .tokens = a->tokens,
      .logits_dtype = DECO_DTYPE_F32,
      .logits = a->logits,
      .vocab = vocab,
      .out = a->out};
}

/* temperature > 0; the workspace query of a greedy step asks with 1. */
static deco_tree_accept_sample_args_t sample_args(const deco_verify_args_t *a, int vocab, float temperature) {
  return (deco_tree_accept_sample_args_t){
      .tree = {.n_trees = a->n_trees, .n_nodes = a->n_nodes, .tree_indptr = a->tree_indptr, .parent = a->parents},
      .tokens = a->tokens,
      .logits_dtype = DECO_DTYPE_F32,
      .logits = a->logits,
      .vocab = vocab,
      .temperature = temperature,
      .top_k = a->top_k,
      .top_p = a->top_p,
      .draft_kind = a->draft_kind,
      .draft_probs = a->draft_probs,
      .seed = a->seed,
      .offset = a->offset,
      .out = a->out};
}

static deco_draft_observation_t observation(const deco_verify_args_t *a, int vocab) {
  return (deco_draft_observation_t){.n_trees = a->n_trees,
                                    .n_nodes = a->n_nodes,
                                    .tree_indptr = a->tree_indptr,
                                    .tokens = a->tokens,
                                    .row_count = a->row_count,
                                    .logits = a->logits,
                                    .vocab = vocab,
                                    .verdict = a->out};
}

/* The workspace of one shape of step (both acceptance rules: the engine's
 * temperature may change from step to step; the drafter's observation). */
static deco_status_t plan_shape(deco_model_t *m, deco_drafter_t *drafter, const deco_verify_args_t *a, size_t *ws) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int V = deco_model_get_hparams(m)->vocab_size;
  const deco_tree_accept_greedy_args_t ga = greedy_args(a, V);
  const deco_tree_accept_sample_args_t sa = sample_args(a, V, a->temperature > 0.0f ? a->temperature : 1.0f);
  const size_t g = deco_tree_accept_greedy_workspace_size(ctx, &ga);
  const size_t s = deco_tree_accept_sample_workspace_size(ctx, &sa);
  if (g > *ws) *ws = g;
  if (s > *ws) *ws = s;
  if (drafter) {
    const deco_draft_observation_t o = observation(a, V);
    DECO_TRY(deco_drafter_plan(drafter, m, &o, ws));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_verify_plan(deco_model_t *m, deco_drafter_t *drafter, const deco_verify_args_t *a,
                               size_t *workspace_bytes) {
  /* The largest step first (the drafter sizes its buffers for it), then
   * every smaller one: the ops' workspace need not shrink with the step. */
  size_t ws = *workspace_bytes;
  DECO_TRY(plan_shape(m, drafter, a, &ws));
  deco_verify_args_t b = *a;
  for (b.n_trees = 1; b.n_trees <= a->n_trees; b.n_trees += b.n_trees < 64 ? 1 : b.n_trees / 16)
    for (b.n_nodes = b.n_trees; b.n_nodes <= a->n_nodes; b.n_nodes += b.n_nodes < 4096 ? 1 : b.n_nodes / 64)
      DECO_TRY(plan_shape(m, drafter, &b, &ws));
  *workspace_bytes = ws;
  return DECO_STATUS_SUCCESS;
}

/* Tree acceptance of the verified batch: greedy at temperature 0, else
 * sampled; each with its workspace ensured first. */
static deco_status_t accept_trees(deco_model_t *m, const deco_verify_args_t *a, int V) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  if (a->temperature == 0.0f) {
    const deco_tree_accept_greedy_args_t ga = greedy_args(a, V);
    DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_greedy_workspace_size(ctx, &ga)));
    return deco_tree_accept_greedy(ctx, &ga);
  }
  const deco_tree_accept_sample_args_t sa = sample_args(a, V, a->temperature);
  DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_sample_workspace_size(ctx, &sa)));
  return deco_tree_accept_sample(ctx, &sa);
}

deco_status_t deco_verify_enqueue(deco_model_t *m, deco_kv_cache_t *kc, deco_drafter_t *drafter,
                                  const deco_verify_args_t *a) {
  const int V = deco_model_get_hparams(m)->vocab_size;
  DECO_TRY(accept_trees(m, a, V));
  /* Compaction of the accepted paths, all layers in one launch. */
  const deco_kv_cache_compact_args_t ca = {.n_seqs = a->n_trees,
                                           .block_table = a->block_table,
                                           .prefix_lens = a->prefix_lens,
                                           .path = a->out.path,
                                           .accept_len = a->out.accept_len};
  DECO_TRY(deco_kv_cache_compact(kc, &ca));
  if (drafter) {
    const deco_draft_observation_t o = observation(a, V);
    DECO_TRY(deco_drafter_observe_device(drafter, &o));
  }
  return DECO_STATUS_SUCCESS;
}
