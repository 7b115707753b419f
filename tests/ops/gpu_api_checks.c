/* tests/ops/gpu_api_checks.c — the checks of tests/gpu/test_ops_cuda.c that
 * are not cases of the harness's table, folded into gpu_test_ops_harness:
 * argument validation on the CUDA context, a split attention refusing a
 * workspace that is too small, and a miniature Llama layer written once
 * against the public API that both backends must agree on.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "common/tolerances.h"
#include "deco/deco.h"
#include "gpu/gpu_suite.h"

DECO_GPU_SUITE(ops_harness_gpu_api, 300);

#define EXPECT_OK(st, ctx) cr_assert_eq((st), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx))

static deco_test_buf_t dev_from_raw(const void *p, size_t bytes) {
  deco_test_buf_t b = deco_test_buf_alloc(gpu, bytes);
  if (bytes) deco_test_buf_upload(&b, p, bytes);
  return b;
}


/* ---- Paged cache layouts ---- */

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

Test(ops_harness_gpu_api, attention_workspace_too_small) {
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

Test(ops_harness_gpu_api, misuse) {
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

Test(ops_harness_gpu_api, backends_agree_public_api) {
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
