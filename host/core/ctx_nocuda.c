/* host/core/ctx_nocuda.c — the CUDA glue of a CPU-only build: no devices. */
#include "core/cuda_runtime_glue.h"

int deco_cuda_device_count(void) { return 0; }

deco_status_t deco_cuda_ctx_init(deco_ctx_t *ctx, const deco_ctx_config_t *config) {
  (void)config;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
void deco_cuda_ctx_release(deco_ctx_t *ctx) { (void)ctx; }
deco_status_t deco_cuda_malloc(deco_ctx_t *ctx, void **ptr, size_t bytes) {
  (void)ptr; (void)bytes;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
void deco_cuda_free(deco_ctx_t *ctx, void *ptr) { (void)ctx; (void)ptr; }
deco_status_t deco_cuda_memcpy(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind,
                               int async) {
  (void)dst; (void)src; (void)bytes; (void)kind; (void)async;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
deco_status_t deco_cuda_memset(deco_ctx_t *ctx, void *dst, int byte_value, size_t bytes) {
  (void)dst; (void)byte_value; (void)bytes;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
deco_status_t deco_cuda_synchronize(deco_ctx_t *ctx) {
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
deco_status_t deco_cuda_graph_begin(deco_ctx_t *ctx) {
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
deco_status_t deco_cuda_graph_end(deco_ctx_t *ctx, void **exec) {
  (void)exec;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
deco_status_t deco_cuda_graph_launch(deco_ctx_t *ctx, void *exec, int n) {
  (void)exec; (void)n;
  return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "this build of deco has no CUDA backend");
}
void deco_cuda_graph_destroy(void *exec) { (void)exec; }
