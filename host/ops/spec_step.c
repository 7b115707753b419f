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
  DECO_CHECK_PTR(ctx, a->state, op);
  DECO_CHECK_PTR(ctx, a->depth, op);
  DECO_CHECK_PTR(ctx, a->tokens, op);
  DECO_CHECK_PTR(ctx, a->positions, op);
  DECO_CHECK_PTR(ctx, a->q_indptr, op);
  DECO_CHECK_PTR(ctx, a->kv_lens, op);
  DECO_CHECK_PTR(ctx, a->prefix_lens, op);
  DECO_CHECK_PTR(ctx, a->tree_indptr, op);
  DECO_CHECK_PTR(ctx, a->row_count, op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, spec_prepare, a);
}

deco_status_t deco_spec_commit(deco_ctx_t *ctx, const deco_spec_commit_args_t *a) {
  static const char op[] = "deco_spec_commit";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_nodes, 1, DECO_TREE_MAX_NODES, op);
  DECO_CHECK_RANGE(ctx, a->steps, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->out_capacity, 0, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->n_stop_ids, 0, DECO_SPEC_MAX_STOP_IDS, op);
  if (a->n_stop_ids > 0) DECO_CHECK_PTR(ctx, a->stop_ids, op);
  DECO_CHECK_PTR(ctx, a->state, op);
  DECO_CHECK_PTR(ctx, a->tokens, op);
  DECO_CHECK_PTR(ctx, a->path, op);
  DECO_CHECK_PTR(ctx, a->accept_len, op);
  DECO_CHECK_PTR(ctx, a->bonus, op);
  if (a->out_capacity > 0) DECO_CHECK_PTR(ctx, a->out, op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, spec_commit, a);
}

deco_status_t deco_draft_chain(deco_ctx_t *ctx, const deco_draft_chain_args_t *a) {
  static const char op[] = "deco_draft_chain";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->draft_len, 1, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(ctx, a->stage, DECO_DRAFT_CHAIN_OBSERVE, a->draft_len, op);
  DECO_CHECK_RANGE(ctx, a->steps, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, a->max_slots, 0, 1 << 30, op);
  DECO_CHECK_PTR(ctx, a->state, op);
  DECO_CHECK_PTR(ctx, a->chain, op);
  DECO_CHECK_PTR(ctx, a->prev, op);
  if (a->stage == DECO_DRAFT_CHAIN_OBSERVE) {
    DECO_CHECK_PTR(ctx, a->path, op);
    DECO_CHECK_PTR(ctx, a->accept_len, op);
  } else {
    DECO_CHECK_PTR(ctx, a->tokens, op);
    DECO_CHECK_PTR(ctx, a->positions, op);
    DECO_CHECK_PTR(ctx, a->q_indptr, op);
    DECO_CHECK_PTR(ctx, a->kv_lens, op);
    DECO_CHECK_PTR(ctx, a->prefix_lens, op);
  }
  if (!(a->temperature >= 0.0f) || isinf(a->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and >= 0", op,
                     (double)a->temperature);
  DECO_CHECK_RANGE(ctx, a->width, 0, DECO_TOPK_MAX_K, op);
  if (a->width > 1) {
    /* A top-w tree: its shape always, fparents at the start, topk at a level. */
    DECO_CHECK_RANGE(ctx, a->n_nodes, 2, DECO_TREE_MAX_NODES - 1, op);
    DECO_CHECK_PTR(ctx, a->shape, op);
    if (a->stage == DECO_DRAFT_CHAIN_START) DECO_CHECK_PTR(ctx, a->fparents, op);
    if (a->stage >= 1) DECO_CHECK_PTR(ctx, a->topk, op);
  } else if (a->stage >= 1) {
    DECO_CHECK_RANGE(ctx, a->vocab, 1, DECO_MAX_VOCAB, op);
    DECO_CHECK_PTR(ctx, a->logits, op);
    if (a->temperature > 0.0f) DECO_CHECK_PTR(ctx, a->q, op);
  }
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, draft_chain, a);
}
