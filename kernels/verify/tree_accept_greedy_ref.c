/* kernels/verify/tree_accept_greedy_ref.c — reference greedy acceptance over a
 * ragged batch of draft trees (Medusa / EAGLE / Token Recycling verification).
 * logits [n_nodes][vocab] f32, tokens [n_nodes], parent [n_nodes] (local).
 *
 * a[v] = argmax of logits[v] (ties -> lowest id). Node c with parent p
 * matches when tokens[c] == a[p]; a node is "ok" when it and all its
 * ancestors match (the root is ok). The accepted path is the longest root path
 * of ok nodes; among equally long ones the one with the smallest node index
 * at each depth (lexicographic from the root), found by marking the ok nodes
 * that reach the deepest ok level and descending through the smallest marked
 * child. bonus = a[last node]. path is padded with -1 to DECO_TREE_MAX_NODES.
 * The argmax skips NaN (a row of NaN alone gives 0); nonfinite (optional)
 * = 1 + the smallest ok node whose row holds a NaN or an infinity.
 */
#include <math.h>
#include <string.h>

#include "common/op_impl.h"
#include "verify/tree_ref_util.h"

deco_status_t deco_tree_accept_greedy_ref(const deco_exec_t *exec, const deco_tree_accept_greedy_args_t *a) {
  static const char op[] = "deco_tree_accept_greedy";
  const deco_tree_batch_t *tb = &a->tree;
  DECO_TRY(deco_tree_ref_check_batch(exec, tb, op));
  const int V = a->vocab;
  int32_t am[DECO_TREE_MAX_NODES], depth[DECO_TREE_MAX_NODES];
  unsigned char ok[DECO_TREE_MAX_NODES], reach[DECO_TREE_MAX_NODES];
  for (int b = 0; b < tb->n_trees; ++b) {
    const int lo = tb->tree_indptr[b], n = tb->tree_indptr[b + 1] - lo;
    const int32_t *par = tb->parent + lo;
    const int32_t *tok = a->tokens + lo;
    int max_depth = 0, nonfinite = 0;
    for (int v = 0; v < n; ++v) {
      const float *row = (const float *)a->logits + (size_t)(lo + v) * V;
      int best = 0, finite = isfinite(row[0]);
      for (int y = 1; y < V; ++y) {
        if (row[y] > row[best] || (row[best] != row[best] && row[y] == row[y])) best = y;
        finite = finite && isfinite(row[y]);
      }
      am[v] = best;
      ok[v] = v == 0 || (ok[par[v]] && tok[v] == am[par[v]]);
      if (ok[v] && !finite && !nonfinite) nonfinite = v + 1; /* a row the decision reads */
      depth[v] = v == 0 ? 0 : depth[par[v]] + 1;
      if (ok[v] && depth[v] > max_depth) max_depth = depth[v];
    }
    /* Mark the ok nodes on some path to the deepest ok level (children after parents). */
    memset(reach, 0, sizeof reach);
    for (int v = n - 1; v >= 0; --v) {
      if (ok[v] && depth[v] == max_depth) reach[v] = 1;
      if (reach[v] && v > 0) reach[par[v]] = 1;
    }
    int32_t *path = a->out.path + (size_t)b * DECO_TREE_MAX_NODES;
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[i] = -1;
    int v = 0, len = 0;
    path[len++] = 0;
    while (depth[v] < max_depth) {
      int next = -1;
      for (int c = v + 1; c < n && next < 0; ++c)
        if (par[c] == v && reach[c]) next = c;
      v = next;
      path[len++] = v;
    }
    a->out.accept_len[b] = len;
    a->out.bonus[b] = am[v];
    if (a->out.nonfinite) a->out.nonfinite[b] = nonfinite;
  }
  return DECO_STATUS_SUCCESS;
}
