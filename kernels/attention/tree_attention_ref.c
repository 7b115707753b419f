/* kernels/attention/tree_attention_ref.c — reference tree attention (the
 * verification step of SpecInfer-style tree speculative decoding): node i of
 * tree b attends to the prefix slots 0..L_b-1 and to the slots L_b + j of its
 * ancestors j and itself, found by walking the parent array. llama2.c's
 * order: scores, max, exp, sum, divide, weighted sum of V; fp32.
 * q, out [n_nodes][n_heads][head_dim] (q's nodes q_stride elements apart,
 * 0: dense); pools [n_pages][page_size][n_kv][head_dim].
 */
#include <math.h>
#include <stdlib.h>

#include "attention/attention_ref_common.h"
#include "common/op_impl.h"
#include "common/paged.h"

static const char op[] = "deco_tree_attention";

/* Checks tree b's slice of the device-side description (here host memory). */
static deco_status_t check_tree(const deco_exec_t *exec, const deco_tree_attention_args_t *a, int b,
                                long long kv_capacity) {
  const deco_tree_batch_t *t = &a->tree;
  int t0 = t->tree_indptr[b], t1 = t->tree_indptr[b + 1];
  if (t0 < 0 || t1 < t0 || t1 - t0 > DECO_TREE_MAX_NODES || t1 > t->n_nodes)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                          "%s: tree %d spans nodes [%d, %d): more than %d nodes, decreasing, or past the capacity %d",
                          op, b, t0, t1, DECO_TREE_MAX_NODES, t->n_nodes);
  int n = t1 - t0;
  if (n > 0) {
    const int32_t *par = t->parent + t0;
    if (par[0] != -1)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: root has parent %d, expected -1", op, b,
                            (int)par[0]);
    for (int i = 1; i < n; ++i)
      if (par[i] < 0 || par[i] >= i)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                              "%s: tree %d: node %d has parent %d, expected [0, %d)", op, b, i, (int)par[i], i);
  }
  long long L = a->prefix_lens[b];
  if (L < 0 || L + n > kv_capacity)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                          "%s: tree %d: prefix length %lld + %d nodes outside [0, %lld] (block table capacity)", op, b,
                          L, n, kv_capacity);
  return DECO_STATUS_SUCCESS;
}

/* 1 if node j is node i or one of its ancestors. */
static int is_ancestor(const int32_t *parent, int j, int i) {
  while (i > j) i = parent[i];
  return i == j;
}

/* 1 if node i of a tree over a prefix of L slots attends slot p: a prefix
 * slot, or the slot L + j of itself or an ancestor j. */
static int attends(const int32_t *parent, int L, int p, int i) {
  if (p < L || is_ancestor(parent, p - L, i)) return 1;
#if DECO_HARNESS_MUTANT == 6 /* test-only (tests/ops/run_mutants.sh): node i also sees node i + 1 */
  return p - L == i + 1;
#else
  return 0;
#endif
}

/* Checks every tree; *max_keys: the most slots a node attends (at least 1). */
static deco_status_t check_trees(const deco_exec_t *exec, const deco_tree_attention_args_t *a, long long kv_capacity,
                                 int *max_keys) {
  const deco_tree_batch_t *t = &a->tree;
  *max_keys = 1;
  for (int b = 0; b < t->n_trees; ++b) {
    DECO_TRY(check_tree(exec, a, b, kv_capacity));
    int keys = a->prefix_lens[b] + t->tree_indptr[b + 1] - t->tree_indptr[b];
    if (keys > *max_keys) *max_keys = keys;
  }
  return DECO_STATUS_SUCCESS;
}

/* The pool rows of the slots node i of tree b attends, in increasing slot
 * order, into rows; *n_keys: their count. */
static deco_status_t gather_rows(const deco_exec_t *exec, const deco_tree_attention_args_t *a, int b, int i,
                                 long long *rows, int *n_keys) {
  const deco_paged_kv_t *c = &a->cache;
  const deco_tree_batch_t *t = &a->tree;
  const int t0 = t->tree_indptr[b], n = t->tree_indptr[b + 1] - t0, L = a->prefix_lens[b];
  const int32_t *parent = t->parent + t0;
  const int32_t *bt = c->block_table + (size_t)b * c->max_pages_per_seq;
  *n_keys = 0;
  for (int p = 0; p < L + n; ++p) {
    if (!attends(parent, L, p, i)) continue;
    long long r = deco_paged_row(bt, c->max_pages_per_seq, c->page_size, c->n_pages, p);
    if (r < 0)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d slot %d has no page in the block table",
                            op, b, p);
    rows[(*n_keys)++] = r;
  }
  return DECO_STATUS_SUCCESS;
}

/* Every query head of flat node `node` over the n_keys pool rows; att:
 * scratch of n_keys scores. */
static void attend_heads(const deco_tree_attention_args_t *a, int node, const long long *rows, int n_keys,
                         float *att) {
  const deco_paged_kv_t *c = &a->cache;
  const int hd = c->head_dim, group = a->n_heads / c->n_kv_heads;
  const size_t kv_row = (size_t)c->n_kv_heads * hd;
  const size_t q_row = a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * hd;
  for (int h = 0; h < a->n_heads; ++h) {
    const float *q = (const float *)a->q + (size_t)node * q_row + (size_t)h * hd;
    float *o = (float *)a->out + ((size_t)node * a->n_heads + h) * hd;
    const size_t kvh = deco_ref_kv_head(h, group, c->n_kv_heads, hd);
    deco_ref_attend(q, (const float *)c->k_pages, (const float *)c->v_pages, rows, n_keys, kv_row, kvh, hd,
                    deco_ref_scale(a->scale), att, o);
  }
}

deco_status_t deco_tree_attention_ref(const deco_exec_t *exec, const deco_tree_attention_args_t *a) {
  const deco_paged_kv_t *c = &a->cache;
  const deco_tree_batch_t *t = &a->tree;
  /* Slots addressable through a block-table row, kept in int range. */
  long long kv_capacity = (long long)c->max_pages_per_seq * c->page_size;
  if (kv_capacity > INT32_MAX) kv_capacity = INT32_MAX;
  int max_keys;
  DECO_TRY(check_trees(exec, a, kv_capacity, &max_keys));
  float *att = malloc(sizeof(float) * (size_t)max_keys);
  long long *rows = malloc(sizeof(long long) * (size_t)max_keys); /* pool row of each attended slot */
  if (!att || !rows) {
    free(att);
    free(rows);
    return DECO_EXEC_FAIL(exec, DECO_STATUS_OUT_OF_MEMORY, "%s: scratch of %d scores", op, max_keys);
  }
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int b = 0; b < t->n_trees && st == DECO_STATUS_SUCCESS; ++b) {
    const int t0 = t->tree_indptr[b], n = t->tree_indptr[b + 1] - t0;
    for (int i = 0; i < n && st == DECO_STATUS_SUCCESS; ++i) {
      int n_keys;
      st = gather_rows(exec, a, b, i, rows, &n_keys);
      if (st == DECO_STATUS_SUCCESS) attend_heads(a, t0 + i, rows, n_keys, att);
    }
  }
  free(att);
  free(rows);
  return st;
}
