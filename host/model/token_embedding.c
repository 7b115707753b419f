/* host/model/token_embedding.c — the accessor of token_embedding.h. */
#include "model/model_internal.h"
#include "model/token_embedding.h"

deco_status_t deco_model_token_embedding(const deco_model_t *m, const void **table, deco_dtype_t *dtype) {
  if (m == NULL || table == NULL || dtype == NULL)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_model_token_embedding: NULL argument");
  *table = m->w.token_embedding;
  *dtype = m->dtype;
  return DECO_STATUS_SUCCESS;
}
