/* deco/core.h — status codes, versions, dtypes and the execution context.
 *
 * Every public function returns deco_status_t. The library never prints,
 * exits or aborts; the message of the last failure on a context is kept in
 * the context (deco_last_error). Pointers handed to ops are device pointers
 * on the CUDA backend and host pointers on the CPU backend; the memory
 * helpers below (deco_malloc, deco_memcpy, ...) allocate and copy in the
 * context's address space so host code can stay backend-agnostic.
 *
 * Threads: a context and everything made from it (models, KV caches,
 * recyclers, engines, sessions, drafters, ...) are used by one thread at a
 * time, together rather than each, since they share the context's stream,
 * workspace and error message. Calls on a const tokenizer or a const n-gram
 * table (deco/superpose.h) change nothing in it and may run concurrently
 * (a deco_text_decoder_t is an object of its own). The strings that
 * deco_tokenizer_decode, deco_tokenizer_token_text and deco_tokenizer_pre
 * return live as long as the tokenizer. Separate contexts (with what was
 * made from each) may be used on separate threads at once, as the threads
 * communicator's ranks do; MPI communicators are created and destroyed from
 * one thread (deco/comm.h), as MPI's own initialisation requires.
 */
#ifndef DECO_CORE_H
#define DECO_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DECO_API
#else
#define DECO_API __attribute__((visibility("default")))
#endif

#define DECO_VERSION_MAJOR 0
#define DECO_VERSION_MINOR 3
#define DECO_VERSION_PATCH 0
/* Single integer for compile-time comparisons: 10000*major + 100*minor + patch. */
#define DECO_VERSION (DECO_VERSION_MAJOR * 10000 + DECO_VERSION_MINOR * 100 + DECO_VERSION_PATCH)

typedef enum deco_status {
  DECO_STATUS_SUCCESS = 0,
  DECO_STATUS_INVALID_ARGUMENT = 1, /* a value out of range or inconsistent */
  DECO_STATUS_NULL_POINTER = 2,     /* a required pointer was NULL */
  DECO_STATUS_UNSUPPORTED = 3,      /* valid, but not supported (dtype, head dim, ...) */
  DECO_STATUS_NO_DEVICE = 4,        /* CUDA backend asked for, no usable device / not built */
  DECO_STATUS_OUT_OF_MEMORY = 5,
  DECO_STATUS_WORKSPACE_TOO_SMALL = 6,
  DECO_STATUS_CUDA_ERROR = 7,
  DECO_STATUS_CUBLAS_ERROR = 8,
  DECO_STATUS_IO_ERROR = 9,  /* a file could not be opened, read or written */
  DECO_STATUS_BAD_FORMAT = 10, /* a file's content is invalid */
  DECO_STATUS_CAPACITY = 11, /* a fixed capacity (pages, slots, tokens) would be exceeded */
  DECO_STATUS_INTERNAL = 12,
  DECO_STATUS_NON_FINITE = 13, /* a computation produced NaN or infinity (e.g. a model's logits) */
  DECO_STATUS_ABORTED = 14     /* another rank of a communicator failed and aborted it (deco/comm.h) */
} deco_status_t;

/* Static name of a status ("DECO_STATUS_SUCCESS", ...); never NULL. */
DECO_API const char *deco_status_string(deco_status_t status);

/* Runtime version, DECO_VERSION of the library actually loaded. */
DECO_API int deco_version(void);
/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
DECO_API const char *deco_version_string(void);

typedef enum deco_dtype {
  DECO_DTYPE_F32 = 0,
  DECO_DTYPE_F16 = 1,
  DECO_DTYPE_BF16 = 2
} deco_dtype_t;

/* Bytes per element of a dtype, 0 for an unknown value. */
DECO_API size_t deco_dtype_size(deco_dtype_t dtype);
/* "f32", "f16", "bf16", or "?" */
DECO_API const char *deco_dtype_name(deco_dtype_t dtype);

typedef enum deco_backend {
  DECO_BACKEND_CPU = 0,
  DECO_BACKEND_CUDA = 1
} deco_backend_t;

/* "cpu" / "cuda" */
DECO_API const char *deco_backend_name(deco_backend_t backend);

/* Number of CUDA devices usable by this library: 0 when built without CUDA or
 * when no driver/device is present (never an error). */
DECO_API int deco_cuda_device_count(void);

typedef struct deco_ctx deco_ctx_t;

/* The config grows with new options; fill it with DECO_CTX_CONFIG_INIT and
 * then set fields, so new options keep their defaults:
 *   deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
 *   cfg.backend = DECO_BACKEND_CUDA;
 * `size`, the first field, tells deco_ctx_create which layout the caller
 * compiled against (as NCCL's ncclConfig_t does): fields are only ever added
 * at the end, a caller's smaller struct gets the defaults for the fields it
 * lacks, and a size of 0 (a config not made from the macro), one that does
 * not reach past `size`, or one larger than this library's struct is refused
 * with DECO_STATUS_INVALID_ARGUMENT. Every public config struct of deco
 * follows the same rule.
 * Structs without a size field (deco_model_hparams_t, the forward's args,
 * plan and sizes, the stats of deco_generate, deco_eval and superposed
 * decoding, deco_ngram_info_t, deco_superpose_result_t, the ops' args
 * structs, ...) change layout only with the soname, which carries MAJOR.MINOR
 * (libdeco.so.0.3): before 1.0 a minor release may change them, a patch
 * release does not.
 * The DECO_*_INIT macros are designated initialisers in declaration order:
 * C99 and later, or C++20 and later in C++. */
typedef struct deco_ctx_config {
  size_t size;   /* sizeof(deco_ctx_config_t), set by DECO_CTX_CONFIG_INIT */
  deco_backend_t backend;
  int device;    /* CUDA device ordinal; ignored on the CPU */
  void *stream;  /* cudaStream_t to launch on; NULL = the context creates its own, non-blocking
                    (cudaStreamNonBlocking: not ordered with the legacy default stream) */
  int n_threads; /* CPU backend: OpenMP threads of the ops that use several (matmul splits output
                    columns over them); 0 = OpenMP's default (OMP_NUM_THREADS, else one per core).
                    Results never depend on it. Ignored on CUDA. */
} deco_ctx_config_t;
/* The CPU backend, device 0, a stream of the context's own, OpenMP's default thread count. */
#define DECO_CTX_CONFIG_INIT \
  {.size = sizeof(deco_ctx_config_t), .backend = DECO_BACKEND_CPU, .device = 0, .stream = NULL, .n_threads = 0}

/* Creates a context. On failure *out is NULL and the reason can be read with
 * deco_last_error(NULL) on the calling thread. A CUDA context makes its
 * device current on the creating thread; use a context from threads whose
 * current device is that device (one process or thread per GPU). */
DECO_API deco_status_t deco_ctx_create(const deco_ctx_config_t *config, deco_ctx_t **out);
/* CUDA: ends a graph capture left open on the context's stream (the partial
 * graph is dropped), waits for the stream, and destroys it if the context
 * made it; a caller's stream is synchronised, not destroyed. */
DECO_API void deco_ctx_destroy(deco_ctx_t *ctx);

DECO_API deco_backend_t deco_ctx_backend(const deco_ctx_t *ctx);
/* The CPU thread count (deco_ctx_config_t.n_threads) of later calls; 0 =
 * OpenMP's default. For code that receives a context already made (e.g.
 * from a model). n_threads outside [0, DECO_MAX_THREADS] is refused. */
#define DECO_MAX_THREADS 1024
DECO_API deco_status_t deco_ctx_set_threads(deco_ctx_t *ctx, int n_threads);
DECO_API int deco_ctx_threads(const deco_ctx_t *ctx);
/* The stream ops launch on (cudaStream_t), NULL on the CPU. */
DECO_API void *deco_ctx_stream(const deco_ctx_t *ctx);

/* Caller-owned scratch memory (in the context's address space) that ops with
 * a deco_<op>_workspace_size() use. The context does not free it. Setting it
 * before a CUDA graph capture keeps allocations out of the captured region.
 * Model-layer calls (deco_model_plan, deco_forward, the engine,
 * deco_generate, deco_eval_ids, the drafters, ...) put a workspace owned by
 * the model in its place when it is smaller than they need
 * (deco_ctx_workspace_bytes then reports the model's); one of at least a
 * plan's workspace (deco_forward_sizes_t.workspace_bytes, deco/model.h)
 * stays in place. deco_model_destroy gives back the workspace last set here
 * when the context still holds that model's, so keep it valid until then
 * (or set another).
 * Alignment: deco_attention's split path needs 4 bytes, deco_topk_rows 8,
 * deco_recycle_update 4 (DECO_STATUS_INVALID_ARGUMENT otherwise); tree
 * attention and the tensor-core attention path align it themselves (their
 * sizes include the slack). deco_malloc's 256-byte alignment suits them all.
 * Each deco_<op>_workspace_size returns the bytes the call needs: 0 on the
 * CPU backend (the twins need none), for a NULL ctx or args, and, on CUDA,
 * for arguments the op would refuse (deco_last_error(ctx) then says why). */
DECO_API deco_status_t deco_ctx_set_workspace(deco_ctx_t *ctx, void *workspace, size_t workspace_bytes);
DECO_API size_t deco_ctx_workspace_bytes(const deco_ctx_t *ctx);

/* Message of the last failure on ctx (or, for ctx == NULL, of the last
 * failure on this thread: a failed deco_ctx_create or context-free call, or
 * a failure on any context, which is copied there too); "" if none. The
 * string is the context's (the thread's) own buffer: the next failure there
 * overwrites it, a success leaves it as it is. */
DECO_API const char *deco_last_error(const deco_ctx_t *ctx);

/* Memory in the context's address space (device memory on CUDA), 256-byte
 * aligned on both backends. deco_malloc of 0 bytes returns NULL and
 * succeeds. */
DECO_API deco_status_t deco_malloc(deco_ctx_t *ctx, void **ptr, size_t bytes);
DECO_API void deco_free(deco_ctx_t *ctx, void *ptr);

typedef enum deco_copy_kind {
  DECO_COPY_HOST_TO_CTX = 0, /* host memory -> context memory */
  DECO_COPY_CTX_TO_HOST = 1,
  DECO_COPY_CTX_TO_CTX = 2
} deco_copy_kind_t;

/* Copies on the context's stream; returns after the copy is complete when
 * the destination or source is host memory (so host buffers can be reused). */
DECO_API deco_status_t deco_memcpy(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                                   deco_copy_kind_t kind);
/* Asynchronous on CUDA (stream-ordered); source/destination host buffers must
 * stay valid until the stream reaches the copy. */
DECO_API deco_status_t deco_memcpy_async(deco_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                                         deco_copy_kind_t kind);
/* Asynchronous on CUDA (stream-ordered, as deco_memcpy_async). */
DECO_API deco_status_t deco_memset(deco_ctx_t *ctx, void *dst, int byte_value, size_t bytes);
/* Waits for all work queued on the context's stream. */
DECO_API deco_status_t deco_ctx_synchronize(deco_ctx_t *ctx);

/* ---- CUDA graphs: capture the work queued on the context's stream once,
 * replay it many times without host work in between. CUDA backend only
 * (DECO_STATUS_UNSUPPORTED on the CPU). Nothing captured may allocate,
 * synchronise or copy through pageable host memory; sizes that change per
 * replay must live in device memory. */
typedef struct deco_graph deco_graph_t;
DECO_API deco_status_t deco_graph_capture_begin(deco_ctx_t *ctx);
/* Ends the capture and instantiates the graph (also on failure the capture
 * is ended, so the stream is usable again). When a call recorded a failure
 * on ctx during the capture, no graph is made and that failure's status
 * and message are returned: ending the capture never replaces them. */
DECO_API deco_status_t deco_graph_capture_end(deco_ctx_t *ctx, deco_graph_t **graph);
/* Enqueues n replays on the context's stream (asynchronous). */
DECO_API deco_status_t deco_graph_replay(deco_ctx_t *ctx, deco_graph_t *graph, int n);
DECO_API void deco_graph_destroy(deco_graph_t *graph);

/* Host-side conversions that match the device's round-to-nearest-even. */
DECO_API uint16_t deco_f32_to_bf16(float x);
DECO_API float deco_bf16_to_f32(uint16_t x);
DECO_API uint16_t deco_f32_to_f16(float x);
DECO_API float deco_f16_to_f32(uint16_t x);

#ifdef __cplusplus
}
#endif
#endif /* DECO_CORE_H */
