/* tests/gpu/test_ops_cuda.c — every dense Llama op and the paged-KV ops on the
 * CUDA backend against the C reference (the CPU backend fed the same inputs
 * rounded to the dtype), for f32, f16 and bf16, at awkward sizes. Outputs are
 * poisoned (0xFF) and guarded; every element is compared (tolerances.h),
 * fill_random and convert bit for bit. Public API only.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "gpu_suite.h"
#include "common/tolerances.h"
#include "deco/deco.h"

DECO_GPU_SUITE(ops_cuda, 300);

static const deco_dtype_t dtypes[3] = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};

static float tol_elementwise(deco_dtype_t d) {
  return d == DECO_DTYPE_F32 ? DECO_TOL_F32_ELEMENTWISE : d == DECO_DTYPE_F16 ? DECO_TOL_F16 : DECO_TOL_BF16;
}
static float tol_reduction(deco_dtype_t d) {
  return d == DECO_DTYPE_F32 ? DECO_TOL_F32_REDUCTION : d == DECO_DTYPE_F16 ? DECO_TOL_F16 : DECO_TOL_BF16;
}

/* ---- Buffers ----------------------------------------------------------------------- */

static float *host_uniform(size_t n, uint64_t seed, uint32_t stream, float lo, float hi, deco_dtype_t round_to) {
  float *x = malloc(sizeof(float) * (n ? n : 1));
  deco_test_fill_uniform(x, n, seed, stream, lo, hi);
  deco_test_round_to(x, n, round_to);
  return x;
}

/* A guarded device buffer holding x packed to dtype. */
static deco_test_buf_t dev_from(const float *x, size_t n, deco_dtype_t dt) {
  const size_t es = deco_dtype_size(dt);
  deco_test_buf_t b = deco_test_buf_alloc(gpu, n * es);
  if (n) {
    void *tmp = malloc(n * es);
    deco_test_pack(tmp, x, n, dt);
    deco_test_buf_upload(&b, tmp, n * es);
    free(tmp);
  }
  return b;
}

static deco_test_buf_t dev_from_raw(const void *p, size_t bytes) {
  deco_test_buf_t b = deco_test_buf_alloc(gpu, bytes);
  if (bytes) deco_test_buf_upload(&b, p, bytes);
  return b;
}

/* Elements still holding the 0xFF poison among n of size es. */
static size_t count_poison(const unsigned char *raw, size_t n, size_t es) {
  size_t c = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t j = 0;
    while (j < es && raw[i * es + j] == 0xFF) j++;
    c += j == es;
  }
  return c;
}

/* Downloads n elements of dtype as f32; *poisoned = elements never written. */
static float *dev_to_host(const deco_test_buf_t *b, size_t n, deco_dtype_t dt, size_t *poisoned) {
  const size_t es = deco_dtype_size(dt);
  unsigned char *raw = malloc(n * es + 1);
  if (n) deco_test_buf_download(b, raw, n * es);
  if (poisoned) *poisoned = count_poison(raw, n, es);
  float *x = malloc(sizeof(float) * (n ? n : 1));
  deco_test_unpack(x, raw, n, dt);
  free(raw);
  return x;
}

/* Like deco_test_compare, but where the reference is NaN the result must be
 * NaN too (a computed NaN: poison is checked separately). */
static size_t compare_nan_aware(const char *what, const float *got, const float *ref, size_t n, float tol) {
  float *g = malloc(sizeof(float) * (n ? n : 1)), *r = malloc(sizeof(float) * (n ? n : 1));
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    if (isnan(ref[i])) {
      if (!isnan(got[i])) {
        if (bad < 5) fprintf(stderr, "  %s[%zu]: got %g, expected NaN\n", what, i, (double)got[i]);
        bad++;
      }
      g[i] = r[i] = 0.0f;
    } else {
      g[i] = got[i];
      r[i] = ref[i];
    }
  }
  bad += deco_test_compare(what, g, r, n, tol, tol);
  free(g);
  free(r);
  return bad;
}

/* Checks a device output: guard intact, nothing left poisoned, every element
 * within tol of ref (NaN-aware). Returns the number of problems. */
static size_t check_output(const char *what, const deco_test_buf_t *b, size_t n, deco_dtype_t dt, const float *ref,
                           float tol) {
  size_t poisoned = 0, bad = 0;
  float *got = dev_to_host(b, n, dt, &poisoned);
  if (poisoned) {
    fprintf(stderr, "%s: %zu of %zu elements never written\n", what, poisoned, n);
    bad += poisoned;
  }
  if (!deco_test_buf_guard_ok(b)) {
    fprintf(stderr, "%s: guard words overwritten\n", what);
    bad++;
  }
  bad += compare_nan_aware(what, got, ref, n, tol);
  free(got);
  return bad;
}

#define EXPECT_OK(st, ctx) cr_assert_eq((st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx))

/* ---- Embedding ----------------------------------------------------------------------- */

static void embedding_case(deco_dtype_t dt, int vocab, int dim, int n, int case_id) {
  char what[128];
  snprintf(what, sizeof what, "embedding %s vocab=%d dim=%d n=%d", deco_dtype_name(dt), vocab, dim, n);
  float *table = host_uniform((size_t)vocab * dim, 11 + case_id, 1, -2.0f, 2.0f, dt);
  int32_t *tokens = malloc(sizeof(int32_t) * n);
  for (int t = 0; t < n; ++t) tokens[t] = (t * 7 + case_id) % vocab;
  if (n >= 3) { /* ids out of range give NaN rows */
    tokens[1] = -1;
    tokens[n - 1] = n == 19 ? INT_MAX : vocab;
  }
  deco_test_buf_t d_table = dev_from(table, (size_t)vocab * dim, dt);
  deco_test_buf_t d_tok = dev_from_raw(tokens, sizeof(int32_t) * n);
  deco_test_buf_t d_out = deco_test_buf_alloc(gpu, sizeof(float) * n * dim);
  deco_embedding_args_t a = {.dtype = dt, .n_tokens = n, .vocab = vocab, .dim = dim, .table = d_table.ptr,
                             .tokens = d_tok.ptr, .embeds = NULL, .out = d_out.ptr};
  EXPECT_OK(deco_embedding(gpu, &a), gpu);
  float *ref = malloc(sizeof(float) * n * dim);
  deco_embedding_args_t r = {.dtype = DECO_DTYPE_F32, .n_tokens = n, .vocab = vocab, .dim = dim, .table = table,
                             .tokens = tokens, .embeds = NULL, .out = ref};
  EXPECT_OK(deco_embedding(cpu, &r), cpu);
  /* A copy: exact. */
  cr_expect_eq(check_output(what, &d_out, (size_t)n * dim, DECO_DTYPE_F32, ref, 0.0f), 0, "%s", what);

  /* Ready embeddings (tokens NULL): an f32 copy whatever dtype says. */
  float *emb = host_uniform((size_t)n * dim, 99 + case_id, 2, -1.0f, 1.0f, DECO_DTYPE_F32);
  deco_test_buf_t d_emb = dev_from(emb, (size_t)n * dim, DECO_DTYPE_F32);
  deco_test_buf_poison(&d_out);
  deco_embedding_args_t e = {.dtype = dt, .n_tokens = n, .vocab = 0, .dim = dim, .table = NULL, .tokens = NULL,
                             .embeds = d_emb.ptr, .out = d_out.ptr};
  EXPECT_OK(deco_embedding(gpu, &e), gpu);
  cr_expect_eq(check_output(what, &d_out, (size_t)n * dim, DECO_DTYPE_F32, emb, 0.0f), 0, "%s (embeds)", what);

  deco_test_buf_free(&d_table);
  deco_test_buf_free(&d_tok);
  deco_test_buf_free(&d_out);
  deco_test_buf_free(&d_emb);
  free(table);
  free(tokens);
  free(ref);
  free(emb);
}

Test(ops_cuda, embedding) {
  static const int vocabs[] = {1, 19, 733};
  static const int dims[] = {1, 7, 733, 4096};
  static const int ntoks[] = {1, 3, 19};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int vi = 0; vi < 3; ++vi)
      for (int mi = 0; mi < 4; ++mi) embedding_case(dtypes[di], vocabs[vi], dims[mi], ntoks[(vi + mi) % 3], case_id++);
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

static void rmsnorm_case(deco_dtype_t dt, int dim, int n, int with_add, int case_id) {
  const size_t sz = (size_t)n * dim;
  char what[128];
  snprintf(what, sizeof what, "rmsnorm %s dim=%d rows=%d add=%d", deco_dtype_name(dt), dim, n, with_add);
  float *res = host_uniform(sz, 21 + case_id, 1, -2.0f, 2.0f, DECO_DTYPE_F32); /* residual stream is f32 */
  float *add = host_uniform(sz, 21 + case_id, 2, -1.0f, 1.0f, dt);
  float *w = host_uniform((size_t)dim, 21 + case_id, 3, 0.5f, 1.5f, dt);
  deco_test_buf_t d_res = dev_from(res, sz, DECO_DTYPE_F32);
  deco_test_buf_t d_add = dev_from(add, sz, dt);
  deco_test_buf_t d_w = dev_from(w, (size_t)dim, dt);
  deco_test_buf_t d_out = deco_test_buf_alloc(gpu, sz * deco_dtype_size(dt));
  deco_rmsnorm_args_t a = {.dtype = dt, .n_rows = n, .dim = dim, .eps = 1e-5f, .residual = d_res.ptr,
                           .add = with_add ? d_add.ptr : NULL, .weight = d_w.ptr, .out = d_out.ptr};
  EXPECT_OK(deco_rmsnorm(gpu, &a), gpu);
  float *ref = malloc(sizeof(float) * sz);
  deco_rmsnorm_args_t r = {.dtype = DECO_DTYPE_F32, .n_rows = n, .dim = dim, .eps = 1e-5f, .residual = res,
                           .add = with_add ? add : NULL, .weight = w, .out = ref};
  EXPECT_OK(deco_rmsnorm(cpu, &r), cpu);
  cr_expect_eq(check_output(what, &d_out, sz, dt, ref, tol_reduction(dt)), 0, "%s (out)", what);
  cr_expect_eq(check_output(what, &d_res, sz, DECO_DTYPE_F32, res, DECO_TOL_F32_ELEMENTWISE), 0, "%s (residual)",
               what);
  deco_test_buf_free(&d_res);
  deco_test_buf_free(&d_add);
  deco_test_buf_free(&d_w);
  deco_test_buf_free(&d_out);
  free(res);
  free(add);
  free(w);
  free(ref);
}

Test(ops_cuda, rmsnorm) {
  static const int dims[] = {1, 3, 7, 19, 733, 4096, 5120};
  static const int rows[] = {1, 3, 19};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int mi = 0; mi < 7; ++mi)
      for (int with_add = 0; with_add < 2; ++with_add)
        rmsnorm_case(dtypes[di], dims[mi], rows[(mi + with_add) % 3], with_add, case_id++);
}

/* ---- RoPE ----------------------------------------------------------------------------- */

/* which: 0 = q and k, 1 = q only, 2 = k only. */
static void rope_case(deco_dtype_t dt, int style, int hd, int nh, int nkv, int n, int which, float theta,
                      int case_id) {
  char what[160];
  snprintf(what, sizeof what, "rope %s style=%d hd=%d heads=%d/%d n=%d q=%d k=%d theta=%g", deco_dtype_name(dt),
           style, hd, nh, nkv, n, which != 2, which != 1, (double)theta);
  const size_t nq = (size_t)n * nh * hd, nk = (size_t)n * nkv * hd;
  float *q = host_uniform(nq, 31 + case_id, 1, -1.0f, 1.0f, dt);
  float *k = host_uniform(nk, 31 + case_id, 2, -1.0f, 1.0f, dt);
  int32_t *pos = malloc(sizeof(int32_t) * n);
  for (int t = 0; t < n; ++t) pos[t] = t == 0 ? 0 : (int32_t)((t * 1237 + case_id * 31) % 4096);
  deco_test_buf_t d_q = dev_from(q, nq, dt), d_k = dev_from(k, nk, dt);
  deco_test_buf_t d_pos = dev_from_raw(pos, sizeof(int32_t) * n);
  deco_rope_args_t a = {.dtype = dt, .style = (deco_rope_style_t)style, .n_tokens = n, .n_heads = nh, .n_kv_heads = nkv,
                        .head_dim = hd, .theta = theta, .positions = d_pos.ptr, .q = which != 2 ? d_q.ptr : NULL,
                        .k = which != 1 ? d_k.ptr : NULL, .q_stride = 0, .k_stride = 0};
  EXPECT_OK(deco_rope(gpu, &a), gpu);
  deco_rope_args_t r = a;
  r.dtype = DECO_DTYPE_F32;
  r.positions = pos;
  r.q = which != 2 ? q : NULL;
  r.k = which != 1 ? k : NULL;
  EXPECT_OK(deco_rope(cpu, &r), cpu); /* rotates the host copies in place; untouched ones stay as input */
  cr_expect_eq(check_output(what, &d_q, nq, dt, q, tol_elementwise(dt)), 0, "%s (q)", what);
  cr_expect_eq(check_output(what, &d_k, nk, dt, k, tol_elementwise(dt)), 0, "%s (k)", what);
  deco_test_buf_free(&d_q);
  deco_test_buf_free(&d_k);
  deco_test_buf_free(&d_pos);
  free(q);
  free(k);
  free(pos);
}

Test(ops_cuda, rope) {
  static const int head_dims[] = {2, 8, 24, 64, 100, 128, 256};
  static const int heads[][2] = {{1, 1}, {4, 2}, {3, 3}, {8, 1}};
  static const int ntoks[] = {1, 3, 19};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int style = 0; style < 2; ++style)
      for (int hi = 0; hi < 7; ++hi)
        for (int which = 0; which < 3; ++which) {
          const int h = (hi + which) % 4;
          rope_case(dtypes[di], style, head_dims[hi], heads[h][0], heads[h][1], ntoks[(hi + style + which) % 3], which,
                    (hi + which) % 2 ? 500000.0f : 10000.0f, case_id++);
        }
}

/* ---- Matmul ---------------------------------------------------------------------------- */

/* One matmul case; a_offset shifts a by elements inside its buffer (an
 * unaligned a sends f16/bf16 to cuBLAS). In f16/bf16 with m <= 4, k % 8 == 0
 * and aligned pointers the weight-streaming kernel runs (kernels/linear/
 * matmul_path.h); f32 with 2 <= m and m·n·k <= 2^23 the tiled kernel;
 * otherwise cuBLAS. */
static size_t matmul_case(deco_dtype_t dt, int m, int n, int k, int out_f32, int accumulate, int a_offset,
                          uint64_t seed) {
  const deco_dtype_t odt = out_f32 ? DECO_DTYPE_F32 : dt;
  char what[160];
  snprintf(what, sizeof what, "matmul %s->%s m=%d n=%d k=%d acc=%d a_offset=%d", deco_dtype_name(dt),
           deco_dtype_name(odt), m, n, k, accumulate, a_offset);
  const size_t na = (size_t)m * k + a_offset, nw = (size_t)n * k, no = (size_t)m * n;
  float *a = host_uniform(na, seed, 1, -1.0f, 1.0f, dt);
  const float ws = 1.7320508f / sqrtf((float)k); /* keeps outputs O(1) */
  float *w = host_uniform(nw, seed, 2, -ws, ws, dt);
  float *o = host_uniform(no, seed, 3, -1.0f, 1.0f, odt);
  deco_test_buf_t d_a = dev_from(a, na, dt), d_w = dev_from(w, nw, dt);
  deco_test_buf_t d_o = accumulate ? dev_from(o, no, odt) : deco_test_buf_alloc(gpu, no * deco_dtype_size(odt));
  deco_matmul_args_t args = {.dtype = dt, .out_dtype = odt, .m = m, .n = n, .k = k,
                             .a = (const char *)d_a.ptr + a_offset * deco_dtype_size(dt), .w = d_w.ptr, .out = d_o.ptr,
                             .accumulate = accumulate};
  EXPECT_OK(deco_matmul(gpu, &args), gpu);
  deco_matmul_args_t r = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = m, .n = n, .k = k,
                          .a = a + a_offset, .w = w, .out = o, .accumulate = accumulate};
  EXPECT_OK(deco_matmul(cpu, &r), cpu);
  size_t bad = check_output(what, &d_o, no, odt, o, tol_reduction(dt));
  if (bad) fprintf(stderr, "FAILED: %s\n", what);
  deco_test_buf_free(&d_a);
  deco_test_buf_free(&d_w);
  deco_test_buf_free(&d_o);
  free(a);
  free(w);
  free(o);
  return bad;
}

Test(ops_cuda, matmul) {
  static const int ms[] = {1, 2, 7, 8, 9, 64};
  static const int ks[] = {8, 64, 4096, 4100};
  static const int ns[] = {1, 3, 19, 733};
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int mi = 0; mi < 6; ++mi)
      for (int ki = 0; ki < 4; ++ki) {
        const int n = ns[(mi + ki) % 4], out_f32 = (mi + ki + di) % 2, acc = (mi / 2 + ki) % 2;
        bad += matmul_case(dtypes[di], ms[mi], n, ks[ki], out_f32, acc, 0, 41 + case_id++);
      }
  cr_expect_eq(bad, 0, "matmul: %zu bad elements", bad);
}

/* Every {m, n, k} of a table in the dtypes from dtypes[first_dtype] on, each
 * three ways (dtype out, f32 out, accumulate); seeds seed0, seed0 + 1, ... */
static size_t matmul_shape_table(const int (*shapes)[3], int n_shapes, int first_dtype, uint64_t seed0) {
  size_t bad = 0;
  int case_id = 0;
  for (int di = first_dtype; di < 3; ++di)
    for (int si = 0; si < n_shapes; ++si)
      for (int variant = 0; variant < 3; ++variant) {
        const int out_f32 = variant == 1, acc = variant == 2;
        bad += matmul_case(dtypes[di], shapes[si][0], shapes[si][1], shapes[si][2], out_f32, acc, 0,
                           seed0 + (uint64_t)case_id++);
      }
  return bad;
}

Test(ops_cuda, matmul_small_shapes) {
  /* f32 problems of at most 2^23 multiply-adds with m >= 2 take the tiled
   * kernel (f16/bf16 ones cuBLAS or, m <= 4, the skinny one): stories260K's
   * projections at two rows, an 81-node tree and a prefill, and ragged
   * sizes that leave every tile edge partly filled (m, n, k not multiples of
   * 32), in every dtype, both out dtypes and accumulate. */
  static const int shapes[][3] = {{81, 128, 64}, {81, 512, 64}, {81, 64, 172}, {2, 344, 64}, {256, 512, 64},
                                  {33, 31, 95},  {5, 7, 3},     {81, 1, 1000}, {100, 65, 33}};
  const size_t bad = matmul_shape_table(shapes, 9, 0, 91);
  cr_expect_eq(bad, 0, "matmul small shapes: %zu bad elements", bad);
}

Test(ops_cuda, matmul_skinny_shapes) {
  /* Decode-like shapes through the weight-streaming kernel: n not a multiple
   * of the block's rows, k not a multiple of the per-iteration stride, every
   * row bucket (1, 2, 3-4), both out dtypes, accumulate; m = 5 and 8 (cuBLAS)
   * and an unaligned a (cuBLAS) of the same shapes for comparison. */
  static const int shapes[][3] = {{1, 4099, 1024}, {2, 1001, 2056}, {3, 517, 11008}, {4, 4096, 8},
                                  {4, 33, 4096},   {1, 6, 4096},    {3, 4097, 264},  {5, 33, 4096},
                                  {8, 4097, 264}};
  size_t bad = matmul_shape_table(shapes, 9, 1, 51);
  bad += matmul_case(DECO_DTYPE_BF16, 3, 517, 4096, 0, 0, 1, 77);
  bad += matmul_case(DECO_DTYPE_F16, 1, 4099, 1024, 1, 1, 3, 78);
  cr_expect_eq(bad, 0, "matmul skinny shapes: %zu bad elements", bad);
}

/* ---- SwiGLU ------------------------------------------------------------------------------ */

/* mode 0: separate out, 1: out aliases gate, 2: pointers one element off 16-byte alignment. */
static void swiglu_case(deco_dtype_t dt, size_t n, int mode, int case_id) {
  const size_t off = mode == 2 ? 1 : 0;
  char what[128];
  snprintf(what, sizeof what, "swiglu %s n=%zu mode=%d", deco_dtype_name(dt), n, mode);
  float *g = host_uniform(n + off, 61 + case_id, 1, -6.0f, 6.0f, dt);
  float *u = host_uniform(n + off, 61 + case_id, 2, -2.0f, 2.0f, dt);
  const size_t es = deco_dtype_size(dt);
  deco_test_buf_t d_g = dev_from(g, n + off, dt), d_u = dev_from(u, n + off, dt);
  deco_test_buf_t d_o = deco_test_buf_alloc(gpu, (n + off) * es);
  void *gp = (char *)d_g.ptr + off * es, *up = (char *)d_u.ptr + off * es;
  void *op = mode == 1 ? gp : (char *)d_o.ptr + off * es;
  deco_swiglu_args_t a = {.dtype = dt, .n = n, .gate = gp, .up = up, .out = op, .row_len = 0, .in_stride = 0};
  EXPECT_OK(deco_swiglu(gpu, &a), gpu);
  float *ref = malloc(sizeof(float) * n);
  deco_swiglu_args_t r = {.dtype = DECO_DTYPE_F32, .n = n, .gate = g + off, .up = u + off, .out = ref, .row_len = 0,
                          .in_stride = 0};
  EXPECT_OK(deco_swiglu(cpu, &r), cpu);
  size_t poisoned = 0;
  float *got = dev_to_host(mode == 1 ? &d_g : &d_o, n + off, dt, &poisoned);
  size_t bad = deco_test_compare(what, got + off, ref, n, tol_elementwise(dt), tol_elementwise(dt));
  if (mode != 1) cr_expect_eq(poisoned, off, "%s: %zu elements never written", what, poisoned - off);
  cr_expect(deco_test_buf_guard_ok(&d_o) && deco_test_buf_guard_ok(&d_g), "%s: guard", what);
  cr_expect_eq(bad, 0, "%s", what);
  deco_test_buf_free(&d_g);
  deco_test_buf_free(&d_u);
  deco_test_buf_free(&d_o);
  free(g);
  free(u);
  free(ref);
  free(got);
}

Test(ops_cuda, swiglu) {
  static const size_t ns[] = {1, 3, 7, 19, 733, 4099, 11008 * 3};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int ni = 0; ni < 7; ++ni)
      for (int mode = 0; mode < 3; ++mode) swiglu_case(dtypes[di], ns[ni], mode, case_id++);
}

/* ---- fill_random and convert: bit-exact ----------------------------------------------------- */

/* Host bits of x in dtype (round to nearest even, host/core/half.c). */
static uint32_t host_bits(float x, deco_dtype_t dt) {
  if (dt == DECO_DTYPE_BF16) return deco_f32_to_bf16(x);
  if (dt == DECO_DTYPE_F16) return deco_f32_to_f16(x);
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

static uint32_t raw_bits(const unsigned char *raw, size_t i, deco_dtype_t dt) {
  if (dt == DECO_DTYPE_F32) {
    uint32_t u;
    memcpy(&u, raw + 4 * i, 4);
    return u;
  }
  uint16_t h;
  memcpy(&h, raw + 2 * i, 2);
  return h;
}

static size_t compare_bits(const char *what, const deco_test_buf_t *b, const float *expect_f32, size_t n,
                           deco_dtype_t dt) {
  const size_t es = deco_dtype_size(dt);
  unsigned char *raw = malloc(n * es);
  deco_test_buf_download(b, raw, n * es);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t got = raw_bits(raw, i, dt), want = host_bits(expect_f32[i], dt);
    if (got != want) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: bits %08x, expected %08x (from %.9g)\n", what, i, got, want,
                (double)expect_f32[i]);
      bad++;
    }
  }
  if (!deco_test_buf_guard_ok(b)) bad++;
  free(raw);
  return bad;
}

static void fill_random_case(deco_dtype_t dt, size_t n, uint64_t seed, uint32_t tensor, float scale,
                             float constant) {
  char what[160];
  snprintf(what, sizeof what, "fill_random %s n=%zu seed=%llx tensor=%u scale=%g constant=%g", deco_dtype_name(dt), n,
           (unsigned long long)seed, tensor, (double)scale, (double)constant);
  deco_test_buf_t d = deco_test_buf_alloc(gpu, n * deco_dtype_size(dt));
  deco_fill_random_args_t a = {.dtype = dt, .n = n, .seed = seed, .tensor = tensor, .scale = scale,
                               .constant = constant, .out = d.ptr};
  EXPECT_OK(deco_fill_random(gpu, &a), gpu);
  float *ref = malloc(sizeof(float) * n);
  deco_fill_random_args_t r = a;
  r.dtype = DECO_DTYPE_F32;
  r.out = ref;
  EXPECT_OK(deco_fill_random(cpu, &r), cpu);
  cr_expect_eq(compare_bits(what, &d, ref, n, dt), 0, "%s", what);
  deco_test_buf_free(&d);
  free(ref);
}

Test(ops_cuda, fill_random) {
  static const size_t ns[] = {1, 7, 733, 100003};
  static const float scales[] = {0.0346410162f, 1.0f, 3.0e-3f};
  static const float constants[] = {0.0f, 0.0f, 1.0f, 0.3f};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int ni = 0; ni < 4; ++ni)
      for (int ci = 0; ci < 4; ++ci) {
        const uint64_t seed = ci == 1 ? 0xfedcba9876543210ull : 42u + case_id;
        fill_random_case(dtypes[di], ns[ni], seed, (uint32_t)case_id, scales[(ni + ci) % 3], constants[ci]);
        case_id++;
      }
}

static void convert_case(deco_dtype_t in_dt, deco_dtype_t out_dt, size_t n, int case_id) {
  char what[128];
  snprintf(what, sizeof what, "convert %s->%s n=%zu", deco_dtype_name(in_dt), deco_dtype_name(out_dt), n);
  /* Magnitudes from 1e-9 to 1e6: f16 subnormals, overflow to inf, ties. */
  float *x = malloc(sizeof(float) * n);
  float *e = host_uniform(n, 71 + case_id, 1, -9.0f * 2.3025851f, 6.0f * 2.3025851f, DECO_DTYPE_F32);
  float *sgn = host_uniform(n, 71 + case_id, 2, -1.0f, 1.0f, DECO_DTYPE_F32);
  for (size_t i = 0; i < n; ++i) x[i] = copysignf(expf(e[i]), sgn[i]);
  static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, 65504.0f, 65520.0f, 65519.0f,
                                   5.9604645e-8f, 2.9802322e-8f, 1.0f + 1.0f / 256.0f, 1.0f + 3.0f / 512.0f};
  for (size_t i = 0; i < n && i < sizeof specials / sizeof specials[0]; ++i) x[i] = specials[i];
  deco_test_round_to(x, n, in_dt); /* representable in the input dtype */
  deco_test_buf_t d_in = dev_from(x, n, in_dt);
  deco_test_buf_t d_out = deco_test_buf_alloc(gpu, n * deco_dtype_size(out_dt));
  deco_convert_args_t a = {.in_dtype = in_dt, .out_dtype = out_dt, .n = n, .in = d_in.ptr, .out = d_out.ptr};
  EXPECT_OK(deco_convert(gpu, &a), gpu);
  /* The reference converts f32 to f32 (a copy); the dtype rounding is the host's. */
  float *ref = malloc(sizeof(float) * n);
  deco_convert_args_t r = {.in_dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .n = n, .in = x, .out = ref};
  EXPECT_OK(deco_convert(cpu, &r), cpu);
  cr_expect_eq(compare_bits(what, &d_out, ref, n, out_dt), 0, "%s", what);
  deco_test_buf_free(&d_in);
  deco_test_buf_free(&d_out);
  free(x);
  free(e);
  free(sgn);
  free(ref);
}

Test(ops_cuda, convert) {
  static const size_t ns[] = {1, 7, 733, 65537};
  int case_id = 0;
  for (int ii = 0; ii < 3; ++ii)
    for (int oi = 0; oi < 3; ++oi)
      for (int ni = 0; ni < 4; ++ni) convert_case(dtypes[ii], dtypes[oi], ns[ni], case_id++);
}

/* ---- Paged cache layouts ---------------------------------------------------------------------- */

typedef struct layout {
  int n_seqs, n_real, capacity, page_size, max_pages, n_pages;
  int32_t q_indptr[17], kv_lens[16];
  int32_t *block_table; /* [n_seqs][max_pages], -1 where unused */
} layout_t;

/* Sequences with kv_len[s] cached slots of which the last n_new[s] are this
 * call's tokens; pages shuffled across the pool, spare pages left over;
 * capacity = real tokens + extra. */
static void make_layout(layout_t *L, const int *kv_len, const int *n_new, int n_seqs, int page_size, int extra,
                        uint64_t seed) {
  memset(L, 0, sizeof *L);
  L->n_seqs = n_seqs;
  L->page_size = page_size;
  L->q_indptr[0] = 0;
  int total_pages = 0;
  for (int s = 0; s < n_seqs; ++s) {
    L->q_indptr[s + 1] = L->q_indptr[s] + n_new[s];
    L->kv_lens[s] = kv_len[s];
    int need = (kv_len[s] + page_size - 1) / page_size;
    if (need + 1 > L->max_pages) L->max_pages = need + 1;
    total_pages += need;
  }
  L->n_real = L->q_indptr[n_seqs];
  L->capacity = L->n_real + extra;
  L->n_pages = total_pages + 3;
  int *perm = malloc(sizeof(int) * L->n_pages);
  for (int i = 0; i < L->n_pages; ++i) perm[i] = i;
  for (int i = L->n_pages - 1; i > 0; --i) {
    int j = (int)(deco_philox_uniform(seed, 5, 0, 0, (uint32_t)i) * (float)(i + 1));
    if (j > i) j = i;
    int tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  L->block_table = malloc(sizeof(int32_t) * n_seqs * L->max_pages);
  int next = 0;
  for (int s = 0; s < n_seqs; ++s) {
    int need = (kv_len[s] + page_size - 1) / page_size;
    for (int p = 0; p < L->max_pages; ++p) L->block_table[s * L->max_pages + p] = p < need ? perm[next++] : -1;
  }
  free(perm);
}

typedef struct dev_layout {
  deco_test_buf_t q_indptr, kv_lens, block_table;
} dev_layout_t;

static dev_layout_t upload_layout(const layout_t *L) {
  dev_layout_t d;
  d.q_indptr = dev_from_raw(L->q_indptr, sizeof(int32_t) * (L->n_seqs + 1));
  d.kv_lens = dev_from_raw(L->kv_lens, sizeof(int32_t) * L->n_seqs);
  d.block_table = dev_from_raw(L->block_table, sizeof(int32_t) * L->n_seqs * L->max_pages);
  return d;
}

static void free_layout(layout_t *L, dev_layout_t *d) {
  deco_test_buf_free(&d->q_indptr);
  deco_test_buf_free(&d->kv_lens);
  deco_test_buf_free(&d->block_table);
  free(L->block_table);
}

/* ---- KV append --------------------------------------------------------------------------------- */

static void kv_append_case(deco_dtype_t dt, int page_size, int n_kv, int hd, int corrupt, uint64_t seed) {
  static const int kv_len[] = {1, 19, 40, 37};
  static const int n_new[] = {1, 19, 1, 5};
  layout_t L;
  make_layout(&L, kv_len, n_new, 4, page_size, 3, seed);
  char what[160];
  snprintf(what, sizeof what, "kv_append %s page=%d kv_heads=%d hd=%d corrupt=%d", deco_dtype_name(dt), page_size,
           n_kv, hd, corrupt);
  const size_t row = (size_t)n_kv * hd, pool = (size_t)L.n_pages * page_size * row;
  float *kp = host_uniform(pool, seed, 1, -1.0f, 1.0f, dt), *vp = host_uniform(pool, seed, 2, -1.0f, 1.0f, dt);
  float *k = host_uniform(L.capacity * row, seed, 3, -1.0f, 1.0f, dt);
  float *v = host_uniform(L.capacity * row, seed, 4, -1.0f, 1.0f, dt);
  float *kp0 = malloc(sizeof(float) * pool), *vp0 = malloc(sizeof(float) * pool);
  memcpy(kp0, kp, sizeof(float) * pool);
  memcpy(vp0, vp, sizeof(float) * pool);
  deco_test_buf_t d_kp = dev_from(kp, pool, dt), d_vp = dev_from(vp, pool, dt);
  deco_test_buf_t d_k = dev_from(k, L.capacity * row, dt), d_v = dev_from(v, L.capacity * row, dt);

  /* Reference with the valid table. */
  deco_kv_append_args_t r = {.cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = n_kv, .head_dim = hd,
                                       .page_size = page_size, .n_pages = L.n_pages, .k_pages = kp, .v_pages = vp,
                                       .block_table = L.block_table, .max_pages_per_seq = L.max_pages},
                             .batch = {.n_seqs = L.n_seqs, .n_tokens = L.capacity, .q_indptr = L.q_indptr,
                                       .kv_lens = L.kv_lens},
                             .k = k, .v = v, .kv_stride = 0};
  EXPECT_OK(deco_kv_append(cpu, &r), cpu);
  if (corrupt) {
    /* Sequence 1 (19 tokens prefill) loses its page 1: those tokens are
     * skipped, so the page they would have filled keeps its old rows. */
    int32_t *entry = &L.block_table[1 * L.max_pages + 1];
    const int page = *entry;
    const size_t off = (size_t)page * page_size * row, cnt = (size_t)page_size * row;
    memcpy(kp + off, kp0 + off, sizeof(float) * cnt);
    memcpy(vp + off, vp0 + off, sizeof(float) * cnt);
    *entry = corrupt == 1 ? -1 : L.n_pages;
  }
  dev_layout_t d = upload_layout(&L);
  deco_kv_append_args_t a = {.cache = {.dtype = dt, .n_kv_heads = n_kv, .head_dim = hd, .page_size = page_size,
                                       .n_pages = L.n_pages, .k_pages = d_kp.ptr, .v_pages = d_vp.ptr,
                                       .block_table = d.block_table.ptr, .max_pages_per_seq = L.max_pages},
                             .batch = {.n_seqs = L.n_seqs, .n_tokens = L.capacity, .q_indptr = d.q_indptr.ptr,
                                       .kv_lens = d.kv_lens.ptr},
                             .k = d_k.ptr, .v = d_v.ptr, .kv_stride = 0};
  EXPECT_OK(deco_kv_append(gpu, &a), gpu);
  /* Whole pools, exactly: catches writes to any wrong slot (tokens past the
   * real count, skipped tokens). */
  cr_expect_eq(check_output(what, &d_kp, pool, dt, kp, 0.0f), 0, "%s (K pool)", what);
  cr_expect_eq(check_output(what, &d_vp, pool, dt, vp, 0.0f), 0, "%s (V pool)", what);
  deco_test_buf_free(&d_kp);
  deco_test_buf_free(&d_vp);
  deco_test_buf_free(&d_k);
  deco_test_buf_free(&d_v);
  free_layout(&L, &d);
  free(kp);
  free(vp);
  free(kp0);
  free(vp0);
  free(k);
  free(v);
}

Test(ops_cuda, kv_append) {
  static const int page_sizes[] = {1, 3, 16};
  static const int shapes[][2] = {{1, 8}, {2, 24}, {4, 100}, {8, 128}, {2, 256}, {3, 9}};
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int pi = 0; pi < 3; ++pi)
      for (int si = 0; si < 6; ++si)
        kv_append_case(dtypes[di], page_sizes[pi], shapes[si][0], shapes[si][1], (si + pi) % 3, 81 + case_id++);
}

/* ---- Attention ----------------------------------------------------------------------------------- */

typedef enum { SPLIT_ANY, SPLIT_NEVER, SPLIT_ALWAYS } split_expect_t;

/* Runs attention on both backends over random pools; corrupt != 0 breaks one
 * page of sequence corrupt_seq (entry corrupt_page): tokens that reach it must
 * come out NaN, the others unchanged. Returns problems found. */
static size_t attention_case(deco_dtype_t dt, const int *kv_len, const int *n_new, int n_seqs, int page_size, int n_kv,
                             int group, int hd, split_expect_t split, int corrupt_seq, int corrupt_page,
                             uint64_t seed) {
  layout_t L;
  make_layout(&L, kv_len, n_new, n_seqs, page_size, 2, seed);
  const int nh = n_kv * group;
  char what[200];
  snprintf(what, sizeof what, "attention %s seqs=%d tokens=%d page=%d kv_heads=%d group=%d hd=%d corrupt=%d/%d",
           deco_dtype_name(dt), n_seqs, L.n_real, page_size, n_kv, group, hd, corrupt_seq, corrupt_page);
  const size_t row = (size_t)n_kv * hd, pool = (size_t)L.n_pages * page_size * row;
  const size_t nq = (size_t)L.capacity * nh * hd, nq_real = (size_t)L.n_real * nh * hd;
  float *kp = host_uniform(pool, seed, 1, -1.0f, 1.0f, dt), *vp = host_uniform(pool, seed, 2, -1.0f, 1.0f, dt);
  float *q = host_uniform(nq, seed, 3, -1.0f, 1.0f, dt);
  const float scale = 1.0f / sqrtf((float)hd);

  float *ref = malloc(sizeof(float) * nq);
  deco_attention_args_t r = {.cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = n_kv, .head_dim = hd,
                                       .page_size = page_size, .n_pages = L.n_pages, .k_pages = kp, .v_pages = vp,
                                       .block_table = L.block_table, .max_pages_per_seq = L.max_pages},
                             .batch = {.n_seqs = L.n_seqs, .n_tokens = L.capacity, .q_indptr = L.q_indptr,
                                       .kv_lens = L.kv_lens},
                             .n_heads = nh, .scale = scale, .q = q, .out = ref, .q_stride = 0};
  EXPECT_OK(deco_attention(cpu, &r), cpu);
  if (corrupt_seq >= 0) {
    L.block_table[corrupt_seq * L.max_pages + corrupt_page] = (corrupt_page % 2) ? L.n_pages + 7 : -3;
    const int first_bad_slot = corrupt_page * page_size;
    const int n_s = n_new[corrupt_seq];
    for (int j = 0; j < n_s; ++j) {
      const int last = kv_len[corrupt_seq] - n_s + j;
      if (last < first_bad_slot) continue;
      float *o = ref + (size_t)(L.q_indptr[corrupt_seq] + j) * nh * hd;
      for (size_t i = 0; i < (size_t)nh * hd; ++i) o[i] = NAN;
    }
  }

  dev_layout_t d = upload_layout(&L);
  deco_test_buf_t d_kp = dev_from(kp, pool, dt), d_vp = dev_from(vp, pool, dt), d_q = dev_from(q, nq, dt);
  deco_test_buf_t d_o = deco_test_buf_alloc(gpu, nq * deco_dtype_size(dt));
  deco_attention_args_t a = {.cache = {.dtype = dt, .n_kv_heads = n_kv, .head_dim = hd, .page_size = page_size,
                                       .n_pages = L.n_pages, .k_pages = d_kp.ptr, .v_pages = d_vp.ptr,
                                       .block_table = d.block_table.ptr, .max_pages_per_seq = L.max_pages},
                             .batch = {.n_seqs = L.n_seqs, .n_tokens = L.capacity, .q_indptr = d.q_indptr.ptr,
                                       .kv_lens = d.kv_lens.ptr},
                             .n_heads = nh, .scale = scale, .q = d_q.ptr, .out = d_o.ptr, .q_stride = 0};
  size_t bad = 0;
  /* Head dims 64/128 in f16/bf16 run on the tensor-core kernel. */
  const char *path = deco_attention_path(gpu, &a);
  const int want_mma = dt != DECO_DTYPE_F32 && (hd == 64 || hd == 128);
  if ((strncmp(path, "mma", 3) == 0) != want_mma) {
    fprintf(stderr, "%s: path %s, expected the %s kernel\n", what, path, want_mma ? "tensor-core" : "SIMT");
    bad++;
  }
  const size_t ws = deco_attention_workspace_size(gpu, &a);
  if (split == SPLIT_NEVER && ws != 0) {
    fprintf(stderr, "%s: expected the single-pass path, workspace %zu\n", what, ws);
    bad++;
  }
  if (split == SPLIT_ALWAYS && ws == 0) {
    fprintf(stderr, "%s: expected the split-KV path, workspace 0\n", what);
    bad++;
  }
  deco_test_buf_t d_ws = {gpu, NULL, 0};
  if (ws) {
    d_ws = deco_test_buf_alloc(gpu, ws);
    EXPECT_OK(deco_ctx_set_workspace(gpu, d_ws.ptr, ws), gpu);
  }
  EXPECT_OK(deco_attention(gpu, &a), gpu);
  bad += check_output(what, &d_o, nq_real, dt, ref, tol_reduction(dt));
  /* Tokens past q_indptr[n_seqs] are left alone. */
  size_t poisoned = 0;
  float *all = dev_to_host(&d_o, nq, dt, &poisoned);
  if (poisoned != nq - nq_real) {
    fprintf(stderr, "%s: %zu poisoned elements, expected %zu past the real tokens\n", what, poisoned, nq - nq_real);
    bad++;
  }
  if (ws) {
    cr_assert(deco_test_buf_guard_ok(&d_ws), "%s: workspace guard", what);
    EXPECT_OK(deco_ctx_set_workspace(gpu, NULL, 0), gpu);
    deco_test_buf_free(&d_ws);
  }
  if (bad) fprintf(stderr, "FAILED: %s (path %s, workspace %zu)\n", what, deco_attention_path(gpu, &a), ws);
  free(all);
  deco_test_buf_free(&d_kp);
  deco_test_buf_free(&d_vp);
  deco_test_buf_free(&d_q);
  deco_test_buf_free(&d_o);
  free_layout(&L, &d);
  free(kp);
  free(vp);
  free(q);
  free(ref);
  return bad;
}

/* A mixed ragged batch: a one-token sequence, a prefill, a long decode, a
 * chunked prefill, a second long one. Long block tables with few tokens:
 * the split-KV path. */
Test(ops_cuda, attention_mixed_batch) {
  static const int kv_len[] = {1, 19, 733, 37, 300};
  static const int n_new[] = {1, 19, 1, 5, 12};
  static const int hds[] = {8, 24, 64, 100, 128, 256};
  static const int groups[] = {1, 2, 4, 8};
  static const int page_sizes[] = {1, 3, 16};
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int hi = 0; hi < 6; ++hi)
      for (int gi = 0; gi < 4; ++gi) {
        const int ps = page_sizes[(hi + gi + di) % 3];
        bad += attention_case(dtypes[di], kv_len, n_new, 5, ps, 2, groups[gi], hds[hi], SPLIT_ALWAYS, -1, 0,
                              91 + case_id++);
      }
  cr_expect_eq(bad, 0, "attention mixed batch: %zu problems", bad);
}

/* Short sequences only (block tables of at most 256 slots): the single-pass path. */
Test(ops_cuda, attention_short_single_pass) {
  static const int kv_len[] = {1, 19, 100, 3, 64};
  static const int n_new[] = {1, 19, 7, 3, 1};
  static const int hds[] = {8, 24, 64, 100, 128, 256};
  static const int groups[] = {1, 2, 4, 8};
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int hi = 0; hi < 6; ++hi)
      for (int gi = 0; gi < 4; ++gi) {
        const int ps = (hi + gi) % 2 ? 16 : 3;
        bad += attention_case(dtypes[di], kv_len, n_new, 5, ps, 3, groups[gi], hds[hi], SPLIT_NEVER, -1, 0,
                              191 + case_id++);
      }
  cr_expect_eq(bad, 0, "attention single pass: %zu problems", bad);
}

/* Decode: one token per sequence over long contexts, and a large GQA group
 * (more query heads per KV head than one block takes). */
Test(ops_cuda, attention_decode) {
  static const int kv_len[] = {1000, 1, 2049, 517};
  static const int n_new[] = {1, 1, 1, 1};
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di) {
    bad += attention_case(dtypes[di], kv_len, n_new, 4, 16, 8, 4, 128, SPLIT_ALWAYS, -1, 0, 291 + case_id++);
    bad += attention_case(dtypes[di], kv_len, n_new, 4, 3, 1, 32, 64, SPLIT_ANY, -1, 0, 291 + case_id++);
    bad += attention_case(dtypes[di], kv_len, n_new, 4, 1, 2, 12, 256, SPLIT_ANY, -1, 0, 291 + case_id++);
  }
  cr_expect_eq(bad, 0, "attention decode: %zu problems", bad);
}

/* More rows than the grid has row tiles. The tensor-core path gives a
 * causal batch enough row tiles per (sequence, KV head) for one sequence to
 * fill the GPU (SMs x CTAs per SM / KV heads) and lets CTAs loop over the
 * tiles of longer ones. Here 16 sequences: one-token decodes, a 300-token
 * and a 600-token prefill. On 132 SMs: 8 KV heads x 4 (8-warp CTAs, 17
 * tiles of 32 tokens: the 600-token prefill loops), also with an invalid
 * page inside it; 64 KV heads x 1 (4-warp CTAs, 5 tiles of 64 tokens: both
 * prefills loop); 1 KV head x 8 (no loop, split keys). */
Test(ops_cuda, attention_long_prefill_in_batch) {
  int kv_len[16], n_new[16];
  for (int s = 0; s < 16; ++s) {
    kv_len[s] = 1 + 37 * s;
    n_new[s] = 1;
  }
  kv_len[3] = n_new[3] = 300;
  kv_len[9] = n_new[9] = 600;
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di) {
    if (dtypes[di] == DECO_DTYPE_F32) continue;
    bad += attention_case(dtypes[di], kv_len, n_new, 16, 16, 8, 4, 64, SPLIT_ANY, -1, 0, 501 + case_id++);
    bad += attention_case(dtypes[di], kv_len, n_new, 16, 16, 8, 4, 64, SPLIT_ANY, 9, 20, 501 + case_id++);
    bad += attention_case(dtypes[di], kv_len, n_new, 16, 16, 64, 1, 64, SPLIT_ANY, -1, 0, 501 + case_id++);
    for (int hd = 64; hd <= 128; hd += 64)
      bad += attention_case(dtypes[di], kv_len, n_new, 16, 16, 1, 8, hd, SPLIT_ALWAYS, -1, 0, 501 + case_id++);
  }
  cr_expect_eq(bad, 0, "attention long prefill in a batch: %zu problems", bad);
}

/* ---- Strided inputs: q, k, v and gate, up as column blocks of fused projections ---- */

/* One sequence of T new tokens after L0 cached slots; q | k | v per token in
 * one buffer (row qkvd). RoPE, KV append, causal and tree attention through
 * the strides on the GPU against the references through the same strides. */
static size_t strided_case(deco_dtype_t dt, int H, int KH, int hd, int T, int L0, int ps, uint64_t seed) {
  const int qd = H * hd, kvd = KH * hd, qkvd = qd + 2 * kvd, len = L0 + T;
  const size_t es = deco_dtype_size(dt), nqkv = (size_t)T * qkvd;
  char what[160];
  snprintf(what, sizeof what, "strided %s heads=%d/%d hd=%d T=%d L0=%d page=%d", deco_dtype_name(dt), H, KH, hd, T,
           L0, ps);
  size_t bad = 0;
  float *qkv = host_uniform(nqkv, seed, 1, -1.0f, 1.0f, dt);
  int32_t *pos = malloc(sizeof(int32_t) * T), *parent = malloc(sizeof(int32_t) * T);
  for (int t = 0; t < T; ++t) {
    pos[t] = L0 + t;
    parent[t] = t ? (t - 1) / 2 : -1;
  }
  deco_test_buf_t d_qkv = dev_from(qkv, nqkv, dt), d_pos = dev_from_raw(pos, sizeof(int32_t) * T);
  deco_rope_args_t rg = {.dtype = dt, .style = DECO_ROPE_HALF_SPLIT, .n_tokens = T, .n_heads = H, .n_kv_heads = KH,
                         .head_dim = hd, .theta = 10000.0f, .positions = d_pos.ptr, .q = d_qkv.ptr,
                         .k = (char *)d_qkv.ptr + (size_t)qd * es, .q_stride = qkvd, .k_stride = qkvd};
  EXPECT_OK(deco_rope(gpu, &rg), gpu);
  deco_rope_args_t rc = {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_HALF_SPLIT, .n_tokens = T, .n_heads = H,
                         .n_kv_heads = KH, .head_dim = hd, .theta = 10000.0f, .positions = pos, .q = qkv, .k = qkv + qd,
                         .q_stride = qkvd, .k_stride = qkvd};
  EXPECT_OK(deco_rope(cpu, &rc), cpu);
  bad += check_output(what, &d_qkv, nqkv, dt, qkv, tol_elementwise(dt));
  /* Both sides go on from the reference's rotated values, rounded to dt. */
  deco_test_round_to(qkv, nqkv, dt);
  deco_test_buf_free(&d_qkv);
  d_qkv = dev_from(qkv, nqkv, dt);

  const int max_pages = (len + ps - 1) / ps + 1, n_pages = max_pages + 3;
  int32_t *table = malloc(sizeof(int32_t) * max_pages), meta[4] = {0, T, len, L0}; /* indptr, kv_len, prefix */
  for (int i = 0; i < max_pages; ++i) table[i] = (i * 5 + 2) % n_pages; /* 5 and n_pages coprime below */
  const size_t pool = (size_t)n_pages * ps * kvd;
  float *kp = host_uniform(pool, seed, 2, -1.0f, 1.0f, dt), *vp = host_uniform(pool, seed, 3, -1.0f, 1.0f, dt);
  deco_test_buf_t d_kp = dev_from(kp, pool, dt), d_vp = dev_from(vp, pool, dt);
  deco_test_buf_t d_table = dev_from_raw(table, sizeof(int32_t) * max_pages), d_meta = dev_from_raw(meta, sizeof meta);
  deco_test_buf_t d_parent = dev_from_raw(parent, sizeof(int32_t) * T);
  const int32_t *dm = (const int32_t *)d_meta.ptr;
  deco_paged_kv_t cg = {.dtype = dt, .n_kv_heads = KH, .head_dim = hd, .page_size = ps, .n_pages = n_pages,
                        .k_pages = d_kp.ptr, .v_pages = d_vp.ptr, .block_table = (const int32_t *)d_table.ptr,
                        .max_pages_per_seq = max_pages};
  deco_paged_kv_t cc = {.dtype = DECO_DTYPE_F32, .n_kv_heads = KH, .head_dim = hd, .page_size = ps, .n_pages = n_pages,
                        .k_pages = kp, .v_pages = vp, .block_table = table, .max_pages_per_seq = max_pages};
  deco_ragged_batch_t bg = {.n_seqs = 1, .n_tokens = T, .q_indptr = dm, .kv_lens = dm + 2};
  deco_ragged_batch_t bc = {.n_seqs = 1, .n_tokens = T, .q_indptr = meta, .kv_lens = meta + 2};
  deco_kv_append_args_t ag = {.cache = cg, .batch = bg, .k = (char *)d_qkv.ptr + (size_t)qd * es,
                              .v = (char *)d_qkv.ptr + (size_t)(qd + kvd) * es, .kv_stride = qkvd};
  deco_kv_append_args_t ac = {.cache = cc, .batch = bc, .k = qkv + qd, .v = qkv + qd + kvd, .kv_stride = qkvd};
  EXPECT_OK(deco_kv_append(gpu, &ag), gpu);
  EXPECT_OK(deco_kv_append(cpu, &ac), cpu);
  bad += check_output(what, &d_kp, pool, dt, kp, 0.0f);
  bad += check_output(what, &d_vp, pool, dt, vp, 0.0f);

  const float scale = 1.0f / sqrtf((float)hd);
  const size_t nout = (size_t)T * qd;
  float *ref = malloc(sizeof(float) * nout);
  for (int mode = 0; mode < 2; ++mode) { /* causal, then a binary tree over the same tokens */
    deco_test_buf_t d_o = deco_test_buf_alloc(gpu, nout * es);
    deco_attention_args_t tg = {.cache = cg, .batch = bg, .n_heads = H, .scale = scale, .q = d_qkv.ptr, .out = d_o.ptr,
                                .q_stride = qkvd};
    deco_attention_args_t tc = {.cache = cc, .batch = bc, .n_heads = H, .scale = scale, .q = qkv, .out = ref,
                                .q_stride = qkvd};
    deco_tree_batch_t treeg = {.n_trees = 1, .n_nodes = T, .tree_indptr = dm, .parent = (const int32_t *)d_parent.ptr};
    deco_tree_batch_t treec = {.n_trees = 1, .n_nodes = T, .tree_indptr = meta, .parent = parent};
    deco_tree_attention_args_t xg = {.cache = cg, .tree = treeg, .prefix_lens = dm + 3, .n_heads = H, .scale = scale,
                                     .q = d_qkv.ptr, .out = d_o.ptr, .q_stride = qkvd};
    deco_tree_attention_args_t xc = {.cache = cc, .tree = treec, .prefix_lens = meta + 3, .n_heads = H, .scale = scale,
                                     .q = qkv, .out = ref, .q_stride = qkvd};
    const size_t ws = mode ? deco_tree_attention_workspace_size(gpu, &xg) : deco_attention_workspace_size(gpu, &tg);
    deco_test_buf_t d_ws = {gpu, NULL, 0};
    if (ws) {
      d_ws = deco_test_buf_alloc(gpu, ws);
      EXPECT_OK(deco_ctx_set_workspace(gpu, d_ws.ptr, ws), gpu);
    }
    /* f16/bf16 at head dims 64/128 read strided q on the tensor cores. */
    const char *path = mode ? deco_tree_attention_path(gpu, &xg) : deco_attention_path(gpu, &tg);
    if ((strncmp(path, "mma", 3) == 0) != (dt != DECO_DTYPE_F32 && (hd == 64 || hd == 128))) {
      fprintf(stderr, "%s: %s attention took path %s\n", what, mode ? "tree" : "causal", path);
      bad++;
    }
    EXPECT_OK(mode ? deco_tree_attention(gpu, &xg) : deco_attention(gpu, &tg), gpu);
    EXPECT_OK(mode ? deco_tree_attention(cpu, &xc) : deco_attention(cpu, &tc), cpu);
    const size_t b = check_output(what, &d_o, nout, dt, ref, tol_reduction(dt));
    if (b)
      fprintf(stderr, "FAILED: %s %s attention (path %s)\n", what, mode ? "tree" : "causal",
              mode ? deco_tree_attention_path(gpu, &xg) : deco_attention_path(gpu, &tg));
    bad += b;
    if (ws) {
      EXPECT_OK(deco_ctx_set_workspace(gpu, NULL, 0), gpu);
      deco_test_buf_free(&d_ws);
    }
    deco_test_buf_free(&d_o);
  }
  free(ref);
  deco_test_buf_t *bufs[] = {&d_qkv, &d_pos, &d_kp, &d_vp, &d_table, &d_meta, &d_parent};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i) deco_test_buf_free(bufs[i]);
  free(qkv);
  free(pos);
  free(parent);
  free(table);
  free(kp);
  free(vp);
  return bad;
}

/* Head dims 8 and 24 take the SIMT/generic kernels, 64 and 128 in f16/bf16
 * the tensor-core ones; L0 = 700 over a 16-slot-page table splits the keys. */
Test(ops_cuda, strided_inputs) {
  static const int hds[] = {8, 24, 64, 128};
  size_t bad = 0;
  int case_id = 0;
  for (int di = 0; di < 3; ++di)
    for (int hi = 0; hi < 4; ++hi) {
      bad += strided_case(dtypes[di], 8, 2, hds[hi], 37, 5, 3, 601 + case_id++);
      bad += strided_case(dtypes[di], 4, 4, hds[hi], 19, 700, 16, 601 + case_id++);
    }
  /* Head dim 10: k starts off 16-byte alignment, the 4-byte KV append copy. */
  for (int di = 0; di < 3; ++di) bad += strided_case(dtypes[di], 3, 1, 10, 11, 4, 5, 700 + (uint64_t)di);
  cr_expect_eq(bad, 0, "strided inputs: %zu problems", bad);
}

/* SwiGLU on the halves of a fused gate | up output: rows of len elements
 * 2 len apart, into a dense output (16-byte vectors when len is a multiple
 * of 16 bytes' elements, else one element at a time). */
Test(ops_cuda, swiglu_rows) {
  static const int lens[] = {172, 256, 11};
  for (int di = 0; di < 3; ++di)
    for (int li = 0; li < 3; ++li) {
      const deco_dtype_t dt = dtypes[di];
      const int rows = 37, len = lens[li];
      const size_t n = (size_t)rows * len, es = deco_dtype_size(dt);
      char what[96];
      snprintf(what, sizeof what, "swiglu rows %s rows=%d len=%d", deco_dtype_name(dt), rows, len);
      float *h13 = host_uniform(2 * n, 71 + (uint64_t)li, (uint32_t)di, -6.0f, 6.0f, dt), *ref = malloc(sizeof(float) * n);
      deco_test_buf_t d_h13 = dev_from(h13, 2 * n, dt), d_o = deco_test_buf_alloc(gpu, n * es);
      deco_swiglu_args_t a = {.dtype = dt, .n = n, .gate = d_h13.ptr, .up = (char *)d_h13.ptr + (size_t)len * es,
                              .out = d_o.ptr, .row_len = len, .in_stride = 2 * len};
      EXPECT_OK(deco_swiglu(gpu, &a), gpu);
      deco_swiglu_args_t r = {.dtype = DECO_DTYPE_F32, .n = n, .gate = h13, .up = h13 + len, .out = ref, .row_len = len,
                              .in_stride = 2 * len};
      EXPECT_OK(deco_swiglu(cpu, &r), cpu);
      cr_expect_eq(check_output(what, &d_o, n, dt, ref, tol_elementwise(dt)), 0, "%s", what);
      deco_test_buf_free(&d_h13);
      deco_test_buf_free(&d_o);
      free(h13);
      free(ref);
    }
}

/* An invalid page: the tokens that attend to it get NaN rows, the rest of the
 * batch is unaffected; both paths. */
Test(ops_cuda, attention_invalid_page) {
  static const int kv_len[] = {19, 733, 40};
  static const int n_new[] = {19, 1, 3};
  static const int short_len[] = {19, 30, 40};
  size_t bad = 0;
  for (int di = 0; di < 3; ++di) {
    bad += attention_case(dtypes[di], kv_len, n_new, 3, 3, 2, 4, 64, SPLIT_ALWAYS, 0, 4, 401 + di);
    bad += attention_case(dtypes[di], kv_len, n_new, 3, 16, 2, 2, 100, SPLIT_ALWAYS, 1, 7, 411 + di);
    bad += attention_case(dtypes[di], short_len, n_new, 3, 3, 2, 4, 64, SPLIT_NEVER, 0, 5, 421 + di);
  }
  cr_expect_eq(bad, 0, "attention invalid page: %zu problems", bad);
}

Test(ops_cuda, attention_workspace_too_small) {
  static const int kv_len[] = {733};
  static const int n_new[] = {1};
  layout_t L;
  make_layout(&L, kv_len, n_new, 1, 16, 0, 7);
  dev_layout_t d = upload_layout(&L);
  const size_t pool = (size_t)L.n_pages * 16 * 2 * 64;
  deco_test_buf_t d_kp = deco_test_buf_alloc(gpu, pool * 2), d_vp = deco_test_buf_alloc(gpu, pool * 2);
  deco_test_buf_t d_q = deco_test_buf_alloc(gpu, 8 * 64 * 2), d_o = deco_test_buf_alloc(gpu, 8 * 64 * 2);
  deco_attention_args_t a = {
      .cache = {.dtype = DECO_DTYPE_BF16, .n_kv_heads = 2, .head_dim = 64, .page_size = 16, .n_pages = L.n_pages,
                .k_pages = d_kp.ptr, .v_pages = d_vp.ptr, .block_table = d.block_table.ptr,
                .max_pages_per_seq = L.max_pages},
      .batch = {.n_seqs = 1, .n_tokens = 1, .q_indptr = d.q_indptr.ptr, .kv_lens = d.kv_lens.ptr},
      .n_heads = 8,
      .scale = 0.125f,
      .q = d_q.ptr,
      .out = d_o.ptr, .q_stride = 0};
  const size_t ws = deco_attention_workspace_size(gpu, &a);
  cr_assert_gt(ws, 0, "one decode token over a long table should split the keys");
  EXPECT_OK(deco_ctx_set_workspace(gpu, NULL, 0), gpu);
  cr_expect_eq(deco_attention(gpu, &a), DECO_STATUS_WORKSPACE_TOO_SMALL);
  cr_expect(strstr(deco_last_error(gpu), "workspace") != NULL, "message: %s", deco_last_error(gpu));
  deco_test_buf_t d_ws = deco_test_buf_alloc(gpu, ws);
  EXPECT_OK(deco_ctx_set_workspace(gpu, d_ws.ptr, ws - 4), gpu);
  cr_expect_eq(deco_attention(gpu, &a), DECO_STATUS_WORKSPACE_TOO_SMALL);
  EXPECT_OK(deco_ctx_set_workspace(gpu, d_ws.ptr, ws), gpu);
  cr_expect_eq(deco_attention(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  EXPECT_OK(deco_ctx_synchronize(gpu), gpu);
  EXPECT_OK(deco_ctx_set_workspace(gpu, NULL, 0), gpu);
  deco_test_buf_free(&d_ws);
  deco_test_buf_free(&d_kp);
  deco_test_buf_free(&d_vp);
  deco_test_buf_free(&d_q);
  deco_test_buf_free(&d_o);
  free_layout(&L, &d);
}

/* ---- API misuse on the CUDA context ------------------------------------------------------------ */

Test(ops_cuda, misuse) {
  deco_test_buf_t b = deco_test_buf_alloc(gpu, 1 << 16);
  void *p = b.ptr;
  const int32_t *ip = (const int32_t *)p;

  deco_embedding_args_t e = {.dtype = DECO_DTYPE_BF16, .n_tokens = 1, .vocab = 10, .dim = 8, .table = p, .tokens = ip,
                             .embeds = NULL, .out = (float *)p};
  cr_expect_eq(deco_embedding(gpu, NULL), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_embedding(NULL, &e), DECO_STATUS_NULL_POINTER);
  e.out = NULL;
  cr_expect_eq(deco_embedding(gpu, &e), DECO_STATUS_NULL_POINTER);
  e.out = (float *)p;
  e.dim = 0;
  cr_expect_eq(deco_embedding(gpu, &e), DECO_STATUS_INVALID_ARGUMENT);
  e.dim = 8;
  e.dtype = (deco_dtype_t)7;
  cr_expect_neq(deco_embedding(gpu, &e), DECO_STATUS_SUCCESS);
  e.dtype = DECO_DTYPE_BF16;
  e.tokens = NULL;
  cr_expect_eq(deco_embedding(gpu, &e), DECO_STATUS_NULL_POINTER);

  deco_rmsnorm_args_t n = {.dtype = DECO_DTYPE_F16, .n_rows = 2, .dim = 8, .eps = 1e-5f, .residual = (float *)p,
                           .add = NULL, .weight = p, .out = (char *)p + 1024};
  n.weight = NULL;
  cr_expect_eq(deco_rmsnorm(gpu, &n), DECO_STATUS_NULL_POINTER);
  n.weight = p;
  n.eps = -1.0f;
  cr_expect_eq(deco_rmsnorm(gpu, &n), DECO_STATUS_INVALID_ARGUMENT);
  n.eps = 1e-5f;
  n.out = p;
  cr_expect_eq(deco_rmsnorm(gpu, &n), DECO_STATUS_INVALID_ARGUMENT, "out aliasing residual");
  n.out = (char *)p + 1024;
  n.dim = -3;
  cr_expect_eq(deco_rmsnorm(gpu, &n), DECO_STATUS_INVALID_ARGUMENT);

  deco_rope_args_t r = {.dtype = DECO_DTYPE_BF16, .style = DECO_ROPE_INTERLEAVED, .n_tokens = 1, .n_heads = 2,
                        .n_kv_heads = 2, .head_dim = 7, .theta = 10000.0f, .positions = ip, .q = p, .k = NULL,
                        .q_stride = 0, .k_stride = 0};
  cr_expect_eq(deco_rope(gpu, &r), DECO_STATUS_INVALID_ARGUMENT, "odd head_dim");
  r.head_dim = 258;
  cr_expect_eq(deco_rope(gpu, &r), DECO_STATUS_INVALID_ARGUMENT);
  r.head_dim = 8;
  r.q = NULL;
  cr_expect_eq(deco_rope(gpu, &r), DECO_STATUS_NULL_POINTER);
  r.q = p;
  r.theta = 0.0f;
  cr_expect_eq(deco_rope(gpu, &r), DECO_STATUS_INVALID_ARGUMENT);
  r.theta = 10000.0f;
  r.style = (deco_rope_style_t)5;
  cr_expect_eq(deco_rope(gpu, &r), DECO_STATUS_INVALID_ARGUMENT);

  deco_matmul_args_t m = {.dtype = DECO_DTYPE_BF16, .out_dtype = DECO_DTYPE_F16, .m = 1, .n = 8, .k = 8, .a = p, .w = p,
                          .out = (char *)p + 4096, .accumulate = 0};
  cr_expect_eq(deco_matmul(gpu, &m), DECO_STATUS_UNSUPPORTED, "bf16 -> f16 output");
  m.out_dtype = DECO_DTYPE_F32;
  m.k = 0;
  cr_expect_eq(deco_matmul(gpu, &m), DECO_STATUS_INVALID_ARGUMENT);
  m.k = 8;
  m.accumulate = 2;
  cr_expect_eq(deco_matmul(gpu, &m), DECO_STATUS_INVALID_ARGUMENT);
  m.accumulate = 0;
  m.w = NULL;
  cr_expect_eq(deco_matmul(gpu, &m), DECO_STATUS_NULL_POINTER);
  m.w = p;
  m.m = 0;
  cr_expect_eq(deco_matmul(gpu, &m), DECO_STATUS_SUCCESS, "m = 0 is a no-op");

  deco_swiglu_args_t s = {.dtype = DECO_DTYPE_F32, .n = 16, .gate = p, .up = NULL, .out = p, .row_len = 0,
                          .in_stride = 0};
  cr_expect_eq(deco_swiglu(gpu, &s), DECO_STATUS_NULL_POINTER);

  deco_fill_random_args_t f = {.dtype = DECO_DTYPE_BF16, .n = 16, .seed = 1, .tensor = 0, .scale = NAN,
                               .constant = 0.0f, .out = p};
  cr_expect_eq(deco_fill_random(gpu, &f), DECO_STATUS_INVALID_ARGUMENT);
  f.scale = 1.0f;
  f.out = NULL;
  cr_expect_eq(deco_fill_random(gpu, &f), DECO_STATUS_NULL_POINTER);

  deco_convert_args_t c = {.in_dtype = DECO_DTYPE_F32, .out_dtype = (deco_dtype_t)9, .n = 16, .in = p, .out = p};
  cr_expect_neq(deco_convert(gpu, &c), DECO_STATUS_SUCCESS);

  int32_t meta[4] = {0, 1, 1, 0};
  deco_test_buf_t d_meta = dev_from_raw(meta, sizeof meta);
  const int32_t *mp = (const int32_t *)d_meta.ptr;
  deco_attention_args_t at = {.cache = {.dtype = DECO_DTYPE_BF16, .n_kv_heads = 2, .head_dim = 64, .page_size = 16,
                                        .n_pages = 4, .k_pages = p, .v_pages = p, .block_table = mp,
                                        .max_pages_per_seq = 1},
                              .batch = {.n_seqs = 1, .n_tokens = 1, .q_indptr = mp, .kv_lens = mp + 1}, .n_heads = 8,
                              .scale = 0.125f, .q = p, .out = p, .q_stride = 0};
  at.cache.head_dim = 7;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_INVALID_ARGUMENT, "head_dim 7");
  at.cache.head_dim = 257;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_INVALID_ARGUMENT, "head_dim 257");
  at.cache.head_dim = 64;
  at.n_heads = 7;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_INVALID_ARGUMENT, "n_heads not a multiple of n_kv_heads");
  at.n_heads = 8;
  at.cache.page_size = 0;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_INVALID_ARGUMENT);
  at.cache.page_size = 16;
  at.scale = -1.0f;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_INVALID_ARGUMENT);
  at.scale = 0.125f;
  at.cache.block_table = NULL;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_NULL_POINTER);
  cr_expect_eq(deco_attention_workspace_size(gpu, &at), 0, "invalid args need no workspace");
  at.cache.block_table = mp;
  at.batch.kv_lens = NULL;
  cr_expect_eq(deco_attention(gpu, &at), DECO_STATUS_NULL_POINTER);

  deco_kv_append_args_t ka = {.cache = {.dtype = DECO_DTYPE_BF16, .n_kv_heads = 2, .head_dim = 64, .page_size = 16,
                                        .n_pages = 4, .k_pages = p, .v_pages = p, .block_table = mp,
                                        .max_pages_per_seq = 1},
                              .batch = {.n_seqs = 0, .n_tokens = 1, .q_indptr = mp, .kv_lens = mp + 1}, .k = p, .v = p,
                              .kv_stride = 0};
  cr_expect_eq(deco_kv_append(gpu, &ka), DECO_STATUS_INVALID_ARGUMENT, "n_seqs 0");
  ka.batch.n_seqs = 1;
  ka.k = NULL;
  cr_expect_eq(deco_kv_append(gpu, &ka), DECO_STATUS_NULL_POINTER);

  /* The context still works after all that. */
  EXPECT_OK(deco_ctx_synchronize(gpu), gpu);
  deco_test_buf_free(&d_meta);
  deco_test_buf_free(&b);
}

/* ---- Both backends, same code, public API only --------------------------------------------------- */

/* A miniature Llama layer (embedding, RMSNorm, QKV, RoPE, KV append,
 * attention, O with residual, SwiGLU MLP, final norm, f32 logits) over a
 * 7-token prefill then one decode token, written once against a context:
 * memory through deco_malloc / deco_memcpy, compute through deco_<op>. */
enum { MINI_DIM = 64, MINI_HEADS = 4, MINI_KV = 2, MINI_HD = 16, MINI_HIDDEN = 172, MINI_VOCAB = 97, MINI_PAGE = 3 };

typedef struct mini_model {
  void *emb, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *norm1, *norm2, *normf;
} mini_model_t;

static void *ctx_upload(deco_ctx_t *ctx, const float *x, size_t n) {
  void *p = NULL;
  EXPECT_OK(deco_malloc(ctx, &p, n * sizeof(float)), ctx);
  EXPECT_OK(deco_memcpy(ctx, p, x, n * sizeof(float), DECO_COPY_HOST_TO_CTX), ctx);
  return p;
}

static void *ctx_zeros(deco_ctx_t *ctx, size_t bytes) {
  void *p = NULL;
  EXPECT_OK(deco_malloc(ctx, &p, bytes), ctx);
  EXPECT_OK(deco_memset(ctx, p, 0, bytes), ctx);
  return p;
}

/* Runs the prefill (tokens[0..6]) and the decode (tokens[7]); logits of all 8 positions. */
static void mini_forward(deco_ctx_t *ctx, const int32_t *tokens, float *logits_out) {
  const size_t d = MINI_DIM, kvd = MINI_KV * MINI_HD, hid = MINI_HIDDEN, V = MINI_VOCAB;
  const float s = 0.2f;
  float *host = malloc(sizeof(float) * V * d * 2);
  mini_model_t w;
#define MINI_W(field, n, stream, lo, hi)                          \
  deco_test_fill_uniform(host, (n), 2024, (stream), (lo), (hi)); \
  w.field = ctx_upload(ctx, host, (n))
  MINI_W(emb, V * d, 1, -1.0f, 1.0f);
  MINI_W(wq, d * d, 2, -s, s);
  MINI_W(wk, kvd * d, 3, -s, s);
  MINI_W(wv, kvd * d, 4, -s, s);
  MINI_W(wo, d * d, 5, -s, s);
  MINI_W(w1, hid * d, 6, -s, s);
  MINI_W(w2, d * hid, 7, -s, s);
  MINI_W(w3, hid * d, 8, -s, s);
  MINI_W(norm1, d, 9, 0.8f, 1.2f);
  MINI_W(norm2, d, 10, 0.8f, 1.2f);
  MINI_W(normf, d, 11, 0.8f, 1.2f);
#undef MINI_W
  free(host);

  const int n_pages = 4, max_pages = 3;
  const int32_t table[3] = {2, 0, 3};
  void *kpool = ctx_zeros(ctx, sizeof(float) * n_pages * MINI_PAGE * kvd);
  void *vpool = ctx_zeros(ctx, sizeof(float) * n_pages * MINI_PAGE * kvd);
  void *d_table = NULL, *d_tok = NULL, *d_pos = NULL, *d_meta = NULL;
  EXPECT_OK(deco_malloc(ctx, &d_table, sizeof table), ctx);
  EXPECT_OK(deco_memcpy(ctx, d_table, table, sizeof table, DECO_COPY_HOST_TO_CTX), ctx);
  EXPECT_OK(deco_malloc(ctx, &d_tok, sizeof(int32_t) * 8), ctx);
  EXPECT_OK(deco_memcpy(ctx, d_tok, tokens, sizeof(int32_t) * 8, DECO_COPY_HOST_TO_CTX), ctx);
  const int32_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_OK(deco_malloc(ctx, &d_pos, sizeof pos), ctx);
  EXPECT_OK(deco_memcpy(ctx, d_pos, pos, sizeof pos, DECO_COPY_HOST_TO_CTX), ctx);
  EXPECT_OK(deco_malloc(ctx, &d_meta, sizeof(int32_t) * 3), ctx);

  float *x = ctx_zeros(ctx, sizeof(float) * 7 * d);
  void *xb = ctx_zeros(ctx, sizeof(float) * 7 * d), *q = ctx_zeros(ctx, sizeof(float) * 7 * d);
  void *k = ctx_zeros(ctx, sizeof(float) * 7 * kvd), *v = ctx_zeros(ctx, sizeof(float) * 7 * kvd);
  void *att = ctx_zeros(ctx, sizeof(float) * 7 * d), *h1 = ctx_zeros(ctx, sizeof(float) * 7 * hid);
  void *h3 = ctx_zeros(ctx, sizeof(float) * 7 * hid), *logits = ctx_zeros(ctx, sizeof(float) * 7 * V);
  void *ws = NULL;
  size_t ws_bytes = 0;

  const int starts[2] = {0, 7}, counts[2] = {7, 1};
  for (int step = 0; step < 2; ++step) {
    const int n = counts[step], t0 = starts[step];
    const int32_t meta[3] = {0, n, t0 + n}; /* q_indptr[2], kv_lens[1] */
    EXPECT_OK(deco_memcpy(ctx, d_meta, meta, sizeof meta, DECO_COPY_HOST_TO_CTX), ctx);
    const int32_t *qi = (const int32_t *)d_meta, *kl = (const int32_t *)d_meta + 2;
    deco_embedding_args_t ea = {.dtype = DECO_DTYPE_F32, .n_tokens = n, .vocab = MINI_VOCAB, .dim = MINI_DIM,
                                .table = w.emb, .tokens = (const int32_t *)d_tok + t0, .embeds = NULL, .out = x};
    EXPECT_OK(deco_embedding(ctx, &ea), ctx);
    deco_rmsnorm_args_t na = {.dtype = DECO_DTYPE_F32, .n_rows = n, .dim = MINI_DIM, .eps = 1e-5f, .residual = x,
                              .add = NULL, .weight = w.norm1, .out = xb};
    EXPECT_OK(deco_rmsnorm(ctx, &na), ctx);
    deco_matmul_args_t mq = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_DIM, .k = MINI_DIM,
                             .a = xb, .w = w.wq, .out = q, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &mq), ctx);
    deco_matmul_args_t mk = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = (int)kvd, .k = MINI_DIM,
                             .a = xb, .w = w.wk, .out = k, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &mk), ctx);
    deco_matmul_args_t mv = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = (int)kvd, .k = MINI_DIM,
                             .a = xb, .w = w.wv, .out = v, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &mv), ctx);
    deco_rope_args_t ra = {.dtype = DECO_DTYPE_F32, .style = DECO_ROPE_INTERLEAVED, .n_tokens = n,
                           .n_heads = MINI_HEADS, .n_kv_heads = MINI_KV, .head_dim = MINI_HD, .theta = 10000.0f,
                           .positions = (const int32_t *)d_pos + t0, .q = q, .k = k, .q_stride = 0, .k_stride = 0};
    EXPECT_OK(deco_rope(ctx, &ra), ctx);
    deco_paged_kv_t cache = {.dtype = DECO_DTYPE_F32, .n_kv_heads = MINI_KV, .head_dim = MINI_HD,
                             .page_size = MINI_PAGE, .n_pages = n_pages, .k_pages = kpool, .v_pages = vpool,
                             .block_table = (const int32_t *)d_table, .max_pages_per_seq = max_pages};
    deco_ragged_batch_t batch = {.n_seqs = 1, .n_tokens = n, .q_indptr = qi, .kv_lens = kl};
    deco_kv_append_args_t ka = {.cache = cache, .batch = batch, .k = k, .v = v, .kv_stride = 0};
    EXPECT_OK(deco_kv_append(ctx, &ka), ctx);
    deco_attention_args_t aa = {.cache = cache, .batch = batch, .n_heads = MINI_HEADS, .scale = 0.25f, .q = q,
                                .out = att, .q_stride = 0};
    size_t need = deco_attention_workspace_size(ctx, &aa);
    if (need > ws_bytes) {
      deco_free(ctx, ws);
      EXPECT_OK(deco_malloc(ctx, &ws, need), ctx);
      ws_bytes = need;
      EXPECT_OK(deco_ctx_set_workspace(ctx, ws, ws_bytes), ctx);
    }
    EXPECT_OK(deco_attention(ctx, &aa), ctx);
    deco_matmul_args_t mo = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_DIM, .k = MINI_DIM,
                             .a = att, .w = w.wo, .out = xb, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &mo), ctx);
    deco_rmsnorm_args_t n2 = {.dtype = DECO_DTYPE_F32, .n_rows = n, .dim = MINI_DIM, .eps = 1e-5f, .residual = x,
                              .add = xb, .weight = w.norm2, .out = q};
    EXPECT_OK(deco_rmsnorm(ctx, &n2), ctx);
    deco_matmul_args_t m1 = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_HIDDEN,
                             .k = MINI_DIM, .a = q, .w = w.w1, .out = h1, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &m1), ctx);
    deco_matmul_args_t m3 = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_HIDDEN,
                             .k = MINI_DIM, .a = q, .w = w.w3, .out = h3, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &m3), ctx);
    deco_swiglu_args_t sa = {.dtype = DECO_DTYPE_F32, .n = (size_t)n * MINI_HIDDEN, .gate = h1, .up = h3, .out = h1,
                             .row_len = 0, .in_stride = 0};
    EXPECT_OK(deco_swiglu(ctx, &sa), ctx);
    deco_matmul_args_t m2 = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_DIM,
                             .k = MINI_HIDDEN, .a = h1, .w = w.w2, .out = x, .accumulate = 1};
    EXPECT_OK(deco_matmul(ctx, &m2), ctx); /* residual += down(...) */
    deco_rmsnorm_args_t nf = {.dtype = DECO_DTYPE_F32, .n_rows = n, .dim = MINI_DIM, .eps = 1e-5f, .residual = x,
                              .add = NULL, .weight = w.normf, .out = xb};
    EXPECT_OK(deco_rmsnorm(ctx, &nf), ctx);
    deco_matmul_args_t ml = {.dtype = DECO_DTYPE_F32, .out_dtype = DECO_DTYPE_F32, .m = n, .n = MINI_VOCAB,
                             .k = MINI_DIM, .a = xb, .w = w.emb, .out = logits, .accumulate = 0};
    EXPECT_OK(deco_matmul(ctx, &ml), ctx);
    EXPECT_OK(deco_memcpy(ctx, logits_out + (size_t)t0 * V, logits, sizeof(float) * n * V, DECO_COPY_CTX_TO_HOST),
              ctx);
  }
  EXPECT_OK(deco_ctx_set_workspace(ctx, NULL, 0), ctx);
  void *all[] = {w.emb, w.wq, w.wk, w.wv, w.wo, w.w1, w.w2, w.w3, w.norm1, w.norm2, w.normf, kpool, vpool,
                 d_table, d_tok, d_pos, d_meta, x, xb, q, k, v, att, h1, h3, logits, ws};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) deco_free(ctx, all[i]);
}

Test(ops_cuda, backends_agree_public_api) {
  const int32_t tokens[8] = {1, 42, 7, 96, 0, 13, 13, 55};
  float *lc = malloc(sizeof(float) * 8 * MINI_VOCAB), *lg = malloc(sizeof(float) * 8 * MINI_VOCAB);
  mini_forward(cpu, tokens, lc);
  mini_forward(gpu, tokens, lg);
  cr_expect_eq(deco_test_compare("mini forward logits (cuda vs cpu)", lg, lc, 8 * MINI_VOCAB, DECO_TOL_F32_REDUCTION,
                                 DECO_TOL_F32_REDUCTION),
               0);
  float mx = 0.0f;
  for (int i = 0; i < 8 * MINI_VOCAB; ++i) mx = fmaxf(mx, fabsf(lc[i]));
  cr_expect_gt(mx, 0.1f, "logits should not be trivially small (max |logit| %g)", (double)mx);
  free(lc);
  free(lg);
}

/* ---- A small-shape pass over every op: the GPU script runs the tests whose
 * names start with "small" under compute-sanitizer memcheck and racecheck ---- */

Test(ops_cuda, small_ops) {
  static const int kv_len[] = {1, 19, 300};
  static const int n_new[] = {1, 5, 1};
  static const int short_len[] = {3, 19};
  static const int short_new[] = {3, 2};
  size_t bad = 0;
  for (int di = 0; di < 3; ++di) {
    const deco_dtype_t dt = dtypes[di];
    embedding_case(dt, 19, 7, 3, 500 + di);
    rmsnorm_case(dt, 733, 3, 1, 510 + di);
    rope_case(dt, di % 2, 24, 4, 2, 3, 0, 10000.0f, 520 + di);
    swiglu_case(dt, 733, di, 530 + di);
    fill_random_case(dt, 733, 5, 7, 0.5f, 0.0f);
    convert_case(dt, dtypes[(di + 1) % 3], 733, 540 + di);
    bad += matmul_case(dt, 2, 19, 64, di == 1, di == 2, 0, 550 + di);   /* skinny in f16/bf16 */
    bad += matmul_case(dt, 9, 19, 72, di == 2, di == 1, 0, 560 + di);   /* cuBLAS */
    kv_append_case(dt, 3, 2, 24, di, 570 + di);
    bad += attention_case(dt, kv_len, n_new, 3, 3, 2, 4, 24, SPLIT_ALWAYS, di == 1 ? 2 : -1, 50, 580 + di);
    bad += attention_case(dt, short_len, short_new, 2, 16, 1, 3, 100, SPLIT_NEVER, -1, 0, 590 + di);
  }
  cr_expect_eq(bad, 0, "small ops: %zu problems", bad);
}
