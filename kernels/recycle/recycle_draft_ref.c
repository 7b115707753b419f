/* kernels/recycle/recycle_draft_ref.c — reference Token Recycling draft (Luo
 * et al. 2024): B copies of one static tree template filled from the
 * adjacency matrix, tokens[b][0] = roots[b], tokens[b][j] =
 * table[tokens[b][parent[j]]][rank[j]] in index (breadth-first) order.
 * roots [B], parent/rank [n], table [vocab][k], tokens [B][n].
 */
#include "common/op_impl.h"

deco_status_t deco_recycle_draft_ref(const deco_exec_t *exec, const deco_recycle_draft_args_t *a) {
  static const char op[] = "deco_recycle_draft";
  const int n = a->n_nodes, V = a->vocab, k = a->k;
  /* The template and the roots are checked before anything is written. */
  for (int j = 1; j < n; ++j) {
    if (a->parent[j] < 0 || a->parent[j] >= j)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: parent[%d] = %d is not an earlier node", op, j,
                            (int)a->parent[j]);
    if (a->rank[j] < 0 || a->rank[j] >= k)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: rank[%d] = %d is outside [0, k = %d)", op, j,
                            (int)a->rank[j], k);
  }
  for (int b = 0; b < a->n_trees; ++b)
    if (a->roots[b] < 0 || a->roots[b] >= V)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: roots[%d] = %d is outside [0, vocab = %d)", op, b,
                            (int)a->roots[b], V);
  /* Only the table rows drafting reaches need valid ids: they are checked
   * as they are read (the output is then incomplete). */
  for (int b = 0; b < a->n_trees; ++b) {
    int32_t *t = a->tokens + (size_t)b * n;
    t[0] = a->roots[b];
    for (int j = 1; j < n; ++j) {
      const int32_t from = t[a->parent[j]];
      const int32_t v = a->table[(size_t)from * k + a->rank[j]];
      if (v < 0 || v >= V)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: table[%d][%d] = %d is outside [0, vocab = %d)",
                              op, (int)from, (int)a->rank[j], (int)v, V);
      t[j] = v;
    }
  }
  return DECO_STATUS_SUCCESS;
}
