/* host/spec/tree.c — host helpers for draft trees (include/deco/tree.h):
 * validation of a parent array, depths and RoPE positions, and conversion
 * from the two other common encodings: rank paths (Token Recycling's static
 * templates, Luo et al. 2024) and first-child / next-sibling lists
 * (sgl-kernel, TensorRT-LLM). A tree is parent[n] in topological order with
 * parent[0] = -1. Errors are recorded with deco_last_error(NULL).
 */
#include <string.h>

#include "core/internal.h"
#include "deco/tree.h"

deco_status_t deco_tree_validate(const int32_t *parent, int n_nodes) {
  static const char op[] = "deco_tree_validate";
  DECO_CHECK_PTR(NULL, parent, op);
  DECO_CHECK_RANGE(NULL, n_nodes, 1, DECO_TREE_MAX_NODES, op);
  if (parent[0] != -1)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: node 0 (the root) has parent %d, expected -1", op,
                     (int)parent[0]);
  for (int i = 1; i < n_nodes; ++i)
    if (parent[i] < 0 || parent[i] >= i)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: node %d has parent %d, expected 0 <= parent < %d (topological order)", op, i,
                       (int)parent[i], i);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tree_depths(const int32_t *parent, int n_nodes, int32_t *depth) {
  DECO_CHECK_PTR(NULL, depth, "deco_tree_depths");
  DECO_TRY(deco_tree_validate(parent, n_nodes));
  depth[0] = 0;
  /* Topological order: a parent's depth is final before its children's. */
  for (int i = 1; i < n_nodes; ++i) depth[i] = depth[parent[i]] + 1;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tree_positions(const int32_t *parent, int n_nodes, int prefix_len, int32_t *positions) {
  static const char op[] = "deco_tree_positions";
  DECO_CHECK_PTR(NULL, positions, op);
  /* The deepest node sits at prefix_len + n_nodes - 1; keep it in int32. */
  DECO_CHECK_RANGE(NULL, prefix_len, 0, INT32_MAX - DECO_TREE_MAX_NODES, op);
  DECO_TRY(deco_tree_depths(parent, n_nodes, positions));
  for (int i = 0; i < n_nodes; ++i) positions[i] += prefix_len;
  return DECO_STATUS_SUCCESS;
}

/* 1 if path a (length la) equals path b (length lb). */
static int same_path(const int32_t *a, int la, const int32_t *b, int lb) {
  return la == lb && memcmp(a, b, sizeof(int32_t) * (size_t)la) == 0;
}

static const char k_rank_paths_op[] = "deco_tree_from_rank_paths";

/* Path j (ranks + offsets[j], after a path of length prev_len): its
 * length, breadth first, and its ranks, none negative. */
static deco_status_t check_rank_path(const int32_t *ranks, const int32_t *offsets, int j, int prev_len) {
  static const char *const op = k_rank_paths_op;
  const int32_t *path = ranks + offsets[j];
  int len = offsets[j + 1] - offsets[j];
  if (len < 1)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: path %d has length %d (offsets %d..%d), expected >= 1",
                     op, j, len, (int)offsets[j], (int)offsets[j + 1]);
  if (len < prev_len)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: path %d has length %d after a path of length %d (paths must come breadth first)", op, j,
                     len, prev_len);
  if (len > DECO_TREE_MAX_NODES - 1)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: path %d has length %d, more than %d", op, j, len,
                     DECO_TREE_MAX_NODES - 1);
  for (int d = 0; d < len; ++d)
    if (path[d] < 0)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: path %d has rank %d at depth %d", op, j,
                       (int)path[d], d + 1);
  return DECO_STATUS_SUCCESS;
}

/* The parent node of path j: the earlier path equal to it without its last
 * rank (the root for length 1); every proper prefix is then listed earlier
 * by induction. A path equal to an earlier one is a duplicate. */
static deco_status_t rank_path_parent(const int32_t *ranks, const int32_t *offsets, int j, int *parent) {
  static const char *const op = k_rank_paths_op;
  const int32_t *path = ranks + offsets[j];
  int len = offsets[j + 1] - offsets[j];
  int par = len == 1 ? 0 : -1;
  for (int k = 0; k < j; ++k) {
    const int32_t *other = ranks + offsets[k];
    int other_len = offsets[k + 1] - offsets[k];
    if (same_path(path, len, other, other_len))
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: path %d repeats path %d", op, j, k);
    if (par < 0 && same_path(path, len - 1, other, other_len)) par = k + 1;
  }
  if (par < 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: path %d (length %d) has no parent: its prefix of length %d is not listed before it", op,
                     j, len, len - 1);
  *parent = par;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tree_from_rank_paths(const int32_t *ranks, const int32_t *offsets, int n_paths, int32_t *parent,
                                        int32_t *rank) {
  static const char *const op = k_rank_paths_op;
  const deco_ptr_arg_t args[] = {DECO_PTR_ARG(offsets), DECO_PTR_ARG(parent), DECO_PTR_ARG(rank)};
  DECO_CHECK_PTR_ARGS(NULL, args, op);
  DECO_CHECK_RANGE(NULL, n_paths, 0, DECO_TREE_MAX_NODES - 1, op);
  if (n_paths > 0) DECO_CHECK_PTR(NULL, ranks, op);
  if (offsets[0] < 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: offsets[0] = %d is negative", op, (int)offsets[0]);
  parent[0] = -1;
  rank[0] = -1;
  int prev_len = 1;
  for (int j = 0; j < n_paths; ++j) {
    DECO_TRY(check_rank_path(ranks, offsets, j, prev_len));
    const int32_t *path = ranks + offsets[j];
    prev_len = offsets[j + 1] - offsets[j];
    int par = -1;
    DECO_TRY(rank_path_parent(ranks, offsets, j, &par));
    parent[j + 1] = par;
    rank[j + 1] = path[prev_len - 1];
  }
  return DECO_STATUS_SUCCESS;
}

static const char k_child_sibling_op[] = "deco_tree_from_child_sibling";

/* Every link inside [-1, n_nodes), and no sibling of the root. */
static deco_status_t check_child_sibling_links(const int32_t *first_child, const int32_t *next_sibling, int n_nodes) {
  static const char *const op = k_child_sibling_op;
  for (int i = 0; i < n_nodes; ++i) {
    if (first_child[i] < -1 || first_child[i] >= n_nodes)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: first_child[%d] = %d is outside [-1, %d)", op, i,
                       (int)first_child[i], n_nodes);
    if (next_sibling[i] < -1 || next_sibling[i] >= n_nodes)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: next_sibling[%d] = %d is outside [-1, %d)", op, i,
                       (int)next_sibling[i], n_nodes);
  }
  if (next_sibling[0] != -1)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: the root (node 0) has next_sibling %d, expected -1", op,
                     (int)next_sibling[0]);
  return DECO_STATUS_SUCCESS;
}

/* Breadth-first walk; order[] doubles as the queue. A node met a second
 * time (through any link) is a cycle or a node with two parents; every node
 * must be reached. */
static deco_status_t walk_child_sibling(const int32_t *first_child, const int32_t *next_sibling, int n_nodes,
                                        int32_t *parent, int32_t *order) {
  static const char *const op = k_child_sibling_op;
  unsigned char seen[DECO_TREE_MAX_NODES] = {0};
  seen[0] = 1;
  order[0] = 0;
  parent[0] = -1;
  int count = 1;
  for (int head = 0; head < count; ++head) {
    int u = order[head];
    int steps = 0;
    for (int c = first_child[u]; c != -1; c = next_sibling[c]) {
      if (seen[c])
        return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                         "%s: node %d is reached twice (from the child list of node %d): a cycle or a second parent",
                         op, c, u);
      if (++steps > n_nodes) /* unreachable: seen[] stops loops first */
        return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: sibling list of node %d does not end", op, u);
      seen[c] = 1;
      parent[count] = head;
      order[count] = c;
      count++;
    }
  }
  if (count != n_nodes) {
    int first = 0;
    while (first < n_nodes && seen[first]) first++;
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: node %d is not reachable from the root (%d of %d reached)",
                     op, first, count, n_nodes);
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tree_from_child_sibling(const int32_t *first_child, const int32_t *next_sibling, int n_nodes,
                                           int32_t *parent, int32_t *order) {
  static const char *const op = k_child_sibling_op;
  const deco_ptr_arg_t args[] = {DECO_PTR_ARG(first_child), DECO_PTR_ARG(next_sibling), DECO_PTR_ARG(parent),
                                 DECO_PTR_ARG(order)};
  DECO_CHECK_PTR_ARGS(NULL, args, op);
  DECO_CHECK_RANGE(NULL, n_nodes, 1, DECO_TREE_MAX_NODES, op);
  DECO_TRY(check_child_sibling_links(first_child, next_sibling, n_nodes));
  return walk_child_sibling(first_child, next_sibling, n_nodes, parent, order);
}
