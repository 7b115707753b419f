/* tests/common/tree_case.c — see tree_case.h. */
#include "common/tree_case.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/randtree.h"
#include "common/testutil.h"

void deco_test_tree_case_build(const deco_test_tree_spec_t *g, deco_test_tree_case_t *c) {
  memset(c, 0, sizeof *c);
  uint64_t s = g->seed;
  c->B = g->B;
  c->n_kv = g->n_kv;
  c->group = g->group;
  c->hd = g->hd;
  c->page_size = g->page_size;
  c->H = g->n_kv * g->group;
  c->indptr = malloc(sizeof(int32_t) * (size_t)(g->B + 1));
  c->prefix = malloc(sizeof(int32_t) * (size_t)g->B);
  c->indptr[0] = 0;
  int max_pages = 1;
  for (int b = 0; b < g->B; ++b) {
    c->indptr[b + 1] = c->indptr[b] + g->sizes[b];
    c->prefix[b] = g->prefix[b];
    int pages = (g->prefix[b] + g->sizes[b] + g->page_size - 1) / g->page_size;
    if (pages > max_pages) max_pages = pages;
  }
  c->total = c->indptr[g->B];
  c->cap_nodes = c->total + g->extra_cap;
  c->parent = malloc(sizeof(int32_t) * (size_t)(c->cap_nodes > 0 ? c->cap_nodes : 1));
  for (int b = 0; b < g->B; ++b)
    if (g->sizes[b] > 0) {
      const int shape = g->shape >= 0 ? g->shape : deco_test_rng_int(&s, 0, 4);
      deco_test_random_tree(&s, g->sizes[b], shape, c->parent + c->indptr[b]);
    }
  for (int i = c->total; i < c->cap_nodes; ++i) c->parent[i] = g->pad_parent;
  c->max_pages = max_pages + 1; /* one spare entry per row, left unused */
  c->n_pages = g->B * c->max_pages + g->spare_pages;
  int *perm = malloc(sizeof(int) * (size_t)c->n_pages);
  for (int i = 0; i < c->n_pages; ++i) perm[i] = i;
  for (int i = c->n_pages - 1; i > 0; --i) {
    int j = deco_test_rng_int(&s, 0, i), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  c->block_table = malloc(sizeof(int32_t) * (size_t)g->B * (size_t)c->max_pages);
  for (int i = 0; i < g->B * c->max_pages; ++i) c->block_table[i] = perm[i];
  free(perm);
  c->pool_elems = (size_t)c->n_pages * g->page_size * g->n_kv * g->hd;
  c->q_elems = (size_t)(c->cap_nodes > 0 ? c->cap_nodes : 1) * c->H * g->hd;
  c->k = calloc(c->pool_elems, sizeof(float));
  c->v = calloc(c->pool_elems, sizeof(float));
  c->q = calloc(c->q_elems, sizeof(float));
  c->scale = 1.0f / sqrtf((float)g->hd);
  if (g->no_values) return;
  deco_test_fill_uniform(c->k, c->pool_elems, g->seed, 1, -1.0f, 1.0f);
  deco_test_fill_uniform(c->v, c->pool_elems, g->seed, 2, -1.0f, 1.0f);
  deco_test_fill_uniform(c->q, c->q_elems, g->seed, 3, -2.0f, 2.0f);
  deco_test_round_to(c->k, c->pool_elems, g->dtype);
  deco_test_round_to(c->v, c->pool_elems, g->dtype);
  deco_test_round_to(c->q, c->q_elems, g->dtype);
}

void deco_test_tree_case_free(deco_test_tree_case_t *c) {
  free(c->indptr);
  free(c->parent);
  free(c->prefix);
  free(c->block_table);
  free(c->k);
  free(c->v);
  free(c->q);
  memset(c, 0, sizeof *c);
}

deco_tree_attention_args_t deco_test_tree_case_args(const deco_test_tree_case_t *c, deco_dtype_t dtype, void *k,
                                                    void *v, const int32_t *block_table, const int32_t *indptr,
                                                    const int32_t *parent, const int32_t *prefix, const void *q,
                                                    void *out) {
  deco_tree_attention_args_t a = DECO_TREE_ATTENTION_ARGS_INIT;
  a.cache.dtype = dtype;
  a.cache.n_kv_heads = c->n_kv;
  a.cache.head_dim = c->hd;
  a.cache.page_size = c->page_size;
  a.cache.n_pages = c->n_pages;
  a.cache.k_pages = k;
  a.cache.v_pages = v;
  a.cache.block_table = block_table;
  a.cache.max_pages_per_seq = c->max_pages;
  a.tree.n_trees = c->B;
  a.tree.n_nodes = c->cap_nodes;
  a.tree.tree_indptr = indptr;
  a.tree.parent = parent;
  a.prefix_lens = prefix;
  a.n_heads = c->H;
  a.scale = c->scale;
  a.q = q;
  a.out = out;
  return a;
}
