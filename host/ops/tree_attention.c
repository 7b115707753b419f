/* host/ops/tree_attention.c — public entry points of tree attention:
 * validation of the host-side values (device arrays — tree_indptr, parent,
 * prefix_lens, the block table — are checked by the kernels, which skip or
 * poison what is out of range), the workspace size, the path name, and
 * dispatch to the reference or the CUDA kernels.
 */
#include "ops/dispatch.h"

/* The tree batch's counts: trees, and nodes that fit in them. */
static deco_status_t check_tree_counts(deco_ctx_t *ctx, const deco_tree_batch_t *t, const char *op) {
  DECO_CHECK_RANGE(ctx, t->n_trees, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, t->n_nodes, 0, DECO_MAX_TOKENS, op);
  if ((long long)t->n_nodes > (long long)DECO_TREE_MAX_NODES * t->n_trees)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: tree.n_nodes = %d exceeds %d trees of at most %d nodes", op, t->n_nodes, t->n_trees,
                     DECO_TREE_MAX_NODES);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_tree_attention(deco_ctx_t *ctx, const deco_tree_attention_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_attention_common(ctx, &a->cache, a->n_heads, a->scale, a->q, a->q_stride, a->out, op));
  const deco_tree_batch_t *t = &a->tree;
  DECO_TRY(check_tree_counts(ctx, t, op));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(t->tree_indptr), DECO_PTR_ARG(t->parent),
                                   DECO_PTR_ARG(a->prefix_lens)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  return DECO_STATUS_SUCCESS;
}

size_t deco_tree_attention_workspace_size(deco_ctx_t *ctx, const deco_tree_attention_args_t *a) {
  if (ctx == NULL || a == NULL || ctx->backend != DECO_BACKEND_CUDA) return 0;
#ifdef DECO_HAVE_CUDA
  if (check_tree_attention(ctx, a, "deco_tree_attention_workspace_size") != DECO_STATUS_SUCCESS) return 0;
  if (a->tree.n_nodes == 0) return 0;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return deco_tree_attention_workspace_size_cuda(&exec, a);
#else
  return 0;
#endif
}

DECO_DEFINE_PATH(tree_attention, check_tree_attention, a->tree.n_nodes == 0)

deco_status_t deco_tree_attention(deco_ctx_t *ctx, const deco_tree_attention_args_t *a) {
  static const char op[] = "deco_tree_attention";
  DECO_TRY(check_tree_attention(ctx, a, op));
  if (a->tree.n_nodes == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, tree_attention, a);
}
