/* tests/ops/harness_attention.c — the harness's paged-cache ops: KV append,
 * causal attention and tree attention (deco/kv.h, deco/attention.h,
 * deco/tree.h). Oracles in double: slots found from the block table here,
 * softmax over the allowed keys (a dense mask built from each node's root
 * path for trees). Bad device data (a broken block-table entry): the CPU
 * reference refuses it; CUDA skips the tokens that would write through it
 * (KV append) or gives NaN rows to the tokens that attend through it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/tree_case.h"
#include "ops/harness.h"

/* iv slots shared by the three ops. */
enum {
  IV_BT = 0, IV_INDPTR, IV_LENS, IV_KP, IV_VP, IV_K, IV_V, IV_Q, IV_OUT, IV_PARENT, IV_PREFIX,
  IV_NSEQ = 16, IV_NREAL, IV_CAP, IV_MAXP, IV_NPAGES, IV_H, IV_QSTRIDE, IV_QKV_ROW
};

/* A ragged batch over a paged cache: sequence s has kv_len[s] slots, its last
 * n_new[s] are this call's tokens; pages handed out shuffled, three spare
 * pages, one spare table entry per row (-1); capacity = real tokens + extra. */
static void kv_layout(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int S = c->kv.n_seqs, ps = c->kv.page_size;
  int max_pages = 0, total_pages = 0, n_real = 0;
  for (int s = 0; s < S; ++s) {
    const int need = (c->kv.kv_len[s] + ps - 1) / ps;
    if (need + 1 > max_pages) max_pages = need + 1;
    total_pages += need;
    n_real += c->kv.n_new[s];
  }
  const int n_pages = total_pages + 3;
  h->iv[IV_NSEQ] = S;
  h->iv[IV_NREAL] = n_real;
  h->iv[IV_CAP] = n_real + c->kv.extra;
  h->iv[IV_MAXP] = max_pages;
  h->iv[IV_NPAGES] = n_pages;
  h->iv[IV_H] = c->kv.n_kv * c->kv.group;
  int *perm = malloc(sizeof(int) * (size_t)n_pages);
  uint64_t rs = c->seed ^ 0x5eedu;
  for (int i = 0; i < n_pages; ++i) perm[i] = i;
  for (int i = n_pages - 1; i > 0; --i) {
    const int j = harness_rng_int(&rs, 0, i), tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  h->iv[IV_BT] = ht_add(h, "block_table", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)S * max_pages);
  int32_t *bt = h->t[h->iv[IV_BT]].i;
  int next = 0;
  for (int s = 0; s < S; ++s) {
    const int need = (c->kv.kv_len[s] + ps - 1) / ps;
    for (int p = 0; p < max_pages; ++p) bt[s * max_pages + p] = p < need ? perm[next++] : -1;
  }
  free(perm);
  h->iv[IV_INDPTR] = ht_add(h, "q_indptr", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)S + 1);
  h->iv[IV_LENS] = ht_add(h, "kv_lens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)S);
  int32_t *ip = h->t[h->iv[IV_INDPTR]].i, *lens = h->t[h->iv[IV_LENS]].i;
  ip[0] = 0;
  for (int s = 0; s < S; ++s) {
    ip[s + 1] = ip[s] + c->kv.n_new[s];
    lens[s] = c->kv.kv_len[s];
  }
}

/* Pool row (page * page_size + offset) of slot p of sequence s, from the
 * block table as it is now; -1 when the entry is not a page of the pool. */
static long long pool_row(const hcase_t *h, int s, int p) {
  const int ps = h->c->kv.page_size, page = h->t[h->iv[IV_BT]].i[s * h->iv[IV_MAXP] + p / ps];
  if (page < 0 || page >= h->iv[IV_NPAGES]) return -1;
  return (long long)page * ps + p % ps;
}

/* The paged cache over the run's buffers (the IV_ slots every op here
 * fills), of the case's head count, head dim and page size. */
static deco_paged_kv_t kv_cache_view(const hcase_t *h, void *const *p, const harness_target_t *t, int n_kv,
                                     int head_dim, int page_size) {
  deco_paged_kv_t v = DECO_PAGED_KV_INIT;
  v.dtype = harness_dt(t, h->c->dtype);
  v.n_kv_heads = n_kv;
  v.head_dim = head_dim;
  v.page_size = page_size;
  v.n_pages = h->iv[IV_NPAGES];
  v.k_pages = p[h->iv[IV_KP]];
  v.v_pages = p[h->iv[IV_VP]];
  v.block_table = p[h->iv[IV_BT]];
  v.max_pages_per_seq = h->iv[IV_MAXP];
  return v;
}

static deco_ragged_batch_t kv_batch(const hcase_t *h, void *const *p) {
  deco_ragged_batch_t b = DECO_RAGGED_BATCH_INIT;
  b.n_seqs = h->iv[IV_NSEQ];
  b.n_tokens = h->iv[IV_CAP];
  b.q_indptr = p[h->iv[IV_INDPTR]];
  b.kv_lens = p[h->iv[IV_LENS]];
  return b;
}

/* ---- kv_append: token j of sequence s into slot kv_len[s] - n_s + j. Exact. ---- */

static void kv_append_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  kv_layout(h);
  const size_t row = (size_t)c->kv.n_kv * c->kv.head_dim;
  const size_t pool = (size_t)h->iv[IV_NPAGES] * c->kv.page_size * row, cap = (size_t)h->iv[IV_CAP];
  h->iv[IV_KP] = ht_uniform(h, "k_pages", HT_INOUT, c->dtype, pool, 1, -1.0f, 1.0f);
  h->iv[IV_VP] = ht_uniform(h, "v_pages", HT_INOUT, c->dtype, pool, 2, -1.0f, 1.0f);
  if (c->kv.fused) { /* q | k | v rows of a fused projection: kv_stride = the row */
    const size_t qkv_row = (size_t)h->iv[IV_H] * c->kv.head_dim + 2 * row;
    h->iv[IV_QKV_ROW] = (int)qkv_row;
    h->iv[IV_K] = ht_uniform(h, "qkv", HT_IN, c->dtype, cap * qkv_row, 3, -1.0f, 1.0f);
    h->iv[IV_V] = -1;
  } else {
    h->iv[IV_QKV_ROW] = 0;
    h->iv[IV_K] = ht_uniform(h, "k", HT_IN, c->dtype, cap * row, 3, -1.0f, 1.0f);
    h->iv[IV_V] = ht_uniform(h, "v", HT_IN, c->dtype, cap * row, 4, -1.0f, 1.0f);
  }
}

/* Source row of token t's K (which 0) or V (1). */
static const float *kv_source(const hcase_t *h, int which, int tok) {
  const deco_op_case_t *c = h->c;
  const size_t row = (size_t)c->kv.n_kv * c->kv.head_dim;
  if (h->iv[IV_QKV_ROW]) {
    const size_t qd = (size_t)h->iv[IV_H] * c->kv.head_dim;
    return h->t[h->iv[IV_K]].f + (size_t)tok * h->iv[IV_QKV_ROW] + qd + (size_t)which * row;
  }
  return h->t[h->iv[which ? IV_V : IV_K]].f + (size_t)tok * row;
}

static void kv_append_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const size_t row = (size_t)c->kv.n_kv * c->kv.head_dim;
  for (int w = 0; w < 2; ++w) {
    const int k = h->iv[w ? IV_VP : IV_KP];
    float *e = ht_expect_f(h, k);
    memcpy(e, h->t[k].f, sizeof(float) * h->t[k].n);
    for (int s = 0; s < c->kv.n_seqs; ++s)
      for (int j = 0; j < c->kv.n_new[s]; ++j) {
        const int slot = c->kv.kv_len[s] - c->kv.n_new[s] + j, tok = h->t[h->iv[IV_INDPTR]].i[s] + j;
        const long long r = pool_row(h, s, slot);
        if (r >= 0) memcpy(e + (size_t)r * row, kv_source(h, w, tok), sizeof(float) * row);
      }
  }
}

/* Sequence 1 loses page 1: its tokens there are skipped, so that page keeps
 * its old rows. */
static void kv_append_corrupt(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  int32_t *entry = &h->t[h->iv[IV_BT]].i[1 * h->iv[IV_MAXP] + 1];
  const int page = *entry;
  const size_t row = (size_t)c->kv.n_kv * c->kv.head_dim, cnt = (size_t)c->kv.page_size * row;
  for (int w = 0; w < 2; ++w) {
    ht_t *x = &h->t[h->iv[w ? IV_VP : IV_KP]];
    if (x->ef) memcpy(x->ef + (size_t)page * cnt, x->f + (size_t)page * cnt, sizeof(float) * cnt);
  }
  *entry = c->kv.corrupt == 1 ? -1 : h->iv[IV_NPAGES];
}

static deco_status_t kv_append_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_kv_append_args_t a = DECO_KV_APPEND_ARGS_INIT;
  a.cache = kv_cache_view(h, p, t, c->kv.n_kv, c->kv.head_dim, c->kv.page_size);
  a.batch = kv_batch(h, p);
  if (h->iv[IV_QKV_ROW]) {
    const size_t es = deco_dtype_size(a.cache.dtype), qd = (size_t)h->iv[IV_H] * c->kv.head_dim;
    const size_t row = (size_t)c->kv.n_kv * c->kv.head_dim;
    a.k = (const char *)p[h->iv[IV_K]] + qd * es;
    a.v = (const char *)p[h->iv[IV_K]] + (qd + row) * es;
    a.kv_stride = h->iv[IV_QKV_ROW];
  } else {
    a.k = p[h->iv[IV_K]];
    a.v = p[h->iv[IV_V]];
  }
  return HARNESS_CALL(t, kv_append, &a);
}

const harness_op_t harness_op_kv_append = {DECO_OP_KV_APPEND, kv_append_setup, kv_append_oracle, kv_append_call,
                                           kv_append_corrupt, harness_cpu_f32_only};

/* ---- attention: token j of sequence s attends to slots 0..kv_len - n_s + j
 * of its sequence; query head h reads KV head h / group. ---- */

static void attention_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  kv_layout(h);
  const int hd = c->kv.head_dim, H = h->iv[IV_H];
  const size_t row = (size_t)c->kv.n_kv * hd, pool = (size_t)h->iv[IV_NPAGES] * c->kv.page_size * row;
  const size_t cap = (size_t)h->iv[IV_CAP];
  h->iv[IV_KP] = ht_uniform(h, "k_pages", HT_IN, c->dtype, pool, 1, -1.0f, 1.0f);
  h->iv[IV_VP] = ht_uniform(h, "v_pages", HT_IN, c->dtype, pool, 2, -1.0f, 1.0f);
  /* Fused: q is the first block of q | k | v rows (q_stride = the row). */
  h->iv[IV_QSTRIDE] = c->kv.fused ? (int)((size_t)H * hd + 2 * row) : H * hd;
  h->iv[IV_Q] = ht_uniform(h, "q", HT_IN, c->dtype, cap * (size_t)h->iv[IV_QSTRIDE], 3, -1.0f, 1.0f);
  h->iv[IV_OUT] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, cap * H * hd);
  h->t[h->iv[IV_OUT]].n_written = (size_t)h->iv[IV_NREAL] * H * hd; /* tokens past the real count: untouched */
}

/* Softmax attention of one query over the listed pool rows, in double. */
static void attend(const float *q, const float *kp, const float *vp, const long long *rows, int n, size_t kv_row,
                   size_t kvh, int hd, double scale, double *sc, float *out) {
  double mx = -INFINITY, sum = 0.0;
  for (int p = 0; p < n; ++p) {
    const float *k = kp + (size_t)rows[p] * kv_row + kvh;
    double d = 0.0;
    for (int i = 0; i < hd; ++i) d += (double)q[i] * k[i];
    sc[p] = d * scale;
    if (sc[p] > mx) mx = sc[p];
  }
  for (int p = 0; p < n; ++p) sum += (sc[p] = exp(sc[p] - mx));
  for (int i = 0; i < hd; ++i) {
    double acc = 0.0;
    for (int p = 0; p < n; ++p) acc += sc[p] * vp[(size_t)rows[p] * kv_row + kvh + i];
    out[i] = (float)(acc / sum);
  }
}

static void attention_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int hd = c->kv.head_dim, H = h->iv[IV_H], group = c->kv.group;
  const size_t kv_row = (size_t)c->kv.n_kv * hd, qs = (size_t)h->iv[IV_QSTRIDE];
  const double scale = 1.0 / sqrt((double)hd);
  float *out = ht_expect_f(h, h->iv[IV_OUT]);
  int max_len = 1;
  for (int s = 0; s < c->kv.n_seqs; ++s)
    if (c->kv.kv_len[s] > max_len) max_len = c->kv.kv_len[s];
  long long *rows = malloc(sizeof(long long) * (size_t)max_len);
  double *sc = malloc(sizeof(double) * (size_t)max_len);
  for (int s = 0; s < c->kv.n_seqs; ++s) {
    const int n = c->kv.n_new[s], len = c->kv.kv_len[s], t0 = h->t[h->iv[IV_INDPTR]].i[s];
    for (int p = 0; p < len; ++p) rows[p] = pool_row(h, s, p);
    for (int j = 0; j < n; ++j)
      for (int hh = 0; hh < H; ++hh)
        attend(h->t[h->iv[IV_Q]].f + (size_t)(t0 + j) * qs + (size_t)hh * hd, h->t[h->iv[IV_KP]].f,
               h->t[h->iv[IV_VP]].f, rows, len - n + j + 1, kv_row, (size_t)(hh / group) * hd, hd, scale, sc,
               out + ((size_t)(t0 + j) * H + hh) * hd);
  }
  free(rows);
  free(sc);
}

/* A page id outside the pool in one entry: the tokens whose keys reach it get
 * NaN rows, the rest of the batch is unchanged. */
static void attention_corrupt(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int cs = c->kv.corrupt_seq, cp = c->kv.corrupt_page, H = h->iv[IV_H], hd = c->kv.head_dim;
  h->t[h->iv[IV_BT]].i[cs * h->iv[IV_MAXP] + cp] = (cp % 2) ? h->iv[IV_NPAGES] + 7 : -3;
  float *e = h->t[h->iv[IV_OUT]].ef;
  if (!e) return;
  const int n = c->kv.n_new[cs], t0 = h->t[h->iv[IV_INDPTR]].i[cs];
  for (int j = 0; j < n; ++j) {
    if (c->kv.kv_len[cs] - n + j < cp * c->kv.page_size) continue;
    for (size_t i = 0; i < (size_t)H * hd; ++i) e[(size_t)(t0 + j) * H * hd + i] = NAN;
  }
}

static deco_status_t attention_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_attention_args_t a = DECO_ATTENTION_ARGS_INIT;
  a.cache = kv_cache_view(h, p, t, c->kv.n_kv, c->kv.head_dim, c->kv.page_size);
  a.batch = kv_batch(h, p);
  a.n_heads = h->iv[IV_H];
  a.scale = 1.0f / sqrtf((float)c->kv.head_dim);
  a.q = p[h->iv[IV_Q]];
  a.out = p[h->iv[IV_OUT]];
  a.q_stride = c->kv.fused ? h->iv[IV_QSTRIDE] : 0;
  if (!t->ref) {
    harness_path(t, deco_attention_path(t->ctx, &a));
    harness_workspace(t, deco_attention_workspace_size(t->ctx, &a));
  }
  return HARNESS_CALL(t, attention, &a);
}

const harness_op_t harness_op_attention = {DECO_OP_ATTENTION, attention_setup, attention_oracle, attention_call,
                                           attention_corrupt, harness_cpu_f32_only};

/* ---- tree attention: node i of tree b attends to slots 0..L_b-1 and to the
 * slots L_b + j of its ancestors j and itself. Cases from the shared
 * builder (tests/common/tree_case.h). ---- */

static void tree_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const deco_test_tree_spec_t spec = {.dtype = c->dtype, .B = c->tree.B, .sizes = c->tree.sizes,
                                      .prefix = c->tree.prefix, .n_kv = c->tree.n_kv, .group = c->tree.group,
                                      .hd = c->tree.head_dim, .page_size = c->tree.page_size,
                                      .extra_cap = c->tree.extra_cap, .shape = c->tree.shape,
                                      .spare_pages = c->tree.spare_pages, .pad_parent = -1, .seed = c->seed,
                                      .no_values = h->shapes_only};
  deco_test_tree_case_t tc;
  deco_test_tree_case_build(&spec, &tc);
  const int H = tc.H, hd = tc.hd, cap = tc.cap_nodes > 0 ? tc.cap_nodes : 1;
  h->iv[IV_NREAL] = tc.total;
  h->iv[IV_CAP] = tc.cap_nodes;
  h->iv[IV_MAXP] = tc.max_pages;
  h->iv[IV_NPAGES] = tc.n_pages;
  h->iv[IV_H] = H;
  h->iv[IV_QSTRIDE] = H * hd + c->tree.q_pad;
#define COPY_I(slot, name, src, n)                                                  \
  h->iv[slot] = ht_add(h, name, HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)(n));      \
  memcpy(h->t[h->iv[slot]].i, (src), sizeof(int32_t) * (size_t)(n))
  COPY_I(IV_BT, "block_table", tc.block_table, c->tree.B * tc.max_pages);
  COPY_I(IV_INDPTR, "tree_indptr", tc.indptr, c->tree.B + 1);
  COPY_I(IV_PARENT, "parent", tc.parent, cap);
  COPY_I(IV_PREFIX, "prefix_lens", tc.prefix, c->tree.B);
#undef COPY_I
  h->iv[IV_KP] = ht_add(h, "k_pages", HT_IN, HT_FLOAT, c->dtype, tc.pool_elems);
  memcpy(h->t[h->iv[IV_KP]].f, tc.k, sizeof(float) * tc.pool_elems);
  h->iv[IV_VP] = ht_add(h, "v_pages", HT_IN, HT_FLOAT, c->dtype, tc.pool_elems);
  memcpy(h->t[h->iv[IV_VP]].f, tc.v, sizeof(float) * tc.pool_elems);
  /* q rows q_stride apart; the padding between them holds other values. */
  const size_t qs = (size_t)h->iv[IV_QSTRIDE];
  h->iv[IV_Q] = ht_uniform(h, "q", HT_IN, c->dtype, (size_t)cap * qs, 4, -2.0f, 2.0f);
  for (int i = 0; i < cap; ++i) memcpy(h->t[h->iv[IV_Q]].f + i * qs, tc.q + (size_t)i * H * hd, sizeof(float) * H * hd);
  h->iv[IV_OUT] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, (size_t)cap * H * hd);
  h->t[h->iv[IV_OUT]].n_written = (size_t)tc.total * H * hd; /* rows past the real nodes: untouched */
  h->fv[0] = tc.scale;
  deco_test_tree_case_free(&tc);
}

static void tree_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int H = h->iv[IV_H], hd = c->tree.head_dim, group = c->tree.group, ps = c->tree.page_size;
  const int maxp = h->iv[IV_MAXP];
  const size_t kv_row = (size_t)c->tree.n_kv * hd, qs = (size_t)h->iv[IV_QSTRIDE];
  const int32_t *ip = h->t[h->iv[IV_INDPTR]].i, *par = h->t[h->iv[IV_PARENT]].i, *bt = h->t[h->iv[IV_BT]].i;
  const double scale = (double)h->fv[0];
  float *out = ht_expect_f(h, h->iv[IV_OUT]);
  for (int b = 0; b < c->tree.B; ++b) {
    const int t0 = ip[b], n = ip[b + 1] - t0, L = h->t[h->iv[IV_PREFIX]].i[b], keys = L + n;
    long long *rows = malloc(sizeof(long long) * (size_t)(keys > 0 ? keys : 1));
    double *sc = malloc(sizeof(double) * (size_t)(keys > 0 ? keys : 1));
    unsigned char *allowed = malloc((size_t)(keys > 0 ? keys : 1));
    for (int i = 0; i < n; ++i) {
      /* The dense mask: the prefix, then node i's root path. */
      for (int p = 0; p < keys; ++p) allowed[p] = p < L;
      for (int j = i; j >= 0; j = par[t0 + j]) allowed[L + j] = 1;
      int m = 0;
      for (int p = 0; p < keys; ++p)
        if (allowed[p]) rows[m++] = (long long)bt[b * maxp + p / ps] * ps + p % ps;
      for (int hh = 0; hh < H; ++hh)
        attend(h->t[h->iv[IV_Q]].f + (size_t)(t0 + i) * qs + (size_t)hh * hd, h->t[h->iv[IV_KP]].f,
               h->t[h->iv[IV_VP]].f, rows, m, kv_row, (size_t)(hh / group) * hd, hd, scale, sc,
               out + ((size_t)(t0 + i) * H + hh) * hd);
    }
    free(rows);
    free(sc);
    free(allowed);
  }
}

static deco_status_t tree_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_tree_attention_args_t a = DECO_TREE_ATTENTION_ARGS_INIT;
  a.cache = kv_cache_view(h, p, t, c->tree.n_kv, c->tree.head_dim, c->tree.page_size);
  a.tree.n_trees = c->tree.B;
  a.tree.n_nodes = h->iv[IV_CAP];
  a.tree.tree_indptr = p[h->iv[IV_INDPTR]];
  a.tree.parent = p[h->iv[IV_PARENT]];
  a.prefix_lens = p[h->iv[IV_PREFIX]];
  a.n_heads = h->iv[IV_H];
  a.scale = h->fv[0];
  a.q = p[h->iv[IV_Q]];
  a.out = p[h->iv[IV_OUT]];
  a.q_stride = c->tree.q_pad ? h->iv[IV_QSTRIDE] : 0;
  if (!t->ref) {
    harness_path(t, deco_tree_attention_path(t->ctx, &a));
    harness_workspace(t, deco_tree_attention_workspace_size(t->ctx, &a));
  }
  return HARNESS_CALL(t, tree_attention, &a);
}

const harness_op_t harness_op_tree_attention = {DECO_OP_TREE_ATTENTION, tree_setup, tree_oracle, tree_call, NULL,
                                                harness_cpu_f32_only};
