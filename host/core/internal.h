/* host/core/internal.h — library-private: the context structure, error
 * recording and the DECO_TRY family of macros of the host layer. The
 * kernels never include it: they see the context through a deco_exec_t
 * (kernels/common/exec.h) that host/ops fills.
 */
#ifndef DECO_HOST_INTERNAL_H
#define DECO_HOST_INTERNAL_H

#include <stdarg.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_ERROR_CAPACITY 512

struct deco_ctx {
  deco_backend_t backend;
  int device;
  void *stream;         /* cudaStream_t */
  int owns_stream;
  void *cublas;         /* cublasHandle_t, created with the context */
  void *cublas_workspace;
  void *workspace;      /* the ops' scratch: the caller's, or a model's lent in its place */
  size_t workspace_bytes;
  void *caller_workspace; /* what deco_ctx_set_workspace last set, restored when a lent buffer is returned */
  size_t caller_workspace_bytes;
  int plan_holds; /* models on this context holding their plan (deco_model_hold_plan): no lent workspace is freed */
  int sm_count;
  int cc_major, cc_minor;
  char error[DECO_ERROR_CAPACITY]; /* the last failure's message (deco_last_error) */
  deco_status_t error_status;      /* and its status */
  unsigned n_errors;               /* failures recorded on the context */
  unsigned capture_mark;           /* n_errors when the graph capture began */
  size_t n_allocs;                 /* deco_malloc calls that allocated (deco_ctx_alloc_count) */
  int n_threads;                   /* CPU: OpenMP threads per op, 0 = OpenMP's default */
};

/* Allocations made through deco_malloc on ctx so far: a step planned ahead
 * must not change it (tests and deco_generate's stats read it). */
size_t deco_ctx_alloc_count(const deco_ctx_t *ctx);

/* A model lends the context a workspace of its own in place of a smaller
 * one the caller set (deco_ctx_set_workspace; that one is remembered), and
 * returns it before freeing it: when the context still holds it, the
 * caller's workspace is restored. */
static inline void deco_ctx_lend_workspace(deco_ctx_t *ctx, void *workspace, size_t workspace_bytes) {
  ctx->workspace = workspace;
  ctx->workspace_bytes = workspace_bytes;
}
static inline void deco_ctx_return_workspace(deco_ctx_t *ctx, const void *workspace) {
  if (workspace == NULL || ctx->workspace != workspace) return;
  ctx->workspace = ctx->caller_workspace;
  ctx->workspace_bytes = ctx->caller_workspace_bytes;
}

/* Records a formatted message for ctx (thread-local slot when ctx is NULL)
 * and returns status, so failures read: return DECO_FAIL(ctx, STATUS, ...). */
deco_status_t deco_set_error(deco_ctx_t *ctx, deco_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define DECO_FAIL(ctx, status, ...) deco_set_error((ctx), (status), __VA_ARGS__)

/* Returns from the enclosing function when expr fails (kernels/common/exec.h
 * defines the same for the kernels). */
#ifndef DECO_TRY
#define DECO_TRY(expr)                                 \
  do {                                                 \
    deco_status_t deco_try_status_ = (expr);           \
    if (deco_try_status_ != DECO_STATUS_SUCCESS)       \
      return deco_try_status_;                         \
  } while (0)
#endif

/* Argument checks for the ops' validation prologues. */
#define DECO_CHECK_PTR(ctx, ptr, op)                                                         \
  do {                                                                                       \
    if ((ptr) == NULL)                                                                       \
      return DECO_FAIL((ctx), DECO_STATUS_NULL_POINTER, "%s: %s is NULL", (op), #ptr);       \
  } while (0)
/* A run of required pointer arguments as one list, checked in order: the
 * first NULL fails with DECO_CHECK_PTR's status and message, naming the
 * expression as the caller spelled it.
 *   const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->tokens), DECO_PTR_ARG(a->parents)};
 *   DECO_CHECK_PTR_ARGS(ctx, arrays, op); */
typedef struct deco_ptr_arg {
  const void *ptr;
  const char *name;
} deco_ptr_arg_t;
#define DECO_PTR_ARG(p) {(const void *)(p), #p}
static inline deco_status_t deco_check_ptr_args(deco_ctx_t *ctx, const deco_ptr_arg_t *list, int n, const char *op) {
  for (int i = 0; i < n; ++i)
    if (list[i].ptr == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: %s is NULL", op, list[i].name);
  return DECO_STATUS_SUCCESS;
}
#define DECO_CHECK_PTR_ARGS(ctx, list, op) \
  DECO_TRY(deco_check_ptr_args((ctx), (list), (int)(sizeof(list) / sizeof((list)[0])), (op)))
#define DECO_CHECK_RANGE(ctx, val, lo, hi, op)                                               \
  do {                                                                                       \
    if ((long long)(val) < (long long)(lo) || (long long)(val) > (long long)(hi))            \
      return DECO_FAIL((ctx), DECO_STATUS_INVALID_ARGUMENT, "%s: %s = %lld outside [%lld, %lld]", \
                       (op), #val, (long long)(val), (long long)(lo), (long long)(hi));      \
  } while (0)

/* Checks the ctx itself: every public op starts with this. */
#define DECO_CHECK_CTX(ctx, args, op)                                                        \
  do {                                                                                       \
    if ((ctx) == NULL)                                                                       \
      return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", (op));             \
    DECO_CHECK_PTR((ctx), (args), (op));                                                     \
  } while (0)

/* The index of the first of ids[0..n) outside 0..vocab-1, or n: the
 * callers' range checks over token ids, each with its own message. */
static inline size_t deco_first_id_outside(const int32_t *ids, size_t n, int vocab) {
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) return i;
  return n;
}

/* Dtype checks: the CPU reference is f32 only. */
deco_status_t deco_check_dtype(deco_ctx_t *ctx, deco_dtype_t dtype, const char *op, const char *what);

/* f32 <-> f16/bf16 for host code; bit-exact with the device conversions. */
float deco_load_as_f32(const void *base, size_t i, deco_dtype_t dtype);

#ifdef __cplusplus
}
#endif
#endif /* DECO_HOST_INTERNAL_H */
