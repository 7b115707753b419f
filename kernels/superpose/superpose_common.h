/* kernels/superpose/superpose_common.h — the arithmetic and bookkeeping of
 * one superposed-decoding selection (deco_superpose_select, Shen et al.
 * 2024), shared by the C reference and the CUDA kernel so that both rank
 * the same pairs and update the state the same way: the log-softmax over
 * the top m, a pair's interpolated score, the ranking order, and the serial
 * update of one prompt's drafts from its ranked pairs. Double precision;
 * products and sums are rounded one by one (no fused multiply-add).
 */
#ifndef DECO_KERNELS_SUPERPOSE_COMMON_H
#define DECO_KERNELS_SUPERPOSE_COMMON_H

#include <math.h>
#include <stdint.h>

#include "common/hd.h"
#include "deco/superpose_ops.h"

#if defined(__CUDA_ARCH__)
#define DECO_SP_MUL(a, b) __dmul_rn((a), (b))
#define DECO_SP_ADD(a, b) __dadd_rn((a), (b))
#define DECO_SP_SUB(a, b) __dsub_rn((a), (b))
#define DECO_SP_DIV(a, b) __ddiv_rn((a), (b))
#else
#define DECO_SP_MUL(a, b) ((a) * (b))
#define DECO_SP_ADD(a, b) ((a) + (b))
#define DECO_SP_SUB(a, b) ((a) - (b))
#define DECO_SP_DIV(a, b) ((a) / (b))
#endif

#define DECO_SP_NEG_INF (-(double)INFINITY)

/* One (draft, candidate) pair of a step. */
typedef struct deco_sp_pair {
  double s;      /* running score if chosen */
  int32_t draft; /* the slot it extends */
  int32_t token;
  int32_t cand;  /* its index among the step's candidates */
} deco_sp_pair_t;

/* The ranking: higher score first, then lower draft index, then lower id;
 * the candidate index last, so that even a caller's repeated id gives a
 * total order (every pair a distinct rank). */
DECO_KERNEL_HD int deco_sp_before(const deco_sp_pair_t *a, const deco_sp_pair_t *b) {
  if (a->s != b->s) return a->s > b->s;
  if (a->draft != b->draft) return a->draft < b->draft;
  if (a->token != b->token) return a->token < b->token;
  return a->cand < b->cand;
}

/* 1 when every one of the m logits is finite. */
DECO_KERNEL_HD int deco_sp_all_finite(const float *l, int m) {
  for (int j = 0; j < m; ++j)
    if (!(l[j] - l[j] == 0.0f)) return 0; /* NaN and +-inf give NaN */
  return 1;
}

/* lp[j] = log of softmax(l / T) renormalised over the m values:
 * (l_j - top)/T - log sum_i exp((l_i - top)/T), top = max l. The softmax
 * over the whole vocabulary cancels in the renormalisation, so only the top
 * m logits are needed. */
DECO_KERNEL_HD void deco_sp_log_probs(const float *l, int m, float temperature, double *lp) {
  double top = (double)l[0];
  for (int j = 1; j < m; ++j)
    if ((double)l[j] > top) top = (double)l[j];
  const double t = (double)temperature;
  double z = 0.0;
  for (int j = 0; j < m; ++j) {
    lp[j] = DECO_SP_DIV(DECO_SP_SUB((double)l[j], top), t);
    z = DECO_SP_ADD(z, exp(lp[j]));
  }
  const double lz = log(z);
  for (int j = 0; j < m; ++j) lp[j] = DECO_SP_SUB(lp[j], lz);
}

/* (1 - alpha) log p + alpha log q; -inf when q = 0. */
DECO_KERNEL_HD double deco_sp_mix(double lp, double q, float alpha) {
  if (!(q > 0.0)) return DECO_SP_NEG_INF;
  const double a = (double)alpha;
  const double x = DECO_SP_MUL(DECO_SP_SUB(1.0, a), lp);
  const double y = DECO_SP_MUL(a, log(q));
  return DECO_SP_ADD(x, y);
}

/* The score of a draft none of whose candidates the n-grams know:
 * (1 - alpha) log p - penalty (the authors' code). */
DECO_KERNEL_HD double deco_sp_penalised(double lp, float alpha, float penalty) {
  return DECO_SP_SUB(DECO_SP_MUL(DECO_SP_SUB(1.0, (double)alpha), lp), (double)penalty);
}

/* One prompt's rows of the state. */
typedef struct deco_sp_rows {
  deco_superpose_prompt_t *info;
  double *score;
  int32_t *token;
  int32_t *ctx;
  int32_t *ctx_len;
  int32_t *mix_token;
  float *mix_weight;
  int32_t *hist_token;  /* [max_steps][k] */
  int32_t *hist_parent; /* [max_steps][k] */
  double *fin_score;
  int32_t *fin_len;
  int32_t *fin_slot;
  int max_rows; /* rows of the history */
} deco_sp_rows_t;

DECO_KERNEL_HD deco_sp_rows_t deco_sp_rows(const deco_superpose_drafts_t *d, int b, int k, int max_steps) {
  deco_sp_rows_t r;
  const size_t bk = (size_t)b * (size_t)k;
  r.info = d->prompt + b;
  r.score = d->score + bk;
  r.token = d->token + bk;
  r.ctx = d->ctx + bk * DECO_NGRAM_CONTEXT;
  r.ctx_len = d->ctx_len + bk;
  r.mix_token = d->mix_token + bk;
  r.mix_weight = d->mix_weight + bk;
  r.hist_token = d->hist_token + bk * (size_t)max_steps;
  r.hist_parent = d->hist_parent + bk * (size_t)max_steps;
  r.fin_score = d->fin_score + bk;
  r.fin_len = d->fin_len + bk;
  r.fin_slot = d->fin_slot + bk;
  r.max_rows = max_steps;
  return r;
}

DECO_KERNEL_HD int deco_sp_is_stop(int32_t id, const int32_t *stop_ids, int n_stop_ids) {
  for (int i = 0; i < n_stop_ids; ++i)
    if (stop_ids[i] == id) return 1;
  return 0;
}

/* The update of one prompt from its pairs ranked by deco_sp_before
 * (pairs[0 .. n), every score finite): the first 2k are drawn; a stop id
 * among the first k finishes its draft (the finished pool keeps the best k,
 * earlier entries first among equal scores), other ids become the alive
 * drafts until k are alive. Then the mixture weights (softmax of the alive
 * scores, duplicate ids merged), the done flag, and the next position. */
DECO_KERNEL_HD void deco_sp_commit(const deco_sp_rows_t *r, int k, const deco_sp_pair_t *pairs, int n,
                                   const int32_t *stop_ids, int n_stop_ids, int32_t *position_out,
                                   int32_t *kv_len_out) {
  deco_superpose_prompt_t *info = r->info;
  const int step = info->step;
  /* State that did not come from deco_superpose_select: end the prompt
   * rather than write outside its rows. */
  if (step < 0 || step >= r->max_rows || info->n_fin < 0 || info->n_fin > k) {
    info->done = 1;
    return;
  }
  /* What the new drafts read of the old ones, before it is overwritten. */
  int32_t old_ctx[DECO_SUPERPOSE_MAX_K][DECO_NGRAM_CONTEXT];
  int32_t old_len[DECO_SUPERPOSE_MAX_K];
  for (int d = 0; d < k; ++d) {
    old_len[d] = r->ctx_len[d];
    for (int c = 0; c < DECO_NGRAM_CONTEXT; ++c) old_ctx[d][c] = r->ctx[d * DECO_NGRAM_CONTEXT + c];
  }
  deco_sp_pair_t alive[DECO_SUPERPOSE_MAX_K], fin_new[DECO_SUPERPOSE_MAX_K];
  int n_alive = 0, n_fin_new = 0;
  const int drawn = n < 2 * k ? n : 2 * k;
  for (int c = 0; c < drawn; ++c) {
    if (deco_sp_is_stop(pairs[c].token, stop_ids, n_stop_ids)) {
      if (c < k) fin_new[n_fin_new++] = pairs[c];
    } else if (n_alive < k) {
      alive[n_alive++] = pairs[c];
    }
  }
  /* Merge the finished pool (best first) with the new finished drafts (in
   * ranking order): earlier entries win ties. */
  double fs[DECO_SUPERPOSE_MAX_K];
  int32_t fl[DECO_SUPERPOSE_MAX_K], fslot[DECO_SUPERPOSE_MAX_K];
  int n_fin = 0, a = 0, b = 0;
  const int n_old = info->n_fin;
  while (n_fin < k && (a < n_old || b < n_fin_new)) {
    if (b >= n_fin_new || (a < n_old && r->fin_score[a] >= fin_new[b].s)) {
      fs[n_fin] = r->fin_score[a];
      fl[n_fin] = r->fin_len[a];
      fslot[n_fin] = r->fin_slot[a];
      ++a;
    } else {
      fs[n_fin] = fin_new[b].s;
      fl[n_fin] = step; /* ids before the stop: the draft's path after `step` selections */
      fslot[n_fin] = fin_new[b].draft;
      ++b;
    }
    ++n_fin;
  }
  for (int i = 0; i < n_fin; ++i) {
    r->fin_score[i] = fs[i];
    r->fin_len[i] = fl[i];
    r->fin_slot[i] = fslot[i];
  }
  info->n_fin = n_fin;
  /* The new alive drafts. */
  int32_t *ht = r->hist_token + (size_t)step * (size_t)k, *hp = r->hist_parent + (size_t)step * (size_t)k;
  for (int j = 0; j < k; ++j) {
    if (j < n_alive) {
      const int p = alive[j].draft;
      r->score[j] = alive[j].s;
      r->token[j] = alive[j].token;
      for (int c = 0; c + 1 < DECO_NGRAM_CONTEXT; ++c) r->ctx[j * DECO_NGRAM_CONTEXT + c] = old_ctx[p][c + 1];
      r->ctx[j * DECO_NGRAM_CONTEXT + DECO_NGRAM_CONTEXT - 1] = alive[j].token;
      r->ctx_len[j] = old_len[p] + 1 < DECO_NGRAM_CONTEXT ? old_len[p] + 1 : DECO_NGRAM_CONTEXT;
      ht[j] = alive[j].token;
      hp[j] = p;
    } else {
      r->score[j] = DECO_SP_NEG_INF;
      if (n_alive > 0) r->token[j] = alive[0].token;
      r->ctx_len[j] = 0;
      ht[j] = -1;
      hp[j] = -1;
    }
  }
  info->n_alive = n_alive;
  info->step = step + 1;
  /* The next input: softmax of the alive scores (the best is alive[0]),
   * each distinct id once with the sum of its drafts' weights. */
  double w[DECO_SUPERPOSE_MAX_K], z = 0.0;
  for (int j = 0; j < n_alive; ++j) {
    w[j] = exp(DECO_SP_SUB(alive[j].s, alive[0].s));
    z = DECO_SP_ADD(z, w[j]);
  }
  double merged[DECO_SUPERPOSE_MAX_K];
  int n_mix = 0;
  for (int j = 0; j < n_alive; ++j) {
    const double g = DECO_SP_DIV(w[j], z);
    int u = 0;
    while (u < n_mix && r->mix_token[u] != alive[j].token) ++u;
    if (u == n_mix) {
      r->mix_token[n_mix] = alive[j].token;
      merged[n_mix++] = g;
    } else {
      merged[u] = DECO_SP_ADD(merged[u], g);
    }
  }
  for (int u = 0; u < k; ++u) {
    if (u < n_mix) {
      r->mix_weight[u] = (float)merged[u];
    } else {
      r->mix_weight[u] = 0.0f;
      if (n_mix > 0) r->mix_token[u] = r->mix_token[0];
    }
  }
  /* Done: out of steps, nothing alive, or a full finished pool that no
   * alive draft can beat (scores never rise; ties go to finished drafts). */
  const int beaten = n_fin == k && n_alive > 0 && alive[0].s <= r->fin_score[k - 1];
  if (info->step >= info->max_steps || n_alive == 0 || beaten) {
    info->done = 1;
  } else {
    info->position += 1;
    if (position_out) *position_out = info->position;
    if (kv_len_out) *kv_len_out = info->position + 1;
  }
}

#endif
