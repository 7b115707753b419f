/* host/ops/spec_step.c — entry points of the device-resident step's
 * bookkeeping ops and of its model-drafted chains: argument checks on host
 * values, then dispatch. */
#include <math.h>

#include "deco/select.h"
#include "ops/dispatch.h"

deco_status_t deco_spec_prepare(deco_ctx_t *ctx, const deco_spec_prepare_args_t *a) {
  static const char op[] = "deco_spec_prepare";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_nodes, 1, DECO_TREE_MAX_NODES, op);
  DECO_CHECK_RANGE(ctx, a->steps, 1, 1 << 30, op);
  /* What it reads (the state, the depths), the forward's batch and the tree
   * that acceptance and the update see. */
  const deco_ptr_arg_t arrays[] = {
      DECO_PTR_ARG(a->state), DECO_PTR_ARG(a->depth),
      DECO_PTR_ARG(a->tokens), DECO_PTR_ARG(a->positions), DECO_PTR_ARG(a->q_indptr),
      DECO_PTR_ARG(a->kv_lens), DECO_PTR_ARG(a->prefix_lens),
      DECO_PTR_ARG(a->tree_indptr), DECO_PTR_ARG(a->row_count)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, spec_prepare, a);
}

/* The ctx and the sizes: the tree, the run's length, the output's capacity
 * and the stop ids (their array only when there are some). */
static deco_status_t check_commit_sizes(deco_ctx_t *ctx, const deco_spec_commit_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_nodes, 1, DECO_TREE_MAX_NODES, op);
  DECO_CHECK_RANGE(ctx, a->steps, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->out_capacity, 0, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->n_stop_ids, 0, DECO_SPEC_MAX_STOP_IDS, op);
  if (a->n_stop_ids > 0) DECO_CHECK_PTR(ctx, a->stop_ids, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_spec_commit(deco_ctx_t *ctx, const deco_spec_commit_args_t *a) {
  static const char op[] = "deco_spec_commit";
  DECO_TRY(check_commit_sizes(ctx, a, op));
  /* The step state, its tree, acceptance's result; the output when it has room. */
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->state), DECO_PTR_ARG(a->tokens), DECO_PTR_ARG(a->path),
                                   DECO_PTR_ARG(a->accept_len), DECO_PTR_ARG(a->bonus)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (a->out_capacity > 0) DECO_CHECK_PTR(ctx, a->out, op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, spec_commit, a);
}

/* The ctx, the chain's length K, the stage (observe, start or a level
 * 1..K), the run's length and the draft cache's reservation. */
static deco_status_t check_chain_sizes(deco_ctx_t *ctx, const deco_draft_chain_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->draft_len, 1, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(ctx, a->stage, DECO_DRAFT_CHAIN_OBSERVE, a->draft_len, op);
  DECO_CHECK_RANGE(ctx, a->steps, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->max_slots, 0, 1 << 30, op);
  return DECO_STATUS_SUCCESS;
}

/* The state and the chain, then what the stage reads or writes:
 * acceptance's path when observing, the draft forward's batch otherwise. */
static deco_status_t check_chain_stage_arrays(deco_ctx_t *ctx, const deco_draft_chain_args_t *a, const char *op) {
  const deco_ptr_arg_t chain[] = {DECO_PTR_ARG(a->state), DECO_PTR_ARG(a->chain), DECO_PTR_ARG(a->prev)};
  DECO_CHECK_PTR_ARGS(ctx, chain, op);
  if (a->stage == DECO_DRAFT_CHAIN_OBSERVE) {
    const deco_ptr_arg_t observe[] = {DECO_PTR_ARG(a->path), DECO_PTR_ARG(a->accept_len)};
    DECO_CHECK_PTR_ARGS(ctx, observe, op);
    return DECO_STATUS_SUCCESS;
  }
  const deco_ptr_arg_t batch[] = {DECO_PTR_ARG(a->tokens), DECO_PTR_ARG(a->positions), DECO_PTR_ARG(a->q_indptr),
                                  DECO_PTR_ARG(a->kv_lens), DECO_PTR_ARG(a->prefix_lens)};
  DECO_CHECK_PTR_ARGS(ctx, batch, op);
  return DECO_STATUS_SUCCESS;
}

/* A top-w tree: its shape always, fparents at the start, topk at a level. */
static deco_status_t check_chain_tree(deco_ctx_t *ctx, const deco_draft_chain_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_nodes, 2, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_PTR(ctx, a->shape, op);
  if (a->stage == DECO_DRAFT_CHAIN_START) DECO_CHECK_PTR(ctx, a->fparents, op);
  if (a->stage >= 1) DECO_CHECK_PTR(ctx, a->topk, op);
  return DECO_STATUS_SUCCESS;
}

/* A chain's level: the draft's logits, and q when it draws (T > 0). */
static deco_status_t check_chain_level(deco_ctx_t *ctx, const deco_draft_chain_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->vocab, 1, DECO_MAX_VOCAB, op);
  DECO_CHECK_PTR(ctx, a->logits, op);
  if (a->temperature > 0.0f) DECO_CHECK_PTR(ctx, a->q, op);
  return DECO_STATUS_SUCCESS;
}

/* The temperature, then the width: a top-w tree (W > 1) or a chain. */
static deco_status_t check_chain_mode(deco_ctx_t *ctx, const deco_draft_chain_args_t *a, const char *op) {
  if (!(a->temperature >= 0.0f) || isinf(a->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and >= 0", op,
                     (double)a->temperature);
  DECO_CHECK_RANGE(ctx, a->width, 0, DECO_TOPK_MAX_K, op);
  if (a->width > 1) return check_chain_tree(ctx, a, op);
  if (a->stage >= 1) return check_chain_level(ctx, a, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_draft_chain(deco_ctx_t *ctx, const deco_draft_chain_args_t *a) {
  static const char op[] = "deco_draft_chain";
  DECO_TRY(check_chain_sizes(ctx, a, op));
  DECO_TRY(check_chain_stage_arrays(ctx, a, op));
  DECO_TRY(check_chain_mode(ctx, a, op));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, draft_chain, a);
}
