/* tests/common/tree_shape.h — the fixed shape of a device-resident top-w
 * draft tree, restated from deco/spec.h as the oracle of the suites that
 * check the drafter's shape (tests/test_draft_model_device.c) and drive
 * deco_draft_chain's tree mode over it (tests/gpu/test_draft_chain_cuda.c).
 * The drafter's own copy (host/draft/model_draft.c) is the code under test.
 */
#ifndef DECO_TESTS_TREE_SHAPE_H
#define DECO_TESTS_TREE_SHAPE_H

#include <stdint.h>

/* The shape of a device tree of at most `drafts` drafts (<= 254), depth at
 * most K and width W (<= DECO_TOPK_MAX_K), as deco/spec.h states it: level
 * l = 1..K takes ceil(drafts left / levels left) children of the smallest
 * rank sum (the ranks along the path; ties: the earlier parent, the lower
 * rank), at most W per node, laid out by parent and rank. par[0..n) gets
 * the parents (par[0] = -1); returns n, root included; *depth gets the
 * depth reached. */
int deco_test_tree_shape(int K, int W, int drafts, int32_t *par, int *depth);

#endif
