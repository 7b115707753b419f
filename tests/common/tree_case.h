/* tests/common/tree_case.h — one ragged batch of random draft trees over a
 * paged KV cache with shuffled pages, in host memory: the one case builder
 * of tree attention, shared by the reference suite (tests/test_tree.c), the
 * GPU suite (tests/gpu/test_tree_attention.c) and the op harness
 * (tests/ops/). Shapes in, contents from the seed: trees from
 * deco_test_random_tree, K, V in [-1, 1) and q in [-2, 2) from
 * deco_test_fill_uniform (streams 1, 2, 3), rounded to the spec's dtype.
 */
#ifndef DECO_TESTS_TREE_CASE_H
#define DECO_TESTS_TREE_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "deco/deco.h"

typedef struct deco_test_tree_spec {
  deco_dtype_t dtype;        /* values rounded to it (f32: unchanged) */
  int B;                     /* trees, >= 1 */
  const int *sizes;          /* [B] nodes per tree (0 allowed) */
  const int *prefix;         /* [B] cached slots before each tree */
  int n_kv, group, hd, page_size;
  int extra_cap;             /* node capacity beyond the real nodes */
  int shape;                 /* deco_test_random_tree's shape, -1: random per tree */
  int spare_pages;           /* pool pages beyond the B block-table rows */
  int32_t pad_parent;        /* parent entries past the real nodes (the ops never read them) */
  uint64_t seed;
  int no_values;             /* 1: K, V and q left zero (for a run that must be refused) */
} deco_test_tree_spec_t;

typedef struct deco_test_tree_case {
  int B, n_kv, group, hd, page_size, H;
  int cap_nodes, total;      /* node capacity, real nodes */
  int max_pages, n_pages;    /* block-table row length (one spare entry), pool pages */
  int32_t *indptr;           /* [B + 1] */
  int32_t *parent;           /* [cap_nodes] local parents; pad_parent past total */
  int32_t *prefix;           /* [B] */
  int32_t *block_table;      /* [B][max_pages], a permutation of the pool's pages */
  float *k, *v;              /* [n_pages][page_size][n_kv][hd] */
  float *q;                  /* [cap_nodes][H][hd] (at least one row) */
  float scale;               /* 1 / sqrt(hd) */
  size_t pool_elems, q_elems;
} deco_test_tree_case_t;

void deco_test_tree_case_build(const deco_test_tree_spec_t *spec, deco_test_tree_case_t *c);
void deco_test_tree_case_free(deco_test_tree_case_t *c);

/* Arguments over the given buffers (host or context memory) with c's shapes:
 * dense q, out [cap_nodes][H][hd]. */
deco_tree_attention_args_t deco_test_tree_case_args(const deco_test_tree_case_t *c, deco_dtype_t dtype, void *k,
                                                    void *v, const int32_t *block_table, const int32_t *indptr,
                                                    const int32_t *parent, const int32_t *prefix, const void *q,
                                                    void *out);

#endif
