/* host/ops/exec.h — the kernels' view of a context (kernels/common/exec.h),
 * for host/ops and for benches that call a kernel-level entry point
 * (linear/matmul_path.h) on a context of theirs.
 */
#ifndef DECO_HOST_OPS_EXEC_H
#define DECO_HOST_OPS_EXEC_H

#include "common/exec.h"
#include "deco/core.h"

/* ctx's backend, stream, device limits, workspace and cuBLAS handle; a
 * kernel's failure is recorded on ctx (deco_last_error) with its message.
 * The view copies the context's state: make a new one after
 * deco_ctx_set_workspace. */
deco_exec_t deco_ops_exec(deco_ctx_t *ctx);

#endif
