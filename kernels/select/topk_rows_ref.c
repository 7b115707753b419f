/* kernels/select/topk_rows_ref.c — reference per-row top-k of raw logits
 * (Token Recycling's update, Luo et al. 2024; superposed decoding's top-m):
 * logits [n_rows][vocab] f32 -> ids [n_rows][k], values [n_rows][k], sorted
 * by value descending, equal values by id ascending (kernels/select/topk_key.h
 * defines the order, NaN lowest). Rows at or past *row_count are left alone.
 */
#include "common/op_impl.h"
#include "select/topk_key.h"

deco_status_t deco_topk_rows_ref(const deco_exec_t *exec, const deco_topk_rows_args_t *a) {
  const int V = a->vocab, k = a->k;
  int rows = a->n_rows;
  if (a->row_count != NULL) rows = *a->row_count < 0 ? 0 : *a->row_count < rows ? *a->row_count : rows;
  for (int r = 0; r < rows; ++r) {
    const float *x = (const float *)a->logits + (size_t)r * V;
    /* best[0..k) sorted descending; 0 = empty (below every key). */
    uint64_t best[DECO_TOPK_MAX_K] = {0};
    for (int i = 0; i < V; ++i) {
      uint64_t key = deco_topk_key(x[i], i);
      if (key <= best[k - 1]) continue;
      int p = k - 1;
      while (p > 0 && best[p - 1] < key) {
        best[p] = best[p - 1];
        --p;
      }
      best[p] = key;
    }
    for (int j = 0; j < k; ++j) {
      int32_t id = deco_topk_key_id(best[j]);
      a->ids[(size_t)r * k + j] = id;
      if (a->values != NULL) a->values[(size_t)r * k + j] = x[id];
    }
  }
  return DECO_STATUS_SUCCESS;
}
