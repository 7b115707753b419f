/* kernels/common/exec.h — what a kernel entry point needs from its caller,
 * and nothing else: the backend, the stream, the device's limits, the
 * caller's scratch memory, the cuBLAS handle, and where to report a
 * failure. Every deco_<op>_ref / deco_<op>_cuda takes a const deco_exec_t *;
 * the library fills one from its context (host/ops/exec.c), an engine that
 * links the kernels alone fills its own. Plain C, also read by the CUDA
 * launchers (C++).
 */
#ifndef DECO_KERNELS_EXEC_H
#define DECO_KERNELS_EXEC_H

#include <stddef.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest message a kernel reports, terminator included (the context keeps
 * as much: host/core/internal.h). */
#define DECO_EXEC_MESSAGE_CAPACITY 512

/* Receives a failure: its status and its message ("op: what went wrong"). */
typedef void (*deco_exec_error_fn)(void *user, deco_status_t status, const char *message);

typedef struct deco_exec {
  deco_backend_t backend;   /* which implementation the caller dispatches to */
  void *stream;             /* cudaStream_t every launch goes to; NULL = the default stream (and on the CPU) */
  int sm_count;             /* SMs of the device (0 = unknown: plans assume 1) */
  int cc_major, cc_minor;   /* compute capability (0 = unknown: no cluster launches) */
  void *workspace;          /* caller-owned scratch in the backend's memory, or NULL */
  size_t workspace_bytes;
  void *cublas;             /* cublasHandle_t bound to stream, its workspace set (matmul's cuBLAS path) */
  deco_exec_error_fn on_error; /* NULL: failures return their status only */
  void *error_user;         /* passed to on_error */
  int n_threads;            /* CPU: OpenMP threads of an op's parallel loops; 0 = OpenMP's default */
} deco_exec_t;

/* Formats a message, hands it to exec->on_error (if any) and returns status,
 * so failures read: return DECO_EXEC_FAIL(exec, STATUS, "op: ...", ...). */
deco_status_t deco_exec_fail(const deco_exec_t *exec, deco_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define DECO_EXEC_FAIL(exec, status, ...) deco_exec_fail((exec), (status), __VA_ARGS__)

/* Returns from the enclosing function when expr fails (the host layer's
 * core/internal.h defines the same). */
#ifndef DECO_TRY
#define DECO_TRY(expr)                                 \
  do {                                                 \
    deco_status_t deco_try_status_ = (expr);           \
    if (deco_try_status_ != DECO_STATUS_SUCCESS)       \
      return deco_try_status_;                         \
  } while (0)
#endif

#ifdef __cplusplus
}
#endif
#endif
