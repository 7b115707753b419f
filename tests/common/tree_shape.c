/* tests/common/tree_shape.c — see tree_shape.h. Each level's candidates
 * (every frontier node's W ranks) are listed, sorted by rank sum, cut at
 * the level's share and put back in parent and rank order. */
#include "common/tree_shape.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#include "deco/select.h"
#include "deco/tree.h"

typedef struct cand {
  int cost, parent, rank;
} cand_t;

static int by_cost(const void *x, const void *y) {
  const cand_t *a = x, *b = y;
  if (a->cost != b->cost) return a->cost - b->cost;
  if (a->parent != b->parent) return a->parent - b->parent;
  return a->rank - b->rank;
}

static int by_place(const void *x, const void *y) {
  const cand_t *a = x, *b = y;
  return a->parent != b->parent ? a->parent - b->parent : a->rank - b->rank;
}

int deco_test_tree_shape(int K, int W, int drafts, int32_t *par, int *depth) {
  static cand_t cand[DECO_TREE_MAX_NODES * DECO_TOPK_MAX_K];
  cr_assert(W >= 1 && W <= DECO_TOPK_MAX_K && drafts <= DECO_TREE_MAX_NODES - 2, "W=%d drafts=%d", W, drafts);
  int cost[DECO_TREE_MAX_NODES], n = 1, f0 = 0, f1 = 1, left = drafts;
  par[0] = -1;
  cost[0] = 0;
  *depth = 0;
  for (int l = 1; l <= K && left > 0 && f1 > f0; ++l) {
    int nc = 0;
    for (int f = f0; f < f1; ++f)
      for (int r = 0; r < W; ++r) cand[nc++] = (cand_t){cost[f] + r, f, r};
    qsort(cand, (size_t)nc, sizeof *cand, by_cost);
    int share = (left + K - l) / (K - l + 1);
    if (share > nc) share = nc;
    qsort(cand, (size_t)share, sizeof *cand, by_place);
    for (int i = 0; i < share; ++i) {
      par[n] = cand[i].parent;
      cost[n++] = cand[i].cost;
    }
    left -= share;
    f0 = f1;
    f1 = n;
    *depth = l;
  }
  return n;
}
