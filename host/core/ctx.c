/* host/core/ctx.c — status names, versions, dtypes, the context, error
 * recording and the backend-agnostic memory helpers. CUDA specifics live in
 * ctx_cuda.c (compiled only when the toolkit is found).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/sized.h"
#include "core/cuda_runtime_glue.h"

static _Thread_local char g_thread_error[DECO_ERROR_CAPACITY];

const char *deco_status_string(deco_status_t status) {
  switch (status) {
  case DECO_STATUS_SUCCESS: return "DECO_STATUS_SUCCESS";
  case DECO_STATUS_INVALID_ARGUMENT: return "DECO_STATUS_INVALID_ARGUMENT";
  case DECO_STATUS_NULL_POINTER: return "DECO_STATUS_NULL_POINTER";
  case DECO_STATUS_UNSUPPORTED: return "DECO_STATUS_UNSUPPORTED";
  case DECO_STATUS_NO_DEVICE: return "DECO_STATUS_NO_DEVICE";
  case DECO_STATUS_OUT_OF_MEMORY: return "DECO_STATUS_OUT_OF_MEMORY";
  case DECO_STATUS_WORKSPACE_TOO_SMALL: return "DECO_STATUS_WORKSPACE_TOO_SMALL";
  case DECO_STATUS_CUDA_ERROR: return "DECO_STATUS_CUDA_ERROR";
  case DECO_STATUS_CUBLAS_ERROR: return "DECO_STATUS_CUBLAS_ERROR";
  case DECO_STATUS_IO_ERROR: return "DECO_STATUS_IO_ERROR";
  case DECO_STATUS_BAD_FORMAT: return "DECO_STATUS_BAD_FORMAT";
  case DECO_STATUS_CAPACITY: return "DECO_STATUS_CAPACITY";
  case DECO_STATUS_INTERNAL: return "DECO_STATUS_INTERNAL";
  case DECO_STATUS_NON_FINITE: return "DECO_STATUS_NON_FINITE";
  case DECO_STATUS_ABORTED: return "DECO_STATUS_ABORTED";
  }
  return "DECO_STATUS_UNKNOWN";
}

int deco_version(void) { return DECO_VERSION; }

#define DECO_STR2(x) #x
#define DECO_STR(x) DECO_STR2(x)
const char *deco_version_string(void) {
  return DECO_STR(DECO_VERSION_MAJOR) "." DECO_STR(DECO_VERSION_MINOR) "." DECO_STR(DECO_VERSION_PATCH);
}

/* deco_dtype_size and deco_dtype_name: kernels/common/dtype.c (the kernels use them). */

const char *deco_backend_name(deco_backend_t backend) {
  switch (backend) {
  case DECO_BACKEND_CPU: return "cpu";
  case DECO_BACKEND_CUDA: return "cuda";
  }
  return "?";
}

deco_status_t deco_set_error(deco_ctx_t *ctx, deco_status_t status, const char *fmt, ...) {
  char *dst = ctx ? ctx->error : g_thread_error;
  /* Format into a local buffer: an argument may be this very message. */
  char msg[DECO_ERROR_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(dst, msg, sizeof msg);
  if (ctx) {
    ctx->error_status = status;
    ctx->n_errors++;
    /* Also visible through deco_last_error(NULL), for callers that only
     * hold an object created from the context. */
    memcpy(g_thread_error, ctx->error, DECO_ERROR_CAPACITY);
  }
  return status;
}

const char *deco_last_error(const deco_ctx_t *ctx) { return ctx ? ctx->error : g_thread_error; }

deco_status_t deco_check_dtype(deco_ctx_t *ctx, deco_dtype_t dtype, const char *op, const char *what) {
  if (dtype != DECO_DTYPE_F32 && dtype != DECO_DTYPE_F16 && dtype != DECO_DTYPE_BF16)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s = %d is not a dtype", op, what, (int)dtype);
  if (ctx->backend == DECO_BACKEND_CPU && dtype != DECO_DTYPE_F32)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: %s %s is not supported on the CPU backend (f32 only)",
                     op, what, deco_dtype_name(dtype));
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_ctx_create(const deco_ctx_config_t *config, deco_ctx_t **out) {
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ctx_create: out is NULL");
  *out = NULL;
  if (config == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ctx_create: config is NULL");
  const deco_ctx_config_t defaults = DECO_CTX_CONFIG_INIT;
  deco_ctx_config_t given;
  DECO_TRY(deco_sized_read(NULL, &given, config, &defaults, sizeof given, "deco_ctx_create: config"));
  config = &given;
  if (config->backend != DECO_BACKEND_CPU && config->backend != DECO_BACKEND_CUDA)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "deco_ctx_create: backend = %d is not a backend",
                     (int)config->backend);
  if (config->n_threads < 0 || config->n_threads > DECO_MAX_THREADS)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "deco_ctx_create: n_threads = %d outside [0, %d]",
                     config->n_threads, DECO_MAX_THREADS);
  deco_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "deco_ctx_create: out of host memory");
  ctx->backend = config->backend;
  ctx->device = config->device;
  ctx->n_threads = config->n_threads;
  if (ctx->backend == DECO_BACKEND_CUDA) {
    deco_status_t st = deco_cuda_ctx_init(ctx, config);
    if (st != DECO_STATUS_SUCCESS) {
      char msg[DECO_ERROR_CAPACITY];
      memcpy(msg, ctx->error, sizeof msg);
      deco_cuda_ctx_release(ctx);
      free(ctx);
      return DECO_FAIL(NULL, st, "%s", msg);
    }
  }
  *out = ctx;
  return DECO_STATUS_SUCCESS;
}

void deco_ctx_destroy(deco_ctx_t *ctx) {
  if (ctx == NULL) return;
  if (ctx->backend == DECO_BACKEND_CUDA) deco_cuda_ctx_release(ctx);
  free(ctx);
}

deco_backend_t deco_ctx_backend(const deco_ctx_t *ctx) { return ctx ? ctx->backend : DECO_BACKEND_CPU; }
void *deco_ctx_stream(const deco_ctx_t *ctx) { return ctx ? ctx->stream : NULL; }

deco_status_t deco_ctx_set_threads(deco_ctx_t *ctx, int n_threads) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ctx_set_threads: ctx is NULL");
  if (n_threads < 0 || n_threads > DECO_MAX_THREADS)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "deco_ctx_set_threads: n_threads = %d outside [0, %d]",
                     n_threads, DECO_MAX_THREADS);
  ctx->n_threads = n_threads;
  return DECO_STATUS_SUCCESS;
}

int deco_ctx_threads(const deco_ctx_t *ctx) { return ctx ? ctx->n_threads : 0; }

deco_status_t deco_ctx_set_workspace(deco_ctx_t *ctx, void *workspace, size_t workspace_bytes) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ctx_set_workspace: ctx is NULL");
  if (workspace == NULL && workspace_bytes != 0)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_ctx_set_workspace: workspace is NULL but workspace_bytes = %zu",
                     workspace_bytes);
  ctx->workspace = ctx->caller_workspace = workspace;
  ctx->workspace_bytes = ctx->caller_workspace_bytes = workspace_bytes;
  return DECO_STATUS_SUCCESS;
}

size_t deco_ctx_workspace_bytes(const deco_ctx_t *ctx) { return ctx ? ctx->workspace_bytes : 0; }

deco_status_t deco_malloc(deco_ctx_t *ctx, void **ptr, size_t bytes) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_malloc: ctx is NULL");
  if (ptr == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_malloc: ptr is NULL");
  *ptr = NULL;
  if (bytes == 0) return DECO_STATUS_SUCCESS;
  if (bytes > SIZE_MAX - 255)
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_malloc: %zu bytes", bytes);
  ctx->n_allocs++;
  if (ctx->backend == DECO_BACKEND_CUDA) return deco_cuda_malloc(ctx, ptr, bytes);
  /* The same 256-byte alignment as device allocations, so vector loads and
   * the tests' guard words behave alike on both backends. */
  size_t rounded = (bytes + 255) & ~(size_t)255;
  void *p = aligned_alloc(256, rounded);
  if (p == NULL) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_malloc: %zu bytes of host memory", bytes);
  *ptr = p;
  return DECO_STATUS_SUCCESS;
}

size_t deco_ctx_alloc_count(const deco_ctx_t *ctx) { return ctx ? ctx->n_allocs : 0; }

void deco_free(deco_ctx_t *ctx, void *ptr) {
  if (ctx == NULL || ptr == NULL) return;
  if (ctx->backend == DECO_BACKEND_CUDA) deco_cuda_free(ctx, ptr);
  else free(ptr);
}

static deco_status_t copy_impl(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind,
                               int async) {
  const char *op = async ? "deco_memcpy_async" : "deco_memcpy";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  if (bytes == 0) return DECO_STATUS_SUCCESS;
  if (dst == NULL || src == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: %s is NULL", op, dst ? "src" : "dst");
  if (kind != DECO_COPY_HOST_TO_CTX && kind != DECO_COPY_CTX_TO_HOST && kind != DECO_COPY_CTX_TO_CTX)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: kind = %d is not a copy kind", op, (int)kind);
  if (ctx->backend == DECO_BACKEND_CUDA) return deco_cuda_memcpy(ctx, dst, src, bytes, kind, async);
  memmove(dst, src, bytes);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_memcpy(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind) {
  return copy_impl(ctx, dst, src, bytes, kind, 0);
}

deco_status_t deco_memcpy_async(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind) {
  return copy_impl(ctx, dst, src, bytes, kind, 1);
}

deco_status_t deco_memset(deco_ctx_t *ctx, void *dst, int byte_value, size_t bytes) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_memset: ctx is NULL");
  if (bytes == 0) return DECO_STATUS_SUCCESS;
  if (dst == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_memset: dst is NULL");
  if (ctx->backend == DECO_BACKEND_CUDA) return deco_cuda_memset(ctx, dst, byte_value, bytes);
  memset(dst, byte_value, bytes);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_ctx_synchronize(deco_ctx_t *ctx) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ctx_synchronize: ctx is NULL");
  if (ctx->backend == DECO_BACKEND_CUDA) return deco_cuda_synchronize(ctx);
  return DECO_STATUS_SUCCESS;
}

struct deco_graph {
  deco_ctx_t *ctx;
  void *exec; /* cudaGraphExec_t */
};

deco_status_t deco_graph_capture_begin(deco_ctx_t *ctx) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_graph_capture_begin: ctx is NULL");
  if (ctx->backend != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "deco_graph_capture_begin: graphs need the CUDA backend");
  ctx->capture_mark = ctx->n_errors;
  return deco_cuda_graph_begin(ctx);
}

deco_status_t deco_graph_capture_end(deco_ctx_t *ctx, deco_graph_t **graph) {
  if (ctx == NULL || graph == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_graph_capture_end: %s is NULL", ctx ? "graph" : "ctx");
  *graph = NULL;
  if (ctx->backend != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "deco_graph_capture_end: graphs need the CUDA backend");
  void *exec = NULL;
  if (ctx->n_errors != ctx->capture_mark) {
    /* An op failed while captured: end the capture and drop it, keeping
     * that failure (ending an invalidated capture fails as well, and must
     * not replace the first error's status and message). */
    const deco_status_t first = ctx->error_status;
    char msg[DECO_ERROR_CAPACITY];
    memcpy(msg, ctx->error, sizeof msg);
    if (deco_cuda_graph_end(ctx, &exec) == DECO_STATUS_SUCCESS) deco_cuda_graph_destroy(exec);
    return DECO_FAIL(ctx, first, "%s", msg);
  }
  DECO_TRY(deco_cuda_graph_end(ctx, &exec)); /* ends the capture whatever happens next */
  deco_graph_t *g = calloc(1, sizeof *g);
  if (!g) {
    deco_cuda_graph_destroy(exec);
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_graph_capture_end: host memory");
  }
  g->exec = exec;
  g->ctx = ctx;
  *graph = g;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_graph_replay(deco_ctx_t *ctx, deco_graph_t *graph, int n) {
  if (ctx == NULL || graph == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_graph_replay: %s is NULL", ctx ? "graph" : "ctx");
  if (graph->ctx != ctx) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "deco_graph_replay: graph of another context");
  if (n < 0) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "deco_graph_replay: n = %d", n);
  return deco_cuda_graph_launch(ctx, graph->exec, n);
}

void deco_graph_destroy(deco_graph_t *graph) {
  if (!graph) return;
  deco_cuda_graph_destroy(graph->exec);
  free(graph);
}
