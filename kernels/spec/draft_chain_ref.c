/* kernels/spec/draft_chain_ref.c — reference of deco_draft_chain: a draft
 * forward's batch, the argmax of its last row, and the chain's prev id
 * (deco/spec_step.h; the shared arithmetic is draft_chain_common.h).
 */
#include "common/op_impl.h"
#include "spec/draft_chain_common.h"

deco_status_t deco_draft_chain_ref(const deco_exec_t *exec, const deco_draft_chain_args_t *a) {
  (void)exec;
  int count = 0;
  int32_t best = 0;
  if (a->stage >= 1) {
    count = a->q_indptr[1];
    if (count > 0) {
      const float *row = a->logits + (size_t)(count - 1) * (size_t)a->vocab;
      for (int i = 1; i < a->vocab; ++i)
        if (deco_draft_chain_above(row[i], i, row[best], best)) best = i;
    }
  }
  deco_draft_chain_finish(a, count, best);
  return DECO_STATUS_SUCCESS;
}
