/* host/eval/eval.c — teacher-forced evaluation (deco/eval.h): each window
 * of ids runs through deco_forward in chunks with every row's logits kept,
 * the rows are copied to the host, and each row adds -log p(next id) and,
 * against a reference model, KL(R || M) and top-1 agreement, in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "deco/eval.h"
#include "util/sized.h"

/* log Σ exp(l) over a row, in double. */
static double log_sum_exp(const float *l, int vocab) {
  double m = l[0];
  for (int v = 1; v < vocab; ++v)
    if (l[v] > m) m = l[v];
  double s = 0.0;
  for (int v = 0; v < vocab; ++v) s += exp((double)l[v] - m);
  return m + log(s);
}

static int row_finite(const float *l, int vocab) {
  for (int v = 0; v < vocab; ++v)
    if (!isfinite(l[v])) return 0;
  return 1;
}

deco_status_t deco_eval_add_row(const float *logits, const float *ref_logits, int vocab, int32_t target,
                                deco_eval_stats_t *acc) {
  static const char op[] = "deco_eval_add_row";
  if (!logits || !acc) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if (vocab < 1) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: vocab %d < 1", op, vocab);
  if (target < 0 || target >= vocab)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: id %d outside the vocabulary of %d", op, (int)target,
                     vocab);
  if (!row_finite(logits, vocab) || (ref_logits && !row_finite(ref_logits, vocab)))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: non-finite logits", op);
  const double lse = log_sum_exp(logits, vocab);
  acc->nll += lse - (double)logits[target];
  if (ref_logits) {
    const double ref_lse = log_sum_exp(ref_logits, vocab);
    acc->ref_nll += ref_lse - (double)ref_logits[target];
    double kl = 0.0;
    for (int v = 0; v < vocab; ++v) {
      const double log_r = (double)ref_logits[v] - ref_lse;
      kl += exp(log_r) * (log_r - ((double)logits[v] - lse));
    }
    acc->kl += kl;
    acc->top1 += deco_argmax(logits, vocab) == deco_argmax(ref_logits, vocab);
  }
  acc->tokens++;
  return DECO_STATUS_SUCCESS;
}

double deco_eval_perplexity(const deco_eval_stats_t *s) {
  return s && s->tokens > 0 ? exp(s->nll / (double)s->tokens) : NAN;
}

double deco_eval_ref_perplexity(const deco_eval_stats_t *s) {
  return s && s->tokens > 0 ? exp(s->ref_nll / (double)s->tokens) : NAN;
}

/* One model's side of an evaluation: its cache and its logits (context
 * memory, then host). */
typedef struct side {
  deco_model_t *m;
  deco_kv_cache_t *kc;
  float *d_logits; /* [chunk][vocab] context memory */
  float *h_logits; /* [chunk][vocab] host */
} side_t;

static deco_status_t side_open(side_t *s, deco_model_t *m, int window, int chunk, int vocab) {
  enum { PAGE = 16 };
  s->m = m;
  deco_ctx_t *ctx = deco_model_ctx(m);
  const size_t bytes = sizeof(float) * (size_t)chunk * (size_t)vocab;
  DECO_TRY(deco_kv_cache_create(m, PAGE, (window + PAGE - 1) / PAGE, 1, &s->kc));
  DECO_TRY(deco_malloc(ctx, (void **)&s->d_logits, bytes));
  s->h_logits = malloc(bytes);
  if (!s->h_logits) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_eval_ids: %zu bytes of logits", bytes);
  return DECO_STATUS_SUCCESS;
}

static void side_close(side_t *s) {
  if (!s->m) return;
  deco_free(deco_model_ctx(s->m), s->d_logits);
  free(s->h_logits);
  deco_kv_cache_destroy(s->kc);
}

/* The logits of ids[0..n) appended to sequence seq, copied to the host. */
static deco_status_t side_forward(side_t *s, int seq, const int32_t *ids, int n, int vocab) {
  deco_forward_args_t a = DECO_FORWARD_ARGS_INIT;
  a.n_seqs = 1;
  a.seqs = &seq;
  a.n_new = &n;
  a.tokens = ids;
  a.logits_mode = DECO_LOGITS_ALL;
  a.logits = s->d_logits;
  DECO_TRY(deco_forward(s->m, s->kc, &a));
  return deco_memcpy(deco_model_ctx(s->m), s->h_logits, s->d_logits, sizeof(float) * (size_t)n * (size_t)vocab,
                     DECO_COPY_CTX_TO_HOST);
}

/* Scores win[1..n) from win[0..n-1) (one window, from an empty cache). */
static deco_status_t eval_window(side_t *sides, int n_sides, const int32_t *win, int n, int chunk, int vocab,
                                 long long first_pos, deco_eval_stats_t *acc) {
  int seqs[2];
  deco_status_t st = DECO_STATUS_SUCCESS;
  int admitted = 0;
  for (; admitted < n_sides && st == DECO_STATUS_SUCCESS; ++admitted)
    st = deco_kv_cache_admit(sides[admitted].kc, n, &seqs[admitted]);
  if (st != DECO_STATUS_SUCCESS) admitted--;
  for (int at = 0; st == DECO_STATUS_SUCCESS && at < n - 1; at += chunk) {
    const int len = n - 1 - at < chunk ? n - 1 - at : chunk;
    for (int k = 0; k < n_sides && st == DECO_STATUS_SUCCESS; ++k)
      st = side_forward(&sides[k], seqs[k], win + at, len, vocab);
    for (int i = 0; i < len && st == DECO_STATUS_SUCCESS; ++i) {
      const float *ref = n_sides > 1 ? sides[1].h_logits + (size_t)i * vocab : NULL;
      st = deco_eval_add_row(sides[0].h_logits + (size_t)i * vocab, ref, vocab, win[at + i + 1], acc);
      if (st != DECO_STATUS_SUCCESS)
        st = DECO_FAIL(deco_model_ctx(sides[0].m), st, "deco_eval_ids: %s gave non-finite logits at position %lld",
                       ref && row_finite(sides[0].h_logits + (size_t)i * vocab, vocab) ? "the reference model"
                                                                                      : "the model",
                       first_pos + at + i);
    }
  }
  for (int k = 0; k < admitted; ++k) deco_kv_cache_release(sides[k].kc, seqs[k]);
  return st;
}

static const char k_eval_op[] = "deco_eval_ids";

/* An evaluation's settings, checked against the models. */
typedef struct eval_plan {
  deco_eval_config_t c;
  int vocab;  /* ids of the model (and of the reference) */
  int window; /* ids per window, 2..the shorter context */
  int chunk;  /* rows per forward call, 1..window */
} eval_plan_t;

static deco_status_t eval_plan(deco_model_t *model, const deco_eval_config_t *config, eval_plan_t *p) {
  static const char *const op = k_eval_op;
  deco_ctx_t *ctx = deco_model_ctx(model);
  static const deco_eval_config_t defaults = DECO_EVAL_CONFIG_INIT;
  deco_eval_config_t c = defaults;
  if (config) DECO_TRY(deco_sized_read(ctx, &c, config, &defaults, sizeof c, "deco_eval_ids: config"));
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  const int vocab = hp->vocab_size;
  int max_window = hp->seq_len;
  if (c.ref) {
    const deco_model_hparams_t *rp = deco_model_get_hparams(c.ref);
    if (rp->vocab_size != vocab)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: the reference model's vocabulary has %d ids, the model's %d", op, rp->vocab_size, vocab);
    if (rp->seq_len < max_window) max_window = rp->seq_len;
  }
  const int window = c.window ? c.window : max_window;
  if (window < 2 || window > max_window)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: window %d outside [2, %d]", op, window, max_window);
  if (c.window_bos >= vocab)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: window_bos %d >= vocab %d", op, (int)c.window_bos, vocab);
  p->c = c;
  p->vocab = vocab;
  p->window = window;
  p->chunk = c.chunk > 0 ? (c.chunk < window ? c.chunk : window) : (64 < window ? 64 : window);
  return DECO_STATUS_SUCCESS;
}

/* The next window into win: its first id (ids[0] for the first window,
 * else window_bos or the id before ids[next]), then as many ids from
 * ids[next] as fit. Returns its length; *take: the ids taken from next. */
static int fill_window(const eval_plan_t *p, const int32_t *ids, int n, int next, int first, int32_t *win,
                       int *take) {
  int len = 0;
  if (first) win[len++] = ids[0];
  else win[len++] = p->c.window_bos >= 0 ? p->c.window_bos : ids[next - 1];
  *take = n - next < p->window - len ? n - next : p->window - len;
  memcpy(win + len, ids + next, sizeof(int32_t) * (size_t)*take);
  return len + *take;
}

/* Scores ids[1..n) (n >= 2), window after window. */
static deco_status_t eval_windows(deco_model_t *model, const int32_t *ids, int n, const eval_plan_t *p,
                                  deco_eval_stats_t *acc) {
  deco_ctx_t *ctx = deco_model_ctx(model);
  side_t sides[2];
  memset(sides, 0, sizeof sides);
  const int n_sides = p->c.ref ? 2 : 1;
  int32_t *win = malloc(sizeof(int32_t) * (size_t)p->window);
  deco_status_t st =
      win ? DECO_STATUS_SUCCESS : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", k_eval_op);
  for (int k = 0; k < n_sides && st == DECO_STATUS_SUCCESS; ++k)
    st = side_open(&sides[k], k ? p->c.ref : model, p->window, p->chunk, p->vocab);
  /* next: the first id not yet scored (id 0 is never scored). */
  for (int next = 1, first = 1; st == DECO_STATUS_SUCCESS && next < n; first = 0) {
    int take;
    const int len = fill_window(p, ids, n, next, first, win, &take);
    st = eval_window(sides, n_sides, win, len, p->chunk, p->vocab, next - 1, acc);
    next += take;
  }
  for (int k = 0; k < n_sides; ++k) side_close(&sides[k]);
  free(win);
  return st;
}

deco_status_t deco_eval_ids(deco_model_t *model, const int32_t *ids, int n, const deco_eval_config_t *config,
                            deco_eval_stats_t *acc) {
  static const char *const op = k_eval_op;
  if (!model) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", op);
  deco_ctx_t *ctx = deco_model_ctx(model);
  if (!acc || (!ids && n > 0)) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if (n < 0) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %d < 0", op, n);
  eval_plan_t p = {.c = DECO_EVAL_CONFIG_INIT}; /* eval_plan fills it in */
  DECO_TRY(eval_plan(model, config, &p));
  const int i = (int)deco_first_id_outside(ids, (size_t)n, p.vocab);
  if (i < n)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: id %d at %d outside the vocabulary of %d", op,
                     (int)ids[i], i, p.vocab);
  if (n < 2) return DECO_STATUS_SUCCESS;
  /* All or nothing: a failure at a later window leaves *acc as it was. */
  const deco_eval_stats_t before = *acc;
  const deco_status_t st = eval_windows(model, ids, n, &p, acc);
  if (st != DECO_STATUS_SUCCESS) *acc = before;
  return st;
}
