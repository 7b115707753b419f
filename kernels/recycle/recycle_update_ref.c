/* kernels/recycle/recycle_update_ref.c — reference Token Recycling update
 * (Luo et al. 2024): every node of the batch, in flat order (requests in
 * order, each tree breadth first), overwrites its token's row of the
 * adjacency matrix with the top-k ids of its logits, so the last node
 * carrying a token wins. tree_indptr [B+1], tokens [n_nodes],
 * topk [n_nodes][k], table [vocab][k].
 */
#include <string.h>

#include "common/op_impl.h"

deco_status_t deco_recycle_update_ref(const deco_exec_t *exec, const deco_recycle_update_args_t *a) {
  static const char op[] = "deco_recycle_update";
  const int V = a->vocab, k = a->k, B = a->n_trees;
  const int32_t *ip = a->tree_indptr;
  /* Everything is checked before the table is touched. */
  if (ip[0] < 0)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree_indptr[0] = %d is negative", op, (int)ip[0]);
  for (int b = 0; b < B; ++b)
    if (ip[b + 1] < ip[b] || ip[b + 1] > a->n_nodes)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                            "%s: tree %d spans nodes [%d, %d): must be non-decreasing within n_nodes = %d", op, b,
                            (int)ip[b], (int)ip[b + 1], a->n_nodes);
  for (int j = ip[0]; j < ip[B]; ++j) {
    if (a->tokens[j] < 0 || a->tokens[j] >= V)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tokens[%d] = %d is outside [0, vocab = %d)", op, j,
                            (int)a->tokens[j], V);
    for (int c = 0; c < k; ++c) {
      const int32_t id = a->topk[(size_t)j * k + c];
      if (id < 0 || id >= V)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: topk[%d][%d] = %d is outside [0, vocab = %d)",
                              op, j, c, (int)id, V);
    }
  }
  for (int j = ip[0]; j < ip[B]; ++j)
    memcpy(a->table + (size_t)a->tokens[j] * k, a->topk + (size_t)j * k, sizeof(int32_t) * (size_t)k);
  return DECO_STATUS_SUCCESS;
}
