/* host/model/sampler.c — next-token sampling on host f32 logits: greedy
 * (argmax, ties to the lowest id), or temperature with optional top-k and
 * top-p (Holtzman et al. 2019, nucleus sampling; without top-k exactly as
 * llama2.c's run.c does it), with the uniform drawn from Philox4x32-10 so
 * every position's draw is reproducible on every backend.
 */
#include <math.h>
#include <stdlib.h>

#include "model/sampler.h"

#include "core/internal.h"
#include "deco/model.h"
#include "deco/philox.h"
#include "util/sized.h"

typedef struct prob_index {
  float prob;
  float logit; /* ranks equal probabilities as acceptance ranks them */
  int index;
} prob_index_t;

struct deco_sampler {
  int vocab;
  deco_sampler_config_t cfg;
  float *probs;          /* [vocab] */
  prob_index_t *cands;   /* [vocab] */
};

deco_status_t deco_sampling_law_check(deco_ctx_t *ctx, int top_k, float temperature, float top_p, const char *op) {
  DECO_CHECK_RANGE(ctx, top_k, 0, 1 << 24, op);
  if (!(temperature >= 0.0f) || isinf(temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature = %g must be finite and >= 0", op,
                     (double)temperature);
  if (!(top_p > 0.0f) || isinf(top_p))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: top_p = %g must be finite and > 0", op, (double)top_p);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_sampler_create(int vocab, const deco_sampler_config_t *config, deco_sampler_t **out) {
  static const char op[] = "deco_sampler_create";
  if (out == NULL || config == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = NULL;
  if (vocab < 1 || vocab > (1 << 24))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: vocab = %d outside [1, 2^24]", op, vocab);
  static const deco_sampler_config_t defaults = DECO_SAMPLER_CONFIG_INIT;
  deco_sampler_config_t cfg;
  DECO_TRY(deco_sized_read(NULL, &cfg, config, &defaults, sizeof cfg, "deco_sampler_create: config"));
  config = &cfg;
  DECO_TRY(deco_sampling_law_check(NULL, config->top_k, config->temperature, config->top_p, op));
  deco_sampler_t *s = calloc(1, sizeof *s);
  if (s) {
    s->probs = malloc(sizeof(float) * (size_t)vocab);
    s->cands = malloc(sizeof(prob_index_t) * (size_t)vocab);
  }
  if (!s || !s->probs || !s->cands) {
    deco_sampler_destroy(s);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  }
  s->vocab = vocab;
  s->cfg = *config;
  *out = s;
  return DECO_STATUS_SUCCESS;
}

void deco_sampler_destroy(deco_sampler_t *s) {
  if (!s) return;
  free(s->probs);
  free(s->cands);
  free(s);
}

int deco_argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best] || (v[best] != v[best] && v[i] == v[i])) best = i;
  return best;
}

/* The first id whose running sum passes coin; when rounding leaves the
 * sum short of it, the last id of positive probability (as acceptance
 * falls back), never one of probability 0. */
static int sample_mult(const float *probs, int n, float coin) {
  float cdf = 0.0f;
  int last = 0;
  for (int i = 0; i < n; ++i) {
    cdf += probs[i];
    if (coin < cdf) return i;
    if (probs[i] > 0.0f) last = i;
  }
  return last;
}

/* Descending probability, equal ones by descending logit (a temperature
 * can round distinct logits to one probability), then by ascending id (a
 * total order, so the result does not depend on qsort's algorithm). */
static int compare_desc(const void *a, const void *b) {
  const prob_index_t *x = a, *y = b;
  if (x->prob != y->prob) return x->prob > y->prob ? -1 : 1;
  if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

static int sample_topp(const float *probs, const float *logits, int n, float topp, prob_index_t *cands,
                       float coin) {
  /* Tokens below (1 - topp) / (n - 1) cannot be in the nucleus: drop them
   * before sorting (run.c's shortcut). Near-flat probabilities with a tiny
   * top_p can leave none (run.c then reads before its array): every token
   * is then a candidate, and the nucleus is the head as always. */
  const float cutoff = (1.0f - topp) / (float)(n - 1);
  int n0 = 0;
  for (int pass = 0; pass < 2 && n0 == 0; ++pass)
    for (int i = 0; i < n; ++i)
      if (pass || probs[i] >= cutoff) cands[n0++] = (prob_index_t){.prob = probs[i], .logit = logits[i], .index = i};
  qsort(cands, (size_t)n0, sizeof *cands, compare_desc);
  float cumulative = 0.0f;
  int last = n0 - 1;
  for (int i = 0; i < n0; ++i) {
    cumulative += cands[i].prob;
    if (cumulative > topp) {
      last = i;
      break;
    }
  }
  float r = coin * cumulative;
  float cdf = 0.0f;
  for (int i = 0; i <= last; ++i) {
    cdf += cands[i].prob;
    if (r < cdf) return cands[i].index;
  }
  return cands[last].index;
}

/* The top_k most likely ids (compare_desc's order), renormalised, then
 * their top-p nucleus. */
static int sample_topk(const float *probs, const float *logits, int n, int k, float topp, prob_index_t *cands,
                       float coin) {
  for (int i = 0; i < n; ++i) cands[i] = (prob_index_t){.prob = probs[i], .logit = logits[i], .index = i};
  qsort(cands, (size_t)n, sizeof *cands, compare_desc);
  float mass = 0.0f;
  for (int i = 0; i < k; ++i) mass += cands[i].prob;
  int last = k - 1;
  if (topp < 1.0f) {
    float cumulative = 0.0f;
    for (int i = 0; i < k; ++i) {
      cumulative += cands[i].prob;
      if (cumulative > topp * mass) {
        last = i;
        break;
      }
    }
  }
  float total = 0.0f;
  for (int i = 0; i <= last; ++i) total += cands[i].prob;
  float r = coin * total, cdf = 0.0f;
  for (int i = 0; i <= last; ++i) {
    cdf += cands[i].prob;
    if (r < cdf) return cands[i].index;
  }
  return cands[last].index;
}

int deco_sampler_sample(deco_sampler_t *s, const float *logits, uint32_t offset, uint32_t request) {
  for (int i = 0; i < s->vocab; ++i)
    if (!isfinite(logits[i])) return -1;
  if (s->cfg.temperature == 0.0f) return deco_argmax(logits, s->vocab);
  const int n = s->vocab;
  float *p = s->probs;
  float max = logits[0];
  for (int i = 1; i < n; ++i)
    if (logits[i] > max) max = logits[i];
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    p[i] = expf((logits[i] - max) / s->cfg.temperature);
    sum += p[i];
  }
  for (int i = 0; i < n; ++i) p[i] /= sum;
  float coin = deco_philox_uniform(s->cfg.seed, offset, request, 0, 0);
  if (s->cfg.top_k > 0 && s->cfg.top_k < n)
    return sample_topk(p, logits, n, s->cfg.top_k, s->cfg.top_p, s->cands, coin);
  if (s->cfg.top_p >= 1.0f || n == 1) return sample_mult(p, n, coin);
  return sample_topp(p, logits, n, s->cfg.top_p, s->cands, coin);
}
