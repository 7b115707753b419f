/* tests/test_matmul_cpu.c — the CPU backend's matmul (kernels/linear/
 * matmul_cpu.c) is batch-invariant: every row of an m = 81 call equals, bit
 * for bit, the same row computed alone (m = 1), at 1 and 2 threads, and the
 * result is the same at 1..4 threads and on every instruction-set path this
 * CPU runs (portable C, AVX2, AVX-512). It stays within the f32 reduction
 * tolerance of the reference (matmul_ref.c, the op's spec), writes every
 * output and nothing past it. Speculative greedy decoding equals plain
 * greedy on the CPU because of the first property.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/op_impl.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "linear/matmul_cpu.h"

enum { M_TREE = 81 }; /* rows of a verification forward: an 80-node draft tree and its root */

typedef struct shape {
  int n, k;
} shape_t;

/* K below, at and past the SIMD width, not a multiple of it, 1; N odd;
 * SmolLM2's projection widths (576, 1536) and its vocabulary (49152). The
 * last three have weights big enough to be split over threads
 * (DECO_MATMUL_CPU_PARALLEL_MIN_WEIGHTS); the others run on one. */
static const shape_t shapes[] = {{5, 1},    {9, 15},    {13, 16},   {7, 17},    {31, 100},  {97, 576},
                                 {45, 1536}, {6, 577}, {577, 576}, {576, 1536}, {49152, 576}};

static float *random_floats(size_t n, uint64_t seed, uint32_t stream) {
  float *x = malloc(sizeof(float) * n);
  cr_assert_not_null(x);
  deco_test_fill_uniform(x, n, seed, stream, -1.0f, 1.0f);
  return x;
}

static deco_ctx_t *cpu_ctx_threads(int n_threads) {
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.n_threads = n_threads;
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_ctx_threads(ctx), n_threads);
  return ctx;
}

static void matmul(deco_ctx_t *ctx, const float *a, const float *w, float *out, int m, int n, int k) {
  deco_matmul_args_t args = DECO_MATMUL_ARGS_INIT;
  args.m = m;
  args.n = n;
  args.k = k;
  args.a = a;
  args.w = w;
  args.out = out;
  cr_assert_eq(deco_matmul(ctx, &args), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

/* The first element (row, col) where two results differ in their bits, or -1. */
static long long first_bit_difference(const float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (memcmp(&x[i], &y[i], sizeof(float)) != 0) return (long long)i;
  return -1;
}

/* Every row of an m = 81 call against the same row alone, at 1 and 2
 * threads; then the m = 81 result at 1..4 threads. */
Test(matmul_cpu, rows_alone_equal_rows_in_a_batch, .timeout = 300) {
  int threaded = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
    const int n = shapes[s].n, k = shapes[s].k;
    threaded += (long long)n * k >= DECO_MATMUL_CPU_PARALLEL_MIN_WEIGHTS;
    float *a = random_floats((size_t)M_TREE * k, 13, (uint32_t)s);
    float *w = random_floats((size_t)n * k, 14, (uint32_t)s);
    float *batch = malloc(sizeof(float) * M_TREE * n), *row = malloc(sizeof(float) * n);
    float *first = malloc(sizeof(float) * M_TREE * n);
    cr_assert(batch && row && first);
    for (int threads = 1; threads <= 4; ++threads) {
      deco_ctx_t *ctx = cpu_ctx_threads(threads);
      matmul(ctx, a, w, batch, M_TREE, n, k);
      if (threads == 1) memcpy(first, batch, sizeof(float) * M_TREE * n);
      long long d = first_bit_difference(batch, first, (size_t)M_TREE * n);
      cr_assert_eq(d, -1, "n=%d k=%d: %d threads give other bits than 1 at row %lld col %lld", n, k, threads,
                   d / n, d % n);
      if (threads <= 2)
        for (int i = 0; i < M_TREE; ++i) {
          matmul(ctx, a + (size_t)i * k, w, row, 1, n, k);
          d = first_bit_difference(row, batch + (size_t)i * n, (size_t)n);
          cr_assert_eq(d, -1, "n=%d k=%d threads=%d: row %d alone differs at col %lld: %.9g vs %.9g in the batch", n,
                       k, threads, i, d, d < 0 ? 0.0 : row[d], d < 0 ? 0.0 : batch[(size_t)i * n + d]);
        }
      deco_ctx_destroy(ctx);
    }
    free(a), free(w), free(batch), free(row), free(first);
  }
  cr_assert_geq(threaded, 3, "too few shapes big enough to run on several threads");
}

/* Every path this CPU and build run gives AUTO's bits, for row counts that
 * fill whole register tiles, leave remainders, or are a single row. */
Test(matmul_cpu, every_isa_path_gives_the_same_bits) {
  const deco_matmul_cpu_isa_t isas[] = {DECO_MATMUL_CPU_PORTABLE, DECO_MATMUL_CPU_AVX2, DECO_MATMUL_CPU_AVX512};
  const int ms[] = {1, 2, 3, 5, 81};
  const shape_t small[] = {{5, 1}, {9, 15}, {13, 16}, {7, 17}, {31, 100}, {19, 576}, {11, 1536}, {577, 576}};
  char ran[64] = "";
  for (size_t i = 0; i < 3; ++i)
    if (deco_matmul_cpu_isa_available(isas[i])) {
      strcat(ran, " ");
      strcat(ran, deco_matmul_cpu_isa_name(isas[i]));
    }
  cr_log_info("matmul_cpu paths on this CPU:%s (auto = %s)", ran, deco_matmul_cpu_isa_name(deco_matmul_cpu_isa_best()));
  for (size_t s = 0; s < sizeof small / sizeof small[0]; ++s)
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; ++mi) {
      const int m = ms[mi], n = small[s].n, k = small[s].k;
      float *a = random_floats((size_t)m * k, 21, (uint32_t)(s * 8 + mi));
      float *w = random_floats((size_t)n * k, 22, (uint32_t)(s * 8 + mi));
      float *want = malloc(sizeof(float) * m * n), *got = malloc(sizeof(float) * m * n);
      cr_assert(want && got);
      deco_matmul_args_t args = DECO_MATMUL_ARGS_INIT;
      args.m = m, args.n = n, args.k = k, args.a = a, args.w = w, args.out = want;
      deco_exec_t exec = {.backend = DECO_BACKEND_CPU, .n_threads = 1};
      cr_assert_eq(deco_matmul_cpu_isa(&exec, &args, DECO_MATMUL_CPU_AUTO), DECO_STATUS_SUCCESS);
      args.out = got;
      for (size_t i = 0; i < 3; ++i) {
        if (!deco_matmul_cpu_isa_available(isas[i])) {
          cr_assert_eq(deco_matmul_cpu_isa(&exec, &args, isas[i]), DECO_STATUS_UNSUPPORTED);
          continue;
        }
        for (int threads = 1; threads <= 2; ++threads) {
          exec.n_threads = threads;
          memset(got, 0xFF, sizeof(float) * m * n);
          cr_assert_eq(deco_matmul_cpu_isa(&exec, &args, isas[i]), DECO_STATUS_SUCCESS);
          const long long d = first_bit_difference(got, want, (size_t)m * n);
          cr_assert_eq(d, -1, "%s, m=%d n=%d k=%d, %d threads: element %lld is %.9g, auto gives %.9g",
                       deco_matmul_cpu_isa_name(isas[i]), m, n, k, threads, d, d < 0 ? 0.0 : got[d],
                       d < 0 ? 0.0 : want[d]);
        }
      }
      free(a), free(w), free(want), free(got);
    }
}

/* The documented order, computed here with doubles holding each fmaf's
 * exact inputs: the portable path is fmaf on 16 lanes, zero-padded, then a
 * fixed tree. A change of the order (lanes, tree, FMA) fails here. */
Test(matmul_cpu, follows_the_documented_order) {
  const int k = 37, n = 3;
  float *a = random_floats(k, 31, 0), *w = random_floats((size_t)n * k, 32, 0), out[3];
  deco_ctx_t *ctx = cpu_ctx_threads(1);
  matmul(ctx, a, w, out, 1, n, k);
  for (int j = 0; j < n; ++j) {
    float s[DECO_MATMUL_CPU_LANES] = {0};
    for (int c = 0; c < (k + 15) / 16 * 16; ++c) {
      const float x = c < k ? a[c] : 0.0f, y = c < k ? w[(size_t)j * k + c] : 0.0f;
      s[c % 16] = fmaf(x, y, s[c % 16]);
    }
    for (int l = 0; l < 8; ++l) s[l] += s[l + 8];
    for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
    for (int l = 0; l < 2; ++l) s[l] += s[l + 2];
    const float want = s[0] + s[1];
    cr_assert(memcmp(&want, &out[j], sizeof want) == 0, "col %d: %.9g, the documented order gives %.9g", j, out[j],
              want);
  }
  deco_ctx_destroy(ctx);
  free(a), free(w);
}

/* Against the reference (a sequential sum per output) and float64, with and
 * without accumulate, every output written and the guard words intact. */
Test(matmul_cpu, within_reduction_tolerance_of_the_reference) {
  const int ms[] = {1, 7, 81};
  const shape_t sh[] = {{9, 15}, {97, 576}, {45, 1536}, {1536, 576}, {576, 1536}};
  deco_ctx_t *ctx = cpu_ctx_threads(2);
  int some_bits_differ = 0;
  for (size_t s = 0; s < sizeof sh / sizeof sh[0]; ++s)
    for (size_t mi = 0; mi < 3; ++mi) {
      const int m = ms[mi], n = sh[s].n, k = sh[s].k;
      const size_t mn = (size_t)m * n;
      float *a = random_floats((size_t)m * k, 41, (uint32_t)(s * 4 + mi));
      float *w = random_floats((size_t)n * k, 42, (uint32_t)(s * 4 + mi));
      float *base = random_floats(mn, 43, (uint32_t)(s * 4 + mi));
      float *ref = malloc(sizeof(float) * mn), *got = malloc(sizeof(float) * mn), *f64 = malloc(sizeof(float) * mn);
      cr_assert(ref && got && f64);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double acc = 0;
          for (int t = 0; t < k; ++t) acc += (double)a[(size_t)i * k + t] * w[(size_t)j * k + t];
          f64[(size_t)i * n + j] = (float)acc;
        }
      for (int accumulate = 0; accumulate <= 1; ++accumulate) {
        deco_matmul_args_t args = DECO_MATMUL_ARGS_INIT;
        args.m = m, args.n = n, args.k = k, args.a = a, args.w = w, args.out = ref, args.accumulate = accumulate;
        memcpy(ref, base, sizeof(float) * mn);
        const deco_exec_t exec = {.backend = DECO_BACKEND_CPU};
        cr_assert_eq(deco_matmul_ref(&exec, &args), DECO_STATUS_SUCCESS);

        deco_test_buf_t buf = deco_test_buf_alloc(ctx, sizeof(float) * mn);
        if (accumulate) deco_test_buf_upload(&buf, base, sizeof(float) * mn);
        else deco_test_buf_poison(&buf);
        args.out = buf.ptr;
        cr_assert_eq(deco_matmul(ctx, &args), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
        cr_assert(deco_test_buf_guard_ok(&buf), "m=%d n=%d k=%d: wrote past out", m, n, k);
        deco_test_buf_download(&buf, got, sizeof(float) * mn);
        deco_test_buf_free(&buf);
        char what[96];
        snprintf(what, sizeof what, "m=%d n=%d k=%d accumulate=%d vs ref", m, n, k, accumulate);
        cr_assert_eq(deco_test_compare(what, got, ref, mn, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
        if (!accumulate) {
          snprintf(what, sizeof what, "m=%d n=%d k=%d vs float64", m, n, k);
          cr_assert_eq(deco_test_compare(what, got, f64, mn, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
          if (first_bit_difference(got, ref, mn) >= 0) some_bits_differ = 1;
        }
      }
      free(a), free(w), free(base), free(ref), free(got), free(f64);
    }
  /* The two orders give other bits somewhere: a bitwise comparison sees a
   * change of summation order, so the invariance tests above can fail. */
  cr_assert(some_bits_differ, "the fast path gave the reference's bits everywhere");
  deco_ctx_destroy(ctx);
}

Test(matmul_cpu, thread_count_is_validated) {
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cr_assert_eq(cfg.n_threads, 0, "the default is OpenMP's");
  deco_ctx_t *ctx = (deco_ctx_t *)0x1;
  cfg.n_threads = -1;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_null(ctx);
  cr_assert(strstr(deco_last_error(NULL), "n_threads") != NULL, "%s", deco_last_error(NULL));
  cfg.n_threads = DECO_MAX_THREADS + 1;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_INVALID_ARGUMENT);
  cfg.n_threads = 3;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ctx_threads(ctx), 3);
  cr_assert_eq(deco_ctx_set_threads(ctx, -2), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_ctx_threads(ctx), 3, "a refused value changes nothing");
  cr_assert_eq(deco_ctx_set_threads(ctx, 0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ctx_threads(ctx), 0);
  cr_assert_eq(deco_ctx_set_threads(NULL, 1), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_ctx_threads(NULL), 0);
  deco_ctx_destroy(ctx);
}

/* deco generate --threads: outside 1..1024 a usage error; the synthetic
 * tiny model (its gate/up weights, 1376 x 256, are split over threads) gives
 * the same greedy ids at 1 and 2 threads, plain and speculative (prompt
 * lookup verifies trees of several tokens per forward). */
Test(matmul_cpu, cli_threads_change_no_id) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--threads", "0");
  cr_assert_eq(r.status, 2, "stderr: %s", r.err);
  cr_assert(strstr(r.err, "--threads") != NULL, "stderr: %s", r.err);
  deco_test_run_free(&r);
  cr_assert_geq(1376LL * 256, DECO_MATMUL_CPU_PARALLEL_MIN_WEIGHTS, "the model must have a matmul split over threads");
  const char *specs[2] = {"none", "lookup"}, *threads[2] = {"1", "2"};
  char *first = NULL;
  for (int s = 0; s < 2; ++s)
    for (int t = 0; t < 2; ++t) {
      DECO_TEST_RUN_CLI(&r, "generate", "--synthetic", "tiny", "--backend", "cpu", "--temperature", "0", "--steps", "48",
                        "--ignore-eos", "--print-ids", "--spec", specs[s], "--threads", threads[t]);
      cr_assert_eq(r.status, 0, "--spec %s --threads %s: %s", specs[s], threads[t], r.err);
      if (first == NULL) first = strdup(r.out);
      else cr_assert_str_eq(r.out, first, "--spec %s --threads %s: other ids than --spec none --threads 1", specs[s],
                            threads[t]);
      deco_test_run_free(&r);
    }
  free(first);
}
