/* tests/test_compress.c — KV-head compression (deco/compress.h) on the CPU:
 * the calibration Gram op against a naive accumulation, the exactness that
 * mean-pooling cannot fake (stories260K edited so that each group's heads
 * are exactly mergeable: svd reproduces the logits, mean and keep do not),
 * for both RoPE pairings and, at the layer level, without RoPE, and the
 * compressed checkpoint in use (it loads,
 * runs, and speculative greedy decoding on it equals plain greedy); the
 * argument checks of the entry point, the calibration (and its chunks) and
 * the fold; the eigensolver's choice and errors (cuSOLVER refused on a CPU
 * context, or in a build without CUDA), the config read by its size, the
 * eigenvector normalisation, and LAPACK's vectors checked as eigenvectors.
 */
#include <complex.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "compress_util.h"
#include "deco/deco.h"
#if DECO_TEST_HAVE_LAPACKE
#include <lapacke.h>
#endif

/* ---- deco_kv_gram against a naive accumulation ---------------------------------- */

static void gram_case(int n_kv, int d, int g, deco_rope_style_t style, int n_rows) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const size_t row = (size_t)n_kv * d;
  float *k = malloc(sizeof(float) * n_rows * row), *v = malloc(sizeof(float) * n_rows * row);
  deco_test_fill_uniform(k, n_rows * row, 11, 0, -2.0f, 2.0f);
  deco_test_fill_uniform(v, n_rows * row, 12, 0, -2.0f, 2.0f);
  const int n_groups = n_kv / g, gd = g * d, half = d / 2;
  const size_t nv = (size_t)n_groups * gd * gd, nk = (size_t)n_groups * half * g * g * 2;
  double *vg = calloc(nv, sizeof(double)), *kg = calloc(nk, sizeof(double));
  /* Two calls: the second adds to the first. */
  const int split = n_rows / 2;
  for (int part = 0; part < 2; ++part) {
    deco_kv_gram_args_t a = DECO_KV_GRAM_ARGS_INIT;
    a.style = style;
    a.n_rows = part == 0 ? split : n_rows - split;
    a.n_kv_heads = n_kv;
    a.head_dim = d;
    a.group = g;
    a.k = k + (part == 0 ? 0 : (size_t)split * row);
    a.v = v + (part == 0 ? 0 : (size_t)split * row);
    a.k_gram = kg;
    a.v_gram = vg;
    cr_assert_eq(deco_kv_gram(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  }
  /* Naive: outer products of the concatenated value vectors, and of the
   * complex key vectors built from the pairing. */
  double maxerr = 0;
  for (int G = 0; G < n_groups; ++G) {
    double *ref = calloc((size_t)gd * gd, sizeof(double));
    for (int t = 0; t < n_rows; ++t)
      for (int i = 0; i < gd; ++i)
        for (int j = 0; j < gd; ++j)
          ref[i * gd + j] += (double)v[t * row + G * gd + i] * (double)v[t * row + G * gd + j];
    for (int i = 0; i < gd * gd; ++i) {
      const double e = fabs(vg[(size_t)G * gd * gd + i] - ref[i]) / (1.0 + fabs(ref[i]));
      if (e > maxerr) maxerr = e;
    }
    free(ref);
    for (int f = 0; f < half; ++f) {
      double complex h[16][16] = {{0}};
      for (int t = 0; t < n_rows; ++t) {
        double complex c[16];
        for (int b = 0; b < g; ++b) {
          const float *x = k + t * row + (size_t)(G * g + b) * d;
          c[b] = style == DECO_ROPE_INTERLEAVED ? x[2 * f] + I * x[2 * f + 1] : x[f] + I * x[f + half];
        }
        for (int p = 0; p < g; ++p)
          for (int q = 0; q < g; ++q) h[p][q] += c[p] * conj(c[q]);
      }
      for (int p = 0; p < g; ++p)
        for (int q = 0; q < g; ++q) {
          const double *o = kg + (((size_t)G * half + f) * g * g + p * g + q) * 2;
          const double e = cabs(o[0] + I * o[1] - h[p][q]) / (1.0 + cabs(h[p][q]));
          if (e > maxerr) maxerr = e;
        }
    }
  }
  /* Both sides sum the same f64 products (exact for f32 inputs) in row
   * order; only the naive complex multiply's rounding differs. */
  cr_assert_lt(maxerr, 1e-13, "n_kv %d d %d g %d style %d: max relative error %g", n_kv, d, g, (int)style, maxerr);
  free(k);
  free(v);
  free(vg);
  free(kg);
  deco_ctx_destroy(ctx);
}

Test(compress, kv_gram_matches_naive) {
  const int groups[] = {1, 2, 4};
  for (int s = 0; s < 2; ++s)
    for (int i = 0; i < 3; ++i) gram_case(4, 8, groups[i], s ? DECO_ROPE_HALF_SPLIT : DECO_ROPE_INTERLEAVED, 37);
  gram_case(6, 16, 3, DECO_ROPE_INTERLEAVED, 5);
}

/* Every refusal of deco_kv_gram in order, with its status and exact
 * message: each step fixes the argument the previous one refused. */
Test(compress, kv_gram_refusal_order_and_messages) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  float x[32] = {0};
  double g[64];
  deco_kv_gram_args_t a = DECO_KV_GRAM_ARGS_INIT;
  const deco_status_t bad = DECO_STATUS_INVALID_ARGUMENT, null = DECO_STATUS_NULL_POINTER;
  deco_test_refused(NULL, deco_kv_gram(NULL, &a), null, "deco_kv_gram: ctx is NULL");
  deco_test_refused(NULL, deco_kv_gram(ctx, NULL), null, "deco_kv_gram: (a) is NULL");
  a.dtype = (deco_dtype_t)99;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: dtype = 99 is not a dtype");
  a.dtype = DECO_DTYPE_F32;
  a.n_rows = -1;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: a->n_rows = -1 outside [0, 16777216]");
  a.n_rows = 0;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: a->n_kv_heads = 0 outside [1, 4096]");
  a.n_kv_heads = 4;
  a.head_dim = 257;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: a->head_dim = 257 outside [2, 256]");
  a.head_dim = 7;
  a.group = 5;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: a->group = 5 outside [1, 4]");
  a.group = 3;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: head_dim = 7 must be even");
  a.head_dim = 8;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: group = 3 does not divide n_kv_heads = 4");
  a.group = 2;
  a.style = (deco_rope_style_t)5;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), bad, "deco_kv_gram: style = 5 is not a RoPE pairing");
  a.style = DECO_ROPE_HALF_SPLIT;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), null, "deco_kv_gram: k and v are both NULL");
  a.v = x; /* v alone: k_gram is not read */
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), null, "deco_kv_gram: a->v_gram is NULL");
  a.v_gram = g;
  cr_assert_eq(deco_kv_gram(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  a.k = x; /* both: k_gram first */
  a.v_gram = NULL;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), null, "deco_kv_gram: a->k_gram is NULL");
  a.k_gram = g;
  deco_test_refused(NULL, deco_kv_gram(ctx, &a), null, "deco_kv_gram: a->v_gram is NULL");
  a.v_gram = g; /* no rows: an empty call succeeds once every check passes */
  cr_assert_eq(deco_kv_gram(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}

/* ---- exactness on an edited stories260K -------------------------------------------- */

/* Without RoPE: attention scores q_j(x_a) . k_h(j)(x_b) (plain dot
 * products, no rotation) and the output-projected values W_O[:, j] v_h(j)(x)
 * of every layer and query head, before (w0) and after (w) the fold, on
 * random inputs; the largest difference relative to the largest value. */
static double no_rope_error(const deco_cw_t *w0, const deco_cw_t *w) {
  const int dim = w0->hp.dim, d = w0->hp.head_dim, nq = w0->hp.n_heads;
  const int kv0 = w0->hp.n_kv_heads, kv1 = w->hp.n_kv_heads;
  double *x = malloc(sizeof(double) * 2 * dim);
  uint64_t s = 77;
  double worst = 0, scale = 0;
  for (int l = 0; l < w0->hp.n_layers; ++l)
    for (int trial = 0; trial < 8; ++trial) {
      for (int i = 0; i < 2 * dim; ++i) x[i] = rng_uniform(&s) * 2 - 1;
      for (int j = 0; j < nq; ++j) {
        double sc[2] = {0, 0};
        const deco_cw_t *ws[2] = {w0, w};
        const int kvs[2] = {kv0, kv1};
        double o[2][64] = {{0}};
        for (int m = 0; m < 2; ++m) {
          const int h = (int)((long long)j * kvs[m] / nq);
          const float *q = ws[m]->wq + ((size_t)l * nq + j) * d * dim;
          const float *k = ws[m]->wk + ((size_t)l * kvs[m] + h) * d * dim;
          const float *v = ws[m]->wv + ((size_t)l * kvs[m] + h) * d * dim;
          const float *wo = ws[m]->wo + (size_t)l * dim * nq * d;
          double vh[64];
          for (int r = 0; r < d; ++r) {
            double qa = 0, kb = 0, va = 0;
            for (int c = 0; c < dim; ++c) {
              qa += (double)q[(size_t)r * dim + c] * x[c];
              kb += (double)k[(size_t)r * dim + c] * x[dim + c];
              va += (double)v[(size_t)r * dim + c] * x[c];
            }
            sc[m] += qa * kb;
            vh[r] = va;
          }
          for (int r = 0; r < dim && r < 64; ++r)
            for (int c = 0; c < d; ++c) o[m][r] += (double)wo[(size_t)r * nq * d + (size_t)j * d + c] * vh[c];
        }
        worst = fmax(worst, fabs(sc[0] - sc[1]));
        scale = fmax(scale, fabs(sc[0]));
        for (int r = 0; r < dim && r < 64; ++r) {
          worst = fmax(worst, fabs(o[0][r] - o[1][r]));
          scale = fmax(scale, fabs(o[0][r]));
        }
      }
    }
  free(x);
  return worst / scale;
}

static void exactness(deco_rope_style_t style, int n_kv) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(deco_test_data_file("models/stories260K.bin"), &w), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  const int g = w.hp.n_kv_heads / n_kv, vocab = w.hp.vocab_size, L = w.hp.n_layers;
  w.hp.rope_style = style;
  make_mergeable(&w, g, 0xC0FFEEu + (uint64_t)style * 7 + (uint64_t)n_kv);
  const char *edited = tmp_path(style ? "edited_half.bin" : "edited_inter.bin");
  write_model(&w, edited);
  deco_cw_free(&w);

  int32_t calib[CALIB_T], eval[EVAL_T];
  ids(calib, CALIB_T, 101, vocab);
  ids(eval, EVAL_T, 202, vocab);
  deco_model_t *m = load_model(ctx, edited, style);
  float *ref = all_logits(m, eval, EVAL_T);
  deco_grams_t gr;
  cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, g, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_model_destroy(m);

  for (int method = 0; method < 3; ++method) {
    cr_assert_eq(deco_cw_read(edited, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    w.hp.rope_style = style;
    double ke[16], ve[16];
    cr_assert_eq(deco_compress_fold(&w, &gr, n_kv, (deco_compress_method_t)method, ke, ve), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    cr_assert_eq(w.hp.n_kv_heads, n_kv);
    deco_cw_t w0;
    cr_assert_eq(deco_cw_read(edited, &w0), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    const double nr = no_rope_error(&w0, &w);
    deco_cw_free(&w0);
    if (method == DECO_COMPRESS_SVD)
      cr_assert_lt(nr, 1e-5, "without RoPE, svd: scores and outputs differ by %g of their scale", nr);
    else
      cr_assert_gt(nr, 1e-2, "without RoPE, method %d: only %g", method, nr);
    const char *folded = tmp_path("folded.bin");
    write_model(&w, folded);
    deco_cw_free(&w);
    deco_model_t *fm = load_model(ctx, folded, style);
    cr_assert_eq(deco_model_get_hparams(fm)->n_kv_heads, n_kv);
    float *got = all_logits(fm, eval, EVAL_T);
    const double err = max_abs_diff(got, ref, (size_t)EVAL_T * vocab);
    if (method == DECO_COMPRESS_SVD) {
      cr_assert_lt(err, 1e-4, "style %d, %d KV heads, svd: logits differ by %g", (int)style, n_kv, err);
      for (int l = 0; l < L; ++l) {
        cr_assert_gt(ke[l], 1.0 - 1e-9, "layer %d key energy %.12f", l, ke[l]);
        cr_assert_gt(ve[l], 1.0 - 1e-9, "layer %d value energy %.12f", l, ve[l]);
      }
    } else {
      cr_assert_gt(err, 1e-2, "style %d, %d KV heads, method %d: logits differ by only %g", (int)style, n_kv, method,
                   err);
    }
    free(got);
    deco_model_destroy(fm);
  }
  deco_grams_free(&gr);
  free(ref);
  deco_ctx_destroy(ctx);
}

Test(compress, svd_exact_interleaved_4to2) { exactness(DECO_ROPE_INTERLEAVED, 2); }
Test(compress, svd_exact_interleaved_4to1) { exactness(DECO_ROPE_INTERLEAVED, 1); }
Test(compress, svd_exact_half_split_4to2) { exactness(DECO_ROPE_HALF_SPLIT, 2); }
Test(compress, svd_exact_half_split_4to1) { exactness(DECO_ROPE_HALF_SPLIT, 1); }

/* ---- the public entry point and the compressed model in use ------------------------ */

/* Greedy from BOS with src's drafter, up to 200 positions; EOS ends the run
 * (deco_test_greedy ignores it), so the length says when the model stopped. */
static void greedy(deco_model_t *m, deco_test_source_t src, deco_test_capture_t *cap) {
  deco_drafter_t *dr = deco_test_drafter(src, NULL, NULL);
  deco_generate_config_t gc = DECO_GENERATE_CONFIG_INIT;
  gc.steps = 200;
  gc.temperature = 0.0f;
  gc.drafter = dr;
  const int32_t bos = 1;
  deco_generate_stats_t stats;
  deco_test_generate(m, &bos, 1, gc, cap, &stats);
  deco_drafter_destroy(dr);
}

/* The inputs of a deco_compress_model check: stories260K's path (returned),
 * 1024 calibration ids drawn from seed, and a config merging to 2 KV heads. */
static const char *compress_inputs(int32_t calib[1024], uint64_t seed, deco_compress_config_t *cc) {
  ids(calib, 1024, seed, 512);
  *cc = (deco_compress_config_t)DECO_COMPRESS_CONFIG_INIT;
  cc->n_kv_heads = 2;
  return deco_test_data_file("models/stories260K.bin");
}

Test(compress, compressed_model_runs_and_spec_is_lossless) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 303, &cc), *out = tmp_path("stories_2kv.bin");
  double ke[5], ve[5];
  deco_compress_report_t rep = {.key_energy = ke, .value_energy = ve};
  cr_assert_eq(deco_compress_model(ctx, in, calib, 1024, &cc, out, &rep), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  for (int l = 0; l < 5; ++l) {
    cr_assert(ke[l] > 0.0 && ke[l] <= 1.0 + 1e-12, "layer %d key energy %g", l, ke[l]);
    cr_assert(ve[l] > 0.0 && ve[l] <= 1.0 + 1e-12, "layer %d value energy %g", l, ve[l]);
  }
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(ctx, out, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_get_hparams(m)->n_kv_heads, 2);
  cr_assert_eq(deco_model_get_hparams(m)->n_heads, 8);
  deco_test_capture_t plain = {.n = 0}, spec = {.n = 0};
  greedy(m, DECO_TEST_PLAIN, &plain);
  greedy(m, DECO_TEST_LOOKUP, &spec);
  cr_assert_gt(plain.n, 10);
  cr_assert_eq(plain.n, spec.n);
  cr_assert_eq(deco_test_compare_i32("spec vs plain", spec.ids, plain.ids, (size_t)plain.n), 0);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(compress, bad_input_named) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 404, &cc), *out = tmp_path("never.bin");
  cc.n_kv_heads = 3;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "--kv-heads 3");
  cc.n_kv_heads = 4;
  cr_assert_eq(deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT);
  cc.n_kv_heads = 2;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 100, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "at least 256");
  calib[7] = 512;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "token 7");
  FILE *f = fopen(out, "rb");
  cr_assert_null(f, "nothing is written on bad input");
  deco_ctx_destroy(ctx);
}

/* The entry point's own argument checks: a NULL ctx, a method that is none
 * of the three, an unreadable input (its reader's message, on ctx). */
Test(compress, model_argument_errors) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 808, &cc), *out = tmp_path("never_args.bin");
  DECO_TEST_REFUSED_NAMING(NULL, deco_compress_model(NULL, in, calib, 1024, &cc, out, NULL), DECO_STATUS_NULL_POINTER,
                           NULL, "deco_compress_model: ctx is NULL");
  cc.method = (deco_compress_method_t)9;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "deco_compress_model: method = 9 is not svd, mean or keep");
  cc.method = DECO_COMPRESS_MEAN;
  const char *missing = tmp_path("no_such_model.bin");
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, missing, calib, 1024, &cc, out, NULL), DECO_STATUS_IO_ERROR,
                           NULL, missing);
  FILE *f = fopen(out, "rb");
  cr_assert_null(f, "nothing is written on bad arguments");
  deco_ctx_destroy(ctx);
}

/* The calibration's own checks (the group, the ids) and its chunks: one
 * progress call per chunk, with the tokens done so far. */
typedef struct progress_log {
  int n;
  size_t done[8], total[8];
} progress_log_t;

static void log_progress(void *user, size_t done, size_t total) {
  progress_log_t *p = user;
  cr_assert_lt(p->n, 8);
  p->done[p->n] = done;
  p->total[p->n++] = total;
}

/* The fewest calibration tokens: twice a group's value Gram, at least 256;
 * counts below 1 count as 1. */
Test(compress, min_tokens) {
  cr_assert_eq(deco_compress_min_tokens(2, 8), 256);   /* stories260K: 2 * 2 * 8 = 32 */
  cr_assert_eq(deco_compress_min_tokens(2, 64), 256);  /* exactly 256 */
  cr_assert_eq(deco_compress_min_tokens(3, 64), 384);  /* SmolLM2: 3 query heads per KV head */
  cr_assert_eq(deco_compress_min_tokens(4, 128), 1024);
  cr_assert_eq(deco_compress_min_tokens(32, 128), 8192);
  cr_assert_eq(deco_compress_min_tokens(0, 0), 256);
  cr_assert_eq(deco_compress_min_tokens(-1, 200), 400);
}

Test(compress, calibrate_checks_and_chunks) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = load_model(ctx, deco_test_data_file("models/stories260K.bin"), DECO_ROPE_INTERLEAVED);
  int32_t calib[256];
  ids(calib, 256, 909, 512);
  deco_grams_t gr;
  deco_test_refused(ctx, deco_compress_calibrate(m, calib, 256, 3, 0, NULL, NULL, &gr), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_compress_calibrate: group 3 does not divide 4 KV heads");
  calib[5] = 512;
  deco_test_refused(ctx, deco_compress_calibrate(m, calib, 256, 2, 0, NULL, NULL, &gr), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_compress_calibrate: calibration token 5 is id 512, outside 0..511");
  calib[5] = 7;
  progress_log_t pl = {.n = 0};
  cr_assert_eq(deco_compress_calibrate(m, calib, 256, 2, 100, log_progress, &pl, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  const size_t want[3] = {100, 200, 256};
  cr_assert_eq(pl.n, 3);
  for (int i = 0; i < 3; ++i) {
    cr_assert_eq(pl.done[i], want[i], "call %d: %zu done", i, pl.done[i]);
    cr_assert_eq(pl.total[i], 256);
  }
  cr_assert(gr.n_layers == 5 && gr.n_groups == 2 && gr.group == 2 && gr.head_dim == 8 && gr.rows == 256);
  deco_grams_free(&gr);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

/* The fold's own checks, before anything changes: the KV-head count, Grams
 * of another shape, svd without matching eigenvectors. */
Test(compress, fold_rejects_mismatched_inputs) {
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(deco_test_data_file("models/stories260K.bin"), &w), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  const float *wk = w.wk;
  deco_grams_t gr = {.n_layers = w.hp.n_layers, .n_groups = 1, .group = 4, .head_dim = w.hp.head_dim};
  const int counts[3] = {3, 0, 4};
  for (int i = 0; i < 3; ++i) {
    char want[128];
    snprintf(want, sizeof want, "compress: --kv-heads %d must divide the model's 4 KV heads and be smaller", counts[i]);
    deco_test_refused(NULL, deco_compress_fold_eigs(&w, &gr, NULL, counts[i], DECO_COMPRESS_MEAN, NULL, NULL),
                      DECO_STATUS_INVALID_ARGUMENT, want);
  }
  deco_test_refused(NULL, deco_compress_fold_eigs(&w, &gr, NULL, 2, DECO_COMPRESS_MEAN, NULL, NULL),
                    DECO_STATUS_INVALID_ARGUMENT, "compress: the Grams do not match the model");
  deco_test_refused(NULL, deco_compress_fold_eigs(&w, &gr, NULL, 1, DECO_COMPRESS_SVD, NULL, NULL),
                    DECO_STATUS_INVALID_ARGUMENT, "compress: svd's eigenvectors do not match the model");
  deco_eigs_t e = {.n_layers = w.hp.n_layers, .n_groups = 1, .group = 4, .head_dim = w.hp.head_dim};
  deco_test_refused(NULL, deco_compress_fold_eigs(&w, &gr, &e, 1, DECO_COMPRESS_SVD, NULL, NULL),
                    DECO_STATUS_INVALID_ARGUMENT, "compress: svd's eigenvectors do not match the model");
  cr_assert_eq(w.hp.n_kv_heads, 4);
  cr_assert_eq(w.wk, wk, "the weights are left alone");
  deco_cw_free(&w);
}

/* ---- the eigensolver: choice, errors, normalisation -------------------------------- */

Test(compress, solver_choice_and_errors) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 505, &cc), *out = tmp_path("solver.bin");
  deco_compress_solver_t used = DECO_COMPRESS_SOLVER_CUSOLVER;
  /* AUTO on a CPU context is LAPACK. */
#if DECO_TEST_HAVE_LAPACKE
  cr_assert_eq(deco_compress_solver_resolve(ctx, DECO_COMPRESS_SOLVER_AUTO, &used), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  cr_assert_eq(used, DECO_COMPRESS_SOLVER_LAPACK);
#else
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_solver_resolve(ctx, DECO_COMPRESS_SOLVER_AUTO, &used),
                           DECO_STATUS_UNSUPPORTED, NULL, "needs LAPACKE");
#endif
  /* cuSOLVER asked for on a CPU context: refused before calibrating, nothing written. */
  cc.solver = DECO_COMPRESS_SOLVER_CUSOLVER;
#if DECO_TEST_HAVE_CUDA
  const char *why = "solver cusolver runs on a CUDA context, and this one is cpu";
#else
  const char *why = "solver cusolver needs a deco built with CUDA";
#endif
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_UNSUPPORTED,
                           NULL, why);
  FILE *f = fopen(out, "rb");
  cr_assert_null(f, "nothing is written when the solver is refused");
  cc.solver = (deco_compress_solver_t)7;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "solver = 7 is not auto, lapack or cusolver");
  /* mean and keep decompose nothing: the solver is not consulted. */
  cc.solver = DECO_COMPRESS_SOLVER_CUSOLVER;
  cc.method = DECO_COMPRESS_MEAN;
  cr_assert_eq(deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_ctx_destroy(ctx);
}

/* The config is read by its size: a caller built before `solver` existed
 * gets AUTO whatever lies past its struct; a larger struct is refused. */
Test(compress, config_read_by_size) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 606, &cc);
  cc.method = DECO_COMPRESS_SVD;
  cc.solver = DECO_COMPRESS_SOLVER_LAPACK;
  const char *a = tmp_path("sized_full.bin"), *b = tmp_path("sized_old.bin");
  const deco_status_t full = deco_compress_model(ctx, in, calib, 1024, &cc, a, NULL);
  cc.size = offsetof(deco_compress_config_t, solver);
  cc.solver = DECO_COMPRESS_SOLVER_CUSOLVER; /* past the caller's struct: not read */
  const deco_status_t old = deco_compress_model(ctx, in, calib, 1024, &cc, b, NULL);
#if DECO_TEST_HAVE_LAPACKE
  cr_assert_eq(full, DECO_STATUS_SUCCESS);
  cr_assert_eq(old, DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* AUTO on the CPU is LAPACK: the same file. */
  deco_test_expect_same_file("AUTO and LAPACK differ on the CPU", a, b);
#else
  /* AUTO on the CPU is LAPACK, which this build lacks (not cuSOLVER's message). */
  cr_assert_eq(full, DECO_STATUS_UNSUPPORTED);
  DECO_TEST_REFUSED_NAMING(ctx, old, DECO_STATUS_UNSUPPORTED, NULL, "needs LAPACKE");
#endif
  cc.size = sizeof(deco_compress_config_t) + 8;
  DECO_TEST_REFUSED_NAMING(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, b, NULL), DECO_STATUS_INVALID_ARGUMENT,
                           NULL, "deco_compress_model: config: size");
  deco_ctx_destroy(ctx);
}

/* The normalisation both solvers apply: the largest component (the first
 * on ties) real and positive; the vector otherwise unchanged. */
Test(compress, eigenvector_normalisation) {
  const double x[8] = {0.1, 0, -0.7, 0, 0.7, 0, 0.2, 0}; /* stride 2: 0.1, -0.7, 0.7, 0.2 */
  double y[4];
  deco_eig_normalise_real(x, 2, 4, y);
  const double want[4] = {-0.1, 0.7, -0.7, -0.2}; /* the tie goes to -0.7, the first */
  for (int i = 0; i < 4; ++i) cr_assert_eq(y[i], want[i], "%d: %g", i, y[i]);
  /* complex: u = e^{i t} (0.3, 0.8 i, -0.5) -> (0.3 (-i), 0.8, -0.5 (-i)) */
  const double t = 1.234;
  const double complex src[3] = {0.3 * cexp(I * t), 0.8 * I * cexp(I * t), -0.5 * cexp(I * t)};
  double u[6];
  for (int b = 0; b < 3; ++b) {
    u[2 * b] = creal(src[b]);
    u[2 * b + 1] = cimag(src[b]);
  }
  deco_eig_normalise_complex(u, 3);
  const double complex exp_u[3] = {-0.3 * I, 0.8, 0.5 * I};
  for (int b = 0; b < 3; ++b)
    cr_assert_lt(cabs(u[2 * b] + I * u[2 * b + 1] - exp_u[b]), 1e-15, "%d: %g%+gi", b, u[2 * b], u[2 * b + 1]);
}

/* The LAPACK path through deco_compress_eigs gives eigenvectors of the
 * Grams of a calibration (check_eigs). */
Test(compress, lapack_eigs_are_eigenvectors) {
#if !DECO_TEST_HAVE_LAPACKE
  cr_assert_fail("this check needs LAPACKE (liblapacke-dev), and the library was built without it");
#else
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = load_model(ctx, deco_test_data_file("models/stories260K.bin"), DECO_ROPE_INTERLEAVED);
  int32_t calib[CALIB_T];
  ids(calib, CALIB_T, 707, 512);
  deco_grams_t gr;
  cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, 2, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  deco_model_destroy(m);
  deco_eigs_t e;
  cr_assert_eq(deco_compress_eigs(ctx, &gr, DECO_COMPRESS_SOLVER_LAPACK, &e), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  check_eigs(&gr, &e);
  deco_eigs_free(&e);
  deco_grams_free(&gr);
  deco_ctx_destroy(ctx);
#endif
}

/* The cuSOLVER path's layout on the CPU: the row-major Grams handed as they
 * are to column-major dsyevd / zheevd (lower triangle), LAPACK's own
 * column-major routines standing in for cusolverDnDsyevd / Zheevd (the same
 * contract), the top columns cut as eigs_cusolver.c copies them back, and
 * deco_eigs_from_colmajor: eigenvectors (check_eigs), and the fold from
 * them reproduces the fold from the row-major LAPACK path within f32
 * rounding of the weights. */
Test(compress, colmajor_unpacking_of_the_cusolver_path) {
#if !DECO_TEST_HAVE_LAPACKE
  cr_assert_fail("this check needs LAPACKE (liblapacke-dev), and the library was built without it");
#else
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m = load_model(ctx, deco_test_data_file("models/stories260K.bin"), DECO_ROPE_INTERLEAVED);
  int32_t calib[CALIB_T];
  ids(calib, CALIB_T, 717, 512);
  for (int g = 2; g <= 4; g += 2) {
    deco_grams_t gr;
    cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, g, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(ctx));
    const int d = gr.head_dim, gd = g * d, half = d / 2;
    const size_t n_v = (size_t)gr.n_layers * gr.n_groups, vmat = (size_t)gd * gd, kmat = (size_t)g * g;
    double *a = malloc(sizeof(double) * vmat), *w = malloc(sizeof(double) * gd);
    double *vtop = malloc(sizeof(double) * n_v * d * gd), *ktop = malloc(sizeof(double) * n_v * half * g * 2);
    lapack_complex_double *z = malloc(sizeof(lapack_complex_double) * kmat);
    for (size_t mi = 0; mi < n_v; ++mi) {
      memcpy(a, gr.v + mi * vmat, sizeof(double) * vmat);
      cr_assert_eq(LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', gd, a, gd, w), 0);
      memcpy(vtop + mi * d * gd, a + (size_t)(gd - d) * gd, sizeof(double) * d * gd);
      for (int f = 0; f < half; ++f) {
        memcpy(z, gr.k + (mi * half + f) * kmat * 2, sizeof(double) * kmat * 2);
        cr_assert_eq(LAPACKE_zheevd(LAPACK_COL_MAJOR, 'V', 'L', g, z, g, w), 0);
        memcpy(ktop + (mi * half + f) * g * 2, (const double *)z + (size_t)(g - 1) * g * 2, sizeof(double) * g * 2);
      }
    }
    deco_eigs_t e = {.n_layers = gr.n_layers, .n_groups = gr.n_groups, .group = g, .head_dim = d};
    e.v = malloc(sizeof(double) * n_v * d * gd);
    e.k = malloc(sizeof(double) * n_v * half * g * 2);
    deco_eigs_from_colmajor(vtop, ktop, n_v, g, d, &e);
    check_eigs(&gr, &e);
    /* the two folds' weights */
    deco_cw_t w0, w1;
    const char *in = deco_test_data_file("models/stories260K.bin");
    cr_assert_eq(deco_cw_read(in, &w0), DECO_STATUS_SUCCESS);
    cr_assert_eq(deco_cw_read(in, &w1), DECO_STATUS_SUCCESS);
    const int n_kv = w0.hp.n_kv_heads / g;
    cr_assert_eq(deco_compress_fold(&w0, &gr, n_kv, DECO_COMPRESS_SVD, NULL, NULL), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    cr_assert_eq(deco_compress_fold_eigs(&w1, &gr, &e, n_kv, DECO_COMPRESS_SVD, NULL, NULL), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    const size_t nk = (size_t)w0.hp.n_layers * n_kv * d * w0.hp.dim;
    const size_t nq = (size_t)w0.hp.n_layers * w0.hp.n_heads * d * w0.hp.dim;
    double dk = 0, dq = 0;
    float sk = 0, sq = 0;
    for (size_t i = 0; i < nk; ++i) {
      if (!(fabs((double)w0.wk[i] - w1.wk[i]) <= dk)) dk = fabs((double)w0.wk[i] - w1.wk[i]); /* a NaN sticks */
      sk = fmaxf(sk, fabsf(w0.wk[i]));
    }
    for (size_t i = 0; i < nq; ++i) {
      if (!(fabs((double)w0.wq[i] - w1.wq[i]) <= dq)) dq = fabs((double)w0.wq[i] - w1.wq[i]);
      sq = fmaxf(sq, fabsf(w0.wq[i]));
    }
    /* The keys' vectors are unique up to the normalised phase: the key and
     * query weights agree to a few f32 ulps of their scale. */
    cr_assert_lt(dk, 1e-6 * sk, "g %d: W_K differs by %g of %g", g, dk, (double)sk);
    cr_assert_lt(dq, 1e-6 * sq, "g %d: W_Q differs by %g of %g", g, dq, (double)sq);
    deco_cw_free(&w0);
    deco_cw_free(&w1);
    deco_eigs_free(&e);
    free(a);
    free(w);
    free(vtop);
    free(ktop);
    free(z);
    deco_grams_free(&gr);
  }
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
#endif
}

/* A calibration id outside the vocabulary, below or above it: the first one
 * is named, word for word, by the model's path and by the calibration. */
Test(compress, the_first_out_of_vocabulary_calibration_id_is_named) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  int32_t calib[1024];
  deco_compress_config_t cc;
  const char *in = compress_inputs(calib, 505, &cc), *out = tmp_path("never_vocab.bin");
  calib[7] = -1;
  calib[9] = 512;
  char want[4096 + 64];
  snprintf(want, sizeof want, "%s: calibration token 7 is id -1, outside 0..511", in);
  deco_test_refused(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                    want);
  calib[7] = 3;
  snprintf(want, sizeof want, "%s: calibration token 9 is id 512, outside 0..511", in);
  deco_test_refused(ctx, deco_compress_model(ctx, in, calib, 1024, &cc, out, NULL), DECO_STATUS_INVALID_ARGUMENT,
                    want);
  FILE *f = fopen(out, "rb");
  cr_assert_null(f, "nothing is written on bad input");
  deco_model_t *m = load_model(ctx, in, DECO_ROPE_INTERLEAVED);
  deco_grams_t gr;
  calib[2] = -5;
  deco_test_refused(ctx, deco_compress_calibrate(m, calib, 256, 2, 0, NULL, NULL, &gr), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_compress_calibrate: calibration token 2 is id -5, outside 0..511");
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
