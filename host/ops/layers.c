/* host/ops/layers.c — public entry points of the dense Llama ops: argument
 * validation, then dispatch to the reference or the CUDA kernel.
 */
#include <math.h>

#include "ops/dispatch.h"

/* Where the rows come from: token ids (then the table's dtype, its
 * vocabulary and the table itself) or, without ids, the embeddings. */
static deco_status_t check_embedding_source(deco_ctx_t *ctx, const deco_embedding_args_t *a, const char *op) {
  if (a->tokens == NULL) {
    if (a->embeds == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: tokens and embeds are both NULL", op);
    return DECO_STATUS_SUCCESS;
  }
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  DECO_CHECK_RANGE(ctx, a->vocab, 1, DECO_MAX_VOCAB, op);
  DECO_CHECK_PTR(ctx, a->table, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_embedding(deco_ctx_t *ctx, const deco_embedding_args_t *a) {
  static const char op[] = "deco_embedding";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_CHECK_RANGE(ctx, a->n_tokens, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->dim, 1, DECO_MAX_DIM, op);
  DECO_CHECK_PTR(ctx, a->out, op);
  DECO_TRY(check_embedding_source(ctx, a, op));
  if (a->n_tokens == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, embedding, a);
}

/* Whether buffers a and b overlap other than by being the same buffer. */
static int overlaps_unless_same(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
  return a != b && deco_spans_overlap(a, a_bytes, b, b_bytes);
}

/* eps finite and >= 0, and what is written apart from what other rows
 * read (rows run in parallel): out shares no byte with residual or weight,
 * and is add or apart from it; with add, residual (then written) is apart
 * from weight, and from add unless it is add with the same rows (an f32
 * add: a 2-byte add's rows lie elsewhere in the same bytes). */
static deco_status_t check_rmsnorm_eps_and_alias(deco_ctx_t *ctx, const deco_rmsnorm_args_t *a, const char *op) {
  if (!(a->eps >= 0.0f) || isinf(a->eps))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: eps = %g must be finite and >= 0", op, (double)a->eps);
  const size_t es = deco_dtype_size(a->dtype), elems = (size_t)a->n_rows * (size_t)a->dim;
  const size_t rows_bytes = elems * es, res_bytes = elems * sizeof(float), w_bytes = (size_t)a->dim * es;
  const char *clash = NULL;
  if ((const void *)a->out == (const void *)a->residual ||
      deco_spans_overlap(a->out, rows_bytes, a->residual, res_bytes))
    clash = "out overlaps residual";
  else if (deco_spans_overlap(a->out, rows_bytes, a->weight, w_bytes))
    clash = "out overlaps weight";
  else if (a->add && overlaps_unless_same(a->out, rows_bytes, a->add, rows_bytes))
    clash = "out overlaps add without being it";
  else if (a->add && es == sizeof(float) && overlaps_unless_same(a->residual, res_bytes, a->add, rows_bytes))
    clash = "residual overlaps add without being it";
  else if (a->add && es != sizeof(float) && deco_spans_overlap(a->residual, res_bytes, a->add, rows_bytes))
    clash = "residual overlaps add";
  else if (a->add && deco_spans_overlap(a->residual, res_bytes, a->weight, w_bytes))
    clash = "residual overlaps weight";
  if (clash) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, clash);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_rmsnorm(deco_ctx_t *ctx, const deco_rmsnorm_args_t *a) {
  static const char op[] = "deco_rmsnorm";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  DECO_CHECK_RANGE(ctx, a->n_rows, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->dim, 1, DECO_MAX_DIM, op);
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->residual), DECO_PTR_ARG(a->weight), DECO_PTR_ARG(a->out)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  DECO_TRY(check_rmsnorm_eps_and_alias(ctx, a, op));
  if (a->n_rows == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, rmsnorm, a);
}

deco_status_t deco_check_stride(deco_ctx_t *ctx, long long stride, long long dense, const char *op, const char *name) {
  if (stride == 0 || (stride >= dense && stride <= (1LL << 30))) return DECO_STATUS_SUCCESS;
  return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s = %lld must be 0 (dense) or in [%lld, 2^30]", op, name,
                   stride, dense);
}

/* The ctx and the layout of the rows: dtype, style, token count and an even
 * head_dim in [2, 256]. */
static deco_status_t check_rope_layout(deco_ctx_t *ctx, const deco_rope_args_t *a, const char *op) {
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  if (a->style != DECO_ROPE_INTERLEAVED && a->style != DECO_ROPE_HALF_SPLIT)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: style = %d is not a RoPE style", op, (int)a->style);
  DECO_CHECK_RANGE(ctx, a->n_tokens, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->head_dim, 2, 256, op);
  if (a->head_dim % 2)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: head_dim = %d must be even", op, a->head_dim);
  return DECO_STATUS_SUCCESS;
}

/* q, k or both: the head count of each one given, then its row stride. */
static deco_status_t check_rope_heads(deco_ctx_t *ctx, const deco_rope_args_t *a, const char *op) {
  if (a->q == NULL && a->k == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: q and k are both NULL", op);
  if (a->q) DECO_CHECK_RANGE(ctx, a->n_heads, 1, 4096, op);
  if (a->k) DECO_CHECK_RANGE(ctx, a->n_kv_heads, 1, 4096, op);
  if (a->q) DECO_TRY(deco_check_stride(ctx, a->q_stride, (long long)a->n_heads * a->head_dim, op, "q_stride"));
  if (a->k) DECO_TRY(deco_check_stride(ctx, a->k_stride, (long long)a->n_kv_heads * a->head_dim, op, "k_stride"));
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_rope(deco_ctx_t *ctx, const deco_rope_args_t *a) {
  static const char op[] = "deco_rope";
  DECO_TRY(check_rope_layout(ctx, a, op));
  if (!(a->theta > 0.0f) || isinf(a->theta))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: theta = %g must be finite and > 0", op, (double)a->theta);
  DECO_CHECK_PTR(ctx, a->positions, op);
  DECO_TRY(check_rope_heads(ctx, a, op));
  if (a->n_tokens == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, rope, a);
}

/* The dtypes and sizes of one product (deco_matmul's, or each of
 * deco_matmul_batched's); dtype_name is how the caller names a->dtype. */
static deco_status_t check_matmul_shape(deco_ctx_t *ctx, const deco_matmul_args_t *a, const char *op,
                                        const char *dtype_name) {
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, dtype_name));
  if (a->out_dtype != a->dtype && a->out_dtype != DECO_DTYPE_F32)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: out_dtype %s must be %s or f32", op,
                     deco_dtype_name(a->out_dtype), deco_dtype_name(a->dtype));
  DECO_CHECK_RANGE(ctx, a->m, 0, DECO_MAX_TOKENS, op);
  DECO_CHECK_RANGE(ctx, a->n, 1, DECO_MAX_VOCAB, op);
  DECO_CHECK_RANGE(ctx, a->k, 1, DECO_MAX_DIM, op);
  DECO_CHECK_RANGE(ctx, a->accumulate, 0, 1, op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_matmul(deco_ctx_t *ctx, const deco_matmul_args_t *a) {
  static const char op[] = "deco_matmul";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(check_matmul_shape(ctx, a, op, "dtype"));
  DECO_CHECK_PTR(ctx, a->a, op);
  DECO_CHECK_PTR(ctx, a->w, op);
  DECO_CHECK_PTR(ctx, a->out, op);
  if (a->m == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
#ifdef DECO_HAVE_CUDA
  if (exec.backend == DECO_BACKEND_CUDA) return deco_matmul_cuda(&exec, a);
#endif
  /* The CPU runs the batch-invariant SIMD path (linear/matmul_cpu.c), not
   * the reference: each output keeps one summation order whatever m and the
   * thread count, so a row's logits are the same alone or in a tree. */
  return deco_matmul_cpu(&exec, a);
}

/* The batch after its product's shape: the count, the operands, and
 * strides that keep the outputs apart. */
static deco_status_t check_matmul_batch(deco_ctx_t *ctx, const deco_matmul_batched_args_t *b, const char *op) {
  const deco_matmul_args_t *a = &b->mm;
  DECO_CHECK_RANGE(ctx, b->n_batch, 1, 1 << 16, op);
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->a), DECO_PTR_ARG(a->w), DECO_PTR_ARG(a->out)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (b->stride_a < 0 || b->stride_w < 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: stride_a = %lld and stride_w = %lld must be >= 0", op,
                     b->stride_a, b->stride_w);
  if (b->n_batch > 1 && b->stride_out < (long long)a->m * a->n)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: stride_out = %lld < m * n = %lld (outputs overlap)", op,
                     b->stride_out, (long long)a->m * a->n);
  return DECO_STATUS_SUCCESS;
}

/* The CPU: each product on the batch-invariant path, so a product is bit
 * for bit the deco_matmul of its operands. */
static deco_status_t matmul_batched_cpu(const deco_exec_t *exec, const deco_matmul_batched_args_t *b) {
  const deco_matmul_args_t *a = &b->mm;
  const size_t es = deco_dtype_size(a->dtype), eo = deco_dtype_size(a->out_dtype);
  for (int i = 0; i < b->n_batch; ++i) {
    deco_matmul_args_t one = *a;
    one.a = (const char *)a->a + (size_t)i * (size_t)b->stride_a * es;
    one.w = (const char *)a->w + (size_t)i * (size_t)b->stride_w * es;
    one.out = (char *)a->out + (size_t)i * (size_t)b->stride_out * eo;
    DECO_TRY(deco_matmul_cpu(exec, &one));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_matmul_batched(deco_ctx_t *ctx, const deco_matmul_batched_args_t *b) {
  static const char op[] = "deco_matmul_batched";
  DECO_CHECK_CTX(ctx, b, op);
  DECO_TRY(check_matmul_shape(ctx, &b->mm, op, "mm.dtype"));
  DECO_TRY(check_matmul_batch(ctx, b, op));
  if (b->mm.m == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
#ifdef DECO_HAVE_CUDA
  if (exec.backend == DECO_BACKEND_CUDA) return deco_matmul_batched_cuda(&exec, b);
#endif
  return matmul_batched_cpu(&exec, b);
}

/* Whether out overlaps what is still read (n > 0, the layout checked).
 * Elements are written in parallel: flat arrays (row_len 0) let out alias
 * gate or up exactly (each element is read before it is written), never in
 * part; with row_len, out may not touch the rows of either. */
static int swiglu_out_overlaps(const deco_swiglu_args_t *a) {
  const size_t es = deco_dtype_size(a->dtype);
  const size_t in_bytes =
      a->row_len == 0 ? a->n * es
                      : ((a->n / (size_t)a->row_len - 1) * (size_t)a->in_stride + (size_t)a->row_len) * es;
  const void *ins[2] = {a->gate, a->up};
  for (int i = 0; i < 2; ++i) {
    if (a->row_len == 0 && ins[i] == (const void *)a->out) continue;
    if (deco_spans_overlap(a->out, a->n * es, ins[i], in_bytes)) return 1;
  }
  return 0;
}

/* The row layout, when row_len is given: a divisor of n, a stride that
 * keeps the input rows apart; and an out that overlaps neither input
 * beyond what the layout allows. */
static deco_status_t check_swiglu_rows(deco_ctx_t *ctx, const deco_swiglu_args_t *a, const char *op) {
  if (a->row_len != 0) {
    DECO_CHECK_RANGE(ctx, a->row_len, 1, 1 << 30, op);
    if (a->n % (size_t)a->row_len)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %zu is not a multiple of row_len = %d", op, a->n,
                       a->row_len);
    if (a->in_stride < a->row_len)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: in_stride = %d is below row_len = %d", op,
                       a->in_stride, a->row_len);
  }
  if (a->n > 0 && swiglu_out_overlaps(a))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op,
                     a->row_len ? "with row_len, out must not overlap gate or up"
                                : "out overlaps gate or up without aliasing it exactly");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_swiglu(deco_ctx_t *ctx, const deco_swiglu_args_t *a) {
  static const char op[] = "deco_swiglu";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->gate), DECO_PTR_ARG(a->up), DECO_PTR_ARG(a->out)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  DECO_TRY(check_swiglu_rows(ctx, a, op));
  if (a->n == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, swiglu, a);
}

deco_status_t deco_fill_random(deco_ctx_t *ctx, const deco_fill_random_args_t *a) {
  static const char op[] = "deco_fill_random";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->dtype, op, "dtype"));
  DECO_CHECK_PTR(ctx, a->out, op);
  if (!isfinite(a->scale) || !isfinite(a->constant))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: scale and constant must be finite", op);
  if (a->n == 0) return DECO_STATUS_SUCCESS;
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, fill_random, a);
}

deco_status_t deco_convert(deco_ctx_t *ctx, const deco_convert_args_t *a) {
  static const char op[] = "deco_convert";
  DECO_CHECK_CTX(ctx, a, op);
  DECO_TRY(deco_check_dtype(ctx, a->in_dtype, op, "in_dtype"));
  DECO_TRY(deco_check_dtype(ctx, a->out_dtype, op, "out_dtype"));
  DECO_CHECK_PTR(ctx, a->in, op);
  DECO_CHECK_PTR(ctx, a->out, op);
  if (a->n == 0) return DECO_STATUS_SUCCESS;
  /* Elements are converted in parallel: a narrowing conversion in place,
   * or any partial overlap, would overwrite input still to be read. */
  if (!(a->in == (const void *)a->out && a->in_dtype == a->out_dtype) &&
      deco_spans_overlap(a->in, a->n * deco_dtype_size(a->in_dtype), a->out, a->n * deco_dtype_size(a->out_dtype)))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: out overlaps in (only out == in with one dtype may)",
                     op);
  const deco_exec_t exec = deco_ops_exec(ctx);
  return DECO_DISPATCH(&exec, convert, a);
}
