/* host/ops/attention.c — public entry point of causal attention over the
 * paged KV cache (deco/attention.h): argument validation (host-side values
 * only: device arrays are checked by the kernels, which skip or poison what
 * is out of range), the workspace size, the path name, then dispatch. The
 * checks shared with tree attention live here too.
 */
#include <math.h>

#include "ops/dispatch.h"

deco_status_t deco_check_attention_common(deco_ctx_t *ctx, const deco_paged_kv_t *cache, int n_heads, float scale,
                                          const void *q, int q_stride, const void *out, const char *op) {
  DECO_TRY(deco_check_paged_kv(ctx, cache, op));
  DECO_CHECK_RANGE(ctx, cache->head_dim, 8, 256, op);
  DECO_CHECK_RANGE(ctx, n_heads, 1, 4096, op);
  if (n_heads % cache->n_kv_heads)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_heads = %d is not a multiple of n_kv_heads = %d", op,
                     n_heads, cache->n_kv_heads);
  if (!isfinite(scale) || scale <= 0.0f)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: scale = %g must be finite and > 0", op, (double)scale);
  DECO_CHECK_PTR(ctx, q, op);
  DECO_CHECK_PTR(ctx, out, op);
  return deco_check_stride(ctx, q_stride, (long long)n_heads * cache->head_dim, op, "q_stride");
}

static deco_status_t check_attention(deco_ctx_t *ctx, const deco_attention_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_attention_common(ctx, &a->cache, a->n_heads, a->scale, a->q, a->q_stride, a->out, op));
  return deco_check_ragged(ctx, &a->batch, op);
}

DECO_DEFINE_WORKSPACE_SIZE(attention, check_attention)

DECO_DEFINE_PATH(attention, check_attention, a->batch.n_tokens == 0)

deco_status_t deco_attention(deco_ctx_t *ctx, const deco_attention_args_t *a) {
  static const char op[] = "deco_attention";
  DECO_TRY(check_attention(ctx, a, op));
  if (a->batch.n_tokens == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, attention, a);
}
