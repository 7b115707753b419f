/* kernels/kv/kv_compact_ref.c — reference KV compaction after tree
 * acceptance: for every tree b and layer l, slot L_b + path[b][d] moves to
 * slot L_b + d for d = 1 .. accept_len[b]-1 (K and V rows of n_kv_heads *
 * head_dim elements; layer l's pools at k_pages/v_pages + l * layer_stride).
 * A path strictly increases (path[d] >= d), so copying in increasing d never
 * overwrites a source before it is read. path [B][DECO_TREE_MAX_NODES].
 */
#include <string.h>

#include "common/op_impl.h"
#include "common/paged.h"

deco_status_t deco_kv_compact_ref(const deco_exec_t *exec, const deco_kv_compact_args_t *a) {
  static const char op[] = "deco_kv_compact";
  const deco_paged_kv_t *c = &a->cache;
  const size_t esize = deco_dtype_size(c->dtype);
  const size_t row_bytes = (size_t)c->n_kv_heads * c->head_dim * esize;
  for (int b = 0; b < a->n_trees; ++b) {
    const int32_t *path = a->path + (size_t)b * DECO_TREE_MAX_NODES;
    const int len = a->accept_len[b], L = a->prefix_lens[b];
    if (len < 1 || len > DECO_TREE_MAX_NODES || path[0] != 0 || L < 0)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                            "%s: tree %d: accept_len = %d, path[0] = %d, prefix_len = %d", op, b, len, path[0], L);
    for (int d = 1; d < len; ++d)
      if (path[d] <= path[d - 1] || path[d] >= DECO_TREE_MAX_NODES)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: path[%d] = %d does not increase", op, b,
                              d, path[d]);
    const int32_t *bt = c->block_table + (size_t)b * c->max_pages_per_seq;
    /* Every slot of the accepted path and every source needs a page, moved
     * or not (the CUDA kernel skips such a tree as a whole): all rows are
     * found before any row of the tree moves. */
    long long src[DECO_TREE_MAX_NODES], dst[DECO_TREE_MAX_NODES];
    for (int d = 1; d < len; ++d) {
      src[d] = deco_paged_row(bt, c->max_pages_per_seq, c->page_size, c->n_pages, L + path[d]);
      dst[d] = deco_paged_row(bt, c->max_pages_per_seq, c->page_size, c->n_pages, L + d);
      if (src[d] < 0 || dst[d] < 0)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: slot %d or %d has no page", op, b,
                              L + path[d], L + d);
    }
#if DECO_HARNESS_MUTANT == 11 /* test-only (tests/ops/run_mutants.sh): the last accepted node is not moved */
    for (int d = 1; d < len - 1; ++d) {
#else
    for (int d = 1; d < len; ++d) {
#endif
      if (path[d] == d) continue;
      for (int l = 0; l < a->n_layers; ++l) {
        char *k = (char *)c->k_pages + (size_t)l * a->layer_stride * esize;
        char *v = (char *)c->v_pages + (size_t)l * a->layer_stride * esize;
        memmove(k + (size_t)dst[d] * row_bytes, k + (size_t)src[d] * row_bytes, row_bytes);
        memmove(v + (size_t)dst[d] * row_bytes, v + (size_t)src[d] * row_bytes, row_bytes);
      }
    }
  }
  return DECO_STATUS_SUCCESS;
}
