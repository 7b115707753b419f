/* kernels/spec/draft_chain_ref.c — reference of deco_draft_chain: a draft
 * forward's batch, the argmax of its last row or (temperature > 0) q and a
 * draw from it, and the chain's prev id (deco/spec_step.h; the shared
 * arithmetic is draft_chain_common.h). Sums run in increasing id order, as
 * the host model drafter's do, so both draw the same ids. A top-w tree
 * (width > 1) is bookkeeping only (draft_chain_common.h).
 */
#include <math.h>

#include "common/op_impl.h"
#include "spec/draft_chain_common.h"

/* exp((x - m) / T) in double: z's terms and q's numerators (the host
 * drafter's softmax_t). */
static double weight(float x, float m, float temperature) {
  return exp(((double)x - (double)m) / (double)temperature);
}

/* q row of level l and the id drawn from it; best: the row's argmax. */
static int32_t sample(const deco_draft_chain_args_t *a, const float *row, int count, int32_t best) {
  const int V = a->vocab;
  float *q = a->q + (size_t)(a->stage - 1) * (size_t)V;
  int has_nan = 0;
  for (int i = 0; count > 0 && i < V; ++i) has_nan |= row[i] != row[i];
  if (count == 0 || !deco_draft_chain_usable(row[best], has_nan)) {
    const int32_t x = count > 0 ? best : 0;
    for (int i = 0; i < V; ++i) q[i] = i == x ? 1.0f : 0.0f;
    return x;
  }
  const float m = row[best], T = a->temperature;
  double z = 0;
  for (int i = 0; i < V; ++i) z += weight(row[i], m, T);
  for (int i = 0; i < V; ++i) q[i] = (float)(weight(row[i], m, T) / z);
  double total = 0;
  for (int i = 0; i < V; ++i) total += q[i];
  const double target = (double)deco_draft_chain_uniform(a, a->stage) * total;
  double cum = 0;
  int32_t last = best;
  for (int i = 0; i < V; ++i) {
    if (q[i] <= 0.0f) continue;
    last = i;
    cum += q[i];
    if (cum > target) return i;
  }
  return last;
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
    if (count > 0)
      for (int i = 1; i < a->vocab; ++i)
        if (deco_draft_chain_above(row[i], i, row[best], best)) best = i;
    if (a->temperature > 0.0f) best = sample(a, row, count, best);
  }
  deco_draft_chain_finish(a, count, best);
  return DECO_STATUS_SUCCESS;
}
