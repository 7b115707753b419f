/* host/ops/attention.c — public entry points of the paged-KV ops: argument
 * validation (host-side values only: device arrays are checked by the
 * kernels, which skip or poison what is out of range), then dispatch.
 */
#include <math.h>

#include "ops/dispatch.h"

deco_status_t deco_check_paged_kv(deco_ctx_t *ctx, const deco_paged_kv_t *c, const char *op) {
  DECO_TRY(deco_check_dtype(ctx, c->dtype, op, "cache.dtype"));
  DECO_CHECK_RANGE(ctx, c->n_kv_heads, 1, 4096, op);
  DECO_CHECK_RANGE(ctx, c->head_dim, 1, 256, op);
  DECO_CHECK_RANGE(ctx, c->page_size, 1, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, c->n_pages, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, c->max_pages_per_seq, 1, 1 << 30, op);
  DECO_CHECK_PTR(ctx, c->k_pages, op);
  DECO_CHECK_PTR(ctx, c->v_pages, op);
  DECO_CHECK_PTR(ctx, c->block_table, op);
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
  return DECO_DISPATCH(ctx, kv_append, a);
}

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
  return DECO_DISPATCH(ctx, attention, a);
}
