/* tests/common/randtree.h — a small deterministic integer generator
 * (splitmix64) and random draft trees of five shapes, shared by the tree
 * suites. */
#ifndef DECO_TESTS_RANDTREE_H
#define DECO_TESTS_RANDTREE_H

#include <stdint.h>

uint64_t deco_test_rng_next(uint64_t *state);
/* Uniform integer in [lo, hi]. */
int deco_test_rng_int(uint64_t *state, int lo, int hi);
/* Tree of n nodes in topological order (parent[0] = -1); shape % 5 picks
 * bushy, chain, star, deep or 3-ary (breadth first). */
void deco_test_random_tree(uint64_t *state, int n, int shape, int32_t *parent);

#endif
