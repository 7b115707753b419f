/* tests/gpu/test_compress_cuda.c — KV-head compression on the CUDA backend:
 * the deco_kv_gram kernel against its C twin (f32, f16 and bf16 input,
 * both pairings, several group sizes; two calls add up to Grams that start
 * nonzero), the exactness check
 * calibrated on the GPU (stories260K edited to be exactly mergeable: svd
 * reproduces the logits within 1e-4 over 256 positions with LAPACK's and
 * with cuSOLVER's eigenvectors, whose vectors are checked as eigenvectors
 * and whose folded models agree; mean and keep miss by more than 1e-2;
 * both pairings), cuSOLVER against LAPACK on the plain stories260K through
 * deco_compress_model (logits of the folded models, energies), and a
 * compressed model on the GPU in f32 and bf16, with greedy speculative
 * decoding equal to plain greedy under the near-tie rule (docs/TESTING.md).
 */
#include <criterion/criterion.h>

#include "../compress_util.h"
#include "common/neartie.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(compress_cuda, 300);

static void gram_case(deco_dtype_t dt, int n_kv, int d, int g, deco_rope_style_t style, int n_rows) {
  const size_t row = (size_t)n_kv * d, n = (size_t)n_rows * row, es = deco_dtype_size(dt);
  float *k = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * n);
  deco_test_fill_uniform(k, n, 21, 0, -2.0f, 2.0f);
  deco_test_fill_uniform(v, n, 22, 0, -2.0f, 2.0f);
  deco_test_round_to(k, n, dt); /* the twin sees exactly what the kernel reads */
  deco_test_round_to(v, n, dt);
  const int n_groups = n_kv / g, gd = g * d, half = d / 2;
  const size_t nv = (size_t)n_groups * gd * gd, nk = (size_t)n_groups * half * g * g * 2;
  double *rv = malloc(nv * sizeof(double)), *rk = malloc(nk * sizeof(double));
  double *gv = malloc(nv * sizeof(double)), *gk = malloc(nk * sizeof(double));
  /* The Grams are added to: both sides start from the same nonzero values
   * (multiples of 2^-8 in [-8, 8], so that adding them is exact wherever
   * the sums of products are), and an entry the kernel never adds to keeps
   * a value the twin moved away from. */
  float *start = malloc(sizeof(float) * (nv > nk ? nv : nk));
  deco_test_fill_uniform(start, nv > nk ? nv : nk, 23, 0, -8.0f, 8.0f);
  for (size_t i = 0; i < nv; ++i) rv[i] = ldexp(nearbyint(ldexp(start[i], 8)), -8);
  for (size_t i = 0; i < nk; ++i) rk[i] = ldexp(nearbyint(ldexp(start[nk - 1 - i], 8)), -8);
  free(start);
  void *packed = malloc(n * es);
  deco_test_buf_t dk = deco_test_buf_alloc(gpu, n * es), dv = deco_test_buf_alloc(gpu, n * es);
  deco_test_buf_t dgv = deco_test_buf_alloc(gpu, nv * sizeof(double)), dgk = deco_test_buf_alloc(gpu, nk * sizeof(double));
  deco_test_pack(packed, k, n, dt);
  deco_test_buf_upload(&dk, packed, n * es);
  deco_test_pack(packed, v, n, dt);
  deco_test_buf_upload(&dv, packed, n * es);
  deco_test_buf_upload(&dgv, rv, nv * sizeof(double));
  deco_test_buf_upload(&dgk, rk, nk * sizeof(double));
  const int split = n_rows / 3;
  for (int part = 0; part < 2; ++part) {
    const size_t off = part ? (size_t)split * row : 0;
    deco_kv_gram_args_t a = DECO_KV_GRAM_ARGS_INIT;
    a.style = style;
    a.n_rows = part ? n_rows - split : split;
    a.n_kv_heads = n_kv;
    a.head_dim = d;
    a.group = g;
    /* the twin on f32 copies */
    a.k = k + off;
    a.v = v + off;
    a.k_gram = rk;
    a.v_gram = rv;
    cr_assert_eq(deco_kv_gram(cpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
    a.dtype = dt;
    a.k = (const char *)dk.ptr + off * es;
    a.v = (const char *)dv.ptr + off * es;
    a.k_gram = dgk.ptr;
    a.v_gram = dgv.ptr;
    cr_assert_eq(deco_kv_gram(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  }
  deco_test_buf_download(&dgv, gv, nv * sizeof(double));
  deco_test_buf_download(&dgk, gk, nk * sizeof(double));
  /* The same f64 products (exact for f32, f16 and bf16 inputs: 24-, 11-
   * and 8-bit significands widened exactly, products of at most 48 bits)
   * summed in row order on both sides; only where the sums are grouped
   * differs (the twin adds each row to the Gram, the kernel adds one sum
   * per call): equal up to the last bits of the f64 sums. */
  for (size_t i = 0; i < nv; ++i)
    cr_assert_leq(fabs(gv[i] - rv[i]), 1e-12 * (1.0 + fabs(rv[i])), "v[%zu] %.17g vs %.17g", i, gv[i], rv[i]);
  for (size_t i = 0; i < nk; ++i)
    cr_assert_leq(fabs(gk[i] - rk[i]), 1e-12 * (1.0 + fabs(rk[i])), "k[%zu] %.17g vs %.17g", i, gk[i], rk[i]);
  cr_assert(deco_test_buf_guard_ok(&dgv) && deco_test_buf_guard_ok(&dgk));
  deco_test_buf_free(&dk);
  deco_test_buf_free(&dv);
  deco_test_buf_free(&dgv);
  deco_test_buf_free(&dgk);
  free(packed);
  free(k);
  free(v);
  free(rv);
  free(rk);
  free(gv);
  free(gk);
}

Test(compress_cuda, kv_gram_matches_twin) {
  const deco_dtype_t dts[3] = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};
  for (int t = 0; t < 3; ++t)
    for (int s = 0; s < 2; ++s) {
      const deco_rope_style_t st = s ? DECO_ROPE_HALF_SPLIT : DECO_ROPE_INTERLEAVED;
      gram_case(dts[t], 4, 8, 2, st, 37);
      gram_case(dts[t], 4, 8, 4, st, 37);
      gram_case(dts[t], 3, 64, 3, st, 300);
      gram_case(dts[t], 32, 128, 8, st, 33);
    }
}

/* LAPACK's and cuSOLVER's vectors differ by f64 rounding over the
 * eigenvalue gaps; the fold rounds the weights to f32, and the forward is
 * f32: the two folded models' logits may differ by f32 rounding through the
 * 5-layer forward, the bound the exactness check already uses for a
 * refolded model against the original. */
#define SOLVER_TOL 1e-4

/* svd folded from the solver's vectors of gr; the folded model's logits. */
static float *svd_logits(const char *edited, deco_rope_style_t style, const deco_grams_t *gr, int n_kv,
                         deco_compress_solver_t solver, const int32_t *eval) {
  deco_eigs_t e;
  cr_assert_eq(deco_compress_eigs(gpu, gr, solver, &e), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  check_eigs(gr, &e);
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(edited, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  w.hp.rope_style = style;
  cr_assert_eq(deco_compress_fold_eigs(&w, gr, &e, n_kv, DECO_COMPRESS_SVD, NULL, NULL), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  deco_eigs_free(&e);
  const char *folded = tmp_path("folded_gpu.bin");
  write_model(&w, folded);
  deco_cw_free(&w);
  deco_model_t *fm = load_model(gpu, folded, style);
  float *got = all_logits(fm, eval, EVAL_T);
  deco_model_destroy(fm);
  return got;
}

static void exactness_gpu(deco_rope_style_t style, int n_kv) {
  deco_cw_t w;
  cr_assert_eq(deco_cw_read(deco_test_data_file("models/stories260K.bin"), &w), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  const int g = w.hp.n_kv_heads / n_kv, vocab = w.hp.vocab_size;
  w.hp.rope_style = style;
  make_mergeable(&w, g, 0xC0FFEEu + (uint64_t)style * 7 + (uint64_t)n_kv);
  const char *edited = tmp_path("edited_gpu.bin");
  write_model(&w, edited);
  deco_cw_free(&w);
  int32_t calib[CALIB_T], eval[EVAL_T];
  ids(calib, CALIB_T, 101, vocab);
  ids(eval, EVAL_T, 202, vocab);
  deco_model_t *m = load_model(gpu, edited, style);
  float *ref = all_logits(m, eval, EVAL_T);
  deco_grams_t gr; /* accumulated on the GPU by deco_kv_gram */
  cr_assert_eq(deco_compress_calibrate(m, calib, CALIB_T, g, 0, NULL, NULL, &gr), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(gpu));
  deco_model_destroy(m);
  /* svd with each solver: exact, and the two folded models agree. */
  float *lap = svd_logits(edited, style, &gr, n_kv, DECO_COMPRESS_SOLVER_LAPACK, eval);
  float *cus = svd_logits(edited, style, &gr, n_kv, DECO_COMPRESS_SOLVER_CUSOLVER, eval);
  const size_t n = (size_t)EVAL_T * vocab;
  const double el = max_abs_diff(lap, ref, n), ec = max_abs_diff(cus, ref, n), ex = max_abs_diff(cus, lap, n);
  cr_assert_lt(el, 1e-4, "style %d, %d KV heads, svd (LAPACK): logits differ by %g", (int)style, n_kv, el);
  cr_assert_lt(ec, 1e-4, "style %d, %d KV heads, svd (cuSOLVER): logits differ by %g", (int)style, n_kv, ec);
  cr_assert_leq(ex, SOLVER_TOL, "style %d, %d KV heads: cuSOLVER's and LAPACK's folds differ by %g", (int)style, n_kv,
                ex);
  free(lap);
  free(cus);
  for (int method = 1; method < 3; ++method) {
    cr_assert_eq(deco_cw_read(edited, &w), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    w.hp.rope_style = style;
    cr_assert_eq(deco_compress_fold(&w, &gr, n_kv, (deco_compress_method_t)method, NULL, NULL), DECO_STATUS_SUCCESS,
                 "%s", deco_last_error(NULL));
    const char *folded = tmp_path("folded_gpu.bin");
    write_model(&w, folded);
    deco_cw_free(&w);
    deco_model_t *fm = load_model(gpu, folded, style);
    float *got = all_logits(fm, eval, EVAL_T);
    const double err = max_abs_diff(got, ref, n);
    cr_assert_gt(err, 1e-2, "style %d, %d KV heads, method %d: only %g", (int)style, n_kv, method, err);
    free(got);
    deco_model_destroy(fm);
  }
  deco_grams_free(&gr);
  free(ref);
}

Test(compress_cuda, svd_exact_calibrated_on_gpu) {
  for (int s = 0; s < 2; ++s) {
    exactness_gpu(s ? DECO_ROPE_HALF_SPLIT : DECO_ROPE_INTERLEAVED, 2);
    exactness_gpu(s ? DECO_ROPE_HALF_SPLIT : DECO_ROPE_INTERLEAVED, 1);
  }
}

/* The plain stories260K through deco_compress_model on the GPU with each
 * solver: the folded models' logits agree within SOLVER_TOL and the
 * reported energies to f64 rounding; AUTO on a CUDA context is cuSOLVER. */
Test(compress_cuda, cusolver_matches_lapack_plain) {
  deco_compress_solver_t used = DECO_COMPRESS_SOLVER_LAPACK;
  cr_assert_eq(deco_compress_solver_resolve(gpu, DECO_COMPRESS_SOLVER_AUTO, &used), DECO_STATUS_SUCCESS);
  cr_assert_eq(used, DECO_COMPRESS_SOLVER_CUSOLVER);
  int32_t calib[1024], eval[EVAL_T];
  ids(calib, 1024, 808, 512);
  ids(eval, EVAL_T, 909, 512);
  const char *in = deco_test_data_file("models/stories260K.bin");
  for (int n_kv = 2; n_kv >= 1; --n_kv) {
    float *logits[2];
    double ke[2][5], ve[2][5];
    for (int s = 0; s < 2; ++s) {
      const char *out = tmp_path(s ? "plain_cusolver.bin" : "plain_lapack.bin");
      deco_compress_config_t cc = DECO_COMPRESS_CONFIG_INIT;
      cc.n_kv_heads = n_kv;
      cc.solver = s ? DECO_COMPRESS_SOLVER_CUSOLVER : DECO_COMPRESS_SOLVER_LAPACK;
      deco_compress_report_t rep = {.key_energy = ke[s], .value_energy = ve[s]};
      cr_assert_eq(deco_compress_model(gpu, in, calib, 1024, &cc, out, &rep), DECO_STATUS_SUCCESS, "%s",
                   deco_last_error(gpu));
      deco_model_t *m = load_model(gpu, out, DECO_ROPE_INTERLEAVED);
      cr_assert_eq(deco_model_get_hparams(m)->n_kv_heads, n_kv);
      logits[s] = all_logits(m, eval, EVAL_T);
      deco_model_destroy(m);
    }
    const double ex = max_abs_diff(logits[1], logits[0], (size_t)EVAL_T * 512);
    cr_assert_leq(ex, SOLVER_TOL, "4 -> %d KV heads: cuSOLVER's and LAPACK's folds differ by %g", n_kv, ex);
    for (int l = 0; l < 5; ++l) {
      cr_assert_lt(fabs(ke[1][l] - ke[0][l]), 1e-9, "layer %d key energy %.15f vs %.15f", l, ke[1][l], ke[0][l]);
      cr_assert_lt(fabs(ve[1][l] - ve[0][l]), 1e-9, "layer %d value energy %.15f vs %.15f", l, ve[1][l], ve[0][l]);
    }
    free(logits[0]);
    free(logits[1]);
  }
}

Test(compress_cuda, compressed_model_runs_on_gpu) {
  int32_t calib[1024];
  ids(calib, 1024, 303, 512);
  const char *out = tmp_path("stories_2kv_gpu.bin");
  deco_compress_config_t cc = DECO_COMPRESS_CONFIG_INIT;
  cc.n_kv_heads = 2;
  cr_assert_eq(deco_compress_model(gpu, deco_test_data_file("models/stories260K.bin"), calib, 1024, &cc, out, NULL),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  for (int t = 0; t < 2; ++t) {
    deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
    mc.dtype = dts[t];
    deco_model_t *m = NULL;
    cr_assert_eq(deco_model_load(gpu, out, &mc, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_model_get_hparams(m)->n_kv_heads, 2);
    deco_test_capture_t runs[2] = {{.n = 0}, {.n = 0}};
    for (int r = 0; r < 2; ++r) {
      deco_drafter_t *dr = deco_test_drafter(r ? DECO_TEST_LOOKUP : DECO_TEST_PLAIN, NULL, NULL);
      deco_generate_config_t gc = DECO_GENERATE_CONFIG_INIT;
      gc.steps = 200;
      gc.temperature = 0.0f;
      gc.ignore_eos = 1; /* both runs 200 ids long: compared up to their first difference */
      gc.drafter = dr;
      gc.emit = deco_test_capture_id;
      gc.user = &runs[r];
      const int32_t bos = 1;
      deco_generate_stats_t stats;
      cr_assert_eq(deco_generate(m, &bos, 1, &gc, &stats), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
      deco_drafter_destroy(dr);
    }
    cr_assert_eq(runs[0].n, 201);
    cr_assert_eq(runs[1].n, 201);
    /* Speculative vs plain on the GPU (docs/TESTING.md): up to the first
     * different id; there the CPU's f32 forward of the same model, fed the
     * shared prefix, is the referee: each pick its argmax or its runner-up
     * within the near-tie allowance. */
    int first = -1;
    for (int j = 0; j < 201 && first < 0; ++j)
      if (runs[0].ids[j] != runs[1].ids[j]) first = j;
    if (first >= 0) {
      cr_assert_gt(first, 0, "dtype %d: the prompt id differs", t);
      deco_model_t *mc = load_model(cpu, out, DECO_ROPE_INTERLEAVED);
      const int V = deco_model_get_hparams(mc)->vocab_size;
      float *all = all_logits(mc, runs[0].ids, first);
      const float *row = all + (size_t)(first - 1) * V; /* the forward that picks ids[first] */
      const int a = runs[0].ids[first], b = runs[1].ids[first], best = deco_argmax(row, V);
      const int ok = (a == best || deco_test_excused(row, a, V, dts[t])) &&
                     (b == best || deco_test_excused(row, b, V, dts[t]));
      fprintf(stderr, "compressed model, dtype %d: first difference at position %d (plain %d, lookup %d): %s\n", t,
              first - 1, a, b, ok ? "near tie" : "NOT EXCUSED");
      free(all);
      deco_model_destroy(mc);
      cr_assert(ok, "dtype %d: speculative and plain greedy decoding split outside the near-tie rule", t);
    }
    deco_model_destroy(m);
  }
}
