/* host/ops/recycle.c — public entry points of Token Recycling's ops (draft
 * from the adjacency matrix, matrix update; the per-row top-k between them
 * is host/ops/select.c): validation of the host-side values (the arrays
 * live in context memory and are checked by the references), workspace
 * sizes, then dispatch.
 */
#include "ops/dispatch.h"

static deco_status_t check_table(deco_ctx_t *ctx, const void *table, int vocab, int k, const char *op) {
  DECO_CHECK_PTR(ctx, table, op);
  DECO_CHECK_RANGE(ctx, vocab, 1, DECO_MAX_VOCAB, op);
  DECO_CHECK_RANGE(ctx, k, 1, DECO_RECYCLE_MAX_K, op);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_draft(deco_ctx_t *ctx, const deco_recycle_draft_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_trees, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, a->n_nodes, 1, DECO_TREE_MAX_NODES, op);
  DECO_CHECK_PTR(ctx, a->roots, op);
  DECO_CHECK_PTR(ctx, a->parent, op);
  DECO_CHECK_PTR(ctx, a->rank, op);
  DECO_CHECK_PTR(ctx, a->tokens, op);
  return check_table(ctx, a->table, a->vocab, a->k, op);
}

deco_status_t deco_recycle_draft(deco_ctx_t *ctx, const deco_recycle_draft_args_t *a) {
  DECO_TRY(check_draft(ctx, a, "deco_recycle_draft"));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, recycle_draft, a);
}

static deco_status_t check_update(deco_ctx_t *ctx, const deco_recycle_update_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_trees, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, a->n_nodes, 1, DECO_MAX_TOKENS, op);
  DECO_CHECK_PTR(ctx, a->tree_indptr, op);
  DECO_CHECK_PTR(ctx, a->tokens, op);
  DECO_CHECK_PTR(ctx, a->topk, op);
  return check_table(ctx, a->table, a->vocab, a->k, op);
}

DECO_DEFINE_WORKSPACE_SIZE(recycle_update, check_update)

deco_status_t deco_recycle_update(deco_ctx_t *ctx, const deco_recycle_update_args_t *a) {
  DECO_TRY(check_update(ctx, a, "deco_recycle_update"));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, recycle_update, a);
}
