/* host/ops/dispatch.h — run a validated op on the context's backend: the
 * kernels' entry points (kernels/common/op_impl.h) take the context's
 * deco_exec_t (exec.c), never the context itself.
 */
#ifndef DECO_HOST_DISPATCH_H
#define DECO_HOST_DISPATCH_H

#include "common/op_impl.h"
#include "core/internal.h"
#include "ops/exec.h"

/* Runs deco_<name>_cuda or deco_<name>_ref, by exec's backend:
 *   const deco_exec_t exec = deco_ops_exec(ctx);
 *   return DECO_DISPATCH(&exec, rmsnorm, args); */
#ifdef DECO_HAVE_CUDA
#define DECO_DISPATCH(exec, name, args) \
  ((exec)->backend == DECO_BACKEND_CUDA ? deco_##name##_cuda((exec), (args)) : deco_##name##_ref((exec), (args)))
#else
#define DECO_DISPATCH(exec, name, args) deco_##name##_ref((exec), (args))
#endif

/* Upper bounds that keep index arithmetic in range; far above any model. */
#define DECO_MAX_DIM (1 << 20)
#define DECO_MAX_TOKENS (1 << 24)
#define DECO_MAX_VOCAB (1 << 24)

/* Whether the byte spans [a, a + a_bytes) and [b, b + b_bytes) share a
 * byte. Kernels write in parallel, so an output that overlaps an input it
 * does not exactly alias would race on the GPU. */
static inline int deco_spans_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
  const uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
  return a_bytes > 0 && b_bytes > 0 && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

/* Shared validation of the paged-cache view and the ragged batch. */
deco_status_t deco_check_paged_kv(deco_ctx_t *ctx, const deco_paged_kv_t *cache, const char *op);
deco_status_t deco_check_ragged(deco_ctx_t *ctx, const deco_ragged_batch_t *batch, const char *op);
/* A row stride: 0 (dense) or dense..2^30 elements. */
deco_status_t deco_check_stride(deco_ctx_t *ctx, long long stride, long long dense, const char *op, const char *name);
/* What causal and tree attention both check: the cache view, head dim 8..256,
 * n_heads a multiple of the KV heads, a finite positive scale, q (and its
 * stride) and out. */
deco_status_t deco_check_attention_common(deco_ctx_t *ctx, const deco_paged_kv_t *cache, int n_heads, float scale,
                                          const void *q, int q_stride, const void *out, const char *op);

/* The public deco_<name>_workspace_size: 0 on the CPU backend or for
 * arguments that fail check(ctx, args, op); otherwise what the CUDA
 * implementation's plan needs (deco_<name>_workspace_size_cuda). */
#ifdef DECO_HAVE_CUDA
#define DECO_DEFINE_WORKSPACE_SIZE(name, check)                                          \
  size_t deco_##name##_workspace_size(deco_ctx_t *ctx, const deco_##name##_args_t *a) { \
    if (ctx == NULL || a == NULL || ctx->backend != DECO_BACKEND_CUDA) return 0;          \
    if (check(ctx, a, "deco_" #name "_workspace_size") != DECO_STATUS_SUCCESS) return 0;  \
    const deco_exec_t exec = deco_ops_exec(ctx);                                          \
    return deco_##name##_workspace_size_cuda(&exec, a);                                   \
  }
#else
#define DECO_DEFINE_WORKSPACE_SIZE(name, check)                                          \
  size_t deco_##name##_workspace_size(deco_ctx_t *ctx, const deco_##name##_args_t *a) { \
    (void)ctx;                                                                            \
    (void)a;                                                                              \
    return 0;                                                                             \
  }
#endif

/* The public deco_<name>_path: "invalid" for arguments that fail check,
 * "none" when the call has nothing to do (empty_expr, over a), else the
 * CUDA plan's name (deco_<name>_path_cuda) or "ref". */
#ifdef DECO_HAVE_CUDA
#define DECO_PATH_CUDA(name, ctx, a)                                \
  if ((ctx)->backend == DECO_BACKEND_CUDA) {                         \
    const deco_exec_t exec = deco_ops_exec(ctx);                     \
    return deco_##name##_path_cuda(&exec, (a));                      \
  }
#else
#define DECO_PATH_CUDA(name, ctx, a)
#endif
#define DECO_DEFINE_PATH(name, check, empty_expr)                                             \
  const char *deco_##name##_path(deco_ctx_t *ctx, const deco_##name##_args_t *a) {            \
    if (check(ctx, a, "deco_" #name "_path") != DECO_STATUS_SUCCESS) return "invalid";        \
    if (empty_expr) return "none";                                                             \
    DECO_PATH_CUDA(name, ctx, a)                                                               \
    return "ref";                                                                              \
  }

#endif
