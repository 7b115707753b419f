/* kernels/kv/kv_append_ref.c — reference KV append into the paged cache:
 * token j of sequence s goes to slot kv_lens[s] - n_s + j.
 * k, v [n_tokens][n_kv_heads][head_dim], tokens kv_stride elements apart (0:
 * dense); pools [n_pages][page_size][n_kv_heads][head_dim].
 */
#include <string.h>

#include "common/op_impl.h"
#include "common/paged.h"

deco_status_t deco_kv_append_ref(const deco_exec_t *exec, const deco_kv_append_args_t *a) {
  const deco_paged_kv_t *c = &a->cache;
  const deco_ragged_batch_t *b = &a->batch;
#if DECO_HARNESS_MUTANT == 1 /* test-only (tests/ops/run_mutants.sh): the token stride ignored */
  const size_t row = (size_t)c->n_kv_heads * c->head_dim, in_row = row;
#else
  const size_t row = (size_t)c->n_kv_heads * c->head_dim, in_row = a->kv_stride ? (size_t)a->kv_stride : row;
#endif
  for (int s = 0; s < b->n_seqs; ++s) {
    int t0 = b->q_indptr[s], n = b->q_indptr[s + 1] - t0;
    if (t0 < 0 || n < 0 || b->kv_lens[s] < n || b->q_indptr[s + 1] > b->n_tokens)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                            "deco_kv_append: sequence %d has %d new tokens from token %d, kv_len %d, capacity %d", s,
                            n, t0, b->kv_lens[s], b->n_tokens);
    for (int j = 0; j < n; ++j) {
      int slot = b->kv_lens[s] - n + j;
      long long r = deco_paged_row(c->block_table + (size_t)s * c->max_pages_per_seq, c->max_pages_per_seq,
                                   c->page_size, c->n_pages, slot);
      if (r < 0)
        return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                              "deco_kv_append: sequence %d slot %d has no page in the block table", s, slot);
      memcpy((float *)c->k_pages + (size_t)r * row, (const float *)a->k + (size_t)(t0 + j) * in_row,
             row * sizeof(float));
      memcpy((float *)c->v_pages + (size_t)r * row, (const float *)a->v + (size_t)(t0 + j) * in_row,
             row * sizeof(float));
    }
  }
  return DECO_STATUS_SUCCESS;
}
