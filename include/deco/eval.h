/* deco/eval.h — teacher-forced evaluation of a model on token ids: the
 * negative log-likelihood of each next id (perplexity), and against a
 * reference model R of the same vocabulary the KL divergence KL(R || M) of
 * their next-token distributions and how often their top-1 ids agree.
 * `deco eval` prints these; a compressed model is judged by them.
 *
 * All sums are in double over f32 logits; log-softmax as m + log Σ exp(l - m).
 */
#ifndef DECO_EVAL_H
#define DECO_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "deco/core.h"
#include "deco/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Running sums over scored positions (a position predicts the next id). */
typedef struct deco_eval_stats {
  long long tokens; /* positions scored */
  double nll;       /* Σ -log p_M(target) */
  double ref_nll;   /* Σ -log p_R(target) (with a reference) */
  double kl;        /* Σ KL(R || M) = Σ_v p_R(v) (log p_R(v) - log p_M(v)) (with a reference) */
  long long top1;   /* positions where argmax M == argmax R, ties -> lowest id (with a reference) */
} deco_eval_stats_t;
#define DECO_EVAL_STATS_INIT {.tokens = 0, .nll = 0.0, .ref_nll = 0.0, .kl = 0.0, .top1 = 0}

/* Adds one position: logits of M ([vocab], host f32), ref_logits of R (or
 * NULL) and the id that follows. DECO_STATUS_INVALID_ARGUMENT for a target
 * outside [0, vocab) or a non-finite logit (nothing is added then). */
DECO_API deco_status_t deco_eval_add_row(const float *logits, const float *ref_logits, int vocab, int32_t target,
                                         deco_eval_stats_t *acc);

typedef struct deco_eval_config {
  size_t size;         /* sizeof(deco_eval_config_t), for growth: set by the INIT macro */
  deco_model_t *ref;   /* reference model R (same vocabulary), or NULL: M alone */
  int window;          /* ids per window; 0 = the smaller seq_len of M and R */
  int32_t window_bos;  /* >= 0: prepended to every window after the first (a text's BOS); -1: none */
  int chunk;           /* ids per forward within a window (bounds the logits buffer); 0 = 64 */
} deco_eval_config_t;
#define DECO_EVAL_CONFIG_INIT \
  {.size = sizeof(deco_eval_config_t), .ref = NULL, .window = 0, .window_bos = -1, .chunk = 0}

/* Teacher-forced over ids[0..n): every id but the first is scored once,
 * predicted from the ids before it within its window. Windows hold at most
 * `window` ids and each runs from an empty KV cache: the first is
 * ids[0..w); a later one starts with window_bos when that is set, else with
 * the previous window's last id (as context only), followed by the next
 * unscored ids. So n ids add n - 1 positions (a sequence of one id none).
 * Adds to *acc, or on any failure leaves it as it was. Both models must have the same vocabulary and every id must
 * be inside it (DECO_STATUS_INVALID_ARGUMENT otherwise); a non-finite logit
 * fails naming the position. config may be NULL (DECO_EVAL_CONFIG_INIT); it
 * is read by its size as every config is (deco/core.h). */
DECO_API deco_status_t deco_eval_ids(deco_model_t *model, const int32_t *ids, int n, const deco_eval_config_t *config,
                                     deco_eval_stats_t *acc);

/* exp(nll / tokens), exp(ref_nll / tokens); NAN with no token. */
DECO_API double deco_eval_perplexity(const deco_eval_stats_t *s);
DECO_API double deco_eval_ref_perplexity(const deco_eval_stats_t *s);

#ifdef __cplusplus
}
#endif
#endif /* DECO_EVAL_H */
