/* host/ops/tree_accept.c — public entry points of greedy and stochastic
 * tree acceptance: argument validation (host-side values only; the tree
 * arrays live in context memory and are checked by the reference, while the
 * CUDA kernel marks a malformed tree with accept_len = 0), then dispatch.
 */
#include <math.h>

#include "ops/dispatch.h"

static deco_status_t check_tree_batch(deco_ctx_t *ctx, const deco_tree_batch_t *t, const char *op) {
  DECO_CHECK_RANGE(ctx, t->n_trees, 1, 1 << 20, op);
  DECO_CHECK_RANGE(ctx, t->n_nodes, 1, DECO_MAX_TOKENS, op);
  DECO_CHECK_PTR(ctx, t->tree_indptr, op);
  DECO_CHECK_PTR(ctx, t->parent, op);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_out(deco_ctx_t *ctx, const deco_tree_verify_out_t *o, const char *op) {
  DECO_CHECK_PTR(ctx, o->path, op);
  DECO_CHECK_PTR(ctx, o->accept_len, op);
  DECO_CHECK_PTR(ctx, o->bonus, op);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_logits(deco_ctx_t *ctx, deco_dtype_t dtype, const void *logits, int vocab, const char *op) {
  if (dtype != DECO_DTYPE_F32 && dtype != DECO_DTYPE_BF16)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: logits_dtype %s is not supported (f32 or bf16)", op,
                     deco_dtype_name(dtype));
  if (ctx->backend == DECO_BACKEND_CPU && dtype != DECO_DTYPE_F32)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: logits_dtype %s is not supported on the CPU backend (f32 only)",
                     op, deco_dtype_name(dtype));
  DECO_CHECK_RANGE(ctx, vocab, 1, DECO_MAX_VOCAB, op);
  if (logits == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: logits is NULL", op);
  return DECO_STATUS_SUCCESS;
}

/* What both acceptances read first: the trees, their tokens and the
 * target's logits (the sampling one passes its own in greedy's struct). */
static deco_status_t check_target(deco_ctx_t *ctx, const deco_tree_accept_greedy_args_t *a, const char *op) {
  DECO_TRY(check_tree_batch(ctx, &a->tree, op));
  DECO_CHECK_PTR(ctx, a->tokens, op);
  return check_logits(ctx, a->logits_dtype, a->logits, a->vocab, op);
}

static deco_status_t check_greedy(deco_ctx_t *ctx, const deco_tree_accept_greedy_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(check_target(ctx, a, op));
  return check_out(ctx, &a->out, op);
}

/* The sampling of the target: temperature finite and > 0, top_k >= 0
 * (0 = off), top_p in (0, 1]. */
static deco_status_t check_sampling_params(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a, const char *op) {
  if (!(a->temperature > 0.0f) || isinf(a->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and > 0", op,
                     (double)a->temperature);
  if (a->top_k < 0) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: top_k = %d must be >= 0", op, a->top_k);
  if (!(a->top_p > 0.0f && a->top_p <= 1.0f))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: top_p = %g must be in (0, 1]", op, (double)a->top_p);
  return DECO_STATUS_SUCCESS;
}

static int is_draft_kind(deco_draft_kind_t kind) {
  return kind == DECO_DRAFT_DETERMINISTIC || kind == DECO_DRAFT_CHAIN || kind == DECO_DRAFT_TREE_WITH_REPLACEMENT ||
         kind == DECO_DRAFT_TREE_WITHOUT_REPLACEMENT;
}

/* How the drafts were drawn, and their probabilities unless deterministic. */
static deco_status_t check_drafts(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a, const char *op) {
  if (!is_draft_kind(a->draft_kind))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: draft_kind = %d is not a draft kind", op,
                     (int)a->draft_kind);
  if (a->draft_kind != DECO_DRAFT_DETERMINISTIC && a->draft_probs == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: draft_probs is NULL but draft_kind is not DETERMINISTIC", op);
  return DECO_STATUS_SUCCESS;
}

/* What the stochastic acceptance adds to the greedy one: the sampling,
 * the drafts' kind and probabilities, and the RNG's seed and offset. */
static deco_status_t check_sampling(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a, const char *op) {
  DECO_TRY(check_sampling_params(ctx, a, op));
  DECO_TRY(check_drafts(ctx, a, op));
  const deco_ptr_arg_t rng[] = {DECO_PTR_ARG(a->seed), DECO_PTR_ARG(a->offset)};
  DECO_CHECK_PTR_ARGS(ctx, rng, op);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_sample(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  const deco_tree_accept_greedy_args_t target = {.tree = a->tree,
                                                 .tokens = a->tokens,
                                                 .logits_dtype = a->logits_dtype,
                                                 .logits = a->logits,
                                                 .vocab = a->vocab,
                                                 .out = a->out};
  DECO_TRY(check_target(ctx, &target, op));
  DECO_TRY(check_sampling(ctx, a, op));
  return check_out(ctx, &a->out, op);
}

DECO_DEFINE_WORKSPACE_SIZE(tree_accept_greedy, check_greedy)

deco_status_t deco_tree_accept_greedy(deco_ctx_t *ctx, const deco_tree_accept_greedy_args_t *a) {
  DECO_TRY(check_greedy(ctx, a, "deco_tree_accept_greedy"));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, tree_accept_greedy, a);
}

DECO_DEFINE_WORKSPACE_SIZE(tree_accept_sample, check_sample)

deco_status_t deco_tree_accept_sample(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *a) {
  DECO_TRY(check_sample(ctx, a, "deco_tree_accept_sample"));
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, tree_accept_sample, a);
}
