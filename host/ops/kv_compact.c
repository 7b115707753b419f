/* host/ops/kv_compact.c — public entry point of KV compaction after tree
 * acceptance: argument validation (host-side values; path and accept_len
 * live in context memory), then dispatch.
 */
#include "ops/dispatch.h"

deco_status_t deco_kv_compact(deco_ctx_t *ctx, const deco_kv_compact_args_t *a) {
  static const char op[] = "deco_kv_compact";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_paged_kv(ctx, &a->cache, op));
  DECO_CHECK_RANGE(ctx, a->n_layers, 1, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, a->n_trees, 1, 1 << 20, op);
  DECO_CHECK_PTR(ctx, a->prefix_lens, op);
  DECO_CHECK_PTR(ctx, a->path, op);
  DECO_CHECK_PTR(ctx, a->accept_len, op);
  const size_t pool = (size_t)a->cache.n_pages * a->cache.page_size * a->cache.n_kv_heads * a->cache.head_dim;
  if (a->n_layers > 1 && a->layer_stride < pool)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: layer_stride = %zu elements is smaller than one layer's pool (%zu elements)", op,
                     a->layer_stride, pool);
  return DECO_DISPATCH(ctx, kv_compact, a);
}
