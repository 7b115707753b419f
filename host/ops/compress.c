/* host/ops/compress.c — public entry point of the calibration op of KV-head
 * compression (deco/compress.h): argument validation, then dispatch.
 */
#include "ops/dispatch.h"

/* The layout of the rows: sizes, an even head_dim, a group that divides
 * the KV heads, and a RoPE pairing. */
static deco_status_t check_gram_layout(deco_ctx_t *ctx, const deco_kv_gram_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_rows, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->n_kv_heads, 1, 4096, op);
  DECO_CHECK_RANGE(ctx, a->head_dim, 2, 256, op);
  DECO_CHECK_RANGE(ctx, a->group, 1, a->n_kv_heads, op);
  if (a->head_dim % 2 != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: head_dim = %d must be even", op, a->head_dim);
  if (a->n_kv_heads % a->group != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: group = %d does not divide n_kv_heads = %d", op,
                     a->group, a->n_kv_heads);
  if (a->style != DECO_ROPE_INTERLEAVED && a->style != DECO_ROPE_HALF_SPLIT)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: style = %d is not a RoPE pairing", op, (int)a->style);
  return DECO_STATUS_SUCCESS;
}

/* k, v or both, and the gram each one given adds to. */
static deco_status_t check_gram_inputs(deco_ctx_t *ctx, const deco_kv_gram_args_t *a, const char *op) {
  if (a->k == NULL && a->v == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: k and v are both NULL", op);
  if (a->k) DECO_CHECK_PTR(ctx, a->k_gram, op);
  if (a->v) DECO_CHECK_PTR(ctx, a->v_gram, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_gram(deco_ctx_t *ctx, const deco_kv_gram_args_t *a) {
  static const char op[] = "deco_kv_gram";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  DECO_TRY(check_gram_layout(ctx, a, op));
  DECO_TRY(check_gram_inputs(ctx, a, op));
  if (a->n_rows == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, kv_gram, a);
}
