/* host/core/cuda_runtime_glue.h — the CUDA runtime calls the context needs,
 * implemented in ctx_cuda.c, or failing with DECO_STATUS_NO_DEVICE when the
 * library is built without CUDA (ctx_nocuda.c).
 */
#ifndef DECO_HOST_CUDA_RUNTIME_GLUE_H
#define DECO_HOST_CUDA_RUNTIME_GLUE_H

#include "core/internal.h"

deco_status_t deco_cuda_ctx_init(deco_ctx_t *ctx, const deco_ctx_config_t *config);
void deco_cuda_ctx_release(deco_ctx_t *ctx);
deco_status_t deco_cuda_malloc(deco_ctx_t *ctx, void **ptr, size_t bytes);
void deco_cuda_free(deco_ctx_t *ctx, void *ptr);
deco_status_t deco_cuda_memcpy(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind,
                               int async);
deco_status_t deco_cuda_memset(deco_ctx_t *ctx, void *dst, int byte_value, size_t bytes);
deco_status_t deco_cuda_synchronize(deco_ctx_t *ctx);
deco_status_t deco_cuda_graph_begin(deco_ctx_t *ctx);
deco_status_t deco_cuda_graph_end(deco_ctx_t *ctx, void **exec);
deco_status_t deco_cuda_graph_launch(deco_ctx_t *ctx, void *exec, int n);
void deco_cuda_graph_destroy(void *exec);

#endif
