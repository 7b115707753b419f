/* kernels/spec/draft_chain_ref.c — reference of deco_draft_chain: a draft
 * forward's batch, the argmax of its last row or (temperature > 0) q and a
 * draw from it, and the chain's prev id (deco/spec_step.h; the shared
 * arithmetic is draft_chain_common.h). Sums run in increasing id order, as
 * the host model drafter's do, so both draw the same ids. A top-w tree
 * (width > 1) is bookkeeping only (draft_chain_common.h).
 */
#include "common/op_impl.h"
#include "spec/draft_chain_common.h"

/* q row of level l and the id drawn from it (deco_draft_chain_softmax and
 * deco_draft_chain_draw, as the host drafter draws); best: the row's argmax. */
static int32_t sample(const deco_draft_chain_args_t *a, const float *row, int count, int32_t best) {
  const int V = a->vocab;
  float *q = a->q + (size_t)(a->stage - 1) * (size_t)V;
  if (count == 0) { /* an empty forward: the point mass at id 0 */
    for (int i = 0; i < V; ++i) q[i] = i == 0 ? 1.0f : 0.0f;
    return 0;
  }
  if (!deco_draft_chain_softmax(row, V, best, a->temperature, q)) return best;
  /* q[best] = 1 / z > 0, so something is drawn. */
  const int32_t x = deco_draft_chain_draw(q, V, NULL, 0, deco_draft_chain_uniform(a, a->stage));
  return x >= 0 ? x : best;
}

deco_status_t deco_draft_chain_ref(const deco_exec_t *exec, const deco_draft_chain_args_t *a) {
  (void)exec;
  if (a->width > 1) {
    deco_draft_tree_finish(a);
    return DECO_STATUS_SUCCESS;
  }
  int count = 0;
  int32_t best = 0;
  if (a->stage >= 1) {
    count = a->q_indptr[1];
    const float *row = count > 0 ? a->logits + (size_t)(count - 1) * (size_t)a->vocab : NULL;
    if (count > 0) best = deco_draft_chain_argmax(row, a->vocab);
    if (a->temperature > 0.0f) best = sample(a, row, count, best);
  }
  deco_draft_chain_finish(a, count, best);
  return DECO_STATUS_SUCCESS;
}
