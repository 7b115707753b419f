/* kernels/spec/spec_step_ref.c — reference of the device-resident step's
 * bookkeeping: deco_spec_prepare (tree sizes, positions, the root) and
 * deco_spec_commit (emit, advance, stop). See spec_step_common.h.
 */
#include "common/op_impl.h"
#include "spec/spec_step_common.h"

deco_status_t deco_spec_prepare_ref(const deco_exec_t *exec, const deco_spec_prepare_args_t *a) {
  (void)exec;
  deco_spec_prepare_one(a);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_spec_commit_ref(const deco_exec_t *exec, const deco_spec_commit_args_t *a) {
  (void)exec;
  deco_spec_commit_one(a);
  return DECO_STATUS_SUCCESS;
}
