/* host/ops/select.c — public entry point of the per-row top-k
 * (deco/select.h): validation of the host-side values (the row count lives
 * in context memory), the workspace size, then dispatch.
 */
#include "ops/dispatch.h"

/* The rows' shape: a row count, a vocabulary, and k in [1,
 * DECO_TOPK_MAX_K] within the vocabulary. */
static deco_status_t check_topk_shape(deco_ctx_t *ctx, const deco_topk_rows_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_rows, 1, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->vocab, 1, DECO_MAX_VOCAB, op);
  DECO_CHECK_RANGE(ctx, a->k, 1, DECO_TOPK_MAX_K, op);
  if (a->k > a->vocab)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: k = %d exceeds vocab = %d", op, a->k, a->vocab);
  return DECO_STATUS_SUCCESS;
}

/* The logits' dtype: f32 or bf16, and one the backend runs. */
static deco_status_t check_topk_dtype(deco_ctx_t *ctx, const deco_topk_rows_args_t *a, const char *op) {
  if (a->dtype != DECO_DTYPE_F32 && a->dtype != DECO_DTYPE_BF16)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: dtype %s is not supported (f32 or bf16)", op,
                     deco_dtype_name(a->dtype));
  return deco_check_dtype(ctx, a->dtype, op, "dtype");
}

static deco_status_t check_topk(deco_ctx_t *ctx, const deco_topk_rows_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(check_topk_shape(ctx, a, op));
  DECO_TRY(check_topk_dtype(ctx, a, op));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->logits), DECO_PTR_ARG(a->ids)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  return DECO_STATUS_SUCCESS;
}

DECO_DEFINE_WORKSPACE_SIZE(topk_rows, check_topk)

deco_status_t deco_topk_rows(deco_ctx_t *ctx, const deco_topk_rows_args_t *a) {
  DECO_TRY(check_topk(ctx, a, "deco_topk_rows"));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, topk_rows, a);
}
