/* kernels/superpose/superpose_select_ref.c — reference of one superposed
 * decoding selection (deco/superpose_ops.h, Shen et al. 2024): per prompt,
 * the log-softmax of the top-m logits, the k·m interpolated scores (with
 * the authors' penalty for drafts the n-grams know nothing of), the ranked
 * pairs, and the update of the drafts (superpose_common.h). Candidate ids
 * [B][m], logits [B][m], n-gram probabilities [B][k][m].
 */
#include "common/op_impl.h"
#include "superpose/superpose_common.h"

/* Draft d's term per candidate j: the interpolated score, or with the
 * n-grams on and every term -inf (the n-grams know nothing of the draft)
 * the penalised log-probability. */
static void draft_terms(const deco_superpose_select_args_t *a, int b, int d, const double *lp, double *term) {
  const int k = a->k, m = a->m;
  const int use_ngram = a->alpha != 0.0f;
  int any = 0;
  for (int j = 0; j < m; ++j) {
    term[j] = use_ngram ? deco_sp_mix(lp[j], a->ngram_probs[((size_t)b * k + d) * m + j], a->alpha) : lp[j];
    any |= term[j] != DECO_SP_NEG_INF;
  }
  if (!use_ngram || any) return;
  for (int j = 0; j < m; ++j) term[j] = deco_sp_penalised(lp[j], a->alpha, a->penalty);
}

/* Inserts p into the n pairs ranked by deco_sp_before. */
static void rank_insert(deco_sp_pair_t *pairs, int *n, const deco_sp_pair_t *p) {
  int at = (*n)++;
  while (at > 0 && deco_sp_before(p, &pairs[at - 1])) {
    pairs[at] = pairs[at - 1];
    --at;
  }
  pairs[at] = *p;
}

/* Prompt b's live drafts' pairs (score + term), ranked; -inf pairs are
 * excluded. Returns their count. */
static int rank_pairs(const deco_superpose_select_args_t *a, int b, const deco_sp_rows_t *r, const double *lp,
                      deco_sp_pair_t *pairs) {
  const int k = a->k, m = a->m;
  const int32_t *ids = a->cand_ids + (size_t)b * m;
  const int n_alive = r->info->n_alive < k ? r->info->n_alive : k;
  int n = 0;
  for (int d = 0; d < n_alive; ++d) {
    double term[DECO_SUPERPOSE_MAX_M];
    draft_terms(a, b, d, lp, term);
    for (int j = 0; j < m; ++j) {
      const deco_sp_pair_t p = {.s = DECO_SP_ADD(r->score[d], term[j]), .draft = d, .token = ids[j], .cand = j};
      if (p.s > DECO_SP_NEG_INF) rank_insert(pairs, &n, &p); /* else excluded (and never a NaN) */
    }
  }
  return n;
}

deco_status_t deco_superpose_select_ref(const deco_exec_t *exec, const deco_superpose_select_args_t *a) {
  (void)exec;
  const int k = a->k, m = a->m;
  for (int b = 0; b < a->n_prompts; ++b) {
    const deco_sp_rows_t r = deco_sp_rows(&a->drafts, b, k, a->max_steps);
    if (r.info->done) continue;
    const float *l = a->cand_logits + (size_t)b * m;
    if (!deco_sp_all_finite(l, m)) {
      r.info->nonfinite = 1;
      r.info->done = 1;
      continue;
    }
    double lp[DECO_SUPERPOSE_MAX_M];
    deco_sp_log_probs(l, m, a->temperature, lp);
    deco_sp_pair_t pairs[DECO_SUPERPOSE_MAX_K * DECO_SUPERPOSE_MAX_M];
    const int n = rank_pairs(a, b, &r, lp, pairs);
    deco_sp_commit(&r, k, pairs, n, a->stop_ids, a->n_stop_ids, a->positions ? a->positions + b : NULL,
                   a->kv_lens ? a->kv_lens + b : NULL);
  }
  return DECO_STATUS_SUCCESS;
}
