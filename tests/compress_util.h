/* tests/compress_util.h — what the KV-head compression suites share (CPU,
 * GGUF and GPU): a seeded generator, temporary paths, models written and
 * loaded with a given RoPE pairing, every position's logits of one prefill,
 * and the edit that makes each group of KV heads exactly mergeable.
 * Header-only (static functions); include after criterion and testutil.
 */
#ifndef DECO_TESTS_COMPRESS_UTIL_H
#define DECO_TESTS_COMPRESS_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/compress/compress_internal.h"
#include "../host/model/model_internal.h"
#include "common/testutil.h"

static inline uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

#define EVAL_T 256
#define CALIB_T 512

__attribute__((unused)) static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, 512, "%s/%s", deco_test_tmpdir(), name);
  return p;
}

/* Writes w as llama2.c (the format has no pairing field: the style is set
 * on the loaded model instead). */
__attribute__((unused)) static void write_model(deco_cw_t *w, const char *path) {
  const deco_rope_style_t s = w->hp.rope_style;
  w->hp.rope_style = DECO_ROPE_INTERLEAVED;
  cr_assert_eq(deco_cw_write_llama2c(w, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  w->hp.rope_style = s;
}

__attribute__((unused)) static deco_model_t *load_model(deco_ctx_t *ctx, const char *path, deco_rope_style_t style) {
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(ctx, path, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* The pairing under test, in the shapes the forward runs and in those
   * the model reports (deco_model_get_hparams). */
  m->hp.rope_style = style;
  m->full.rope_style = style;
  return m;
}

/* Logits of every position of tokens[0..n) (one prefill), host copy. */
__attribute__((unused)) static float *all_logits(deco_model_t *m, const int32_t *tokens, int n) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int vocab = deco_model_get_hparams(m)->vocab_size;
  deco_kv_cache_t *cache = NULL;
  cr_assert_eq(deco_kv_cache_create(m, 16, (n + 15) / 16, 1, &cache), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  int seq = -1;
  cr_assert_eq(deco_kv_cache_admit(cache, n, &seq), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *logits = malloc(sizeof(float) * (size_t)n * vocab);
  void *dev = NULL;
  cr_assert_eq(deco_malloc(ctx, &dev, sizeof(float) * (size_t)n * vocab), DECO_STATUS_SUCCESS);
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1;
  fa.seqs = &seq;
  fa.n_new = &n;
  fa.tokens = tokens;
  fa.logits_mode = DECO_LOGITS_ALL;
  fa.logits = dev;
  cr_assert_eq(deco_forward(m, cache, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_memcpy(ctx, logits, dev, sizeof(float) * (size_t)n * vocab, DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  deco_free(ctx, dev);
  deco_kv_cache_destroy(cache);
  return logits;
}

/* Within each group of g heads: W_V,b = M_b W_V,first (M_0 = I, others
 * random and well conditioned), and per frequency k_{b,f} = c_{b,f} z_f
 * with z_f the first head's original component and c of random magnitude
 * in [0.5, 1.5] and phase. */
__attribute__((unused)) static void make_mergeable(deco_cw_t *w, int g, uint64_t seed) {
  const deco_model_hparams_t *hp = &w->hp;
  const int d = hp->head_dim, half = d / 2, dim = hp->dim, kvh = hp->n_kv_heads;
  uint64_t s = seed;
  float *base = malloc(sizeof(float) * (size_t)d * dim), *m = malloc(sizeof(float) * (size_t)d * d);
  for (int l = 0; l < hp->n_layers; ++l)
    for (int G = 0; G < kvh / g; ++G) {
      float *wv = w->wv + ((size_t)l * kvh + (size_t)G * g) * d * dim;
      float *wk = w->wk + ((size_t)l * kvh + (size_t)G * g) * d * dim;
      memcpy(base, wv, sizeof(float) * (size_t)d * dim);
      for (int b = 1; b < g; ++b) {
        for (int i = 0; i < d * d; ++i) m[i] = (float)((rng_uniform(&s) - 0.5) / sqrt((double)d) + (i % (d + 1) == 0));
        for (int r = 0; r < d; ++r)
          for (int x = 0; x < dim; ++x) {
            double acc = 0;
            for (int c = 0; c < d; ++c) acc += (double)m[r * d + c] * base[(size_t)c * dim + x];
            wv[((size_t)b * d + r) * dim + x] = (float)acc;
          }
      }
      memcpy(base, wk, sizeof(float) * (size_t)d * dim);
      for (int b = 0; b < g; ++b)
        for (int f = 0; f < half; ++f) {
          const double mag = 0.5 + rng_uniform(&s), ph = 6.283185307179586 * rng_uniform(&s);
          const double cr = mag * cos(ph), ci = mag * sin(ph);
          const int i0 = hp->rope_style == DECO_ROPE_INTERLEAVED ? 2 * f : f;
          const int i1 = hp->rope_style == DECO_ROPE_INTERLEAVED ? 2 * f + 1 : f + half;
          for (int x = 0; x < dim; ++x) {
            const double z0 = base[(size_t)i0 * dim + x], z1 = base[(size_t)i1 * dim + x];
            wk[((size_t)b * d + i0) * dim + x] = (float)(cr * z0 - ci * z1);
            wk[((size_t)b * d + i1) * dim + x] = (float)(ci * z0 + cr * z1);
          }
        }
    }
  free(base);
  free(m);
}

__attribute__((unused)) static void ids(int32_t *t, int n, uint64_t seed, int vocab) {
  uint64_t s = seed;
  t[0] = 1;
  for (int i = 1; i < n; ++i) t[i] = 3 + (int32_t)(rng_next(&s) % (uint64_t)(vocab - 3));
}

__attribute__((unused)) static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = fabs((double)a[i] - b[i]);
    if (!(e <= m)) m = e;
  }
  return m;
}

/* eigs holds eigenvectors of gr's Grams, normalised: per value Gram C,
 * unit vectors with C p = lambda p, lambda descending; per key Gram H, a
 * unit u with H u = lambda u and lambda at least every diagonal entry (the
 * top one); the largest component real and positive. Tolerances: f64
 * rounding of a g*d-square decomposition, relative to the Gram's scale. */
__attribute__((unused)) static void check_eigs(const deco_grams_t *gr, const deco_eigs_t *e) {
  const int g = gr->group, d = gr->head_dim, gd = g * d, half = d / 2;
  cr_assert(e->n_layers == gr->n_layers && e->n_groups == gr->n_groups && e->group == g && e->head_dim == d);
  for (int mi = 0; mi < gr->n_layers * gr->n_groups; ++mi) {
    const double *C = gr->v + (size_t)mi * gd * gd, *P = e->v + (size_t)mi * d * gd;
    double prev = INFINITY, scale = 0;
    for (int i = 0; i < gd; ++i) scale = fmax(scale, C[(size_t)i * gd + i]);
    for (int c = 0; c < d; ++c) {
      const double *p = P + (size_t)c * gd;
      double lam = 0, res = 0, nrm = 0, big = 0;
      int m = 0;
      for (int i = 0; i < gd; ++i)
        for (int j = 0; j < gd; ++j) lam += p[i] * C[(size_t)i * gd + j] * p[j];
      for (int i = 0; i < gd; ++i) {
        double r = -lam * p[i];
        for (int j = 0; j < gd; ++j) r += C[(size_t)i * gd + j] * p[j];
        if (!(fabs(r) <= res)) res = fabs(r); /* a NaN sticks */
        nrm += p[i] * p[i];
        if (fabs(p[i]) > big) big = fabs(p[m = i]);
      }
      cr_assert_gt(p[m], 0, "matrix %d vector %d: the largest component is negative", mi, c);
      cr_assert_lt(fabs(nrm - 1), 1e-12, "matrix %d vector %d: norm^2 %g", mi, c, nrm);
      cr_assert_lt(res, 1e-10 * scale, "matrix %d vector %d: residual %g of %g", mi, c, res, scale);
      cr_assert_leq(lam, prev + 1e-12 * scale, "matrix %d: eigenvalues descend", mi);
      prev = lam;
    }
    for (int f = 0; f < half; ++f) {
      const double *H = gr->k + ((size_t)mi * half + f) * g * g * 2, *u = e->k + ((size_t)mi * half + f) * g * 2;
      double hs = 0, nrm = 0, lam = 0, res = 0, big = 0;
      int m = 0;
      for (int a = 0; a < g; ++a) {
        hs = fmax(hs, H[(a * g + a) * 2]);
        nrm += u[2 * a] * u[2 * a] + u[2 * a + 1] * u[2 * a + 1];
        if (hypot(u[2 * a], u[2 * a + 1]) > big) big = hypot(u[2 * (m = a)], u[2 * a + 1]);
      }
      /* lambda = u^H H u (real for Hermitian H), residual |H u - lambda u| */
      for (int a = 0; a < g; ++a) {
        double hr = 0, hi = 0; /* (H u)_a */
        for (int b = 0; b < g; ++b) {
          const double xr = H[(a * g + b) * 2], xi = H[(a * g + b) * 2 + 1];
          hr += xr * u[2 * b] - xi * u[2 * b + 1];
          hi += xr * u[2 * b + 1] + xi * u[2 * b];
        }
        lam += u[2 * a] * hr + u[2 * a + 1] * hi;
      }
      for (int a = 0; a < g; ++a) {
        double hr = -lam * u[2 * a], hi = -lam * u[2 * a + 1];
        for (int b = 0; b < g; ++b) {
          const double xr = H[(a * g + b) * 2], xi = H[(a * g + b) * 2 + 1];
          hr += xr * u[2 * b] - xi * u[2 * b + 1];
          hi += xr * u[2 * b + 1] + xi * u[2 * b];
        }
        if (!(hypot(hr, hi) <= res)) res = hypot(hr, hi);
        cr_assert_geq(lam, H[(a * g + a) * 2] - 1e-12 * hs, "matrix %d f %d: not the top eigenvector", mi, f);
      }
      cr_assert_lt(fabs(nrm - 1), 1e-12, "matrix %d f %d: norm^2 %g", mi, f, nrm);
      cr_assert_lt(res, 1e-10 * hs, "matrix %d f %d: residual %g of %g", mi, f, res, hs);
      cr_assert(u[2 * m] > 0 && fabs(u[2 * m + 1]) <= 1e-15 * u[2 * m], "matrix %d f %d: largest %g%+gi", mi, f,
                u[2 * m], u[2 * m + 1]);
    }
  }
}

#endif
