/* kernels/verify/tree_ref_util.h — host-side helpers of the acceptance
 * references: checking a ragged tree batch (the references see host memory,
 * so they check the device-side arrays the public entry cannot), listing
 * a node's children in index order, and a row's argmax and finiteness.
 */
#ifndef DECO_KERNELS_VERIFY_TREE_REF_UTIL_H
#define DECO_KERNELS_VERIFY_TREE_REF_UTIL_H

#include <math.h>

#include "common/exec.h"
#include "deco/tree.h"

/* Largest logit's id (lowest among equals), NaN skipped; 0 for a row of NaN. */
static inline int deco_tree_ref_argmax(const float *row, int V) {
  int best = 0;
  for (int y = 1; y < V; ++y)
    if (row[y] > row[best] || (row[best] != row[best] && row[y] == row[y])) best = y;
  return best;
}

/* 1 when the row holds no NaN and no infinity. */
static inline int deco_tree_ref_row_finite(const float *row, int V) {
  for (int y = 0; y < V; ++y)
    if (!isfinite(row[y])) return 0;
  return 1;
}

/* tree_indptr[0] = 0, sizes 1..DECO_TREE_MAX_NODES, tree_indptr[B] <= n_nodes,
 * parent[0] = -1 and 0 <= parent[i] < i in every tree. */
static inline deco_status_t deco_tree_ref_check_batch(const deco_exec_t *exec, const deco_tree_batch_t *tb,
                                                      const char *op) {
  if (tb->tree_indptr[0] != 0)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree_indptr[0] = %d, expected 0", op,
                          tb->tree_indptr[0]);
  for (int b = 0; b < tb->n_trees; ++b) {
    int lo = tb->tree_indptr[b], hi = tb->tree_indptr[b + 1], n = hi - lo;
    if (n < 1 || n > DECO_TREE_MAX_NODES || hi > tb->n_nodes)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                            "%s: tree %d spans nodes [%d, %d): size must be 1..%d within n_nodes = %d", op, b, lo, hi,
                            DECO_TREE_MAX_NODES, tb->n_nodes);
    const int32_t *par = tb->parent + lo;
    if (par[0] != -1)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: parent[0] = %d, expected -1", op, b,
                            par[0]);
    for (int i = 1; i < n; ++i)
      if (par[i] < 0 || par[i] >= i)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: parent[%d] = %d is not an earlier node",
                              op, b, i, par[i]);
  }
  return DECO_STATUS_SUCCESS;
}

/* Children of v in increasing index; returns their count. */
static inline int deco_tree_ref_children(const int32_t *parent, int n, int v, int32_t *children) {
  int k = 0;
  for (int c = v + 1; c < n; ++c)
    if (parent[c] == v) children[k++] = c;
  return k;
}

#endif
