/* tests/test_compress_gguf.c — KV-head compression of a GGUF model
 * (SmolLM2-135M's 3-layer mini copy, models-cache/; label model): the F32
 * GGUF writer keeps every metadata entry but head_count_kv and file_type,
 * and on a copy edited to be exactly mergeable (3 -> 1 KV heads, RoPE base
 * 100000) svd reproduces the logits to f32 rounding (1e-5 of the largest
 * logit) while mean-pooling misses by more than 1e-2.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/compress/compress_internal.h"
#include "../host/model/gguf.h"
#include "../host/model/model_internal.h"
#include "common/testutil.h"
#include "deco/deco.h"

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

#define EVAL_T 128
#define CALIB_T 512

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, 512, "%s/%s", deco_test_tmpdir(), name);
  return p;
}

static deco_model_t *load_model(deco_ctx_t *ctx, const char *path, deco_rope_style_t style) {
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(ctx, path, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  m->hp.rope_style = style; /* the pairing under test */
  return m;
}

/* Logits of every position of tokens[0..n) (one prefill), host copy. */
static float *all_logits(deco_model_t *m, const int32_t *tokens, int n) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  const int vocab = deco_model_get_hparams(m)->vocab_size;
  deco_kv_cache_t *cache = NULL;
  cr_assert_eq(deco_kv_cache_create(m, 16, (n + 15) / 16, 1, &cache), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  int seq = -1;
  cr_assert_eq(deco_kv_cache_admit(cache, n, &seq), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *logits = malloc(sizeof(float) * (size_t)n * vocab);
  deco_forward_args_t fa = DECO_FORWARD_ARGS_INIT;
  fa.n_seqs = 1;
  fa.seqs = &seq;
  fa.n_new = &n;
  fa.tokens = tokens;
  fa.logits_mode = DECO_LOGITS_ALL;
  fa.logits = logits; /* the CPU context's memory is the host's */
  cr_assert_eq(deco_forward(m, cache, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_kv_cache_destroy(cache);
  return logits;
}

/* Within each group of g heads: W_V,b = M_b W_V,first (M_0 = I, others
 * random and well conditioned), and per frequency k_{b,f} = c_{b,f} z_f
 * with z_f the first head's original component and c of random magnitude
 * in [0.5, 1.5] and phase. */
static void make_mergeable(deco_cw_t *w, int g, uint64_t seed) {
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

static void ids(int32_t *t, int n, uint64_t seed, int vocab) {
  uint64_t s = seed;
  t[0] = 1;
  for (int i = 1; i < n; ++i) t[i] = 3 + (int32_t)(rng_next(&s) % (uint64_t)(vocab - 3));
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = fabs((double)a[i] - b[i]);
    if (!(e <= m)) m = e;
  }
  return m;
}


static void write_gguf(deco_cw_t *w, const char *tmpl, const char *path) {
  cr_assert_eq(deco_cw_write_gguf(w, tmpl, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
}

Test(compress_gguf, svd_exact_on_mergeable_smollm2_mini, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(mini, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(w.hp.n_kv_heads, 3);
  cr_assert_eq(w.hp.rope_theta, 100000.0f);
  const int vocab = w.hp.vocab_size;
  make_mergeable(&w, 3, 0xBEEFu);
  const char *edited = tmp_path("edited.gguf");
  write_gguf(&w, mini, edited);
  deco_cw_free(&w);

  int32_t calib[CALIB_T], eval[EVAL_T];
  ids(calib, CALIB_T, 505, vocab);
  ids(eval, EVAL_T, 606, vocab);
  deco_model_t *m = load_model(ctx, edited, DECO_ROPE_INTERLEAVED);
  float *ref = all_logits(m, eval, EVAL_T);
  deco_grams_t gr;
  cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, 3, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_model_destroy(m);
  for (int method = 0; method < 2; ++method) {
    cr_assert_eq(deco_cw_read(edited, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert_eq(deco_compress_fold(&w, &gr, 1, (deco_compress_method_t)method, NULL, NULL), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    const char *folded = tmp_path("folded.gguf");
    write_gguf(&w, edited, folded);
    deco_cw_free(&w);
    deco_model_t *fm = load_model(ctx, folded, DECO_ROPE_INTERLEAVED);
    cr_assert_eq(deco_model_get_hparams(fm)->n_kv_heads, 1);
    float *got = all_logits(fm, eval, EVAL_T);
    const double err = max_abs_diff(got, ref, (size_t)EVAL_T * vocab);
    /* f32 relative to the logits' scale: the edit and the fold each round
     * the weights once to f32 (~6e-8), amplified through the layers;
     * measured 1.4e-4 at logits up to 61. */
    double scale = 0;
    for (size_t i = 0; i < (size_t)EVAL_T * vocab; ++i)
      if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    if (method == DECO_COMPRESS_SVD)
      cr_assert_lt(err, 1e-5 * (1.0 + scale), "svd: logits differ by %g (largest logit %g)", err, scale);
    else
      cr_assert_gt(err, 1e-2, "mean: logits differ by only %g", err);
    free(got);
    deco_model_destroy(fm);
  }
  deco_grams_free(&gr);
  free(ref);
  deco_ctx_destroy(ctx);
}

Test(compress_gguf, metadata_and_tokenizer_copied, .timeout = 300) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  int32_t calib[CALIB_T];
  ids(calib, CALIB_T, 707, 49152);
  const char *out = tmp_path("mini_1kv.gguf");
  deco_compress_config_t cc = DECO_COMPRESS_CONFIG_INIT;
  cc.n_kv_heads = 1;
  cc.method = DECO_COMPRESS_KEEP;
  cr_assert_eq(deco_compress_model(ctx, mini, calib, CALIB_T, &cc, out, NULL), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  size_t na = 0, nb = 0;
  unsigned char *a = deco_test_read_file(mini, &na), *b = deco_test_read_file(out, &nb);
  cr_assert(a && b);
  deco_gguf_t ga, gb;
  cr_assert_eq(deco_gguf_parse(a, na, "in", &ga), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_gguf_parse(b, nb, "out", &gb), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(ga.n_kv, gb.n_kv);
  cr_assert_eq(ga.n_tensors, gb.n_tensors);
  for (uint64_t i = 0; i < ga.n_kv; ++i) {
    const deco_gguf_kv_t *x = &ga.kv[i], *y = &gb.kv[i];
    cr_assert_eq(x->key_len, y->key_len);
    cr_assert(memcmp(x->key, y->key, x->key_len) == 0);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)x->key_len, x->key);
    if (strcmp(key, "llama.attention.head_count_kv") == 0 || strcmp(key, "general.file_type") == 0) continue;
    cr_assert_eq(x->type, y->type, "%s", key);
    cr_assert_eq(x->count, y->count, "%s", key);
    cr_assert_eq(x->value_bytes, y->value_bytes, "%s", key);
    cr_assert(memcmp(x->value, y->value, x->value_bytes) == 0, "%s differs", key);
  }
  uint32_t kv = 0, ft = 0;
  cr_assert_eq(deco_gguf_get_u32(&gb, "llama.attention.head_count_kv", &kv), DECO_STATUS_SUCCESS);
  cr_assert_eq(kv, 1);
  if (deco_gguf_find_kv(&ga, "general.file_type")) {
    cr_assert_eq(deco_gguf_get_u32(&gb, "general.file_type", &ft), DECO_STATUS_SUCCESS);
    cr_assert_eq(ft, 0);
  }
  for (uint64_t i = 0; i < gb.n_tensors; ++i) cr_assert_eq(gb.tensors[i].type, DECO_GGUF_F32, "%s", gb.tensors[i].name);
  /* keep: the kept head's K/V rows are the input's first head's, dequantised. */
  deco_cw_t wa, wb;
  cr_assert_eq(deco_cw_read(mini, &wa), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_cw_read(out, &wb), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  const size_t hd_dim = (size_t)wa.hp.head_dim * wa.hp.dim;
  for (int l = 0; l < wa.hp.n_layers; ++l) {
    cr_assert(memcmp(wa.wv + (size_t)l * 3 * hd_dim, wb.wv + (size_t)l * hd_dim, hd_dim * sizeof(float)) == 0);
    cr_assert(memcmp(wa.wk + (size_t)l * 3 * hd_dim, wb.wk + (size_t)l * hd_dim, hd_dim * sizeof(float)) == 0);
  }
  cr_assert(memcmp(wa.w2, wb.w2, sizeof(float) * wa.hp.n_layers * wa.hp.dim * wa.hp.hidden_dim) == 0);
  deco_cw_free(&wa);
  deco_cw_free(&wb);
  deco_tokenizer_t *ta = NULL, *tb = NULL;
  cr_assert_eq(deco_tokenizer_load_gguf(mini, &ta), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tokenizer_load_gguf(out, &tb), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tokenizer_vocab_size(ta), deco_tokenizer_vocab_size(tb));
  deco_tokenizer_destroy(ta);
  deco_tokenizer_destroy(tb);
  deco_gguf_free(&ga);
  deco_gguf_free(&gb);
  free(a);
  free(b);
  deco_ctx_destroy(ctx);
}
