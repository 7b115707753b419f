/* host/model/token_embedding.h — library-private: the model's token
 * embedding table, for library code outside host/model that gathers its
 * rows itself (superposed decoding mixes several rows into one input,
 * host/superpose/). model_internal.h stays private to host/model.
 */
#ifndef DECO_HOST_MODEL_TOKEN_EMBEDDING_H
#define DECO_HOST_MODEL_TOKEN_EMBEDDING_H

#include "deco/model.h"

/* table: [vocab][dim] in context memory, in *dtype (the model's). */
deco_status_t deco_model_token_embedding(const deco_model_t *model, const void **table, deco_dtype_t *dtype);

#endif
