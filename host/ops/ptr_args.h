/* host/ops/ptr_args.h — the pointer arguments an entry point requires, as a
 * list (spec_step.c, superpose.c): DECO_CHECK_PTR_ARGS fails on the first
 * NULL one with the status and message DECO_CHECK_PTR gives it
 * ("op: a->tokens is NULL"), so a list checks as the run of DECO_CHECK_PTR
 * it stands for.
 */
#ifndef DECO_HOST_OPS_PTR_ARGS_H
#define DECO_HOST_OPS_PTR_ARGS_H

#include "core/internal.h"

/* One pointer argument and how a refusal names it: the expression, spelled
 * as the caller wrote it (as DECO_CHECK_PTR names it). */
typedef struct deco_ptr_arg {
  const void *ptr;
  const char *name;
} deco_ptr_arg_t;
#define DECO_PTR_ARG(p) {(const void *)(p), #p}

/* DECO_STATUS_NULL_POINTER for the first NULL of list[0..n), in order. */
static inline deco_status_t deco_check_ptr_args(deco_ctx_t *ctx, const deco_ptr_arg_t *list, int n, const char *op) {
  for (int i = 0; i < n; ++i)
    if (list[i].ptr == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: %s is NULL", op, list[i].name);
  return DECO_STATUS_SUCCESS;
}

/* Returns from the enclosing function on the first NULL of the array list. */
#define DECO_CHECK_PTR_ARGS(ctx, list, op) \
  DECO_TRY(deco_check_ptr_args((ctx), (list), (int)(sizeof(list) / sizeof((list)[0])), (op)))

#endif /* DECO_HOST_OPS_PTR_ARGS_H */
