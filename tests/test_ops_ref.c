/* tests/test_ops_ref.c — the C references of the forward ops against
 * independent double-precision formulas, and the public entry points'
 * argument validation on the CPU backend.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/paged.h" /* kernels/common: compiled here as the references compile it */
#include "spec/draft_chain_common.h" /* the model drafter's top-w, shared with the reference */
#include "common/testutil.h"
#include "common/tolerances.h"

static deco_ctx_t *ctx;
static void setup(void) { ctx = deco_test_cpu_ctx(); }
static void teardown(void) { deco_ctx_destroy(ctx); }
TestSuite(ops_ref, .init = setup, .fini = teardown);

Test(ops_ref, matmul_matches_double) {
  const int m = 3, n = 19, k = 37;
  float a[3 * 37], w[19 * 37], out[3 * 19], ref[3 * 19];
  deco_test_fill_uniform(a, (size_t)m * k, 1, 0, -1, 1);
  deco_test_fill_uniform(w, (size_t)n * k, 1, 1, -1, 1);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int t = 0; t < k; ++t) s += (double)a[i * k + t] * w[j * k + t];
      ref[i * n + j] = (float)s;
    }
  deco_matmul_args_t args = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = m, .n = n, .k = k, .a = a,
                             .w = w, .out = out, .accumulate = 0};
  cr_assert_eq(deco_matmul(ctx, &args), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_test_compare("matmul", out, ref, (size_t)m * n, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  args.accumulate = 1;
  cr_assert_eq(deco_matmul(ctx, &args), DECO_STATUS_SUCCESS);
  for (int i = 0; i < m * n; ++i) ref[i] *= 2;
  cr_assert_eq(deco_test_compare("matmul+=", out, ref, (size_t)m * n, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
}

Test(ops_ref, rmsnorm_with_residual) {
  const int rows = 3, dim = 7;
  float res[21], add[21], w[7], out[21], expect_res[21], expect[21];
  deco_test_fill_uniform(res, 21, 2, 0, -2, 2);
  deco_test_fill_uniform(add, 21, 2, 1, -1, 1);
  deco_test_fill_uniform(w, 7, 2, 2, 0.5f, 1.5f);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) {
      expect_res[r * dim + i] = res[r * dim + i] + add[r * dim + i];
      ss += (double)expect_res[r * dim + i] * expect_res[r * dim + i];
    }
    double inv = 1.0 / sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; ++i) expect[r * dim + i] = (float)(w[i] * expect_res[r * dim + i] * inv);
  }
  deco_rmsnorm_args_t a = {.dtype = DECO_DTYPE_F32, .n_rows = rows, .dim = dim, .eps = 1e-5f, .residual = res,
                           .add = add, .weight = w, .out = out};
  cr_assert_eq(deco_rmsnorm(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_test_compare("residual", res, expect_res, 21, DECO_TOL_F32_ELEMENTWISE, DECO_TOL_F32_ELEMENTWISE), 0);
  cr_assert_eq(deco_test_compare("rmsnorm", out, expect, 21, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
}

static void rope_expect(float *x, int n_heads, int hd, int pos, double theta, int half_split) {
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < hd / 2; ++j) {
      double ang = pos * pow(theta, -2.0 * j / hd);
      int i0 = half_split ? j : 2 * j, i1 = half_split ? j + hd / 2 : 2 * j + 1;
      double a = x[h * hd + i0], b = x[h * hd + i1];
      x[h * hd + i0] = (float)(a * cos(ang) - b * sin(ang));
      x[h * hd + i1] = (float)(a * sin(ang) + b * cos(ang));
    }
}

Test(ops_ref, rope_both_styles) {
  for (int style = 0; style < 2; ++style) {
    const int T = 3, H = 2, KH = 1, hd = 8;
    float q[48], k[24], eq[48], ek[24];
    int32_t pos[3] = {0, 5, 100};
    deco_test_fill_uniform(q, 48, 3, 0, -1, 1);
    deco_test_fill_uniform(k, 24, 3, 1, -1, 1);
    memcpy(eq, q, sizeof q);
    memcpy(ek, k, sizeof k);
    for (int t = 0; t < T; ++t) {
      rope_expect(eq + t * H * hd, H, hd, pos[t], 10000.0, style);
      rope_expect(ek + t * KH * hd, KH, hd, pos[t], 10000.0, style);
    }
    deco_rope_args_t a = {.dtype = DECO_DTYPE_F32, .style = (deco_rope_style_t)style, .n_tokens = T, .n_heads = H,
                          .n_kv_heads = KH, .head_dim = hd, .theta = 10000.0f, .positions = pos, .q = q, .k = k,
                          .q_stride = 0, .k_stride = 0};
    cr_assert_eq(deco_rope(ctx, &a), DECO_STATUS_SUCCESS);
    /* fp32 angles of position 100 carry ~1e-5 relative error. */
    cr_assert_eq(deco_test_compare("rope q", q, eq, 48, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
    cr_assert_eq(deco_test_compare("rope k", k, ek, 24, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  }
}

Test(ops_ref, swiglu_and_embedding) {
  float g[5] = {-3, -0.5f, 0, 0.5f, 4}, u[5] = {1, 2, 3, 4, 5}, o[5];
  deco_swiglu_args_t s = {.dtype = DECO_DTYPE_F32, .n = 5, .gate = g, .up = u, .out = o, .row_len = 0, .in_stride = 0};
  cr_assert_eq(deco_swiglu(ctx, &s), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 5; ++i) {
    double e = g[i] / (1 + exp(-g[i])) * u[i];
    cr_assert(fabs(o[i] - e) <= 1e-6 + 1e-6 * fabs(e), "swiglu[%d] %g vs %g", i, o[i], e);
  }
  float table[4 * 3] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, out[9];
  int32_t ids[3] = {3, 0, 7};
  deco_embedding_args_t e = {.dtype = DECO_DTYPE_F32, .n_tokens = 3, .vocab = 4, .dim = 3, .table = table,
                             .tokens = ids, .embeds = NULL, .out = out};
  cr_assert_eq(deco_embedding(ctx, &e), DECO_STATUS_SUCCESS);
  cr_assert_eq(out[0], 30);
  cr_assert_eq(out[5], 2);
  cr_assert(isnan(out[6]) && isnan(out[8]), "out-of-vocab id must give NaN");
  float emb[6] = {1, 2, 3, 4, 5, 6};
  deco_embedding_args_t e2 = {.dtype = DECO_DTYPE_F32, .n_tokens = 2, .vocab = 0, .dim = 3, .table = NULL,
                              .tokens = NULL, .embeds = emb, .out = out};
  cr_assert_eq(deco_embedding(ctx, &e2), DECO_STATUS_SUCCESS);
  cr_assert_eq(out[4], 5);
}

Test(ops_ref, fill_random_is_seeded_and_scaled) {
  float a[4096], b[4096];
  deco_fill_random_args_t f = {.dtype = DECO_DTYPE_F32, .n = 4096, .seed = 7, .tensor = 3, .scale = 0.5f,
                               .constant = 0.0f, .out = a};
  cr_assert_eq(deco_fill_random(ctx, &f), DECO_STATUS_SUCCESS);
  f.out = b;
  cr_assert_eq(deco_fill_random(ctx, &f), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(a, b, sizeof a), 0);
  double sum = 0, sq = 0;
  for (int i = 0; i < 4096; ++i) {
    cr_assert(a[i] >= -0.5f && a[i] < 0.5f);
    sum += a[i];
    sq += a[i] * a[i];
  }
  /* uniform on [-0.5, 0.5): variance 1/12 */
  cr_assert(fabs(sq / 4096 - 1.0 / 12) < 0.01, "variance %g", sq / 4096);
  f.tensor = 4;
  cr_assert_eq(deco_fill_random(ctx, &f), DECO_STATUS_SUCCESS);
  cr_assert_neq(memcmp(a, b, sizeof a), 0, "another tensor id must give other values");
  f.constant = 1.0f;
  cr_assert_eq(deco_fill_random(ctx, &f), DECO_STATUS_SUCCESS);
  cr_assert_eq(b[17], 1.0f);
}

/* Dense causal attention in double, for a contiguous cache. */
static void attention_expect(const float *q, const float *kc, const float *vc, int n_new, int len, int H, int KH,
                             int hd, float *out) {
  int group = H / KH;
  for (int j = 0; j < n_new; ++j)
    for (int h = 0; h < H; ++h) {
      int last = len - n_new + j, g = h / group;
      double mx = -INFINITY, *s = malloc(sizeof(double) * (size_t)(last + 1)), sum = 0;
      for (int p = 0; p <= last; ++p) {
        double d = 0;
        for (int i = 0; i < hd; ++i) d += (double)q[(j * H + h) * hd + i] * kc[(p * KH + g) * hd + i];
        s[p] = d / sqrt((double)hd);
        if (s[p] > mx) mx = s[p];
      }
      for (int p = 0; p <= last; ++p) sum += (s[p] = exp(s[p] - mx));
      for (int i = 0; i < hd; ++i) {
        double acc = 0;
        for (int p = 0; p <= last; ++p) acc += s[p] / sum * vc[(p * KH + g) * hd + i];
        out[(j * H + h) * hd + i] = (float)acc;
      }
      free(s);
    }
}

Test(ops_ref, paged_append_and_causal_attention) {
  /* Two sequences: a prefill of 5 tokens after 0 cached, and a decode of 1
   * after 12 cached; page size 3, pages handed out shuffled. */
  const int H = 4, KH = 2, hd = 8, ps = 3, n_pages = 12, maxp = 6;
  const int len[2] = {5, 13};
  int32_t table[2 * 6] = {7, 2, -1, -1, -1, -1, 0, 11, 4, 9, 5, -1};
  int32_t indptr[3] = {0, 5, 6}, kv_lens[2] = {5, 13};
  size_t row = (size_t)KH * hd, pool = (size_t)n_pages * ps * row;
  float *kp = calloc(pool, sizeof(float)), *vp = calloc(pool, sizeof(float));
  /* Dense per-sequence caches for the expectation. */
  float *kd[2], *vd[2];
  for (int s = 0; s < 2; ++s) {
    kd[s] = malloc(sizeof(float) * len[s] * row);
    vd[s] = malloc(sizeof(float) * len[s] * row);
    deco_test_fill_uniform(kd[s], len[s] * row, 9, 10 + s, -1, 1);
    deco_test_fill_uniform(vd[s], len[s] * row, 9, 20 + s, -1, 1);
  }
  /* Sequence 1's first 12 slots were cached earlier. */
  for (int p = 0; p < 12; ++p) {
    int page = table[6 + p / ps];
    memcpy(kp + ((size_t)page * ps + p % ps) * row, kd[1] + p * row, row * sizeof(float));
    memcpy(vp + ((size_t)page * ps + p % ps) * row, vd[1] + p * row, row * sizeof(float));
  }
  float knew[6 * 16], vnew[6 * 16];
  memcpy(knew, kd[0], 5 * row * sizeof(float));
  memcpy(knew + 5 * row, kd[1] + 12 * row, row * sizeof(float));
  memcpy(vnew, vd[0], 5 * row * sizeof(float));
  memcpy(vnew + 5 * row, vd[1] + 12 * row, row * sizeof(float));
  deco_paged_kv_t cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = KH, .head_dim = hd, .page_size = ps,
                           .n_pages = n_pages, .k_pages = kp, .v_pages = vp, .block_table = table,
                           .max_pages_per_seq = maxp};
  deco_ragged_batch_t batch = {.n_seqs = 2, .n_tokens = 6, .q_indptr = indptr, .kv_lens = kv_lens};
  deco_kv_append_args_t app = {.cache = cache, .batch = batch, .k = knew, .v = vnew, .kv_stride = 0};
  cr_assert_eq(deco_kv_append(ctx, &app), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float q[6 * 32], out[6 * 32], expect[6 * 32];
  deco_test_fill_uniform(q, 6 * 32, 9, 30, -1, 1);
  deco_attention_args_t at = {.cache = cache, .batch = batch, .n_heads = H, .scale = 1.0f / sqrtf((float)hd), .q = q,
                              .out = out, .q_stride = 0};
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  attention_expect(q, kd[0], vd[0], 5, 5, H, KH, hd, expect);
  attention_expect(q + 5 * H * hd, kd[1], vd[1], 1, 13, H, KH, hd, expect + 5 * H * hd);
  cr_assert_eq(deco_test_compare("attention", out, expect, 6 * 32, DECO_TOL_F32_REDUCTION, DECO_TOL_F32_REDUCTION), 0);
  /* A slot without a page is an error on the CPU. */
  int32_t bad_lens[2] = {5, 19};
  deco_ragged_batch_t bad = {.n_seqs = 2, .n_tokens = 6, .q_indptr = indptr, .kv_lens = bad_lens};
  at.batch = bad;
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT);
  /* A sequence whose tokens would start before token 0 is refused before
   * anything is read or written (out stays as it was, the pools too). */
  int32_t before[3] = {-2, 3, 6};
  bad = (deco_ragged_batch_t){.n_seqs = 2, .n_tokens = 6, .q_indptr = before, .kv_lens = kv_lens};
  at.batch = bad;
  memcpy(expect, out, sizeof out);
  deco_test_refused(ctx, deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_attention: sequence 0 has 5 new tokens from token -2, kv_len 5, capacity 6");
  cr_assert(memcmp(out, expect, sizeof out) == 0);
  float *kp0 = malloc(sizeof(float) * pool);
  memcpy(kp0, kp, sizeof(float) * pool);
  app.batch = bad;
  deco_test_refused(ctx, deco_kv_append(ctx, &app), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_kv_append: sequence 0 has 5 new tokens from token -2, kv_len 5, capacity 6");
  cr_assert(memcmp(kp, kp0, sizeof(float) * pool) == 0);
  free(kp0);
  for (int s = 0; s < 2; ++s) {
    free(kd[s]);
    free(vd[s]);
  }
  free(kp);
  free(vp);
}

Test(ops_ref, validation) {
  float x[8];
  deco_matmul_args_t mm = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = 1, .n = 1, .k = 1, .a = x,
                           .w = NULL, .out = x, .accumulate = 0};
  cr_assert_eq(deco_matmul(ctx, &mm), DECO_STATUS_NULL_POINTER);
  cr_assert(strstr(deco_last_error(ctx), "w") != NULL);
  mm.w = x;
  mm.k = 0;
  cr_assert_eq(deco_matmul(ctx, &mm), DECO_STATUS_INVALID_ARGUMENT);
  mm.k = 1;
  mm.dtype = DECO_DTYPE_BF16;
  cr_assert_eq(deco_matmul(ctx, &mm), DECO_STATUS_UNSUPPORTED, "bf16 on the CPU");
  mm.dtype = (deco_dtype_t)9;
  cr_assert_eq(deco_matmul(ctx, &mm), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_matmul(NULL, &mm), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_matmul(ctx, NULL), DECO_STATUS_NULL_POINTER);
  int32_t ip[2] = {0, 1}, kl[1] = {1}, bt[1] = {0};
  deco_paged_kv_t c = {.dtype = DECO_DTYPE_F32, .n_kv_heads = 2, .head_dim = 4, .page_size = 1, .n_pages = 1,
                       .k_pages = x, .v_pages = x, .block_table = bt, .max_pages_per_seq = 1};
  deco_attention_args_t at = {.cache = c, .batch = {.n_seqs = 1, .n_tokens = 1, .q_indptr = ip, .kv_lens = kl},
                              .n_heads = 3, .scale = 0.5f, .q = x, .out = x, .q_stride = 0};
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT, "head_dim 4 < 8");
  at.cache.head_dim = 8;
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT, "3 heads over 2 kv heads");
  at.n_heads = 4;
  at.cache.page_size = 0;
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_attention_workspace_size(ctx, &at), 0);
}

/* The ops read q, k, v (and gate, up) as column blocks of one fused
 * projection output: with row strides they must give bit for bit what they
 * give on dense copies of the same blocks. */
Test(ops_ref, strided_inputs_equal_dense) {
  enum { T = 5, H = 4, KH = 2, HD = 8, QD = H * HD, KVD = KH * HD, QKVD = QD + 2 * KVD, PS = 4, NP = 8, MAXP = 4 };
  float qkv[T * QKVD], qd[T * QD], kd[T * KVD], vd[T * KVD];
  deco_test_fill_uniform(qkv, T * QKVD, 77, 0, -1, 1);
  for (int t = 0; t < T; ++t) {
    memcpy(qd + t * QD, qkv + t * QKVD, sizeof(float) * QD);
    memcpy(kd + t * KVD, qkv + t * QKVD + QD, sizeof(float) * KVD);
    memcpy(vd + t * KVD, qkv + t * QKVD + QD + KVD, sizeof(float) * KVD);
  }
  /* RoPE in place on the blocks and on the copies. */
  int32_t pos[T] = {3, 4, 5, 6, 7};
  deco_rope_args_t rs = {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_INTERLEAVED, .n_tokens = T, .n_heads = H,
                         .n_kv_heads = KH, .head_dim = HD, .theta = 10000.0f, .positions = pos, .q = qkv, .k = qkv + QD,
                         .q_stride = QKVD, .k_stride = QKVD};
  deco_rope_args_t rd = {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_INTERLEAVED, .n_tokens = T, .n_heads = H,
                         .n_kv_heads = KH, .head_dim = HD, .theta = 10000.0f, .positions = pos, .q = qd, .k = kd,
                         .q_stride = 0, .k_stride = 0};
  cr_assert_eq(deco_rope(ctx, &rs), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_rope(ctx, &rd), DECO_STATUS_SUCCESS);
  for (int t = 0; t < T; ++t) {
    cr_assert_eq(memcmp(qkv + t * QKVD, qd + t * QD, sizeof(float) * QD), 0, "rope q token %d", t);
    cr_assert_eq(memcmp(qkv + t * QKVD + QD, kd + t * KVD, sizeof(float) * KVD), 0, "rope k token %d", t);
    cr_assert_eq(memcmp(qkv + t * QKVD + QD + KVD, vd + t * KVD, sizeof(float) * KVD), 0, "v untouched, token %d", t);
  }
  /* One sequence: 3 cached slots, then the 5 tokens; two identical caches. */
  static float kp[2][NP * PS * KVD], vp[2][NP * PS * KVD];
  deco_test_fill_uniform(kp[0], NP * PS * KVD, 77, 1, -1, 1);
  deco_test_fill_uniform(vp[0], NP * PS * KVD, 77, 2, -1, 1);
  memcpy(kp[1], kp[0], sizeof kp[0]);
  memcpy(vp[1], vp[0], sizeof vp[0]);
  int32_t table[MAXP] = {5, 1, 6, -1}, indptr[2] = {0, T}, kv_lens[1] = {3 + T}, prefix[1] = {3};
  deco_paged_kv_t cs = {.dtype = DECO_DTYPE_F32, .n_kv_heads = KH, .head_dim = HD, .page_size = PS, .n_pages = NP,
                        .k_pages = kp[0], .v_pages = vp[0], .block_table = table, .max_pages_per_seq = MAXP};
  deco_paged_kv_t cd = {.dtype = DECO_DTYPE_F32, .n_kv_heads = KH, .head_dim = HD, .page_size = PS, .n_pages = NP,
                        .k_pages = kp[1], .v_pages = vp[1], .block_table = table, .max_pages_per_seq = MAXP};
  deco_ragged_batch_t batch = {.n_seqs = 1, .n_tokens = T, .q_indptr = indptr, .kv_lens = kv_lens};
  deco_kv_append_args_t as = {.cache = cs, .batch = batch, .k = qkv + QD, .v = qkv + QD + KVD, .kv_stride = QKVD};
  deco_kv_append_args_t ad = {.cache = cd, .batch = batch, .k = kd, .v = vd, .kv_stride = 0};
  cr_assert_eq(deco_kv_append(ctx, &as), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_append(ctx, &ad), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(kp[0], kp[1], sizeof kp[0]), 0, "K pools");
  cr_assert_eq(memcmp(vp[0], vp[1], sizeof vp[0]), 0, "V pools");
  /* Causal and tree attention read q through the stride. */
  float os[T * QD], od[T * QD];
  const float scale = 1.0f / sqrtf((float)HD);
  deco_attention_args_t ts = {.cache = cs, .batch = batch, .n_heads = H, .scale = scale, .q = qkv, .out = os,
                              .q_stride = QKVD};
  deco_attention_args_t td = {.cache = cd, .batch = batch, .n_heads = H, .scale = scale, .q = qd, .out = od,
                              .q_stride = 0};
  cr_assert_eq(deco_attention(ctx, &ts), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_attention(ctx, &td), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(os, od, sizeof os), 0, "causal attention");
  int32_t parent[T] = {-1, 0, 0, 1, 2};
  deco_tree_batch_t tree = {.n_trees = 1, .n_nodes = T, .tree_indptr = indptr, .parent = parent};
  deco_tree_attention_args_t xs = {.cache = cs, .tree = tree, .prefix_lens = prefix, .n_heads = H, .scale = scale,
                                   .q = qkv, .out = os, .q_stride = QKVD};
  deco_tree_attention_args_t xd = {.cache = cd, .tree = tree, .prefix_lens = prefix, .n_heads = H, .scale = scale,
                                   .q = qd, .out = od, .q_stride = 0};
  cr_assert_eq(deco_tree_attention(ctx, &xs), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_tree_attention(ctx, &xd), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(os, od, sizeof os), 0, "tree attention");
  /* SwiGLU on the two halves of a fused gate | up output. */
  enum { HID = 6 };
  float h13[T * 2 * HID], g[T * HID], u[T * HID], hs[T * HID], hf[T * HID];
  deco_test_fill_uniform(h13, T * 2 * HID, 77, 3, -4, 4);
  for (int t = 0; t < T; ++t) {
    memcpy(g + t * HID, h13 + t * 2 * HID, sizeof(float) * HID);
    memcpy(u + t * HID, h13 + t * 2 * HID + HID, sizeof(float) * HID);
  }
  deco_swiglu_args_t ss = {.dtype = DECO_DTYPE_F32, .n = T * HID, .gate = h13, .up = h13 + HID, .out = hs,
                           .row_len = HID, .in_stride = 2 * HID};
  deco_swiglu_args_t sf = {.dtype = DECO_DTYPE_F32, .n = T * HID, .gate = g, .up = u, .out = hf, .row_len = 0,
                           .in_stride = 0};
  cr_assert_eq(deco_swiglu(ctx, &ss), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_swiglu(ctx, &sf), DECO_STATUS_SUCCESS);
  cr_assert_eq(memcmp(hs, hf, sizeof hs), 0, "swiglu rows");

  /* Strides below the dense row, misfit rows and overlapping output are refused. */
  rs.q_stride = QD - 1;
  cr_assert_eq(deco_rope(ctx, &rs), DECO_STATUS_INVALID_ARGUMENT);
  as.kv_stride = KVD - 1;
  cr_assert_eq(deco_kv_append(ctx, &as), DECO_STATUS_INVALID_ARGUMENT);
  ts.q_stride = -1;
  cr_assert_eq(deco_attention(ctx, &ts), DECO_STATUS_INVALID_ARGUMENT);
  xs.q_stride = QD - 8;
  cr_assert_eq(deco_tree_attention(ctx, &xs), DECO_STATUS_INVALID_ARGUMENT);
  ss.row_len = 7;
  cr_assert_eq(deco_swiglu(ctx, &ss), DECO_STATUS_INVALID_ARGUMENT, "n not a multiple of row_len");
  ss.row_len = HID;
  ss.in_stride = HID - 1;
  cr_assert_eq(deco_swiglu(ctx, &ss), DECO_STATUS_INVALID_ARGUMENT, "in_stride below row_len");
  ss.in_stride = 2 * HID;
  ss.out = h13 + 2;
  cr_assert_eq(deco_swiglu(ctx, &ss), DECO_STATUS_INVALID_ARGUMENT, "out overlapping the input rows");
}

/* The DECO_<NAME>_INIT macros are designated initialisers with the defaults
 * their headers document, they nest (the cache and batch of attention), and
 * a struct they fill, with the fields an op needs set, runs. */
Test(ops_ref, args_init_macros) {
  deco_rmsnorm_args_t n = DECO_RMSNORM_ARGS_INIT;
  cr_assert(n.dtype == DECO_DTYPE_F32 && n.eps == 1e-5f && n.add == NULL && n.residual == NULL);
  deco_rope_args_t r = DECO_ROPE_ARGS_INIT;
  cr_assert(r.style == DECO_ROPE_INTERLEAVED && r.theta == 10000.0f && r.q_stride == 0 && r.k_stride == 0);
  deco_matmul_args_t m = DECO_MATMUL_ARGS_INIT;
  cr_assert(m.dtype == DECO_DTYPE_F32 && m.out_dtype == DECO_DTYPE_F32 && m.accumulate == 0);
  const deco_embedding_args_t e = DECO_EMBEDDING_ARGS_INIT;
  const deco_swiglu_args_t s = DECO_SWIGLU_ARGS_INIT;
  const deco_fill_random_args_t f = DECO_FILL_RANDOM_ARGS_INIT;
  const deco_convert_args_t c = DECO_CONVERT_ARGS_INIT;
  cr_assert(e.tokens == NULL && s.row_len == 0 && f.constant == 0.0f && c.in_dtype == DECO_DTYPE_F32);
  const deco_kv_append_args_t ka = DECO_KV_APPEND_ARGS_INIT;
  const deco_kv_compact_args_t kc = DECO_KV_COMPACT_ARGS_INIT;
  deco_attention_args_t at = DECO_ATTENTION_ARGS_INIT;
  cr_assert(ka.kv_stride == 0 && ka.cache.k_pages == NULL && kc.n_layers == 1 && at.q_stride == 0 && at.scale == 0.0f);
  const deco_tree_attention_args_t ta = DECO_TREE_ATTENTION_ARGS_INIT;
  const deco_tree_accept_greedy_args_t ag = DECO_TREE_ACCEPT_GREEDY_ARGS_INIT;
  const deco_tree_accept_sample_args_t as = DECO_TREE_ACCEPT_SAMPLE_ARGS_INIT;
  cr_assert(ta.tree.parent == NULL && ag.out.nonfinite == NULL && as.temperature == 1.0f && as.top_k == 0 &&
            as.top_p == 1.0f && as.draft_kind == DECO_DRAFT_DETERMINISTIC);
  const deco_topk_rows_args_t tk = DECO_TOPK_ROWS_ARGS_INIT;
  const deco_recycle_draft_args_t rd = DECO_RECYCLE_DRAFT_ARGS_INIT;
  const deco_recycle_update_args_t ru = DECO_RECYCLE_UPDATE_ARGS_INIT;
  cr_assert(tk.row_count == NULL && tk.values == NULL && rd.k == DECO_RECYCLE_DEFAULT_K &&
            ru.k == DECO_RECYCLE_DEFAULT_K);
  /* Sizes, pointers and the scale are the caller's to set: a struct of
   * defaults alone is refused. */
  cr_assert_eq(deco_attention(ctx, &at), DECO_STATUS_INVALID_ARGUMENT);

  float res[2][4] = {{1, 2, 3, 4}, {0, 0, 0, 2}}, w[4] = {1, 1, 1, 1}, out[2][4];
  n.n_rows = 2;
  n.dim = 4;
  n.residual = &res[0][0];
  n.weight = w;
  n.out = &out[0][0];
  cr_assert_eq(deco_rmsnorm(ctx, &n), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert(fabsf(out[1][3] - 2.0f / sqrtf(1.0f + 1e-5f)) <= 1e-6f, "out %g", out[1][3]);
}

/* ---- The order and wording of the entry points' refusals ----
 * Each ladder starts from a struct that fails its first check and fixes one
 * argument at a time, so every check is reached in turn and must give its
 * status and exact message (deco_last_error, which also holds a refusal of
 * a NULL ctx). The ladders stop before a call that would run the op, except
 * where an empty call succeeds without reading anything. */
#define NULLP DECO_STATUS_NULL_POINTER
#define BADARG DECO_STATUS_INVALID_ARGUMENT

/* The refusal of the NULL pointer argument `field`; name: how the messages
 * name the struct's fields ("deco_op: a->"). */
static void expect_null(deco_status_t got, const char *name, const char *field) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s%s is NULL", name, field);
  deco_test_refused(NULL, got, NULLP, msg);
}

/* The refusal of the int argument `field` = bad, outside [lo, hi]. */
static void expect_range(deco_status_t got, const char *name, const char *field, long long bad, long long lo,
                         long long hi) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s%s = %lld outside [%lld, %lld]", name, field, bad, lo, hi);
  deco_test_refused(NULL, got, BADARG, msg);
}

/* The refusal of a float argument = bad, in fmt's words (its %g: bad). */
static void expect_float(deco_status_t got, const char *fmt, double bad) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, bad);
  deco_test_refused(NULL, got, BADARG, msg);
}

/* The op that takes args (a deco_<op>_args_t), and a call of it on ctx. */
#define OP_FN(args)                                          \
  _Generic(&(args),                                          \
      deco_spec_prepare_args_t *: deco_spec_prepare,         \
      deco_spec_commit_args_t *: deco_spec_commit,           \
      deco_draft_chain_args_t *: deco_draft_chain,           \
      deco_superpose_select_args_t *: deco_superpose_select, \
      deco_superpose_embed_args_t *: deco_superpose_embed,   \
      deco_ngram_lookup_args_t *: deco_ngram_lookup,         \
      deco_embedding_args_t *: deco_embedding,               \
      deco_kv_append_args_t *: deco_kv_append,               \
      deco_topk_rows_args_t *: deco_topk_rows,               \
      deco_rmsnorm_args_t *: deco_rmsnorm,                   \
      deco_convert_args_t *: deco_convert,                   \
      deco_swiglu_args_t *: deco_swiglu,                     \
      deco_matmul_batched_args_t *: deco_matmul_batched,     \
      deco_tree_attention_args_t *: deco_tree_attention,     \
      deco_rope_args_t *: deco_rope)
#define OP(args) OP_FN(args)(ctx, &(args))

/* A NULL ctx, then NULL args: the two refusals every entry point starts with. */
#define EXPECT_NULL_CTX_THEN_ARGS(args, op)                                 \
  do {                                                                      \
    deco_test_refused(NULL, OP_FN(args)(NULL, &(args)), NULLP, op ": ctx is NULL"); \
    deco_test_refused(NULL, OP_FN(args)(ctx, NULL), NULLP, op ": (a) is NULL");     \
  } while (0)

/* Where a pointer argument points once set: never read, since no call that
 * gets past the checks reads it. */
static double scratch[8];

/* Ladder steps on args, with `name` (in scope) naming its fields:
 *   NS: the pointer argument field, NULL so far, is refused; then it points
 *     to scratch (IN: a field of the struct `in` within args).
 *   RS: the int argument field = bad is refused as outside [lo, hi]; then
 *     it takes good.
 *   FS: the float argument field = bad is refused in fmt's words; then it
 *     takes good. */
#define NS_IN(args, in, field)                 \
  do {                                         \
    expect_null(OP(args), name, #field);       \
    (in).field = (void *)scratch;              \
  } while (0)
#define NS(args, field) NS_IN(args, args, field)
#define RS(args, field, bad, lo, hi, good)                   \
  do {                                                       \
    (args).field = (bad);                                    \
    expect_range(OP(args), name, #field, (bad), (lo), (hi)); \
    (args).field = (good);                                   \
  } while (0)
#define FS(args, field, bad, good, fmt)    \
  do {                                     \
    (args).field = (bad);                  \
    expect_float(OP(args), (fmt), (bad));  \
    (args).field = (good);                 \
  } while (0)

/*   DS: the dtype field = 99 is refused as not a dtype (op: the op's name);
 *     then it is f32. */
#define DS(args, field, op)                                                              \
  do {                                                                                   \
    (args).field = (deco_dtype_t)99;                                                     \
    deco_test_refused(NULL, OP(args), BADARG, op ": " #field " = 99 is not a dtype");             \
    (args).field = DECO_DTYPE_F32;                                                       \
  } while (0)

Test(ops_ref, spec_prepare_and_commit_refusals) {
  deco_spec_prepare_args_t p = DECO_SPEC_PREPARE_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(p, "deco_spec_prepare");
  const char *name = "deco_spec_prepare: a->";
  RS(p, n_nodes, 0, 1, 256, 257); RS(p, n_nodes, 257, 1, 256, 3); RS(p, steps, 0, 1, 1 << 30, 8);
  NS(p, state); NS(p, depth); NS(p, tokens); NS(p, positions); NS(p, q_indptr);
  NS(p, kv_lens); NS(p, prefix_lens); NS(p, tree_indptr); NS(p, row_count);

  deco_spec_commit_args_t c = DECO_SPEC_COMMIT_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(c, "deco_spec_commit");
  name = "deco_spec_commit: a->";
  RS(c, n_nodes, 0, 1, 256, 3); RS(c, steps, 0, 1, 1 << 30, 8); RS(c, out_capacity, -1, 0, 1 << 30, 4);
  RS(c, n_stop_ids, 65, 0, 64, 0);
  /* No stop ids: stop_ids may be NULL; some: it comes first. */
  expect_null(OP(c), name, "state");
  c.n_stop_ids = 2;
  NS(c, stop_ids); NS(c, state); NS(c, tokens); NS(c, path); NS(c, accept_len); NS(c, bonus); NS(c, out);
}

Test(ops_ref, draft_chain_refusals) {
  deco_draft_chain_args_t a = DECO_DRAFT_CHAIN_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(a, "deco_draft_chain");
  const char *name = "deco_draft_chain: a->";
  RS(a, draft_len, 0, 1, 255, 3); RS(a, stage, 4, -1, 3, -2); RS(a, stage, -2, -1, 3, DECO_DRAFT_CHAIN_START);
  RS(a, steps, 0, 1, 1 << 30, 8); RS(a, max_slots, -1, 0, 1 << 30, 16);
  /* The start and the levels need the forward's batch, not the path. */
  NS(a, state); NS(a, chain); NS(a, prev);
  NS(a, tokens); NS(a, positions); NS(a, q_indptr); NS(a, kv_lens); NS(a, prefix_lens);
  const char *t = "deco_draft_chain: temperature = %g must be finite and >= 0";
  FS(a, temperature, -1.0f, NAN, t); FS(a, temperature, NAN, INFINITY, t); FS(a, temperature, INFINITY, 0.0f, t);
  RS(a, width, -1, 0, 16, 17); RS(a, width, 17, 0, 16, 2);

  /* A top-w tree: its size and shape, fparents at the start, topk at a level. */
  RS(a, n_nodes, 0, 2, 255, 3); NS(a, shape);
  expect_null(OP(a), name, "fparents");
  a.stage = 1;
  expect_null(OP(a), name, "topk");

  /* A chain's level (any width below 2): the logits, and q when it draws. */
  a.width = 1;
  RS(a, vocab, 0, 1, 16777216, 5); NS(a, logits);
  a.temperature = 0.5f;
  expect_null(OP(a), name, "q");
  a.width = 0;
  expect_null(OP(a), name, "q");

  /* Observe: the path and its length, not the forward's batch. */
  a.stage = DECO_DRAFT_CHAIN_OBSERVE;
  a.tokens = a.positions = a.q_indptr = a.kv_lens = a.prefix_lens = NULL;
  NS(a, path); NS(a, accept_len);
  a.width = 2;
  a.shape = NULL;
  expect_null(OP(a), name, "shape");
  RS(a, n_nodes, 256, 2, 255, 3);
}

Test(ops_ref, superpose_select_and_ngram_lookup_refusals) {
  deco_superpose_select_args_t s = DECO_SUPERPOSE_SELECT_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(s, "deco_superpose_select");
  const char *name = "deco_superpose_select: a->";
  /* No prompts: an empty call succeeds once every check passes. */
  RS(s, n_prompts, -1, 0, 1 << 20, 0); RS(s, k, 0, 1, 16, 2); RS(s, m, 0, 1, 16, 3);
  RS(s, max_steps, 0, 1, 1 << 24, 4); RS(s, n_stop_ids, 65, 0, 64, 0);
  const char *t = "deco_superpose_select: temperature = %g must be finite and > 0";
  FS(s, temperature, 0.0f, INFINITY, t); FS(s, temperature, INFINITY, NAN, t); FS(s, temperature, NAN, 0.5f, t);
  const char *al = "deco_superpose_select: alpha = %g outside [0, 1]";
  FS(s, alpha, 1.5f, NAN, al); FS(s, alpha, NAN, 0.5f, al);
  const char *pen = "deco_superpose_select: penalty = %g must be finite and >= 0";
  FS(s, penalty, -1.0f, INFINITY, pen); FS(s, penalty, INFINITY, 200.0f, pen);
  deco_test_refused(NULL, OP(s), NULLP,
                 "deco_superpose_select: ngram_probs is NULL with alpha = 0.5 (0 turns the n-grams off)");
  s.alpha = 0.0f; /* no n-grams: ngram_probs may be NULL; no stop ids: stop_ids may be NULL */
  expect_null(OP(s), name, "cand_ids");
  s.n_stop_ids = 2;
  NS(s, stop_ids); NS(s, cand_ids); NS(s, cand_logits);
  name = "deco_superpose_select: d->";
  NS_IN(s, s.drafts, prompt); NS_IN(s, s.drafts, score); NS_IN(s, s.drafts, token); NS_IN(s, s.drafts, ctx);
  NS_IN(s, s.drafts, ctx_len); NS_IN(s, s.drafts, mix_token); NS_IN(s, s.drafts, mix_weight);
  NS_IN(s, s.drafts, hist_token); NS_IN(s, s.drafts, hist_parent);
  NS_IN(s, s.drafts, fin_score); NS_IN(s, s.drafts, fin_len); NS_IN(s, s.drafts, fin_slot);
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));

  deco_ngram_lookup_args_t g = DECO_NGRAM_LOOKUP_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(g, "deco_ngram_lookup");
  name = "deco_ngram_lookup: a->";
  RS(g, n_rows, -1, 0, 16777216, 3); RS(g, rows_per_group, 0, 1, 16, 2); RS(g, m, 0, 1, 16, 4);
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: n_rows = 3 is not a multiple of rows_per_group = 2");
  g.n_rows = 0; /* nothing to look up: an empty call succeeds once every check passes */
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: table.n_slots = 0 is not a power of two");
  g.table.n_slots = 6;
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: table.n_slots = 6 is not a power of two");
  g.table.n_slots = 8;
  name = "deco_ngram_lookup: a->table.";
  NS_IN(g, g.table, slots);
  g.lambda[2] = 1.5f; /* no followers: followers may be NULL */
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: lambda[2] (order 4) = 1.5 outside [0, 1]");
  g.table.n_followers = 4;
  NS_IN(g, g.table, followers);
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: lambda[2] (order 4) = 1.5 outside [0, 1]");
  g.lambda[2] = 0.5f;
  g.lambda[4] = NAN;
  deco_test_refused(NULL, OP(g), BADARG, "deco_ngram_lookup: lambda[4] (order 6) = nan outside [0, 1]");
  g.lambda[4] = 1.0f;
  name = "deco_ngram_lookup: a->";
  NS(g, ctx); NS(g, ctx_len); NS(g, cands); NS(g, probs);
  cr_assert_eq(OP(g), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

Test(ops_ref, rope_refusals) {
  float x[4] = {0};
  deco_rope_args_t r = DECO_ROPE_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(r, "deco_rope");
  const char *name = "deco_rope: a->";
  r.dtype = (deco_dtype_t)9;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: dtype = 9 is not a dtype");
  r.dtype = DECO_DTYPE_BF16;
  deco_test_refused(NULL, OP(r), DECO_STATUS_UNSUPPORTED,
                 "deco_rope: dtype bf16 is not supported on the CPU backend (f32 only)");
  r.dtype = DECO_DTYPE_F32;
  r.style = (deco_rope_style_t)3;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: style = 3 is not a RoPE style");
  r.style = DECO_ROPE_HALF_SPLIT;
  /* No tokens: an empty call succeeds once every check passes. */
  RS(r, n_tokens, -1, 0, 16777216, 0); RS(r, head_dim, 0, 2, 256, 7);
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: head_dim = 7 must be even");
  r.head_dim = 8;
  const char *th = "deco_rope: theta = %g must be finite and > 0";
  FS(r, theta, 0.0f, INFINITY, th); FS(r, theta, INFINITY, 10000.0f, th);
  NS(r, positions);
  deco_test_refused(NULL, OP(r), NULLP, "deco_rope: q and k are both NULL");
  /* q alone: n_heads and q_stride checked, the k side not read. */
  r.q = x;
  r.n_kv_heads = 0;
  r.k_stride = 3;
  RS(r, n_heads, 0, 1, 4096, 2);
  r.q_stride = 3;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: q_stride = 3 must be 0 (dense) or in [16, 2^30]");
  r.q_stride = 16;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* Both: the head counts before the strides. */
  r.k = x;
  r.q_stride = 3;
  RS(r, n_kv_heads, 0, 1, 4096, 1);
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: q_stride = 3 must be 0 (dense) or in [16, 2^30]");
  r.q_stride = 0;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: k_stride = 3 must be 0 (dense) or in [8, 2^30]");
  r.k_stride = 1 << 30;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* k alone: n_heads and q_stride not read. */
  r.q = NULL;
  r.n_heads = 0;
  r.q_stride = 3;
  r.k_stride = (1 << 30) + 1;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rope: k_stride = 1073741825 must be 0 (dense) or in [8, 2^30]");
  r.k_stride = 0;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

Test(ops_ref, embedding_and_rmsnorm_refusals) {
  deco_embedding_args_t e = DECO_EMBEDDING_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(e, "deco_embedding");
  const char *name = "deco_embedding: a->";
  RS(e, n_tokens, -1, 0, 1 << 24, 0); RS(e, dim, 0, 1, 1 << 20, 4);
  NS(e, out);
  deco_test_refused(NULL, OP(e), NULLP, "deco_embedding: tokens and embeds are both NULL");
  /* Embeddings given: the table side is not read. */
  e.embeds = (const float *)scratch;
  e.dtype = (deco_dtype_t)99;
  cr_assert_eq(OP(e), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* Token ids: the table's dtype, the vocabulary, then the table. */
  e.tokens = (const int32_t *)scratch;
  deco_test_refused(NULL, OP(e), BADARG, "deco_embedding: dtype = 99 is not a dtype");
  e.dtype = DECO_DTYPE_F16;
  deco_test_refused(NULL, OP(e), DECO_STATUS_UNSUPPORTED,
                 "deco_embedding: dtype f16 is not supported on the CPU backend (f32 only)");
  e.dtype = DECO_DTYPE_F32;
  RS(e, vocab, 0, 1, 1 << 24, 5);
  NS(e, table);
  cr_assert_eq(OP(e), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));

  deco_rmsnorm_args_t r = DECO_RMSNORM_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(r, "deco_rmsnorm");
  name = "deco_rmsnorm: a->";
  DS(r, dtype, "deco_rmsnorm");
  RS(r, n_rows, -1, 0, 1 << 24, 0); RS(r, dim, 0, 1, 1 << 20, 4);
  NS(r, residual); NS(r, weight); NS(r, out);
  const char *eps = "deco_rmsnorm: eps = %g must be finite and >= 0";
  FS(r, eps, -1.0f, NAN, eps); FS(r, eps, NAN, INFINITY, eps); FS(r, eps, INFINITY, 0.0f, eps);
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: out overlaps residual");
  r.out = (float *)scratch + 4;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* Rows run in parallel: out may share no byte with residual. These
   * calls run, so over a buffer of their own. */
  float buf[16] = {0};
  r.n_rows = 2;
  r.residual = buf;
  r.weight = buf;
  r.out = buf + 4;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: out overlaps residual");
  r.out = buf + 8;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  /* out apart from weight, add's or apart from it; with add, residual add's
   * or apart from it, and apart from weight: rows [0, 8), out [8, 16), add
   * [16, 24), weight [32, 36) of big. */
  float big[40] = {0};
  r.residual = big, r.out = big + 8, r.add = big + 16, r.weight = big + 32;
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  r.out = big + 12;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: out overlaps add without being it");
  r.out = big + 16; /* out is add: each row reads add before it writes out */
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  r.out = big + 30;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: out overlaps weight");
  r.out = big + 8;
  r.residual = big + 20;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: residual overlaps add without being it");
  r.residual = big + 28;
  deco_test_refused(NULL, OP(r), BADARG, "deco_rmsnorm: residual overlaps weight");
  r.add = NULL; /* residual only read: it may share weight's bytes */
  cr_assert_eq(OP(r), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

Test(ops_ref, convert_refuses_an_out_that_overlaps_in_unless_it_is_in) {
  float buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  deco_convert_args_t c = DECO_CONVERT_ARGS_INIT;
  c.n = 4;
  c.in = buf;
  c.out = buf + 1;
  deco_test_refused(NULL, OP(c), BADARG, "deco_convert: out overlaps in (only out == in with one dtype may)");
  c.out = buf; /* one dtype in place: a copy onto itself */
  cr_assert_eq(OP(c), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  c.out = buf + 4;
  cr_assert_eq(OP(c), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

Test(ops_ref, swiglu_and_matmul_batched_refusals) {
  deco_swiglu_args_t s = DECO_SWIGLU_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(s, "deco_swiglu");
  const char *name = "deco_swiglu: a->";
  DS(s, dtype, "deco_swiglu");
  NS(s, gate); NS(s, up); NS(s, out);
  /* Flat arrays may alias exactly, not in part. These calls run, so over
   * a buffer of their own. */
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float buf[12] = {0};
  s.n = 4;
  s.gate = buf;
  s.up = buf + 4;
  s.out = buf;
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx)); /* out == gate */
  s.out = buf + 2;
  deco_test_refused(NULL, OP(s), BADARG, "deco_swiglu: out overlaps gate or up without aliasing it exactly");
  s.out = buf + 4; /* out == up, apart from gate */
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  s.out = buf + 8;
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  s.n = 0;
  s.gate = s.up = (const float *)scratch;
  s.out = (float *)scratch;
  RS(s, row_len, -1, 1, 1 << 30, 4);
  s.n = 6;
  deco_test_refused(NULL, OP(s), BADARG, "deco_swiglu: n = 6 is not a multiple of row_len = 4");
  s.n = 8;
  deco_test_refused(NULL, OP(s), BADARG, "deco_swiglu: in_stride = 0 is below row_len = 4");
  s.in_stride = 4;
  const char *overlap = "deco_swiglu: with row_len, out must not overlap gate or up";
  deco_test_refused(NULL, OP(s), BADARG, overlap); /* all three at scratch */
  s.out = (float *)scratch + 8;           /* past gate's two rows, ... */
  s.up = (const float *)scratch + 6;      /* ... not past up's */
  deco_test_refused(NULL, OP(s), BADARG, overlap);
  s.n = 0; /* nothing written: no overlap check */
  cr_assert_eq(OP(s), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));

  deco_matmul_batched_args_t b = DECO_MATMUL_BATCHED_ARGS_INIT;
  deco_test_refused(NULL, OP_FN(b)(NULL, &b), NULLP, "deco_matmul_batched: ctx is NULL");
  deco_test_refused(NULL, OP_FN(b)(ctx, NULL), NULLP, "deco_matmul_batched: (b) is NULL");
  DS(b, mm.dtype, "deco_matmul_batched");
  b.mm.n = b.mm.k = 1;
  name = "deco_matmul_batched: b->";
  RS(b, n_batch, 0, 1, 1 << 16, 2);
  name = "deco_matmul_batched: a->";
  NS_IN(b, b.mm, a); NS_IN(b, b.mm, w); NS_IN(b, b.mm, out);
  b.stride_a = -1;
  deco_test_refused(NULL, OP(b), BADARG, "deco_matmul_batched: stride_a = -1 and stride_w = 0 must be >= 0");
  b.stride_a = 0;
  b.stride_w = -2;
  deco_test_refused(NULL, OP(b), BADARG, "deco_matmul_batched: stride_a = 0 and stride_w = -2 must be >= 0");
  b.stride_w = 0;
  b.mm.m = 2;
  b.mm.n = 3;
  deco_test_refused(NULL, OP(b), BADARG, "deco_matmul_batched: stride_out = 0 < m * n = 6 (outputs overlap)");
  b.mm.m = 0; /* no rows: an empty call succeeds once every check passes */
  cr_assert_eq(OP(b), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

Test(ops_ref, paged_kv_refusals) {
  deco_kv_append_args_t k = DECO_KV_APPEND_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(k, "deco_kv_append");
  DS(k, cache.dtype, "deco_kv_append");
  /* The cache view's fields, named c-> (deco_check_paged_kv), in order. */
  const char *name = "deco_kv_append: c->";
  expect_range(OP(k), name, "n_kv_heads", 0, 1, 4096);
  k.cache.n_kv_heads = 4097;
  expect_range(OP(k), name, "n_kv_heads", 4097, 1, 4096);
  k.cache.n_kv_heads = 2;
  expect_range(OP(k), name, "head_dim", 0, 1, 256);
  k.cache.head_dim = 4;
  expect_range(OP(k), name, "page_size", 0, 1, 1 << 16);
  k.cache.page_size = 4;
  expect_range(OP(k), name, "n_pages", 0, 1, 1 << 30);
  k.cache.n_pages = 1;
  expect_range(OP(k), name, "max_pages_per_seq", 0, 1, 1 << 30);
  k.cache.max_pages_per_seq = 1;
  NS_IN(k, k.cache, k_pages); NS_IN(k, k.cache, v_pages); NS_IN(k, k.cache, block_table);
  /* Then the ragged batch. */
  expect_range(OP(k), "deco_kv_append: b->", "n_seqs", 0, 1, 1 << 20);
}

Test(ops_ref, topk_rows_refusals) {
  deco_topk_rows_args_t t = DECO_TOPK_ROWS_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(t, "deco_topk_rows");
  const char *name = "deco_topk_rows: a->";
  RS(t, n_rows, 0, 1, 1 << 24, 2); RS(t, vocab, 0, 1, 1 << 24, 5); RS(t, k, 0, 1, 16, 8); RS(t, k, 17, 1, 16, 8);
  deco_test_refused(NULL, OP(t), BADARG, "deco_topk_rows: k = 8 exceeds vocab = 5");
  t.k = 5;
  t.dtype = DECO_DTYPE_F16;
  deco_test_refused(NULL, OP(t), DECO_STATUS_UNSUPPORTED, "deco_topk_rows: dtype f16 is not supported (f32 or bf16)");
  t.dtype = DECO_DTYPE_BF16;
  deco_test_refused(NULL, OP(t), DECO_STATUS_UNSUPPORTED,
                 "deco_topk_rows: dtype bf16 is not supported on the CPU backend (f32 only)");
  t.dtype = DECO_DTYPE_F32;
  NS(t, logits); NS(t, ids);
}

/* deco_superpose_embed's ladder: the ctx and args, the sizes, the dtype,
 * the four arrays; then an empty call succeeds. */
Test(ops_ref, superpose_embed_refusals) {
  deco_superpose_embed_args_t e = DECO_SUPERPOSE_EMBED_ARGS_INIT;
  EXPECT_NULL_CTX_THEN_ARGS(e, "deco_superpose_embed");
  const char *name = "deco_superpose_embed: a->";
  RS(e, n_rows, -1, 0, 1 << 24, 1 << 24 | 1); RS(e, n_rows, 1 << 24 | 1, 0, 1 << 24, 0);
  RS(e, k, 0, 1, DECO_SUPERPOSE_MAX_K, DECO_SUPERPOSE_MAX_K + 1);
  RS(e, k, DECO_SUPERPOSE_MAX_K + 1, 1, DECO_SUPERPOSE_MAX_K, 2);
  RS(e, dim, 0, 1, 1 << 20, 4); RS(e, vocab, 0, 1, 1 << 24, 5);
  DS(e, dtype, "deco_superpose_embed");
  e.dtype = DECO_DTYPE_BF16;
  deco_test_refused(NULL, OP(e), DECO_STATUS_UNSUPPORTED,
                    "deco_superpose_embed: dtype bf16 is not supported on the CPU backend (f32 only)");
  e.dtype = DECO_DTYPE_F32;
  NS(e, table); NS(e, tokens); NS(e, weights); NS(e, out);
  cr_assert_eq(OP(e), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

/* deco_tree_attention's own checks, after the ones it shares with causal
 * attention: the tree batch's counts, then its arrays and the prefixes. */
Test(ops_ref, tree_attention_refusals) {
  static float pool[4 * 4 * 8], q[8], out[8];
  int32_t table[1] = {0}, indptr[2] = {0, 0}, parent[1] = {-1}, prefix[1] = {0};
  deco_tree_attention_args_t a = {
      .cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = 1, .head_dim = 8, .page_size = 4, .n_pages = 4,
                .k_pages = pool, .v_pages = pool, .block_table = table, .max_pages_per_seq = 1},
      .tree = {.n_trees = 1, .n_nodes = 0, .tree_indptr = indptr, .parent = parent},
      .prefix_lens = prefix, .n_heads = 1, .scale = 0.5f, .q = q, .out = out, .q_stride = 0};
  cr_assert_eq(OP(a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  EXPECT_NULL_CTX_THEN_ARGS(a, "deco_tree_attention");
  a.tree.n_trees = 0;
  deco_test_refused(NULL, OP(a), BADARG, "deco_tree_attention: t->n_trees = 0 outside [1, 1048576]");
  a.tree.n_trees = 2;
  a.tree.n_nodes = -1;
  deco_test_refused(NULL, OP(a), BADARG, "deco_tree_attention: t->n_nodes = -1 outside [0, 16777216]");
  a.tree.n_nodes = 513;
  deco_test_refused(NULL, OP(a), BADARG,
                    "deco_tree_attention: tree.n_nodes = 513 exceeds 2 trees of at most 256 nodes");
  a.tree.n_nodes = 0;
  a.tree.tree_indptr = NULL;
  deco_test_refused(NULL, OP(a), NULLP, "deco_tree_attention: t->tree_indptr is NULL");
  a.tree.tree_indptr = indptr;
  a.tree.parent = NULL;
  deco_test_refused(NULL, OP(a), NULLP, "deco_tree_attention: t->parent is NULL");
  a.tree.parent = parent;
  a.prefix_lens = NULL;
  deco_test_refused(NULL, OP(a), NULLP, "deco_tree_attention: a->prefix_lens is NULL");
  a.prefix_lens = prefix;
  cr_assert_eq(OP(a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
}

/* The owner search the CUDA kernels run over device-side q_indptr (the
 * same code compiled for the host): a token no sequence holds has no
 * owner, so kv_append and attention skip it instead of writing slots of
 * sequence 0 or rows of no sequence. */
Test(ops_ref, ragged_seq_of_gives_the_owner_or_none) {
  const int32_t rising[] = {0, 2, 2, 5};
  const int want[] = {0, 0, 2, 2, 2, -1};
  for (int t = -1; t <= 5; ++t)
    cr_assert_eq(deco_ragged_seq_of(rising, 3, t), t < 0 ? -1 : want[t], "t = %d", t);
  const int32_t late_start[] = {2, 4, 6}; /* q_indptr[0] is not 0 */
  for (int t = 0; t < 6; ++t) cr_assert_eq(deco_ragged_seq_of(late_start, 2, t), t < 2 ? -1 : t < 4 ? 0 : 1, "t = %d", t);
  /* Sequence 1 ends before it starts: each token still lands in a range
   * that holds it. */
  const int32_t falling[] = {0, 6, 3, 8};
  cr_assert_eq(deco_ragged_seq_of(falling, 3, 4), 0);
  cr_assert_eq(deco_ragged_seq_of(falling, 3, 6), 2);
}

/* The model drafter's top-w children (deco_draft_top_w): the W largest in
 * the chain's order (ties by the lower id, NaN below every number) with
 * log-softmax values; a row with a NaN or no finite maximum gives the point
 * mass at its argmax (log 1, then -inf), never a NaN score, which would
 * leave the drafter's sort by path score without an order. */
Test(ops_ref, draft_top_w_orders_and_scores) {
  int32_t ids[4];
  double lp[4];
  const float row[6] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};
  cr_assert_eq(deco_draft_top_w(row, 6, 3, ids, lp), 3);
  cr_assert(ids[0] == 1 && ids[1] == 3 && ids[2] == 2, "%d %d %d", ids[0], ids[1], ids[2]);
  double z = 0;
  for (int i = 0; i < 6; ++i) z += exp((double)row[i]);
  for (int j = 0; j < 3; ++j) cr_assert(fabs(lp[j] - ((double)row[ids[j]] - log(z))) < 1e-12, "logp[%d] %g", j, lp[j]);
  cr_assert_eq(deco_draft_top_w(row, 2, 4, ids, lp), 2, "W beyond V gives V entries");
  const float nan_row[4] = {0.5f, NAN, 2.0f, 1.0f}, inf_row[4] = {0.5f, INFINITY, 2.0f, 1.0f};
  const float low_row[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  const float *bad[3] = {nan_row, inf_row, low_row};
  const int32_t best[3] = {2, 1, 0}, second[3] = {3, 2, 1};
  for (int b = 0; b < 3; ++b) {
    cr_assert_eq(deco_draft_top_w(bad[b], 4, 2, ids, lp), 2);
    cr_assert(ids[0] == best[b] && ids[1] == second[b], "row %d: %d %d", b, ids[0], ids[1]);
    cr_assert(lp[0] == 0.0 && lp[1] == -INFINITY, "row %d: the point mass at the argmax, not %g %g", b, lp[0], lp[1]);
  }
}
