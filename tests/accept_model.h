/* tests/accept_model.h — the tests' own implementation of stochastic tree
 * acceptance (one tree, f32 logits, fp64 arithmetic), written from the rule
 * in include/deco/tree.h and kernels/verify/tree_accept_sample_ref.c. It
 * serves three purposes: it records the margin of every decision (how far a
 * compared quantity was from its threshold, in probability units) so a
 * CPU/GPU difference can be excused only at a near-threshold decision; it
 * runs deliberately broken rules that the statistical tests must reject; and,
 * in its correct mode, it cross-checks the reference draw for draw.
 */
#ifndef DECO_TESTS_ACCEPT_MODEL_H
#define DECO_TESTS_ACCEPT_MODEL_H

#include "common/stats.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"
#include "deco/philox.h"

enum model_rule {
  MODEL_CORRECT = 0,
  MODEL_NO_RESIDUAL = 1, /* rejection leaves the target unchanged */
  MODEL_IGNORE_Q = 2,    /* accept x with probability p(x) whatever q says */
  MODEL_BONUS_ROOT = 3   /* the bonus is drawn from the root's target, not the last node's */
};

#define MODEL_MAX_V 131072

static uint32_t model_ord(float x) {
  union {
    float f;
    uint32_t u;
  } v;
  v.f = x;
  if (x == 0.0f) v.u = 0u;
  return (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);
}

static const float *model_rank_logits;
static int model_rank_cmp(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  uint32_t ka = model_ord(model_rank_logits[a]), kb = model_ord(model_rank_logits[b]);
  if (ka != kb) return ka > kb ? -1 : 1;
  return (a > b) - (a < b);
}

/* Target of one logits row: weights w (fp32 as the library computes them),
 * support flags, support sum S, the top token; *margin lowered to the
 * distance of the top-p cumulative sums from top_p. probs (optional) gets the
 * normalised distribution in fp64. */
typedef struct model_target {
  float w[MODEL_MAX_V];
  unsigned char in[MODEL_MAX_V];
  double S;
  int top;
} model_target_t;

static void model_build_target(const float *l, int V, float T, int top_k, float top_p, model_target_t *t,
                               double *margin) {
  int top = 0;
  for (int y = 1; y < V; ++y)
    if (l[y] > l[top]) top = y;
  float c = 1.44269504088896340736f / T;
  for (int y = 0; y < V; ++y) t->w[y] = exp2f((l[y] - l[top]) * c);
  t->top = top;
  /* rank by (key desc, id asc) */
  static int order[MODEL_MAX_V];
  for (int y = 0; y < V; ++y) order[y] = y;
  model_rank_logits = l;
  qsort(order, (size_t)V, sizeof(int), model_rank_cmp);
  int k = (top_k > 0 && top_k < V) ? top_k : V;
  double Sk = 0.0;
  for (int r = 0; r < k; ++r) Sk += t->w[order[r]];
  int keep = k;
  if (top_p < 1.0f) {
    double W = 0.0;
    keep = 0;
    for (int r = 0; r < k; ++r) {
      double gap = fabs(W / Sk - (double)top_p);
      if (r > 0 && gap < *margin) *margin = gap;
      if (!(W < (double)top_p * Sk)) break;
      W += t->w[order[r]];
      keep = r + 1;
    }
  }
  for (int y = 0; y < V; ++y) t->in[y] = 0;
  t->S = 0.0;
  for (int r = 0; r < keep; ++r) {
    t->in[order[r]] = 1;
    t->S += t->w[order[r]];
  }
}

/* Normalised target distribution of a row (for expected frequencies). */
static void model_target_probs(const float *l, int V, float T, int top_k, float top_p, double *probs) {
  static model_target_t t;
  double m = 1.0;
  model_build_target(l, V, T, top_k, top_p, &t, &m);
  for (int y = 0; y < V; ++y) probs[y] = t.in[y] ? t.w[y] / t.S : 0.0;
}

typedef struct model_args {
  int V;
  float T;
  int top_k;
  float top_p;
  deco_draft_kind_t kind;
  uint64_t seed;
  uint32_t offset;
  uint32_t request;
} model_args_t;

static double model_bonus(const double *omega, int V, double u, int fallback, double *margin) {
  double total = 0.0;
  for (int y = 0; y < V; ++y) total += omega[y];
  if (!(total > 0.0)) {
    *margin = 0.0;
    return fallback;
  }
  double thr = u * total, cum = 0.0;
  int last = fallback;
  for (int y = 0; y < V; ++y) {
    double before = cum;
    if (omega[y] > 0.0) last = y;
    cum += omega[y];
    if (omega[y] > 0.0) {
      double g1 = fabs(before / total - u), g2 = fabs(cum / total - u);
      if (g1 < *margin) *margin = g1;
      if (g2 < *margin) *margin = g2;
    }
    if (cum > thr) return y;
  }
  return last;
}

/* One tree: parent/tokens local [n], logits/q rows [n][V]. Returns accept_len,
 * fills path[] (accept_len entries) and *bonus; *margin = smallest decision
 * margin seen (start it at 1). */
static int model_walk(const model_args_t *a, int n, const int32_t *parent, const int32_t *tokens, const float *logits,
                      const float *q_rows, enum model_rule rule, int32_t *path, int32_t *bonus, double *margin) {
  static model_target_t t;
  static double r[MODEL_MAX_V], omega[MODEL_MAX_V];
  static unsigned char excl[MODEL_MAX_V];
  const int V = a->V;
  int v = 0, len = 0;
  path[len++] = 0;
  for (;;) {
    const float *lrow = logits + (size_t)v * V;
    model_build_target(lrow, V, a->T, a->top_k, a->top_p, &t, margin);
    const float *q = a->kind == DECO_DRAFT_DETERMINISTIC ? NULL : q_rows + (size_t)v * V;
    int det = a->kind == DECO_DRAFT_DETERMINISTIC;
    int without = a->kind == DECO_DRAFT_TREE_WITHOUT_REPLACEMENT;
    double WX = t.S, D = 1.0;
    int rejected = 0, accepted = -1;
    for (int y = 0; y < V; ++y) excl[y] = 0;
    for (int y = 0; y < V; ++y) r[y] = t.in[y] ? t.w[y] / t.S : 0.0;
    for (int c = v + 1; c < n && accepted < 0; ++c) {
      if (parent[c] != v) continue;
      int x = tokens[c];
      if (x < 0 || x >= V) continue;
      double u = deco_philox_uniform(a->seed, a->offset, a->request, (uint32_t)c, 0);
      double px, qx;
      if (det) {
        px = (t.in[x] && !excl[x] && WX > 0.0) ? t.w[x] / WX : 0.0;
        qx = 1.0;
      } else {
        double qs = without ? (D > 0.0 ? 1.0 / D : 0.0) : 1.0;
        px = r[x];
        qx = excl[x] ? 0.0 : q[x] * qs;
        if (rule == MODEL_IGNORE_Q) qx = 1.0;
      }
      double g = fabs(u * qx - px);
      if (g < *margin) *margin = g;
      if (u * qx < px) {
        accepted = c;
        break;
      }
      if (rule == MODEL_NO_RESIDUAL) continue;
      if (det) {
        if (t.in[x] && !excl[x]) {
          excl[x] = 1;
          WX -= t.w[x];
        }
        continue;
      }
      double qs = without ? (D > 0.0 ? 1.0 / D : 0.0) : 1.0;
      double Z = 0.0;
      for (int y = 0; y < V; ++y) {
        double d = r[y] - (excl[y] ? 0.0 : q[y] * qs);
        if (d > 0.0) Z += d;
      }
      if (Z < *margin) *margin = Z;
      if (Z > 0.0)
        for (int y = 0; y < V; ++y) {
          double d = r[y] - (excl[y] ? 0.0 : q[y] * qs);
          r[y] = d > 0.0 ? d / Z : 0.0;
        }
      if (without && !excl[x]) {
        D -= q[x];
        excl[x] = 1;
      }
      rejected = 1;
    }
    if (accepted >= 0) {
      v = accepted;
      path[len++] = v;
      continue;
    }
    int top = t.top;
    if (rule == MODEL_BONUS_ROOT && v != 0) {
      /* the broken rule: the root's target instead of the last node's */
      double dummy = 1.0;
      model_build_target(logits, V, a->T, a->top_k, a->top_p, &t, &dummy);
      for (int y = 0; y < V; ++y) omega[y] = t.in[y] ? t.w[y] : 0.0;
    } else {
      for (int y = 0; y < V; ++y) {
        if (det) omega[y] = (t.in[y] && !excl[y]) ? t.w[y] : 0.0;
        else if (rejected) omega[y] = r[y];
        else omega[y] = t.in[y] ? t.w[y] : 0.0;
      }
    }
    double u = deco_philox_uniform(a->seed, a->offset, a->request, (uint32_t)v, 1);
    *bonus = (int32_t)model_bonus(omega, V, u, top, margin);
    return len;
  }
}

/* ---- chi-square ---- */

typedef struct model_chi2 {
  double stat;
  int df;
  double pvalue;
  long outside; /* draws in cells of probability 0 */
  double min_effect; /* the chi-square distance sum (d^2 / p) this test detects about half the time */
} model_chi2_t;

/* Goodness of fit of counts[n] to probabilities expect[n] (sum 1) over N
 * draws at significance alpha; cells with expected count < 5 are pooled. */
static model_chi2_t model_chi2_test(const long *counts, const double *expect, int n, long N, double alpha) {
  model_chi2_t r = {0.0, 0, 1.0, 0, 0.0};
  double pool_e = 0.0;
  long pool_o = 0;
  int cells = 0;
  for (int i = 0; i < n; ++i) {
    double e = expect[i] * (double)N;
    if (expect[i] <= 0.0) {
      r.outside += counts[i];
      continue;
    }
    if (e < 5.0) {
      pool_e += e;
      pool_o += counts[i];
      continue;
    }
    double d = (double)counts[i] - e;
    r.stat += d * d / e;
    ++cells;
  }
  if (pool_e > 0.0) {
    double d = (double)pool_o - pool_e;
    r.stat += d * d / (pool_e < 1e-12 ? 1e-12 : pool_e);
    ++cells;
  }
  r.df = cells - 1;
  r.pvalue = r.df > 0 ? deco_test_chi2_sf(r.stat, r.df) : 1.0;
  /* Noncentrality lambda with P(chi2'(df, lambda) > critical) ~ 1/2: lambda ~ critical - df. */
  double crit = r.df;
  while (r.df > 0 && deco_test_chi2_sf(crit, r.df) > alpha) crit += 0.25;
  r.min_effect = (crit - r.df) / (double)N;
  return r;
}

#endif
