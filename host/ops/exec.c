/* host/ops/exec.c — the kernels' view of a context (kernels/common/exec.h):
 * its backend, stream, device limits, workspace and cuBLAS handle, and an
 * error sink that records a kernel's message on the context, as DECO_FAIL
 * does for host code (deco_last_error(ctx), and the calling thread's slot).
 */
#include "ops/dispatch.h"

_Static_assert(DECO_EXEC_MESSAGE_CAPACITY == DECO_ERROR_CAPACITY,
               "a kernel's message and the context's buffer hold the same length");

static void record_on_ctx(void *user, deco_status_t status, const char *message) {
  (void)deco_set_error((deco_ctx_t *)user, status, "%s", message);
}

deco_exec_t deco_ops_exec(deco_ctx_t *ctx) {
  deco_exec_t e = {
      .backend = ctx->backend,
      .stream = ctx->stream,
      .sm_count = ctx->sm_count,
      .cc_major = ctx->cc_major,
      .cc_minor = ctx->cc_minor,
      .workspace = ctx->workspace,
      .workspace_bytes = ctx->workspace_bytes,
      .cublas = ctx->cublas,
      .on_error = record_on_ctx,
      .error_user = ctx,
      .n_threads = ctx->n_threads,
  };
  return e;
}
