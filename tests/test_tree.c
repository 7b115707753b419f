/* tests/test_tree.c — draft-tree host helpers (validation, depths, positions,
 * rank paths incl. the Token Recycling template, child/sibling lists) and
 * the reference tree attention against a dense masked attention computed
 * here in double precision, over random trees, ragged batches, shuffled
 * pages, GQA ratios and head dims; a chain must equal causal attention.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/randtree.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/tree_case.h"
#include "deco/deco.h"



static int error_mentions(const char *a, const char *b) {
  const char *msg = deco_last_error(NULL);
  int ok = strstr(msg, a) != NULL && (b == NULL || strstr(msg, b) != NULL);
  if (!ok) fprintf(stderr, "message \"%s\" lacks \"%s\" / \"%s\"\n", msg, a, b ? b : "");
  return ok;
}

/* ================= host helpers ================= */

Test(tree_helpers, validate_accepts_trees) {
  int32_t one[1] = {-1};
  cr_expect_eq(deco_tree_validate(one, 1), DECO_STATUS_SUCCESS);
  uint64_t s = 1;
  int32_t parent[DECO_TREE_MAX_NODES];
  for (int shape = 0; shape < 5; ++shape)
    for (int n = 1; n <= DECO_TREE_MAX_NODES; n += 51) {
      deco_test_random_tree(&s, n, shape, parent);
      cr_expect_eq(deco_tree_validate(parent, n), DECO_STATUS_SUCCESS, "shape %d n %d: %s", shape, n,
                   deco_last_error(NULL));
    }
  deco_test_random_tree(&s, DECO_TREE_MAX_NODES, 0, parent);
  cr_expect_eq(deco_tree_validate(parent, DECO_TREE_MAX_NODES), DECO_STATUS_SUCCESS);
}

Test(tree_helpers, validate_rejects_bad_trees) {
  int32_t p[8] = {-1, 0, 0, 1, 1, 3, 2, 6};
  cr_expect_eq(deco_tree_validate(NULL, 3), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_validate(p, 0), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_validate(p, -1), DECO_STATUS_INVALID_ARGUMENT);
  int32_t big[DECO_TREE_MAX_NODES + 1];
  for (int i = 0; i <= DECO_TREE_MAX_NODES; ++i) big[i] = i - 1;
  cr_expect_eq(deco_tree_validate(big, DECO_TREE_MAX_NODES + 1), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_validate(big, DECO_TREE_MAX_NODES), DECO_STATUS_SUCCESS);

  int32_t q[8];
  memcpy(q, p, sizeof q);
  q[0] = 0;
  cr_expect_eq(deco_tree_validate(q, 8), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 0", "parent 0"));
  memcpy(q, p, sizeof q);
  q[5] = 5; /* self loop */
  cr_expect_eq(deco_tree_validate(q, 8), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 5", "parent 5"));
  memcpy(q, p, sizeof q);
  q[4] = 6; /* forward reference: not topological */
  cr_expect_eq(deco_tree_validate(q, 8), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 4", "parent 6"));
  memcpy(q, p, sizeof q);
  q[7] = -1; /* a second root */
  cr_expect_eq(deco_tree_validate(q, 8), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 7", "parent -1"));
  memcpy(q, p, sizeof q);
  q[2] = -7;
  cr_expect_eq(deco_tree_validate(q, 8), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 2", "parent -7"));
  /* Only the first n entries matter. */
  cr_expect_eq(deco_tree_validate(q, 2), DECO_STATUS_SUCCESS);
}

Test(tree_helpers, depths_and_positions) {
  int32_t p[8] = {-1, 0, 0, 1, 1, 3, 2, 6};
  int32_t want[8] = {0, 1, 1, 2, 2, 3, 2, 3};
  int32_t d[8], pos[8];
  cr_assert_eq(deco_tree_depths(p, 8, d), DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_test_compare_i32("depth", d, want, 8), 0);
  cr_assert_eq(deco_tree_positions(p, 8, 100, pos), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 8; ++i) cr_expect_eq(pos[i], 100 + want[i]);
  cr_assert_eq(deco_tree_positions(p, 8, 0, pos), DECO_STATUS_SUCCESS);
  cr_expect_eq(deco_test_compare_i32("positions at prefix 0", pos, want, 8), 0);

  /* A chain of 256: depth i; a star: depth 1. */
  int32_t chain[DECO_TREE_MAX_NODES], dc[DECO_TREE_MAX_NODES];
  uint64_t s = 3;
  deco_test_random_tree(&s, DECO_TREE_MAX_NODES, 1, chain);
  cr_assert_eq(deco_tree_depths(chain, DECO_TREE_MAX_NODES, dc), DECO_STATUS_SUCCESS);
  for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) cr_expect_eq(dc[i], i);
  deco_test_random_tree(&s, 40, 2, chain);
  cr_assert_eq(deco_tree_depths(chain, 40, dc), DECO_STATUS_SUCCESS);
  for (int i = 1; i < 40; ++i) cr_expect_eq(dc[i], 1);

  cr_expect_eq(deco_tree_depths(p, 8, NULL), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_positions(p, 8, -1, pos), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_positions(p, 8, INT32_MAX, pos), DECO_STATUS_INVALID_ARGUMENT);
  int32_t bad[3] = {-1, 2, 0};
  cr_expect_eq(deco_tree_depths(bad, 3, d), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_positions(bad, 3, 5, pos), DECO_STATUS_INVALID_ARGUMENT);
}

Test(tree_helpers, rank_paths_small) {
  /* {0} {1} {0,0} {0,1} {1,0} {0,0,0} */
  int32_t ranks[] = {0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0};
  int32_t offs[] = {0, 1, 2, 4, 6, 8, 11};
  int32_t parent[7], rank[7];
  cr_assert_eq(deco_tree_from_rank_paths(ranks, offs, 6, parent, rank), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  int32_t want_p[7] = {-1, 0, 0, 1, 1, 2, 3};
  int32_t want_r[7] = {-1, 0, 1, 0, 1, 0, 0};
  cr_expect_eq(deco_test_compare_i32("parent", parent, want_p, 7), 0);
  cr_expect_eq(deco_test_compare_i32("rank", rank, want_r, 7), 0);
  cr_expect_eq(deco_tree_validate(parent, 7), DECO_STATUS_SUCCESS);

  /* No paths: the root alone. */
  cr_assert_eq(deco_tree_from_rank_paths(NULL, offs, 0, parent, rank), DECO_STATUS_SUCCESS);
  cr_expect_eq(parent[0], -1);
  cr_expect_eq(rank[0], -1);
  /* Offsets need not start at 0. */
  int32_t offs2[] = {2, 4};
  cr_assert_eq(deco_tree_from_rank_paths(ranks, offs2, 1, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 0", "no parent"));
}

Test(tree_helpers, rank_paths_rejects_bad_lists) {
  int32_t parent[8], rank[8];
  /* Not breadth first: {0,0} before {1}. */
  int32_t r1[] = {0, 0, 0, 1};
  int32_t o1[] = {0, 1, 3, 4};
  cr_expect_eq(deco_tree_from_rank_paths(r1, o1, 3, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 2", "breadth first"));
  /* A missing prefix: {1,0} without {1}. */
  int32_t r2[] = {0, 1, 0};
  int32_t o2[] = {0, 1, 3};
  cr_expect_eq(deco_tree_from_rank_paths(r2, o2, 2, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 1", "no parent"));
  /* A duplicate. */
  int32_t r3[] = {0, 1, 0};
  int32_t o3[] = {0, 1, 2, 3};
  cr_expect_eq(deco_tree_from_rank_paths(r3, o3, 3, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 2", "repeats path 0"));
  /* A negative rank. */
  int32_t r4[] = {0, -2};
  int32_t o4[] = {0, 1, 2};
  cr_expect_eq(deco_tree_from_rank_paths(r4, o4, 2, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 1", "rank -2"));
  /* An empty path, decreasing offsets. */
  int32_t o5[] = {0, 1, 1};
  cr_expect_eq(deco_tree_from_rank_paths(r3, o5, 2, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("path 1", "length 0"));
  int32_t o6[] = {0, 2, 1};
  cr_expect_eq(deco_tree_from_rank_paths(r3, o6, 2, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  int32_t o7[] = {-1, 1};
  cr_expect_eq(deco_tree_from_rank_paths(r3, o7, 1, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  /* Too many paths, NULL pointers. */
  cr_expect_eq(deco_tree_from_rank_paths(r3, o3, DECO_TREE_MAX_NODES, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_from_rank_paths(r3, o3, -1, parent, rank), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_from_rank_paths(NULL, o3, 3, parent, rank), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_rank_paths(r3, NULL, 3, parent, rank), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_rank_paths(r3, o3, 3, NULL, rank), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_rank_paths(r3, o3, 3, parent, NULL), DECO_STATUS_NULL_POINTER);
  /* 255 paths is the most a tree holds: a star with ranks 0..254. */
  int32_t r8[DECO_TREE_MAX_NODES], o8[DECO_TREE_MAX_NODES], p8[DECO_TREE_MAX_NODES], k8[DECO_TREE_MAX_NODES];
  for (int j = 0; j < DECO_TREE_MAX_NODES - 1; ++j) {
    r8[j] = j;
    o8[j] = j;
  }
  o8[DECO_TREE_MAX_NODES - 1] = DECO_TREE_MAX_NODES - 1;
  cr_expect_eq(deco_tree_from_rank_paths(r8, o8, DECO_TREE_MAX_NODES - 1, p8, k8), DECO_STATUS_SUCCESS);
  cr_expect_eq(p8[DECO_TREE_MAX_NODES - 1], 0);
  cr_expect_eq(k8[DECO_TREE_MAX_NODES - 1], DECO_TREE_MAX_NODES - 2);
}

/* Parses the template (one comma-separated rank path per line) here in the
 * test: the library has no template parser of its own yet. */
static int read_template(const char *path, int32_t *ranks, int32_t *offs, int cap_ranks, int cap_paths) {
  size_t size;
  char *text = deco_test_read_file(path, &size);
  if (!text) return -1;
  int n_paths = 0, n_ranks = 0;
  offs[0] = 0;
  for (char *p = text; *p;) {
    if (*p == '\n' || *p == '\r') { /* blank line or line end */
      p++;
      continue;
    }
    if (n_paths >= cap_paths) break;
    while (*p && *p != '\n' && *p != '\r') {
      char *end;
      long v = strtol(p, &end, 10);
      if (end == p || n_ranks >= cap_ranks) {
        free(text);
        return -1;
      }
      ranks[n_ranks++] = (int32_t)v;
      p = (*end == ',') ? end + 1 : end;
    }
    offs[++n_paths] = n_ranks;
  }
  free(text);
  return n_paths;
}

Test(tree_helpers, token_recycling_template) {
  int32_t ranks[4096], offs[DECO_TREE_MAX_NODES + 1];
  int n_paths = read_template(deco_test_data_file("fixtures/token_recycling_template_80.txt"), ranks, offs, 4096,
                              DECO_TREE_MAX_NODES);
  cr_assert_eq(n_paths, 80, "template: %d paths", n_paths);
  int32_t parent[81], rank[81], depth[81];
  cr_assert_eq(deco_tree_from_rank_paths(ranks, offs, n_paths, parent, rank), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(deco_tree_depths(parent, 81, depth), DECO_STATUS_SUCCESS);
  int width[8] = {0};
  for (int i = 0; i < 81; ++i) {
    cr_assert_lt(depth[i], 8);
    width[depth[i]]++;
  }
  int want[8] = {1, 8, 21, 25, 15, 8, 3, 0};
  for (int d = 0; d < 8; ++d) cr_expect_eq(width[d], want[d], "width at depth %d: %d, expected %d", d, width[d], want[d]);
  /* Each node's path is its parent's path plus its own rank. */
  for (int j = 0; j < n_paths; ++j) {
    int node = j + 1, len = offs[j + 1] - offs[j];
    cr_expect_eq(depth[node], len);
    cr_expect_eq(rank[node], ranks[offs[j + 1] - 1]);
    int p = parent[node];
    if (p > 0) {
      int plen = offs[p] - offs[p - 1];
      cr_expect_eq(plen, len - 1);
      cr_expect_eq(memcmp(ranks + offs[p - 1], ranks + offs[j], sizeof(int32_t) * (size_t)plen), 0);
    } else {
      cr_expect_eq(len, 1);
    }
  }
  /* The root's first children are ranks 0..7 in order. */
  for (int r = 0; r < 8; ++r) {
    cr_expect_eq(parent[r + 1], 0);
    cr_expect_eq(rank[r + 1], r);
  }
}

/* Child/sibling lists of a tree given as a parent array, with the input
 * nodes renamed by perm (input index perm[i] = tree node i; perm[0] = 0) and
 * each child list in increasing tree-node order. */
static void to_child_sibling(const int32_t *parent, int n, const int *perm, int32_t *fc, int32_t *ns) {
  for (int i = 0; i < n; ++i) fc[i] = ns[i] = -1;
  int last[DECO_TREE_MAX_NODES];
  for (int i = 0; i < n; ++i) last[i] = -1;
  for (int i = 1; i < n; ++i) {
    int p = parent[i];
    if (last[p] < 0) fc[perm[p]] = perm[i];
    else ns[perm[last[p]]] = perm[i];
    last[p] = i;
  }
}

Test(tree_helpers, child_sibling_roundtrip) {
  uint64_t s = 11;
  for (int trial = 0; trial < 40; ++trial) {
    int n = trial == 0 ? 1 : deco_test_rng_int(&s, 1, DECO_TREE_MAX_NODES);
    int32_t parent[DECO_TREE_MAX_NODES], fc[DECO_TREE_MAX_NODES], ns[DECO_TREE_MAX_NODES];
    int32_t out_parent[DECO_TREE_MAX_NODES], order[DECO_TREE_MAX_NODES], inv[DECO_TREE_MAX_NODES];
    int perm[DECO_TREE_MAX_NODES];
    deco_test_random_tree(&s, n, trial, parent);
    for (int i = 0; i < n; ++i) perm[i] = i;
    for (int i = n - 1; i > 1; --i) { /* shuffle all but the root */
      int j = deco_test_rng_int(&s, 1, i), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    to_child_sibling(parent, n, perm, fc, ns);
    cr_assert_eq(deco_tree_from_child_sibling(fc, ns, n, out_parent, order), DECO_STATUS_SUCCESS, "trial %d: %s",
                 trial, deco_last_error(NULL));
    cr_assert_eq(deco_tree_validate(out_parent, n), DECO_STATUS_SUCCESS);
    cr_expect_eq(order[0], 0);
    /* order is a permutation and the parent relation is preserved. */
    for (int i = 0; i < n; ++i) inv[i] = -1;
    for (int k = 0; k < n; ++k) {
      cr_assert(order[k] >= 0 && order[k] < n && inv[order[k]] < 0, "order[%d] = %d", k, order[k]);
      inv[order[k]] = k;
    }
    int32_t depth[DECO_TREE_MAX_NODES];
    cr_assert_eq(deco_tree_depths(out_parent, n, depth), DECO_STATUS_SUCCESS);
    for (int k = 1; k < n; ++k) {
      /* out node k is input order[k]; its input parent is perm[parent[tree node]]. */
      int input = order[k];
      int tree_node = -1;
      for (int i = 0; i < n; ++i)
        if (perm[i] == input) tree_node = i;
      cr_assert_eq(order[out_parent[k]], perm[parent[tree_node]], "node %d", k);
      cr_expect_geq(depth[k], depth[k - 1], "breadth first: depth decreases at %d", k);
      /* Siblings keep list order. */
      if (k + 1 < n && out_parent[k + 1] == out_parent[k]) cr_expect_eq(ns[order[k]], order[k + 1]);
    }
  }
}

Test(tree_helpers, child_sibling_rejects_bad_lists) {
  int32_t parent[6], order[6];
  /* Good: 0 -> {1, 2}, 1 -> {3}, 2 -> {4, 5}. */
  int32_t fc[6] = {1, 3, 4, -1, -1, -1};
  int32_t ns[6] = {-1, 2, -1, -1, 5, -1};
  cr_assert_eq(deco_tree_from_child_sibling(fc, ns, 6, parent, order), DECO_STATUS_SUCCESS);
  int32_t want_p[6] = {-1, 0, 0, 1, 2, 2}, want_o[6] = {0, 1, 2, 3, 4, 5};
  cr_expect_eq(deco_test_compare_i32("parent", parent, want_p, 6), 0);
  cr_expect_eq(deco_test_compare_i32("order", order, want_o, 6), 0);

  int32_t f[6], s[6];
  /* Cycle through the root. */
  memcpy(f, fc, sizeof f);
  memcpy(s, ns, sizeof s);
  f[3] = 0;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 0", "reached twice"));
  /* Cycle in a sibling list. */
  memcpy(f, fc, sizeof f);
  memcpy(s, ns, sizeof s);
  s[5] = 4;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 4", "reached twice"));
  /* A node with two parents. */
  memcpy(f, fc, sizeof f);
  memcpy(s, ns, sizeof s);
  f[3] = 5;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 5", "reached twice"));
  /* Unreachable node 5. */
  memcpy(f, fc, sizeof f);
  memcpy(s, ns, sizeof s);
  s[4] = -1;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("node 5", "not reachable"));
  /* Out-of-range links. */
  memcpy(f, fc, sizeof f);
  memcpy(s, ns, sizeof s);
  f[2] = 6;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("first_child[2] = 6", NULL));
  memcpy(f, fc, sizeof f);
  s[1] = -2;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("next_sibling[1] = -2", NULL));
  /* The root has no siblings. */
  memcpy(s, ns, sizeof s);
  s[0] = 3;
  cr_expect_eq(deco_tree_from_child_sibling(f, s, 6, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect(error_mentions("root", "next_sibling 3"));
  /* Sizes and pointers. */
  cr_expect_eq(deco_tree_from_child_sibling(fc, ns, 0, parent, order), DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_from_child_sibling(fc, ns, DECO_TREE_MAX_NODES + 1, parent, order),
               DECO_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(deco_tree_from_child_sibling(NULL, ns, 6, parent, order), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_child_sibling(fc, NULL, 6, parent, order), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_child_sibling(fc, ns, 6, NULL, order), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_from_child_sibling(fc, ns, 6, parent, NULL), DECO_STATUS_NULL_POINTER);
  /* A lone root. */
  int32_t f1[1] = {-1}, s1[1] = {-1};
  cr_expect_eq(deco_tree_from_child_sibling(f1, s1, 1, parent, order), DECO_STATUS_SUCCESS);
  cr_expect_eq(parent[0], -1);
  cr_expect_eq(order[0], 0);
}

/* ================= tree attention (reference) ================= */

/* One ragged batch of trees over a paged cache, all in host memory: the
 * shared builder (tests/common/tree_case.h), f32, three spare pages, and
 * parent entries past the real nodes set to 12345 (never read). */
typedef deco_test_tree_case_t tcase_t;

static void tcase_free(tcase_t *c) { deco_test_tree_case_free(c); }

/* sizes[b], prefix[b] given; random trees; pages shuffled over the pool. */
static void tcase_build(tcase_t *c, uint64_t seed, int B, const int *sizes, const int *prefix, int n_kv, int group,
                        int hd, int page_size, int extra_cap) {
  const deco_test_tree_spec_t spec = {.dtype = DECO_DTYPE_F32, .B = B, .sizes = sizes, .prefix = prefix,
                                      .n_kv = n_kv, .group = group, .hd = hd, .page_size = page_size,
                                      .extra_cap = extra_cap, .shape = -1, .spare_pages = 3, .pad_parent = 12345,
                                      .seed = seed};
  deco_test_tree_case_build(&spec, c);
}

static deco_tree_attention_args_t tcase_args(const tcase_t *c, float *out) {
  return deco_test_tree_case_args(c, DECO_DTYPE_F32, c->k, c->v, c->block_table, c->indptr, c->parent, c->prefix,
                                  c->q, out);
}

/* Dense masked attention in double: the ancestor mask is built by marking
 * each node's root path; pool rows come straight from the block table. */
static void dense_reference(const tcase_t *c, float *out) {
  const int H = c->n_kv * c->group, hd = c->hd;
  for (int b = 0; b < c->B; ++b) {
    int t0 = c->indptr[b], n = c->indptr[b + 1] - t0, L = c->prefix[b];
    int keys = L + n;
    double *sc = malloc(sizeof(double) * (size_t)(keys > 0 ? keys : 1));
    unsigned char *allowed = malloc((size_t)(keys > 0 ? keys : 1));
    for (int i = 0; i < n; ++i) {
      for (int p = 0; p < keys; ++p) allowed[p] = p < L;
      for (int j = i; j >= 0; j = c->parent[t0 + j]) allowed[L + j] = 1;
      for (int h = 0; h < H; ++h) {
        const float *q = c->q + ((size_t)(t0 + i) * H + h) * hd;
        int kvh = h / c->group;
        double mx = -INFINITY;
        for (int p = 0; p < keys; ++p) {
          if (!allowed[p]) continue;
          int page = c->block_table[b * c->max_pages + p / c->page_size];
          const float *kr = c->k + (((size_t)page * c->page_size + p % c->page_size) * c->n_kv + kvh) * hd;
          double d = 0;
          for (int e = 0; e < hd; ++e) d += (double)q[e] * kr[e];
          sc[p] = d * c->scale;
          if (sc[p] > mx) mx = sc[p];
        }
        double sum = 0;
        for (int p = 0; p < keys; ++p)
          if (allowed[p]) sum += (sc[p] = exp(sc[p] - mx));
        float *o = out + ((size_t)(t0 + i) * H + h) * hd;
        for (int e = 0; e < hd; ++e) {
          double acc = 0;
          for (int p = 0; p < keys; ++p) {
            if (!allowed[p]) continue;
            int page = c->block_table[b * c->max_pages + p / c->page_size];
            const float *vr = c->v + (((size_t)page * c->page_size + p % c->page_size) * c->n_kv + kvh) * hd;
            acc += sc[p] * vr[e];
          }
          o[e] = (float)(acc / sum);
        }
      }
    }
    free(sc);
    free(allowed);
  }
}

/* Runs the reference on c and compares every real row with the dense
 * attention; rows past the real node count must stay untouched. */
static void check_case(deco_ctx_t *ctx, const tcase_t *c, const char *what) {
  const int H = c->n_kv * c->group;
  size_t row = (size_t)H * c->hd, n_out = (size_t)(c->cap_nodes > 0 ? c->cap_nodes : 1) * row;
  float *out = malloc(sizeof(float) * n_out), *want = malloc(sizeof(float) * n_out);
  for (size_t i = 0; i < n_out; ++i) out[i] = 777.0f;
  deco_tree_attention_args_t a = tcase_args(c, out);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s: %s", what, deco_last_error(ctx));
  dense_reference(c, want);
  cr_expect_eq(deco_test_compare(what, out, want, (size_t)c->total * row, DECO_TOL_F32_REDUCTION,
                                 DECO_TOL_F32_REDUCTION),
               0, "%s: reference differs from the dense attention", what);
  for (size_t i = (size_t)c->total * row; i < (size_t)c->cap_nodes * row; ++i)
    if (out[i] != 777.0f) {
      cr_expect_fail("%s: row %zu past the real nodes was written", what, i / row);
      break;
    }
  free(out);
  free(want);
}

static void sweep(int hd, uint64_t seed) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  static const int groups[4] = {1, 2, 4, 8};
  static const int prefixes[5] = {0, 1, 37, 300, 1000};
  uint64_t s = seed;
  for (int gi = 0; gi < 4; ++gi)
    for (int ps = 1; ps <= 16; ps += 15) {
      int B = deco_test_rng_int(&s, 1, 4), sizes[4], pre[4];
      int budget = hd >= 64 ? 600 : 900; /* total nodes: keeps the sweep to seconds */
      for (int b = 0; b < B; ++b) {
        int big = deco_test_rng_int(&s, 0, 3) == 0;
        sizes[b] = big ? deco_test_rng_int(&s, 100, DECO_TREE_MAX_NODES) : deco_test_rng_int(&s, 1, 40);
        if (sizes[b] > budget) sizes[b] = budget > 1 ? budget : 1;
        budget -= sizes[b];
        pre[b] = prefixes[deco_test_rng_int(&s, 0, 4)];
      }
      int n_kv = groups[gi] >= 4 ? 1 : 2;
      tcase_t c;
      tcase_build(&c, deco_test_rng_next(&s), B, sizes, pre, n_kv, groups[gi], hd, ps, deco_test_rng_int(&s, 0, 5));
      char what[128];
      snprintf(what, sizeof what, "hd %d group %d page %d B %d (sizes %d %d ...)", hd, groups[gi], ps, B, sizes[0],
               B > 1 ? sizes[1] : 0);
      check_case(ctx, &c, what);
      tcase_free(&c);
    }
  deco_ctx_destroy(ctx);
}

Test(tree_attention_ref, random_trees_hd8) { sweep(8, 101); }
Test(tree_attention_ref, random_trees_hd64) { sweep(64, 202); }
Test(tree_attention_ref, random_trees_hd128) { sweep(128, 303); }

Test(tree_attention_ref, full_256_node_trees) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int sizes[2] = {DECO_TREE_MAX_NODES, DECO_TREE_MAX_NODES}, pre[2] = {3, 0};
  tcase_t c;
  tcase_build(&c, 77, 2, sizes, pre, 1, 2, 16, 16, 0);
  check_case(ctx, &c, "two 256-node trees");
  tcase_free(&c);
  deco_ctx_destroy(ctx);
}

Test(tree_attention_ref, empty_and_single_node_trees) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int sizes[5] = {1, 0, 7, 1, 0}, pre[5] = {0, 4, 9, 0, 2};
  tcase_t c;
  tcase_build(&c, 5, 5, sizes, pre, 2, 2, 8, 1, 4);
  check_case(ctx, &c, "empty and single-node trees");
  tcase_free(&c);
  deco_ctx_destroy(ctx);
}

/* A chain is causal attention: node i sees slots 0..L+i. */
Test(tree_attention_ref, chain_equals_causal_attention) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int sizes[3] = {12, 1, 30}, pre[3] = {20, 0, 5};
  tcase_t c;
  tcase_build(&c, 9, 3, sizes, pre, 2, 4, 64, 16, 0);
  for (int b = 0; b < 3; ++b)
    for (int i = 0; i < sizes[b]; ++i) c.parent[c.indptr[b] + i] = i - 1;
  const int H = c.n_kv * c.group;
  size_t n_out = (size_t)c.total * H * c.hd;
  float *tree_out = malloc(sizeof(float) * n_out), *causal_out = malloc(sizeof(float) * n_out);
  deco_tree_attention_args_t a = tcase_args(&c, tree_out);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  int32_t kv_lens[3];
  for (int b = 0; b < 3; ++b) kv_lens[b] = pre[b] + sizes[b];
  deco_attention_args_t at;
  memset(&at, 0, sizeof at);
  at.cache = a.cache;
  at.batch.n_seqs = 3;
  at.batch.n_tokens = c.total;
  at.batch.q_indptr = c.indptr;
  at.batch.kv_lens = kv_lens;
  at.n_heads = H;
  at.scale = c.scale;
  at.q = c.q;
  at.out = causal_out;
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_expect_eq(deco_test_compare("chain vs causal", tree_out, causal_out, n_out, DECO_TOL_F32_REDUCTION,
                                 DECO_TOL_F32_REDUCTION),
               0);
  free(tree_out);
  free(causal_out);
  tcase_free(&c);
  deco_ctx_destroy(ctx);
}

/* A star: every non-root node sees the prefix, the root and itself only. */
Test(tree_attention_ref, star_sees_root_and_itself) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int sizes[1] = {6}, pre[1] = {0};
  tcase_t c;
  tcase_build(&c, 21, 1, sizes, pre, 1, 1, 8, 1, 0);
  for (int i = 1; i < 6; ++i) c.parent[i] = 0;
  /* With L = 0 the root attends to itself alone: out = v(slot 0). */
  float out[6 * 8];
  deco_tree_attention_args_t a = tcase_args(&c, out);
  cr_assert_eq(deco_tree_attention(ctx, &a), DECO_STATUS_SUCCESS);
  int page = c.block_table[0];
  const float *v0 = c.v + (size_t)page * 8;
  for (int e = 0; e < 8; ++e) cr_expect_float_eq(out[e], v0[e], 1e-6f);
  check_case(ctx, &c, "star");
  tcase_free(&c);
  deco_ctx_destroy(ctx);
}

static int message_has(deco_ctx_t *ctx, const char *needle) {
  return needle == NULL || strstr(deco_last_error(ctx), needle) != NULL;
}

Test(tree_attention_ref, api_misuse) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int sizes[2] = {5, 3}, pre[2] = {4, 17};
  tcase_t c;
  tcase_build(&c, 31, 2, sizes, pre, 2, 2, 16, 4, 0);
  float *out = malloc(sizeof(float) * (size_t)c.cap_nodes * 4 * 16);
  deco_tree_attention_args_t good = tcase_args(&c, out), a;

  cr_expect_eq(deco_tree_attention(NULL, &good), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_tree_attention(ctx, NULL), DECO_STATUS_NULL_POINTER);
  cr_expect_str_eq(deco_tree_attention_path(ctx, &good), "ref");
  cr_expect_eq(deco_tree_attention_workspace_size(ctx, &good), 0);
  cr_expect_str_eq(deco_tree_attention_path(NULL, &good), "invalid");

#define EXPECT_STATUS(field_change, status, needle)                                              \
  do {                                                                                          \
    a = good;                                                                                   \
    field_change;                                                                               \
    cr_expect_eq(deco_tree_attention(ctx, &a), status, "%s: got %s (%s)", #field_change,        \
                 deco_status_string(deco_tree_attention(ctx, &a)), deco_last_error(ctx));       \
    cr_expect(message_has(ctx, needle), "%s: message \"%s\"", #field_change, deco_last_error(ctx)); \
  } while (0)

  EXPECT_STATUS(a.q = NULL, DECO_STATUS_NULL_POINTER, "q");
  EXPECT_STATUS(a.out = NULL, DECO_STATUS_NULL_POINTER, "out");
  EXPECT_STATUS(a.prefix_lens = NULL, DECO_STATUS_NULL_POINTER, "prefix_lens");
  EXPECT_STATUS(a.tree.parent = NULL, DECO_STATUS_NULL_POINTER, "parent");
  EXPECT_STATUS(a.tree.tree_indptr = NULL, DECO_STATUS_NULL_POINTER, "tree_indptr");
  EXPECT_STATUS(a.cache.k_pages = NULL, DECO_STATUS_NULL_POINTER, "k_pages");
  EXPECT_STATUS(a.cache.block_table = NULL, DECO_STATUS_NULL_POINTER, "block_table");
  EXPECT_STATUS(a.cache.head_dim = 4, DECO_STATUS_INVALID_ARGUMENT, "head_dim");
  EXPECT_STATUS(a.cache.head_dim = 257, DECO_STATUS_INVALID_ARGUMENT, "head_dim");
  EXPECT_STATUS(a.n_heads = 3, DECO_STATUS_INVALID_ARGUMENT, "multiple");
  EXPECT_STATUS(a.n_heads = 0, DECO_STATUS_INVALID_ARGUMENT, "n_heads");
  EXPECT_STATUS(a.scale = 0.0f, DECO_STATUS_INVALID_ARGUMENT, "scale");
  EXPECT_STATUS(a.scale = NAN, DECO_STATUS_INVALID_ARGUMENT, "scale");
  EXPECT_STATUS(a.tree.n_trees = 0, DECO_STATUS_INVALID_ARGUMENT, "n_trees");
  EXPECT_STATUS(a.tree.n_nodes = -1, DECO_STATUS_INVALID_ARGUMENT, "n_nodes");
  EXPECT_STATUS(a.tree.n_nodes = 2 * DECO_TREE_MAX_NODES + 1, DECO_STATUS_INVALID_ARGUMENT, "n_nodes");
  EXPECT_STATUS(a.cache.page_size = 0, DECO_STATUS_INVALID_ARGUMENT, "page_size");
  EXPECT_STATUS(a.cache.dtype = DECO_DTYPE_BF16, DECO_STATUS_UNSUPPORTED, "bf16");
  EXPECT_STATUS(a.cache.dtype = (deco_dtype_t)7, DECO_STATUS_INVALID_ARGUMENT, "dtype");
  cr_expect_str_eq(deco_tree_attention_path(ctx, &a), "invalid");
  /* Nothing to do. */
  EXPECT_STATUS(a.tree.n_nodes = 0, DECO_STATUS_SUCCESS, NULL);

  /* Bad device-side data: the reference refuses it with a message. */
  int32_t saved;
  saved = c.parent[c.indptr[1] + 2];
  c.parent[c.indptr[1] + 2] = 2;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "node 2 has parent 2");
  c.parent[c.indptr[1] + 2] = saved;
  c.parent[0] = 0;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "root");
  c.parent[0] = -1;
  saved = c.indptr[2];
  c.indptr[2] = 4; /* decreasing */
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "tree 1");
  c.indptr[2] = 9; /* past the capacity of 8 nodes */
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "tree 1");
  c.indptr[2] = saved;
  saved = c.indptr[1];
  c.indptr[1] = -300;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "tree 0");
  c.indptr[1] = saved;
  c.prefix[1] = -1;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "prefix length -1");
  c.prefix[1] = c.max_pages * c.page_size - 2; /* + 3 nodes: past the block table */
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "capacity");
  c.prefix[1] = 17;
  saved = c.block_table[c.max_pages + 1];
  c.block_table[c.max_pages + 1] = c.n_pages;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "no page");
  c.block_table[c.max_pages + 1] = -1;
  EXPECT_STATUS((void)0, DECO_STATUS_INVALID_ARGUMENT, "tree 1 slot 4");
  c.block_table[c.max_pages + 1] = saved;
  EXPECT_STATUS((void)0, DECO_STATUS_SUCCESS, NULL);
#undef EXPECT_STATUS
  free(out);
  tcase_free(&c);
  deco_ctx_destroy(ctx);
}
