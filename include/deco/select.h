/* deco/select.h — selection ops: the top-k of each row of a logits matrix
 * (Token Recycling's table update, superposed decoding's top-m, any
 * engine's sampler). DECO_TOPK_ROWS_ARGS_INIT: designated initialisers,
 * pointers NULL, counts and k 0 (to be set), dtype f32.
 */
#ifndef DECO_SELECT_H
#define DECO_SELECT_H

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_TOPK_MAX_K 16 /* ids kept per row, 1..16 */

/* Per-row top-k of raw logits, sorted by value descending, equal values by
 * id ascending (NaN ranks below every number, -0 equals +0):
 * ids[r][0..k) and, when values != NULL, values[r][0..k) (as f32). Rows r >=
 * *row_count (context memory; NULL = all n_rows) are skipped, not written.
 * The CUDA path splits long rows over several blocks and needs a workspace
 * (deco_topk_rows_workspace_size) when it does. */
typedef struct deco_topk_rows_args {
  int n_rows;                  /* capacity >= 1; grid sizes come from it */
  int vocab;                   /* row length, >= k */
  int k;                       /* 1..DECO_TOPK_MAX_K */
  deco_dtype_t dtype;          /* f32 or bf16 (f32 only on the CPU) */
  const void *logits;          /* [n_rows][vocab] */
  const int32_t *row_count;    /* [1] context memory, or NULL */
  int32_t *ids;                /* [n_rows][k] out */
  float *values;               /* [n_rows][k] out, or NULL */
} deco_topk_rows_args_t;
#define DECO_TOPK_ROWS_ARGS_INIT                                                                             \
  {.n_rows = 0, .vocab = 0, .k = 0, .dtype = DECO_DTYPE_F32, .logits = NULL, .row_count = NULL, .ids = NULL, \
   .values = NULL}
/* 0 on the CPU, and for arguments the op would refuse (deco/core.h). */
DECO_API size_t deco_topk_rows_workspace_size(deco_ctx_t *ctx, const deco_topk_rows_args_t *args);
DECO_API deco_status_t deco_topk_rows(deco_ctx_t *ctx, const deco_topk_rows_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_SELECT_H */
