/* host/model/model_access.h — library-private: what the library's own
 * decoding code (host/spec, host/draft) needs from a model beyond
 * deco/model.h, without the model's layout (model_internal.h stays private
 * to host/model). An engine outside the library does the same with its own
 * workspace (deco_ctx_set_workspace) and block tables
 * (deco_kv_cache_block_table).
 */
#ifndef DECO_HOST_MODEL_ACCESS_H
#define DECO_HOST_MODEL_ACCESS_H

#include "deco/model.h"

/* Makes the context's workspace at least bytes, growing the model's own
 * scratch and lending it to the context when the current one is smaller
 * (no allocation within a plan: deco_model_plan). */
deco_status_t deco_model_ensure_workspace(deco_model_t *model, size_t bytes);

/* Device views of the last deco_forward's batch: committed lengths
 * [n_seqs] and block-table rows [n_seqs][deco_kv_cache_max_pages], valid
 * until the next forward. */
void deco_forward_last_batch(const deco_model_t *model, const int32_t **prefix_lens, const int32_t **block_table);

/* Bytes of the model's fused layer-group weights (the stacked, norm-folded
 * Q/K/V copies of its grouped layers; 0 when it has none). */
size_t deco_model_fused_bytes(const deco_model_t *model);

#endif
