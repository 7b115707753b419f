/* kernels/superpose/ngram_lookup_ref.c — reference n-gram lookup of
 * superposed decoding (deco/superpose_ops.h): for every draft r and each
 * candidate j of its group, probs[r][j] = the lambda-weighted mix of the
 * order-2..6 probabilities of candidate j after the draft's last ids
 * (deco_ngram_prob: hashed contexts, fingerprints compared in full).
 * ctx [n_rows][5], cands [n_rows / group][m], probs [n_rows][m].
 */
#include "common/op_impl.h"

deco_status_t deco_ngram_lookup_ref(const deco_exec_t *exec, const deco_ngram_lookup_args_t *a) {
  (void)exec;
  for (int r = 0; r < a->n_rows; ++r) {
    const int32_t *ctx = a->ctx + (size_t)r * DECO_NGRAM_CONTEXT;
    int len = a->ctx_len[r];
    len = len < 0 ? 0 : len > DECO_NGRAM_CONTEXT ? DECO_NGRAM_CONTEXT : len;
    const int32_t *cands = a->cands + (size_t)(r / a->rows_per_group) * a->m;
    for (int j = 0; j < a->m; ++j)
      a->probs[(size_t)r * a->m + j] = deco_ngram_prob(&a->table, ctx, len, cands[j], a->lambda);
  }
  return DECO_STATUS_SUCCESS;
}
