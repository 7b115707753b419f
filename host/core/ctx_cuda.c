/* host/core/ctx_cuda.c — CUDA side of the context: device selection, the
 * stream, the cuBLAS handle (its workspace set once, so GEMMs can be graph
 * captured) and memory. Runtime API only: the driver library is never linked.
 */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "common/probe.h"
#include "core/cuda_runtime_glue.h"

#define DECO_CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

int deco_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

static deco_status_t cuda_fail(deco_ctx_t *ctx, cudaError_t err, const char *what) {
  (void)cudaGetLastError();
  return DECO_FAIL(ctx, err == cudaErrorMemoryAllocation ? DECO_STATUS_OUT_OF_MEMORY : DECO_STATUS_CUDA_ERROR,
                   "%s: %s", what, cudaGetErrorString(err));
}

/* The errors of a fatbin with no code the device runs: no SASS for it and
 * no PTX the driver compiles (older runtimes say "invalid device
 * function"), or PTX newer than the driver. */
static int no_image_for_device(cudaError_t err) {
  return err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction ||
         err == cudaErrorUnsupportedPtxVersion || err == cudaErrorInvalidPtx || err == cudaErrorInvalidKernelImage ||
         err == cudaErrorJitCompilerNotFound || err == cudaErrorJitCompilationDisabled;
}

deco_status_t deco_cuda_ctx_init(deco_ctx_t *ctx, const deco_ctx_config_t *config) {
  int n = deco_cuda_device_count();
  if (n == 0) return DECO_FAIL(ctx, DECO_STATUS_NO_DEVICE, "no CUDA device found (or no driver)");
  if (config->device < 0 || config->device >= n)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "device %d does not exist (%d CUDA devices)", config->device, n);
  cudaError_t err = cudaSetDevice(config->device);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "cudaSetDevice");
  struct cudaDeviceProp prop;
  err = cudaGetDeviceProperties(&prop, config->device);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "cudaGetDeviceProperties");
  ctx->sm_count = prop.multiProcessorCount;
  ctx->cc_major = prop.major;
  ctx->cc_minor = prop.minor;
  const cudaError_t probe = (cudaError_t)deco_kernels_probe();
  if (no_image_for_device(probe))
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "device %d (%s, sm_%d%d): this deco's kernels, built for CUDA architectures %s, do not load "
                     "on it (%s); add %d%d-real to -DDECO_CUDA_ARCHS",
                     config->device, prop.name, prop.major, prop.minor, DECO_CUDA_ARCHS_TEXT, cudaGetErrorString(probe),
                     prop.major, prop.minor);
  if (probe != cudaSuccess) return cuda_fail(ctx, probe, "loading the kernels");
  if (config->stream) {
    ctx->stream = config->stream;
  } else {
    cudaStream_t s;
    err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (err != cudaSuccess) return cuda_fail(ctx, err, "cudaStreamCreate");
    ctx->stream = s;
    ctx->owns_stream = 1;
  }
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_CUBLAS_ERROR, "cublasCreate failed");
  ctx->cublas = h;
  if (cublasSetStream(h, (cudaStream_t)ctx->stream) != CUBLAS_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_CUBLAS_ERROR, "cublasSetStream failed");
  err = cudaMalloc(&ctx->cublas_workspace, DECO_CUBLAS_WORKSPACE_BYTES);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "cudaMalloc(cuBLAS workspace)");
  if (cublasSetWorkspace(h, ctx->cublas_workspace, DECO_CUBLAS_WORKSPACE_BYTES) != CUBLAS_STATUS_SUCCESS)
    return DECO_FAIL(ctx, DECO_STATUS_CUBLAS_ERROR, "cublasSetWorkspace failed");
  return DECO_STATUS_SUCCESS;
}

void deco_cuda_ctx_release(deco_ctx_t *ctx) {
  /* A capture left open (an error between begin and end) is ended first:
   * the calls below are not allowed on a capturing stream. */
  enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (ctx->stream && cudaStreamIsCapturing((cudaStream_t)ctx->stream, &cs) == cudaSuccess &&
      cs != cudaStreamCaptureStatusNone) {
    cudaGraph_t g = NULL;
    if (cudaStreamEndCapture((cudaStream_t)ctx->stream, &g) == cudaSuccess && g) cudaGraphDestroy(g);
  }
  if (ctx->stream) cudaStreamSynchronize((cudaStream_t)ctx->stream);
  if (ctx->cublas) cublasDestroy((cublasHandle_t)ctx->cublas);
  if (ctx->cublas_workspace) cudaFree(ctx->cublas_workspace);
  if (ctx->owns_stream && ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
  ctx->cublas = NULL;
  ctx->cublas_workspace = NULL;
  ctx->stream = NULL;
  (void)cudaGetLastError();
}

deco_status_t deco_cuda_malloc(deco_ctx_t *ctx, void **ptr, size_t bytes) {
  cudaError_t err = cudaMalloc(ptr, bytes);
  if (err != cudaSuccess) {
    *ptr = NULL;
    (void)cudaGetLastError();
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_malloc: %zu bytes of device memory: %s", bytes,
                     cudaGetErrorString(err));
  }
  return DECO_STATUS_SUCCESS;
}

void deco_cuda_free(deco_ctx_t *ctx, void *ptr) {
  (void)ctx;
  cudaFree(ptr);
}

deco_status_t deco_cuda_memcpy(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes, deco_copy_kind_t kind,
                               int async) {
  enum cudaMemcpyKind k = kind == DECO_COPY_HOST_TO_CTX   ? cudaMemcpyHostToDevice
                          : kind == DECO_COPY_CTX_TO_HOST ? cudaMemcpyDeviceToHost
                                                          : cudaMemcpyDeviceToDevice;
  cudaStream_t s = (cudaStream_t)ctx->stream;
  cudaError_t err = cudaMemcpyAsync(dst, src, bytes, k, s);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_memcpy");
  if (!async && kind != DECO_COPY_CTX_TO_CTX) {
    err = cudaStreamSynchronize(s);
    if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_memcpy (synchronize)");
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_cuda_memset(deco_ctx_t *ctx, void *dst, int byte_value, size_t bytes) {
  cudaError_t err = cudaMemsetAsync(dst, byte_value, bytes, (cudaStream_t)ctx->stream);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_memset");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_cuda_synchronize(deco_ctx_t *ctx) {
  cudaError_t err = cudaStreamSynchronize((cudaStream_t)ctx->stream);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_ctx_synchronize");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_cuda_graph_begin(deco_ctx_t *ctx) {
  cudaError_t err = cudaStreamBeginCapture((cudaStream_t)ctx->stream, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_graph_capture_begin");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_cuda_graph_end(deco_ctx_t *ctx, void **exec) {
  cudaGraph_t graph = NULL;
  cudaError_t err = cudaStreamEndCapture((cudaStream_t)ctx->stream, &graph);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_graph_capture_end");
  cudaGraphExec_t ge = NULL;
  err = cudaGraphInstantiate(&ge, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_graph_capture_end (instantiate)");
  *exec = ge;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_cuda_graph_launch(deco_ctx_t *ctx, void *exec, int n) {
  for (int i = 0; i < n; ++i) {
    cudaError_t err = cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)ctx->stream);
    if (err != cudaSuccess) return cuda_fail(ctx, err, "deco_graph_replay");
  }
  return DECO_STATUS_SUCCESS;
}

void deco_cuda_graph_destroy(void *exec) {
  if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
}
