/* perf/bench_ops.c — the weight-streaming (skinny) matmul against cuBLAS at
 * the Llama-2-7B projection shapes (k x n: 4096x4096, 4096x11008,
 * 11008x4096, 4096x32000), bf16, m = 1, 2, 4, 8 and 16, L2 flushed before
 * each run (read flush by default; --flush write as torch/triton do); % of the
 * floor (weight bytes / measured copy bandwidth). Spot-checks both paths
 * against fp32 dot products before timing. Also times decode attention over
 * the paged cache (Llama-3-8B heads: 32 query / 8 KV, head dim 128, bf16),
 * floor = reading K and V once, after checking two heads against the host;
 * and the tiled kernel against cuBLAS on small problems (a tiny model's
 * projections), warm L2.
 * Shapes: the DECO_CASES_* lists of tests/ops/op_cases.h, which the op
 * harness's table checks too.
 * Run: build/bin/bench_ops [--reps N] [--flush read|write]   (CSV on stdout, summary on stderr)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/ops/op_cases.h" /* the shapes, shared with the op harness's case table */
#include "common/bench.h"
#include "deco/deco.h"
#include "linear/matmul_path.h"
#include "ops/exec.h"

typedef struct att_state {
  deco_ctx_t *ctx;
  deco_attention_args_t args;
} att_state_t;

static int att_fn(void *u) {
  att_state_t *s = u;
  return deco_attention(s->ctx, &s->args) != DECO_STATUS_SUCCESS;
}

typedef struct mm_state {
  deco_exec_t exec; /* the context's view for the kernel-level entry point */
  deco_matmul_args_t args;
  deco_matmul_path_t path;
} mm_state_t;

static int mm_fn(void *u) {
  mm_state_t *s = u;
  return deco_matmul_cuda_path(&s->exec, &s->args, s->path) != DECO_STATUS_SUCCESS;
}

#define CHECK(expr)                                                                       \
  do {                                                                                    \
    if ((expr) != DECO_STATUS_SUCCESS) {                                                  \
      fprintf(stderr, "bench_ops: %s failed: %s\n", #expr, deco_last_error(ctx));         \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

/* One element of a bf16 or f32 buffer copied to the host, as fp32. */
static float host_elem(const void *h, size_t i, deco_dtype_t dt) {
  return dt == DECO_DTYPE_F32 ? ((const float *)h)[i] : deco_bf16_to_f32(((const uint16_t *)h)[i]);
}

/* Compares 64 outputs of the last run with fp32 dot products of the inputs
 * (bf16 or f32; the tolerance of the tests for bf16 output, 1e-2 + 1e-2 |r|,
 * which f32 output meets with room to spare). */
static int spot_check(deco_ctx_t *ctx, const deco_matmul_args_t *a, const char *label) {
  const int m = a->m, n = a->n, k = a->k;
  const size_t es = deco_dtype_size(a->dtype);
  void *ha = malloc(es * (size_t)m * k), *hrow = malloc(es * k), *hout = malloc(es * (size_t)m * n);
  CHECK(deco_memcpy(ctx, ha, a->a, es * (size_t)m * k, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, hout, a->out, es * (size_t)m * n, DECO_COPY_CTX_TO_HOST));
  int bad = 0;
  for (int s = 0; s < 64; ++s) {
    const int i = (int)(deco_philox_uniform(7, 1, (uint32_t)s, 0, 0) * m) % m;
    const int j = s == 63 ? n - 1 : (int)(deco_philox_uniform(7, 2, (uint32_t)s, 0, 0) * n) % n;
    CHECK(deco_memcpy(ctx, hrow, (const char *)a->w + (size_t)j * k * es, es * k, DECO_COPY_CTX_TO_HOST));
    float ref = 0.0f;
    for (int c = 0; c < k; ++c) ref += host_elem(ha, (size_t)i * k + c, a->dtype) * host_elem(hrow, c, a->dtype);
    const float got = host_elem(hout, (size_t)i * n + j, a->dtype);
    if (!(fabsf(got - ref) <= 1e-2f + 1e-2f * fabsf(ref))) {
      if (bad < 5) fprintf(stderr, "bench_ops: %s out[%d][%d] = %g, expected %g\n", label, i, j, got, ref);
      bad++;
    }
  }
  free(ha);
  free(hrow);
  free(hout);
  return bad;
}

/* Small problems, tiled kernel against cuBLAS, warm L2 (a tiny model's
 * weights stay in L2 from step to step): stories260K's projections (dim 64,
 * hidden 172, q|k|v 128, vocab 512) at m = 1 (decode), 81 (the recycling
 * tree) and 256 (a prefill), in f32 and bf16, and two larger shapes past
 * the automatic limit (DECO_MATMUL_TILE_MAX_MACS) at m = 81 and 256. */
static int bench_small_matmul(deco_ctx_t *ctx, deco_bench_t *b, int reps, const char *cmd) {
  const deco_exec_t exec = deco_ops_exec(ctx);
  const int(*nk)[2] = DECO_CASES_SMALL_MATMUL_NK;
  const int *ms = DECO_CASES_SMALL_MATMUL_MS;
  static const deco_dtype_t dts[] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  int failures = 0;
  fprintf(stderr, "bench_ops: small matmuls, warm L2 (tile | cublas, us):\n");
  for (int di = 0; di < 2; ++di)
    for (int si = 0; si < (int)(sizeof DECO_CASES_SMALL_MATMUL_NK / sizeof DECO_CASES_SMALL_MATMUL_NK[0]); ++si)
      for (int mi = 0; mi < 3; ++mi) {
        const deco_dtype_t dt = dts[di];
        const int m = ms[mi], n = nk[si][0], k = nk[si][1];
        const size_t es = deco_dtype_size(dt);
        void *w = NULL, *a = NULL, *out = NULL;
        CHECK(deco_malloc(ctx, &w, (size_t)n * k * es));
        CHECK(deco_malloc(ctx, &a, (size_t)m * k * es));
        CHECK(deco_malloc(ctx, &out, (size_t)m * n * es));
        deco_fill_random_args_t fw = {.dtype = dt, .n = (size_t)n * k, .seed = 5, .tensor = (uint32_t)(30 + si),
                                      .scale = 1.7320508f / sqrtf((float)k), .constant = 0.0f, .out = w};
        deco_fill_random_args_t fa = {.dtype = dt, .n = (size_t)m * k, .seed = 6, .tensor = (uint32_t)(40 + mi),
                                      .scale = 1.0f, .constant = 0.0f, .out = a};
        CHECK(deco_fill_random(ctx, &fw));
        CHECK(deco_fill_random(ctx, &fa));
        const deco_matmul_args_t args = {.dtype = dt, .out_dtype = dt, .m = m, .n = n, .k = k, .a = a, .w = w,
                                         .out = out, .accumulate = 0};
        const char *auto_path = deco_matmul_path_cuda(&exec, &args);
        double us[2] = {0.0, 0.0};
        char label[128];
        snprintf(label, sizeof label, "m=%d n=%d k=%d %s", m, n, k, deco_dtype_name(dt));
        for (int p = 0; p < 2; ++p) {
          mm_state_t st = {exec, args, p == 0 ? DECO_MATMUL_PATH_TILE : DECO_MATMUL_PATH_CUBLAS};
          const char *pname = p == 0 ? "tile" : "cublas";
          char path[64];
          snprintf(path, sizeof path, "%s%s", pname, strcmp(auto_path, pname) == 0 ? " (auto)" : "");
          CHECK(deco_memset(ctx, out, 0xFF, (size_t)m * n * es));
          CHECK(deco_matmul_cuda_path(&exec, &args, st.path));
          if (spot_check(ctx, &args, label)) {
            fprintf(stderr, "bench_ops: %s (%s): spot checks failed; not timed\n", label, pname);
            failures++;
            continue;
          }
          deco_bench_stats_t s;
          if (deco_bench_time(b, mm_fn, &st, 5, reps, DECO_BENCH_HOLD, &s)) return failures + 1;
          const double bytes = (double)es * ((double)n * k + (double)m * k + (double)m * n);
          deco_bench_csv_row(stdout, b, "matmul_small", label, path, &s, bytes, 2.0 * m * (double)n * k, cmd);
          us[p] = s.median_us;
        }
        fprintf(stderr, "  %-26s %7.2f | %7.2f  auto %s\n", label, us[0], us[1], auto_path);
        deco_free(ctx, w);
        deco_free(ctx, a);
        deco_free(ctx, out);
      }
  return failures;
}

/* Decode attention: B sequences of L cached slots, one new token each. */
static int bench_attention(deco_ctx_t *ctx, deco_bench_t *b, int B, int L, int reps, const char *cmd) {
  const int n_heads = DECO_CASES_ATT_HEADS, n_kv = DECO_CASES_ATT_KV_HEADS, hd = DECO_CASES_ATT_HEAD_DIM;
  const int ps = DECO_CASES_ATT_PAGE, pages_per_seq = (L + ps - 1) / ps;
  const size_t row = (size_t)n_kv * hd, pool = (size_t)B * pages_per_seq * ps * row;
  void *kp = NULL, *vp = NULL, *q = NULL, *out = NULL, *meta = NULL, *ws = NULL;
  CHECK(deco_malloc(ctx, &kp, pool * 2));
  CHECK(deco_malloc(ctx, &vp, pool * 2));
  CHECK(deco_malloc(ctx, &q, (size_t)B * n_heads * hd * 2));
  CHECK(deco_malloc(ctx, &out, (size_t)B * n_heads * hd * 2));
  deco_fill_random_args_t fk = {.dtype = DECO_DTYPE_BF16, .n = pool, .seed = 8, .tensor = 1, .scale = 1.0f,
                                .constant = 0.0f, .out = kp};
  deco_fill_random_args_t fv = {.dtype = DECO_DTYPE_BF16, .n = pool, .seed = 8, .tensor = 2, .scale = 1.0f,
                                .constant = 0.0f, .out = vp};
  deco_fill_random_args_t fq = {.dtype = DECO_DTYPE_BF16, .n = (size_t)B * n_heads * hd, .seed = 8, .tensor = 3,
                                .scale = 1.0f, .constant = 0.0f, .out = q};
  CHECK(deco_fill_random(ctx, &fk));
  CHECK(deco_fill_random(ctx, &fv));
  CHECK(deco_fill_random(ctx, &fq));
  /* q_indptr [B+1], kv_lens [B], block table [B][pages_per_seq] (sequence b owns a contiguous run of pages). */
  const size_t n_meta = (size_t)(B + 1) + B + (size_t)B * pages_per_seq;
  int32_t *hm = malloc(sizeof(int32_t) * n_meta);
  for (int i = 0; i <= B; ++i) hm[i] = i;
  for (int i = 0; i < B; ++i) hm[B + 1 + i] = L;
  for (int i = 0; i < B * pages_per_seq; ++i) hm[2 * B + 1 + i] = i;
  CHECK(deco_malloc(ctx, &meta, sizeof(int32_t) * n_meta));
  CHECK(deco_memcpy(ctx, meta, hm, sizeof(int32_t) * n_meta, DECO_COPY_HOST_TO_CTX));
  const int32_t *dm = (const int32_t *)meta;
  deco_attention_args_t args = {.cache = {.dtype = DECO_DTYPE_BF16, .n_kv_heads = n_kv, .head_dim = hd, .page_size = ps,
                                          .n_pages = B * pages_per_seq, .k_pages = kp, .v_pages = vp,
                                          .block_table = dm + 2 * B + 1, .max_pages_per_seq = pages_per_seq},
                                .batch = {.n_seqs = B, .n_tokens = B, .q_indptr = dm, .kv_lens = dm + B + 1},
                                .n_heads = n_heads, .scale = 1.0f / sqrtf((float)hd), .q = q, .out = out,
                                .q_stride = 0};
  const size_t ws_bytes = deco_attention_workspace_size(ctx, &args);
  if (ws_bytes) {
    CHECK(deco_malloc(ctx, &ws, ws_bytes));
    CHECK(deco_ctx_set_workspace(ctx, ws, ws_bytes));
  }
  CHECK(deco_memset(ctx, out, 0xFF, (size_t)B * n_heads * hd * 2));
  CHECK(deco_attention(ctx, &args));

  /* Check heads 0 and 31 of sequence 0 against a host softmax in fp32. */
  uint16_t *hk = malloc(sizeof(uint16_t) * (size_t)L * row), *hv = malloc(sizeof(uint16_t) * (size_t)L * row);
  uint16_t *hq = malloc(sizeof(uint16_t) * n_heads * hd), *ho = malloc(sizeof(uint16_t) * n_heads * hd);
  float *sc = malloc(sizeof(float) * L);
  CHECK(deco_memcpy(ctx, hk, kp, sizeof(uint16_t) * (size_t)L * row, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, hv, vp, sizeof(uint16_t) * (size_t)L * row, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, hq, q, sizeof(uint16_t) * n_heads * hd, DECO_COPY_CTX_TO_HOST));
  CHECK(deco_memcpy(ctx, ho, out, sizeof(uint16_t) * n_heads * hd, DECO_COPY_CTX_TO_HOST));
  int bad = 0;
  for (int h = 0; h < n_heads; h += n_heads - 1) {
    const int kvh = h / (n_heads / n_kv);
    float mx = -INFINITY, sum = 0.0f;
    for (int p = 0; p < L; ++p) {
      float d = 0.0f;
      for (int i = 0; i < hd; ++i)
        d += deco_bf16_to_f32(hq[h * hd + i]) * deco_bf16_to_f32(hk[(size_t)p * row + kvh * hd + i]);
      sc[p] = d * args.scale;
      if (sc[p] > mx) mx = sc[p];
    }
    for (int p = 0; p < L; ++p) sum += (sc[p] = expf(sc[p] - mx));
    for (int i = 0; i < hd; ++i) {
      float o = 0.0f;
      for (int p = 0; p < L; ++p) o += sc[p] / sum * deco_bf16_to_f32(hv[(size_t)p * row + kvh * hd + i]);
      const float got = deco_bf16_to_f32(ho[h * hd + i]);
      if (!(fabsf(got - o) <= 1e-2f + 1e-2f * fabsf(o))) {
        if (bad < 5) fprintf(stderr, "bench_ops: attention B=%d L=%d head %d dim %d: %g, expected %g\n", B, L, h, i,
                             got, o);
        bad++;
      }
    }
  }
  free(hk);
  free(hv);
  free(hq);
  free(ho);
  free(sc);
  free(hm);
  int rc = 0;
  if (bad) {
    fprintf(stderr, "bench_ops: attention B=%d L=%d: %d mismatches; not timed\n", B, L, bad);
    rc = 1;
  } else {
    att_state_t st = {ctx, args};
    deco_bench_stats_t s;
    if (deco_bench_time(b, att_fn, &st, 5, reps, DECO_BENCH_FLUSH, &s)) exit(1);
    char shape[128], path[64];
    snprintf(shape, sizeof shape, "B=%d L=%d heads=%d/%d hd=%d page=%d", B, L, n_heads, n_kv, hd, ps);
    snprintf(path, sizeof path, "%s", deco_attention_path(ctx, &args));
    const double bytes = 2.0 * (2.0 * (double)B * L * row + 2.0 * B * n_heads * hd);
    const double flops = 4.0 * B * n_heads * (double)L * hd;
    deco_bench_csv_row(stdout, b, "attention_decode_bf16", shape, path, &s, bytes, flops, cmd);
  }
  CHECK(deco_ctx_set_workspace(ctx, NULL, 0));
  void *all[] = {kp, vp, q, out, meta, ws};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) deco_free(ctx, all[i]);
  return rc;
}

int main(int argc, char **argv) {
  int reps = 100, flush_write = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--flush") == 0 && i + 1 < argc &&
               (strcmp(argv[i + 1], "read") == 0 || strcmp(argv[i + 1], "write") == 0)) {
      flush_write = strcmp(argv[++i], "write") == 0;
    } else {
      fprintf(stderr, "usage: %s [--reps N] [--flush read|write]\n", argv[0]);
      return 2;
    }
  }
  if (deco_cuda_device_count() == 0) {
    fprintf(stderr, "bench_ops: no CUDA device\n");
    return 77;
  }
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  deco_ctx_t *ctx = NULL;
  if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_ops: %s\n", deco_last_error(NULL));
    return 1;
  }
  deco_bench_t b;
  if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) return 1;
  b.flush_write = flush_write;
  const char *cmd = deco_bench_command(argc, argv);
  fprintf(stderr,
          "bench_ops: %s, %d SMs, L2 %zu MB; copy %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s; %s L2 flush\n",
          b.device_name, b.sm_count, b.l2_bytes >> 20, b.copy_gbps, b.gemm_tflops, flush_write ? "write" : "read");
  deco_bench_csv_header(stdout);
  const deco_exec_t exec = deco_ops_exec(ctx); /* for the matmul path selectors */

  /* The llama2-7b projections (k, n) and the GEMMs of each in one decode step. */
  const deco_cases_proj_t *proj = DECO_CASES_LLAMA2_7B_PROJ;
#define N_MS DECO_CASES_N_SKINNY_MS
  const int *ms = DECO_CASES_SKINNY_MS;
  double step_us[N_MS][2] = {{0}}, step_bytes = 0.0;
  int short_sum[N_MS][2] = {{0}}; /* a projection of the step was not timed */
  int failures = 0;

  for (int si = 0; si < 4; ++si) {
    const int k = proj[si].k, n = proj[si].n;
    void *w = NULL, *a = NULL, *out = NULL;
    CHECK(deco_malloc(ctx, &w, (size_t)n * k * 2));
    CHECK(deco_malloc(ctx, &a, (size_t)16 * k * 2));
    CHECK(deco_malloc(ctx, &out, (size_t)16 * n * 2));
    deco_fill_random_args_t fw = {.dtype = DECO_DTYPE_BF16, .n = (size_t)n * k, .seed = 5,
                                  .tensor = (uint32_t)(10 + si), .scale = 1.7320508f / sqrtf((float)k),
                                  .constant = 0.0f, .out = w};
    deco_fill_random_args_t fa = {.dtype = DECO_DTYPE_BF16, .n = (size_t)16 * k, .seed = 6,
                                  .tensor = (uint32_t)(20 + si), .scale = 1.0f, .constant = 0.0f, .out = a};
    CHECK(deco_fill_random(ctx, &fw));
    CHECK(deco_fill_random(ctx, &fa));
    step_bytes += (double)proj[si].per_step * n * k * 2;
    for (int mi = 0; mi < N_MS; ++mi) {
      const int m = ms[mi];
      const deco_matmul_args_t args = {.dtype = DECO_DTYPE_BF16, .out_dtype = DECO_DTYPE_BF16, .m = m, .n = n, .k = k,
                                       .a = a, .w = w, .out = out, .accumulate = 0};
      const char *auto_path = deco_matmul_path_cuda(&exec, &args);
      for (int p = 0; p < 2; ++p) {
        mm_state_t st = {exec, args, p == 0 ? DECO_MATMUL_PATH_SKINNY : DECO_MATMUL_PATH_CUBLAS};
        const char *pname = p == 0 ? "skinny" : "cublas";
        char label[128], path[64];
        snprintf(label, sizeof label, "%s m=%d n=%d k=%d", proj[si].name, m, n, k);
        snprintf(path, sizeof path, "%s%s", pname, strcmp(auto_path, pname) == 0 ? " (auto)" : "");
        CHECK(deco_memset(ctx, out, 0xFF, (size_t)m * n * 2));
        CHECK(deco_matmul_cuda_path(&exec, &args, st.path));
        int bad = spot_check(ctx, &args, label);
        if (bad) {
          fprintf(stderr, "bench_ops: %s (%s): %d of 64 spot checks failed; not timed\n", label, pname, bad);
          failures++;
          short_sum[mi][p] = 1; /* the step's sum lacks this projection */
          continue;
        }
        deco_bench_stats_t s;
        if (deco_bench_time(&b, mm_fn, &st, 5, reps, DECO_BENCH_FLUSH, &s)) return 1;
        const double bytes = 2.0 * ((double)n * k + (double)m * k + (double)m * n);
        const double flops = 2.0 * m * (double)n * k;
        deco_bench_csv_row(stdout, &b, "matmul_bf16", label, path, &s, bytes, flops, cmd);
        step_us[mi][p] += proj[si].per_step * s.median_us;
      }
    }
    deco_free(ctx, w);
    deco_free(ctx, a);
    deco_free(ctx, out);
  }
  for (int i = 0; i < 3; ++i)
    failures += bench_attention(ctx, &b, DECO_CASES_DECODE_ATTENTION[i][0], DECO_CASES_DECODE_ATTENTION[i][1], reps, cmd);
  failures += bench_small_matmul(ctx, &b, reps, cmd);

  const double floor_us = deco_bench_floor_us(&b, step_bytes, 0.0);
  fprintf(stderr, "bench_ops: llama2-7b projections of one step (sum of per-GEMM medians), weight floor %.0f us:\n",
          floor_us);
  for (int mi = 0; mi < N_MS; ++mi) {
    char part[2][64];
    for (int p = 0; p < 2; ++p)
      if (short_sum[mi][p]) snprintf(part[p], sizeof part[p], "incomplete (spot checks failed)");
      else
        snprintf(part[p], sizeof part[p], "%7.0f us (%3.0f%% of floor)", step_us[mi][p],
                 100.0 * floor_us / step_us[mi][p]);
    fprintf(stderr, "  m=%-2d skinny %s   cublas %s\n", ms[mi], part[0], part[1]);
  }
  deco_bench_destroy(&b);
  deco_ctx_destroy(ctx);
  return failures ? 1 : 0;
}
