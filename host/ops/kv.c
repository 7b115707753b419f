/* host/ops/kv.c — public entry points of the paged KV cache's ops
 * (deco/kv.h): appending new tokens' K/V and compacting an accepted tree
 * path. Argument validation (host-side values; the ragged batch, path and
 * accept_len live in context memory and are checked by the kernels), then
 * dispatch. The cache-view and ragged-batch checks are shared with the
 * attention ops (dispatch.h).
 */
#include "ops/dispatch.h"

/* The cache's geometry: heads, head size, page size, pool size and the
 * block table's row length. */
static deco_status_t check_paged_kv_geometry(deco_ctx_t *ctx, const deco_paged_kv_t *c, const char *op) {
  DECO_CHECK_RANGE(ctx, c->n_kv_heads, 1, 4096, op);
  DECO_CHECK_RANGE(ctx, c->head_dim, 1, 256, op);
  DECO_CHECK_RANGE(ctx, c->page_size, 1, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, c->n_pages, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, c->max_pages_per_seq, 1, 1 << 30, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_check_paged_kv(deco_ctx_t *ctx, const deco_paged_kv_t *c, const char *op) {
  DECO_TRY(deco_check_dtype(ctx, c->dtype, op, "cache.dtype"));
  DECO_TRY(check_paged_kv_geometry(ctx, c, op));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(c->k_pages), DECO_PTR_ARG(c->v_pages), DECO_PTR_ARG(c->block_table)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_check_ragged(deco_ctx_t *ctx, const deco_ragged_batch_t *b, const char *op) {
  DECO_CHECK_RANGE(ctx, b->n_seqs, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, b->n_tokens, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_PTR(ctx, b->q_indptr, op);
  DECO_CHECK_PTR(ctx, b->kv_lens, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_append(deco_ctx_t *ctx, const deco_kv_append_args_t *a) {
  static const char op[] = "deco_kv_append";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_paged_kv(ctx, &a->cache, op));
  DECO_TRY(deco_check_ragged(ctx, &a->batch, op));
  DECO_CHECK_PTR(ctx, a->k, op);
  DECO_CHECK_PTR(ctx, a->v, op);
  DECO_TRY(deco_check_stride(ctx, a->kv_stride, (long long)a->cache.n_kv_heads * a->cache.head_dim, op, "kv_stride"));
  if (a->batch.n_tokens == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, kv_append, a);
}

/* The counts: layers (CUDA: one grid row per layer) and trees. */
static deco_status_t check_compact_counts(deco_ctx_t *ctx, const deco_kv_compact_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_layers, 1, 65535, op);
  DECO_CHECK_RANGE(ctx, a->n_trees, 1, 1 << 20, op);
  return DECO_STATUS_SUCCESS;
}

/* With more than one layer, layer_stride spans at least one layer's pool. */
static deco_status_t check_layer_stride(deco_ctx_t *ctx, const deco_kv_compact_args_t *a, const char *op) {
  const size_t pool = (size_t)a->cache.n_pages * a->cache.page_size * a->cache.n_kv_heads * a->cache.head_dim;
  if (a->n_layers > 1 && a->layer_stride < pool)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: layer_stride = %zu elements is smaller than one layer's pool (%zu elements)", op,
                     a->layer_stride, pool);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_compact(deco_ctx_t *ctx, const deco_kv_compact_args_t *a) {
  static const char op[] = "deco_kv_compact";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_paged_kv(ctx, &a->cache, op));
  DECO_TRY(check_compact_counts(ctx, a, op));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->prefix_lens), DECO_PTR_ARG(a->path), DECO_PTR_ARG(a->accept_len)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  DECO_TRY(check_layer_stride(ctx, a, op));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, kv_compact, a);
}
