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

/* One tree's nodes (local indices): argmax, "ok" (it and its ancestors
 * match), depth, and whether an ok node reaches the deepest ok level. */
typedef struct greedy_nodes {
  int32_t am[DECO_TREE_MAX_NODES], depth[DECO_TREE_MAX_NODES];
  unsigned char ok[DECO_TREE_MAX_NODES], reach[DECO_TREE_MAX_NODES];
} greedy_nodes_t;

/* Fills am, ok and depth of tree b's n nodes from its first node lo on;
 * *max_depth = the deepest ok level. Returns nonfinite: 1 + the smallest ok
 * node whose row is not finite, or 0. */
static int score_nodes(const deco_tree_accept_greedy_args_t *a, int lo, int n, greedy_nodes_t *g, int *max_depth) {
  const int V = a->vocab;
  const int32_t *par = a->tree.parent + lo;
  const int32_t *tok = a->tokens + lo;
  int nonfinite = 0;
  for (int v = 0; v < n; ++v) {
    const float *row = (const float *)a->logits + (size_t)(lo + v) * V;
    g->am[v] = deco_tree_ref_argmax(row, V);
    g->ok[v] = v == 0 || (g->ok[par[v]] && tok[v] == g->am[par[v]]);
    /* a row the decision reads, checked only then */
    if (g->ok[v] && !nonfinite && !deco_tree_ref_row_finite(row, V)) nonfinite = v + 1;
    g->depth[v] = v == 0 ? 0 : g->depth[par[v]] + 1;
    if (g->ok[v] && g->depth[v] > *max_depth) *max_depth = g->depth[v];
  }
  return nonfinite;
}

/* Mark the ok nodes on some path to the deepest ok level (children after parents). */
static void mark_reach(greedy_nodes_t *g, const int32_t *par, int n, int max_depth) {
  memset(g->reach, 0, sizeof g->reach);
  for (int v = n - 1; v >= 0; --v) {
    if (g->ok[v] && g->depth[v] == max_depth) g->reach[v] = 1;
    if (g->reach[v] && v > 0) g->reach[par[v]] = 1;
  }
}

/* Writes the accepted path (padded with -1): from the root down through the
 * smallest marked child at each depth. Returns its length. */
static int descend(const greedy_nodes_t *g, const int32_t *par, int n, int max_depth, int32_t *path) {
  for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[i] = -1;
  int v = 0, len = 0;
  path[len++] = 0;
  while (g->depth[v] < max_depth) {
    int next = -1;
    for (int c = v + 1; c < n && next < 0; ++c)
      if (par[c] == v && g->reach[c]) next = c;
    v = next;
    path[len++] = v;
  }
  return len;
}

deco_status_t deco_tree_accept_greedy_ref(const deco_exec_t *exec, const deco_tree_accept_greedy_args_t *a) {
  static const char op[] = "deco_tree_accept_greedy";
  const deco_tree_batch_t *tb = &a->tree;
  DECO_TRY(deco_tree_ref_check_batch(exec, tb, op));
  greedy_nodes_t g;
  for (int b = 0; b < tb->n_trees; ++b) {
    const int lo = tb->tree_indptr[b], n = tb->tree_indptr[b + 1] - lo;
    const int32_t *par = tb->parent + lo;
    int max_depth = 0;
    const int nonfinite = score_nodes(a, lo, n, &g, &max_depth);
    mark_reach(&g, par, n, max_depth);
    int32_t *path = a->out.path + (size_t)b * DECO_TREE_MAX_NODES;
    const int len = descend(&g, par, n, max_depth, path);
    a->out.accept_len[b] = len;
    a->out.bonus[b] = g.am[path[len - 1]];
    if (a->out.nonfinite) a->out.nonfinite[b] = nonfinite;
  }
  return DECO_STATUS_SUCCESS;
}
