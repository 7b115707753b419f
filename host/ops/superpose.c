/* host/ops/superpose.c — public entry points of superposed decoding's ops
 * (deco/superpose_ops.h): the mixed embedding, the n-gram lookup and the
 * selection. Host-side values are checked here; what lives in context
 * memory (ids, weights, the drafts' state) is read by the kernels.
 */
#include <math.h>

#include "ops/dispatch.h"

/* The sizes: rows, ids per row, the row width and the table's rows; then
 * the table's dtype. */
static deco_status_t check_embed_sizes(deco_ctx_t *ctx, const deco_superpose_embed_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_rows, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->k, 1, DECO_SUPERPOSE_MAX_K, op);
  DECO_CHECK_RANGE(ctx, a->dim, 1, DECO_MAX_DIM, op);
  DECO_CHECK_RANGE(ctx, a->vocab, 1, DECO_MAX_VOCAB, op);
  return deco_check_dtype(ctx, a->dtype, op, "dtype");
}

deco_status_t deco_superpose_embed(deco_ctx_t *ctx, const deco_superpose_embed_args_t *a) {
  static const char op[] = "deco_superpose_embed";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(check_embed_sizes(ctx, a, op));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->table), DECO_PTR_ARG(a->tokens), DECO_PTR_ARG(a->weights),
                                   DECO_PTR_ARG(a->out)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (a->n_rows == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, superpose_embed, a);
}

static deco_status_t check_lambda(deco_ctx_t *ctx, const float *lambda, const char *op) {
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i)
    if (!(lambda[i] >= 0.0f && lambda[i] <= 1.0f))
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: lambda[%d] (order %d) = %g outside [0, 1]", op, i,
                       i + DECO_NGRAM_MIN_ORDER, (double)lambda[i]);
  return DECO_STATUS_SUCCESS;
}

/* The ctx and the sizes: rows, rows per candidate list (whole lists) and
 * candidates per list. */
static deco_status_t check_lookup_sizes(deco_ctx_t *ctx, const deco_ngram_lookup_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_rows, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->rows_per_group, 1, DECO_SUPERPOSE_MAX_K, op);
  DECO_CHECK_RANGE(ctx, a->m, 1, DECO_SUPERPOSE_MAX_M, op);
  if (a->n_rows % a->rows_per_group != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_rows = %d is not a multiple of rows_per_group = %d",
                     op, a->n_rows, a->rows_per_group);
  return DECO_STATUS_SUCCESS;
}

/* The table: a power-of-two count of slots, and the followers' array when
 * it has some. */
static deco_status_t check_lookup_table(deco_ctx_t *ctx, const deco_ngram_lookup_args_t *a, const char *op) {
  const uint32_t slots = a->table.n_slots;
  if (slots == 0 || (slots & (slots - 1)) != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: table.n_slots = %u is not a power of two", op,
                     (unsigned)slots);
  DECO_CHECK_PTR(ctx, a->table.slots, op);
  if (a->table.n_followers > 0) DECO_CHECK_PTR(ctx, a->table.followers, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_ngram_lookup(deco_ctx_t *ctx, const deco_ngram_lookup_args_t *a) {
  static const char op[] = "deco_ngram_lookup";
  DECO_TRY(check_lookup_sizes(ctx, a, op));
  DECO_TRY(check_lookup_table(ctx, a, op));
  DECO_TRY(check_lambda(ctx, a->lambda, op));
  /* The drafts' contexts, the candidates and the output. */
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->ctx), DECO_PTR_ARG(a->ctx_len), DECO_PTR_ARG(a->cands),
                                   DECO_PTR_ARG(a->probs)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (a->n_rows == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, ngram_lookup, a);
}

/* The sizes: prompts, drafts and candidates per prompt, the history's rows
 * and the stop ids. */
static deco_status_t check_select_sizes(deco_ctx_t *ctx, const deco_superpose_select_args_t *a, const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_prompts, 0, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, a->k, 1, DECO_SUPERPOSE_MAX_K, op);
  DECO_CHECK_RANGE(ctx, a->m, 1, DECO_SUPERPOSE_MAX_M, op);
  DECO_CHECK_RANGE(ctx, a->max_steps, 1, 1 << 24, op);
  DECO_CHECK_RANGE(ctx, a->n_stop_ids, 0, DECO_SUPERPOSE_MAX_STOP_IDS, op);
  return DECO_STATUS_SUCCESS;
}

/* The score's scalars: a finite T > 0, alpha in [0, 1], a finite
 * penalty >= 0; the n-gram probabilities unless alpha = 0. */
static deco_status_t check_select_scalars(deco_ctx_t *ctx, const deco_superpose_select_args_t *a, const char *op) {
  if (!(a->temperature > 0.0f) || isinf(a->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and > 0", op,
                     (double)a->temperature);
  if (!(a->alpha >= 0.0f && a->alpha <= 1.0f))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: alpha = %g outside [0, 1]", op, (double)a->alpha);
  if (!(a->penalty >= 0.0f) || isinf(a->penalty))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: penalty = %g must be finite and >= 0", op,
                     (double)a->penalty);
  if (a->alpha != 0.0f && a->ngram_probs == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: ngram_probs is NULL with alpha = %g (0 turns the n-grams off)",
                     op, (double)a->alpha);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_superpose_select(deco_ctx_t *ctx, const deco_superpose_select_args_t *a) {
  static const char op[] = "deco_superpose_select";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(check_select_sizes(ctx, a, op));
  DECO_TRY(check_select_scalars(ctx, a, op));
  if (a->n_stop_ids > 0) DECO_CHECK_PTR(ctx, a->stop_ids, op);
  /* The candidates, then the drafts' state: per prompt, per draft, the next
   * mixed input, the history of selections and the finished pool. */
  const deco_superpose_drafts_t *d = &a->drafts;
  const deco_ptr_arg_t arrays[] = {
      DECO_PTR_ARG(a->cand_ids), DECO_PTR_ARG(a->cand_logits),
      DECO_PTR_ARG(d->prompt), DECO_PTR_ARG(d->score), DECO_PTR_ARG(d->token), DECO_PTR_ARG(d->ctx),
      DECO_PTR_ARG(d->ctx_len), DECO_PTR_ARG(d->mix_token), DECO_PTR_ARG(d->mix_weight),
      DECO_PTR_ARG(d->hist_token), DECO_PTR_ARG(d->hist_parent),
      DECO_PTR_ARG(d->fin_score), DECO_PTR_ARG(d->fin_len), DECO_PTR_ARG(d->fin_slot)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (a->n_prompts == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, superpose_select, a);
}
