/* kernels/attention/attention_ref.c — reference causal attention over the
 * paged KV cache, in llama2.c's order: scores = q·k * scale for slots 0..p,
 * softmax (max, exp, sum, divide), out = sum_t a_t v_t. GQA: query head h
 * reads KV head h / (n_heads / n_kv_heads).
 * q, out [n_tokens][n_heads][head_dim] (q's tokens q_stride elements apart,
 * 0: dense); pools [n_pages][page_size][n_kv][head_dim].
 */
#include <math.h>
#include <stdlib.h>

#include "attention/attention_ref_common.h"
#include "common/op_impl.h"
#include "common/paged.h"

deco_status_t deco_attention_ref(const deco_exec_t *exec, const deco_attention_args_t *a) {
  const deco_paged_kv_t *c = &a->cache;
  const deco_ragged_batch_t *b = &a->batch;
  const int hd = c->head_dim, group = a->n_heads / c->n_kv_heads;
  const size_t kv_row = (size_t)c->n_kv_heads * hd;
  const size_t q_row = a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * hd;
  int max_len = 0;
  for (int s = 0; s < b->n_seqs; ++s)
    if (b->kv_lens[s] > max_len) max_len = b->kv_lens[s];
  float *att = malloc(sizeof(float) * (size_t)(max_len > 0 ? max_len : 1));
  long long *rows = malloc(sizeof(long long) * (size_t)(max_len > 0 ? max_len : 1));
  if (!att || !rows) {
    free(att);
    free(rows);
    return DECO_EXEC_FAIL(exec, DECO_STATUS_OUT_OF_MEMORY, "deco_attention: scratch of %d scores", max_len);
  }
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int s = 0; s < b->n_seqs && st == DECO_STATUS_SUCCESS; ++s) {
    int t0 = b->q_indptr[s], n = b->q_indptr[s + 1] - t0, len = b->kv_lens[s];
    if (t0 < 0 || n < 0 || len < n || b->q_indptr[s + 1] > b->n_tokens) {
      st = DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                          "deco_attention: sequence %d has %d new tokens from token %d, kv_len %d, capacity %d", s, n,
                          t0, len, b->n_tokens);
      break;
    }
    const int32_t *bt = c->block_table + (size_t)s * c->max_pages_per_seq;
    for (int p = 0; p < len; ++p) {
      rows[p] = deco_paged_row(bt, c->max_pages_per_seq, c->page_size, c->n_pages, p);
      if (rows[p] < 0) {
        st = DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                            "deco_attention: sequence %d slot %d has no page in the block table", s, p);
        break;
      }
    }
    for (int j = 0; j < n && st == DECO_STATUS_SUCCESS; ++j) {
      int last = len - n + j; /* attends slots 0..last */
#if DECO_HARNESS_MUTANT == 5 /* test-only (tests/ops/run_mutants.sh): the mask lets a token see the next slot */
      if (last + 1 < len) last++;
#endif
      for (int h = 0; h < a->n_heads; ++h) {
        const float *q = (const float *)a->q + (size_t)(t0 + j) * q_row + (size_t)h * hd;
        float *o = (float *)a->out + ((size_t)(t0 + j) * a->n_heads + h) * hd;
        const size_t kvh = deco_ref_kv_head(h, group, c->n_kv_heads, hd);
        deco_ref_attend(q, (const float *)c->k_pages, (const float *)c->v_pages, rows, last + 1, kv_row, kvh, hd,
                        deco_ref_scale(a->scale), att, o);
      }
    }
  }
  free(att);
  free(rows);
  return st;
}
