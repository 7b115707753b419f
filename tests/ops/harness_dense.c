/* tests/ops/harness_dense.c — the harness's dense ops (deco/layers.h,
 * deco/quant.h): embedding, RMSNorm, RoPE, matmul, SwiGLU, fill_random,
 * convert, dequant. Each: inputs from the case's seed, an oracle in double
 * precision written from the header's contract (not from the reference),
 * and the call on a target's buffers.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/harness.h"

/* ---- embedding: out[t] = table[tokens[t]] (NaN rows for ids outside
 * [0, vocab)), or the f32 embeddings when tokens is NULL. Exact. ---- */

static void embedding_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int V = c->embedding.vocab, D = c->embedding.dim, n = c->embedding.n_tokens;
  h->iv[0] = h->iv[1] = h->iv[2] = -1;
  if (c->embedding.ready) {
    h->iv[2] = ht_uniform(h, "embeds", HT_IN, DECO_DTYPE_F32, (size_t)n * D, 2, -1.0f, 1.0f);
  } else {
    h->iv[0] = ht_uniform(h, "table", HT_IN, c->dtype, (size_t)V * D, 1, -2.0f, 2.0f);
    h->iv[1] = ht_add(h, "tokens", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
    int32_t *tok = h->t[h->iv[1]].i;
    for (int t = 0; t < n; ++t) tok[t] = (int32_t)(((uint64_t)t * 7 + c->seed) % (uint64_t)V);
    if (c->embedding.bad_ids) {
      tok[1] = -1;
      tok[n - 1] = c->embedding.bad_ids == 2 ? INT_MAX : V;
    }
  }
  h->iv[3] = ht_add(h, "out", HT_OUT, HT_FLOAT, DECO_DTYPE_F32, (size_t)n * D);
}

static void embedding_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int V = c->embedding.vocab, D = c->embedding.dim, n = c->embedding.n_tokens;
  float *out = ht_expect_f(h, h->iv[3]);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) {
      if (c->embedding.ready) {
        out[(size_t)t * D + i] = h->t[h->iv[2]].f[(size_t)t * D + i];
      } else {
        const int32_t id = h->t[h->iv[1]].i[t];
        out[(size_t)t * D + i] = id >= 0 && id < V ? h->t[h->iv[0]].f[(size_t)id * D + i] : NAN;
      }
    }
}

static deco_status_t embedding_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_embedding_args_t a = DECO_EMBEDDING_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.n_tokens = c->embedding.n_tokens;
  a.dim = c->embedding.dim;
  if (c->embedding.ready) {
    a.embeds = p[h->iv[2]];
  } else {
    a.vocab = c->embedding.vocab;
    a.table = p[h->iv[0]];
    a.tokens = p[h->iv[1]];
  }
  a.out = p[h->iv[3]];
  return HARNESS_CALL(t, embedding, &a);
}

/* The dtype is only read with token ids: ready embeddings run in any. */
static int embedding_cpu(const deco_op_case_t *c) { return c->embedding.ready || c->dtype == DECO_DTYPE_F32; }

const harness_op_t harness_op_embedding = {DECO_OP_EMBEDDING, embedding_setup, embedding_oracle, embedding_call, NULL,
                                           embedding_cpu};

/* ---- rmsnorm: residual += add; out = w * x / sqrt(mean(x^2) + eps). ---- */

static void rmsnorm_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const size_t n = (size_t)c->rmsnorm.n_rows * c->rmsnorm.dim;
  const float amp = c->rmsnorm.amp;
  h->iv[0] = ht_uniform(h, "residual", HT_INOUT, DECO_DTYPE_F32, n, 1, -amp, amp);
  h->t[h->iv[0]].tol_dtype = DECO_DTYPE_F32; /* the residual stream is f32 */
  h->t[h->iv[0]].cmp = DECO_CMP_ELEMENTWISE;
  h->iv[1] = c->rmsnorm.add ? ht_uniform(h, "add", HT_IN, c->dtype, n, 2, -amp / 2, amp / 2) : -1;
  h->iv[2] = ht_uniform(h, "weight", HT_IN, c->dtype, (size_t)c->rmsnorm.dim, 3, 0.5f, 1.5f);
  h->iv[3] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, n);
}

static void rmsnorm_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int rows = c->rmsnorm.n_rows, dim = c->rmsnorm.dim;
  float *res = ht_expect_f(h, h->iv[0]), *out = ht_expect_f(h, h->iv[3]);
  const float *w = h->t[h->iv[2]].f;
  for (int r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int i = 0; i < dim; ++i) {
      const size_t j = (size_t)r * dim + i;
      double x = h->t[h->iv[0]].f[j];
      if (h->iv[1] >= 0) x += h->t[h->iv[1]].f[j];
      res[j] = (float)x; /* the updated residual is stored in f32 */
      ss += (double)res[j] * res[j];
    }
    const double inv = 1.0 / sqrt(ss / dim + (double)c->rmsnorm.eps);
    for (int i = 0; i < dim; ++i) out[(size_t)r * dim + i] = (float)(w[i] * (res[(size_t)r * dim + i] * inv));
  }
}

static deco_status_t rmsnorm_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_rmsnorm_args_t a = DECO_RMSNORM_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.n_rows = c->rmsnorm.n_rows;
  a.dim = c->rmsnorm.dim;
  a.eps = c->rmsnorm.eps;
  a.residual = p[h->iv[0]];
  a.add = h->iv[1] >= 0 ? p[h->iv[1]] : NULL;
  a.weight = p[h->iv[2]];
  a.out = p[h->iv[3]];
  return HARNESS_CALL(t, rmsnorm, &a);
}

const harness_op_t harness_op_rmsnorm = {DECO_OP_RMSNORM, rmsnorm_setup, rmsnorm_oracle, rmsnorm_call, NULL,
                                         harness_cpu_f32_only};

/* ---- rope: pair j of a head rotated by pos * theta^(-2j/hd). The angle is
 * the contract's fp32 one (deco/layers.h: powf, as llama2.c); the rotation
 * is done here in double. Fused cases: q | k | v of a token in one row. ---- */

static void rope_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->rope.n_tokens, hd = c->rope.head_dim, qd = c->rope.n_heads * hd, kd = c->rope.n_kv_heads * hd;
  h->iv[0] = h->iv[1] = h->iv[2] = -1;
  if (c->rope.fused) {
    h->iv[2] = ht_uniform(h, "qkv", HT_INOUT, c->dtype, (size_t)n * (qd + 2 * kd), 1, -1.0f, 1.0f);
  } else {
    if (c->rope.which != 2) h->iv[0] = ht_uniform(h, "q", HT_INOUT, c->dtype, (size_t)n * qd, 1, -1.0f, 1.0f);
    if (c->rope.which != 1) h->iv[1] = ht_uniform(h, "k", HT_INOUT, c->dtype, (size_t)n * kd, 2, -1.0f, 1.0f);
  }
  h->iv[3] = ht_add(h, "positions", HT_IN, HT_I32, DECO_DTYPE_F32, (size_t)n);
  for (int t = 0; t < n; ++t)
    h->t[h->iv[3]].i[t] = c->rope.fused ? c->rope.pos0 + t
                                        : t == 0 ? 0 : (int32_t)(((uint64_t)t * 1237 + c->seed * 31) % 4096);
}

static void rope_rotate(float *v, const float *x, int n_heads, int hd, int pos, float theta, int half_split) {
  for (int hh = 0; hh < n_heads; ++hh)
    for (int j = 0; j < hd / 2; ++j) {
      const float freq = 1.0f / powf(theta, (float)(2 * j) / (float)hd); /* the contract's fp32 angle */
      const double ang = (double)((float)pos * freq);
      const int i0 = half_split ? j : 2 * j, i1 = half_split ? j + hd / 2 : 2 * j + 1;
      const double a = x[hh * hd + i0], b = x[hh * hd + i1];
      v[hh * hd + i0] = (float)(a * cos(ang) - b * sin(ang));
      v[hh * hd + i1] = (float)(a * sin(ang) + b * cos(ang));
    }
}

static void rope_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->rope.n_tokens, hd = c->rope.head_dim, qd = c->rope.n_heads * hd, kd = c->rope.n_kv_heads * hd;
  const int hs = c->rope.style == DECO_ROPE_HALF_SPLIT;
  const int32_t *pos = h->t[h->iv[3]].i;
  if (c->rope.fused) {
    const ht_t *x = &h->t[h->iv[2]];
    float *e = ht_expect_f(h, h->iv[2]);
    const size_t row = (size_t)qd + 2 * kd;
    memcpy(e, x->f, sizeof(float) * x->n); /* v unchanged */
    for (int t = 0; t < n; ++t) {
      rope_rotate(e + t * row, x->f + t * row, c->rope.n_heads, hd, pos[t], c->rope.theta, hs);
      rope_rotate(e + t * row + qd, x->f + t * row + qd, c->rope.n_kv_heads, hd, pos[t], c->rope.theta, hs);
    }
    return;
  }
  for (int w = 0; w < 2; ++w) {
    const int k = h->iv[w];
    if (k < 0) continue;
    const int heads = w ? c->rope.n_kv_heads : c->rope.n_heads, d = w ? kd : qd;
    float *e = ht_expect_f(h, k);
    for (int t = 0; t < n; ++t) rope_rotate(e + (size_t)t * d, h->t[k].f + (size_t)t * d, heads, hd, pos[t], c->rope.theta, hs);
  }
}

static deco_status_t rope_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_rope_args_t a = DECO_ROPE_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.style = (deco_rope_style_t)c->rope.style;
  a.n_tokens = c->rope.n_tokens;
  a.n_heads = c->rope.n_heads;
  a.n_kv_heads = c->rope.n_kv_heads;
  a.head_dim = c->rope.head_dim;
  a.theta = c->rope.theta;
  a.positions = p[h->iv[3]];
  if (c->rope.fused) {
    const int qd = c->rope.n_heads * c->rope.head_dim, kd = c->rope.n_kv_heads * c->rope.head_dim;
    a.q = p[h->iv[2]];
    a.k = (char *)p[h->iv[2]] + (size_t)qd * deco_dtype_size(a.dtype);
    a.q_stride = a.k_stride = qd + 2 * kd;
  } else {
    a.q = h->iv[0] >= 0 ? p[h->iv[0]] : NULL;
    a.k = h->iv[1] >= 0 ? p[h->iv[1]] : NULL;
  }
  return HARNESS_CALL(t, rope, &a);
}

const harness_op_t harness_op_rope = {DECO_OP_ROPE, rope_setup, rope_oracle, rope_call, NULL, harness_cpu_f32_only};

/* ---- matmul: out[m][n] (+)= sum_k a[m][k] w[n][k], summed in double. ---- */

static void matmul_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int m = c->matmul.m, n = c->matmul.n, k = c->matmul.k;
  const deco_dtype_t odt = c->matmul.out_f32 ? DECO_DTYPE_F32 : c->dtype;
  const float ws = 1.7320508f / sqrtf((float)k); /* outputs O(1) */
  h->iv[0] = ht_uniform(h, "a", HT_IN, c->dtype, (size_t)m * k, 1, -1.0f, 1.0f);
  h->t[h->iv[0]].offset = (size_t)c->matmul.a_offset;
  h->iv[1] = ht_uniform(h, "w", HT_IN, c->dtype, (size_t)n * k, 2, -ws, ws);
  h->iv[2] = c->matmul.accumulate ? ht_uniform(h, "out", HT_INOUT, odt, (size_t)m * n, 3, -1.0f, 1.0f)
                                  : ht_add(h, "out", HT_OUT, HT_FLOAT, odt, (size_t)m * n);
}

static void matmul_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int m = c->matmul.m, n = c->matmul.n, k = c->matmul.k;
  const float *a = h->t[h->iv[0]].f, *w = h->t[h->iv[1]].f, *o0 = h->t[h->iv[2]].f;
  float *out = ht_expect_f(h, h->iv[2]);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = c->matmul.accumulate ? o0[(size_t)i * n + j] : 0.0;
      for (int x = 0; x < k; ++x) s += (double)a[(size_t)i * k + x] * w[(size_t)j * k + x];
      out[(size_t)i * n + j] = (float)s;
    }
}

static deco_status_t matmul_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_matmul_args_t a = DECO_MATMUL_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.out_dtype = c->matmul.out_f32 ? DECO_DTYPE_F32 : a.dtype;
  a.m = c->matmul.m;
  a.n = c->matmul.n;
  a.k = c->matmul.k;
  a.a = p[h->iv[0]];
  a.w = p[h->iv[1]];
  a.out = p[h->iv[2]];
  a.accumulate = c->matmul.accumulate;
  return HARNESS_CALL(t, matmul, &a);
}

const harness_op_t harness_op_matmul = {DECO_OP_MATMUL, matmul_setup, matmul_oracle, matmul_call, NULL,
                                        harness_cpu_f32_only};

/* ---- matmul_batched: out[b][m][n] (+)= sum_k a[b or 0][m][k] w[b][n][k],
 * summed in double (deco_matmul_batched; dense strides, or stride_a 0). ---- */

static void matmul_batched_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int m = c->matmul_batched.m, n = c->matmul_batched.n, k = c->matmul_batched.k, B = c->matmul_batched.n_batch;
  const deco_dtype_t odt = c->matmul_batched.out_f32 ? DECO_DTYPE_F32 : c->dtype;
  const float ws = 1.7320508f / sqrtf((float)k);
  const size_t na = (size_t)(c->matmul_batched.shared ? 1 : B) * m * k;
  h->iv[0] = ht_uniform(h, "a", HT_IN, c->dtype, na, 1, -1.0f, 1.0f);
  h->iv[1] = ht_uniform(h, "w", HT_IN, c->dtype, (size_t)B * n * k, 2, -ws, ws);
  h->iv[2] = c->matmul_batched.accumulate ? ht_uniform(h, "out", HT_INOUT, odt, (size_t)B * m * n, 3, -1.0f, 1.0f)
                                          : ht_add(h, "out", HT_OUT, HT_FLOAT, odt, (size_t)B * m * n);
}

static void matmul_batched_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int m = c->matmul_batched.m, n = c->matmul_batched.n, k = c->matmul_batched.k, B = c->matmul_batched.n_batch;
  const float *a = h->t[h->iv[0]].f, *w = h->t[h->iv[1]].f, *o0 = h->t[h->iv[2]].f;
  float *out = ht_expect_f(h, h->iv[2]);
  for (int b = 0; b < B; ++b) {
    const float *ab = a + (c->matmul_batched.shared ? 0 : (size_t)b * m * k), *wb = w + (size_t)b * n * k;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const size_t o = ((size_t)b * m + i) * n + j;
        double s = c->matmul_batched.accumulate ? o0[o] : 0.0;
        for (int x = 0; x < k; ++x) s += (double)ab[(size_t)i * k + x] * wb[(size_t)j * k + x];
        out[o] = (float)s;
      }
  }
}

static deco_status_t matmul_batched_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_matmul_batched_args_t a = DECO_MATMUL_BATCHED_ARGS_INIT;
  const int m = c->matmul_batched.m, n = c->matmul_batched.n, k = c->matmul_batched.k;
  a.mm.dtype = harness_dt(t, c->dtype);
  a.mm.out_dtype = c->matmul_batched.out_f32 ? DECO_DTYPE_F32 : a.mm.dtype;
  a.mm.m = m;
  a.mm.n = n;
  a.mm.k = k;
  a.mm.a = p[h->iv[0]];
  a.mm.w = p[h->iv[1]];
  a.mm.out = p[h->iv[2]];
  a.mm.accumulate = c->matmul_batched.accumulate;
  a.n_batch = c->matmul_batched.n_batch;
  a.stride_a = c->matmul_batched.shared ? 0 : (long long)m * k;
  a.stride_w = (long long)n * k;
  a.stride_out = (long long)m * n;
  return HARNESS_CALL(t, matmul_batched, &a);
}

const harness_op_t harness_op_matmul_batched = {DECO_OP_MATMUL_BATCHED, matmul_batched_setup, matmul_batched_oracle,
                                                matmul_batched_call, NULL, harness_cpu_f32_only};

/* ---- swiglu: out = silu(gate) * up, silu(x) = x / (1 + e^-x). ---- */

static void swiglu_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->swiglu.n, len = c->swiglu.row_len, stride = c->swiglu.in_stride;
  h->iv[0] = h->iv[1] = h->iv[2] = h->iv[3] = -1;
  if (len > 0 && stride == 2 * len) { /* one fused gate | up buffer */
    h->iv[3] = ht_uniform(h, "gate|up", HT_IN, c->dtype, (size_t)(n / len) * stride, 1, -6.0f, 6.0f);
  } else if (len > 0) {
    const size_t span = (size_t)(n / len - 1) * stride + len;
    h->iv[0] = ht_uniform(h, "gate", HT_IN, c->dtype, span, 1, -6.0f, 6.0f);
    h->iv[1] = ht_uniform(h, "up", HT_IN, c->dtype, span, 2, -2.0f, 2.0f);
  } else {
    h->iv[0] = ht_uniform(h, "gate", c->swiglu.mode == 1 ? HT_INOUT : HT_IN, c->dtype, (size_t)n, 1, -6.0f, 6.0f);
    h->iv[1] = ht_uniform(h, "up", HT_IN, c->dtype, (size_t)n, 2, -2.0f, 2.0f);
  }
  if (c->swiglu.mode != 1) h->iv[2] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, (size_t)n);
  if (c->swiglu.mode == 2) /* one element off the buffers' alignment */
    for (int k = 0; k < h->n_t; ++k) h->t[k].offset = 1;
}

static void swiglu_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int n = c->swiglu.n, len = c->swiglu.row_len, stride = c->swiglu.in_stride;
  float *out = ht_expect_f(h, c->swiglu.mode == 1 ? h->iv[0] : h->iv[2]);
  for (int i = 0; i < n; ++i) {
    double g, u;
    if (h->iv[3] >= 0) {
      const float *gu = h->t[h->iv[3]].f + (size_t)(i / len) * stride;
      g = gu[i % len];
      u = gu[len + i % len];
    } else {
      const size_t src = len > 0 ? (size_t)(i / len) * stride + i % len : (size_t)i;
      g = h->t[h->iv[0]].f[src];
      u = h->t[h->iv[1]].f[src];
    }
    out[i] = (float)(g / (1.0 + exp(-g)) * u);
  }
}

static deco_status_t swiglu_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_swiglu_args_t a = DECO_SWIGLU_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.n = (size_t)c->swiglu.n;
  if (h->iv[3] >= 0) {
    a.gate = p[h->iv[3]];
    a.up = (const char *)p[h->iv[3]] + (size_t)c->swiglu.row_len * deco_dtype_size(a.dtype);
  } else {
    a.gate = p[h->iv[0]];
    a.up = p[h->iv[1]];
  }
  a.out = c->swiglu.mode == 1 ? p[h->iv[0]] : p[h->iv[2]];
  a.row_len = c->swiglu.row_len;
  a.in_stride = c->swiglu.in_stride;
  return HARNESS_CALL(t, swiglu, &a);
}

const harness_op_t harness_op_swiglu = {DECO_OP_SWIGLU, swiglu_setup, swiglu_oracle, swiglu_call, NULL,
                                        harness_cpu_f32_only};

/* ---- fill_random: u = Philox4x32-10 of counter (i low, i high, tensor, 0)
 * with key seed, word 0's top 24 bits / 2^24; out = constant != 0 ? constant
 * : (2u - 1) * scale, one rounding to the dtype. Bit for bit. Philox is
 * written out here again (Salmon et al. 2011), not taken from deco/philox.h. ---- */

static void philox(uint32_t ctr[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0], p1 = (uint64_t)0xCD9E8D57u * ctr[2];
    const uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
    ctr[1] = (uint32_t)p1;
    ctr[3] = (uint32_t)p0;
    ctr[0] = n0;
    ctr[2] = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

static void fill_setup(hcase_t *h) { h->iv[0] = ht_add(h, "out", HT_OUT, HT_FLOAT, h->c->dtype, (size_t)h->c->fill.n); }

static void fill_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  float *out = ht_expect_f(h, h->iv[0]);
  for (size_t i = 0; i < (size_t)c->fill.n; ++i) {
    if (c->fill.constant != 0.0f) {
      out[i] = c->fill.constant;
      continue;
    }
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), c->fill.tensor, 0};
    philox(ctr, (uint32_t)c->seed, (uint32_t)(c->seed >> 32));
    const double u = (double)(ctr[0] >> 8) / 16777216.0;
    out[i] = (float)((2.0 * u - 1.0) * (double)c->fill.scale); /* exact product, one rounding */
  }
}

static deco_status_t fill_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_fill_random_args_t a = DECO_FILL_RANDOM_ARGS_INIT;
  a.dtype = harness_dt(t, c->dtype);
  a.n = (size_t)c->fill.n;
  a.seed = c->seed;
  a.tensor = c->fill.tensor;
  a.scale = c->fill.scale;
  a.constant = c->fill.constant;
  a.out = p[h->iv[0]];
  return HARNESS_CALL(t, fill_random, &a);
}

const harness_op_t harness_op_fill_random = {DECO_OP_FILL_RANDOM, fill_setup, fill_oracle, fill_call, NULL,
                                             harness_cpu_f32_only};

/* ---- convert: out = in rounded to out_dtype (nearest even); magnitudes
 * 1e-9 .. 1e6 and the specials (zeros, infinities, f16's largest, ties,
 * subnormals). Bit for bit. ---- */

static void convert_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const size_t n = (size_t)c->convert.n;
  h->iv[0] = ht_add(h, "in", HT_IN, HT_FLOAT, c->convert.in_dtype, n);
  float *x = h->t[h->iv[0]].f, *e = malloc(sizeof(float) * n), *sgn = malloc(sizeof(float) * n);
  harness_uniform(e, n, c->seed, 1, -9.0f * 2.3025851f, 6.0f * 2.3025851f);
  harness_uniform(sgn, n, c->seed, 2, -1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) x[i] = copysignf(expf(e[i]), sgn[i]);
  static const float specials[] = {0.0f,          -0.0f,         INFINITY, -INFINITY, 65504.0f, 65520.0f, 65519.0f,
                                   5.9604645e-8f, 2.9802322e-8f, 1.0f + 1.0f / 256.0f, 1.0f + 3.0f / 512.0f};
  for (size_t i = 0; i < n && i < sizeof specials / sizeof specials[0]; ++i) x[i] = specials[i];
  for (size_t i = 0; i < n; ++i) x[i] = harness_round(x[i], c->convert.in_dtype);
  free(e);
  free(sgn);
  h->iv[1] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, n);
}

static void convert_oracle(hcase_t *h) {
  memcpy(ht_expect_f(h, h->iv[1]), h->t[h->iv[0]].f, sizeof(float) * h->t[h->iv[0]].n);
}

static deco_status_t convert_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_convert_args_t a = DECO_CONVERT_ARGS_INIT;
  a.in_dtype = harness_dt(t, c->convert.in_dtype);
  a.out_dtype = harness_dt(t, c->dtype);
  a.n = (size_t)c->convert.n;
  a.in = p[h->iv[0]];
  a.out = p[h->iv[1]];
  return HARNESS_CALL(t, convert, &a);
}

static int convert_cpu(const deco_op_case_t *c) {
  return c->dtype == DECO_DTYPE_F32 && c->convert.in_dtype == DECO_DTYPE_F32;
}

const harness_op_t harness_op_convert = {DECO_OP_CONVERT, convert_setup, convert_oracle, convert_call, NULL,
                                         convert_cpu};

/* ---- dequant (deco/quant.h): ggml's blocks of 32 decoded here from their
 * layout — Q8_0: f16 d, 32 int8, x = d q; Q4_0: f16 d, 16 bytes whose low
 * nibbles are elements 0..15 and high nibbles 16..31, x = d (q - 8); Q4_1:
 * f16 d, f16 m, nibbles, x = d q + m rounded once — then rounded to the out
 * dtype. Bit for bit. ---- */

enum { Q_F32 = 0, Q_F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q_BF16 = 30 };

static size_t dequant_bytes(int type, size_t n) {
  switch (type) {
  case Q_F32: return 4 * n;
  case Q_F16:
  case Q_BF16: return 2 * n;
  case Q4_0: return n / 32 * 18;
  case Q4_1: return n / 32 * 20;
  default: return n / 32 * 34;
  }
}

static void dequant_setup(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int type = c->dequant.type;
  const size_t n = (size_t)c->dequant.n, bytes = dequant_bytes(type, n);
  h->iv[0] = ht_add(h, "in", HT_IN, HT_U8, DECO_DTYPE_F32, bytes);
  h->t[h->iv[0]].offset = (size_t)c->dequant.in_offset;
  uint8_t *b = h->t[h->iv[0]].b;
  uint64_t s = c->seed;
  for (size_t i = 0; i < bytes; ++i) b[i] = (uint8_t)harness_rng(&s);
  /* Finite inputs: no NaN payloads to argue about; scales of sane size. */
  if (type == Q_F32) {
    float *v = malloc(sizeof(float) * n);
    harness_uniform(v, n, c->seed, 1, -4.0f, 4.0f);
    memcpy(b, v, 4 * n);
    free(v);
  } else if (type == Q_F16 || type == Q_BF16) {
    for (size_t i = 0; i < n; ++i) {
      uint16_t x = (uint16_t)(b[2 * i] | (b[2 * i + 1] << 8));
      if (type == Q_F16 && ((x >> 10) & 0x1f) == 0x1f) x &= 0xbfffu; /* exponent 31 -> 15 */
      if (type == Q_BF16 && ((x >> 7) & 0xff) == 0xff) x &= 0xbfffu;
      b[2 * i] = (uint8_t)x;
      b[2 * i + 1] = (uint8_t)(x >> 8);
    }
  } else {
    const size_t bs = dequant_bytes(type, 32), n_scales = type == Q4_1 ? 2 : 1;
    float sc[2];
    for (size_t blk = 0; blk < n / 32; ++blk) {
      harness_uniform(sc, 2, c->seed ^ blk, 2, -0.05f, 0.05f);
      for (size_t j = 0; j < n_scales; ++j) {
        const uint16_t d = harness_f32_to_f16(sc[j] * (blk % 7 == 3 ? 1e-4f : 1.0f)); /* some subnormal scales */
        b[blk * bs + 2 * j] = (uint8_t)d;
        b[blk * bs + 2 * j + 1] = (uint8_t)(d >> 8);
      }
    }
  }
  h->iv[1] = ht_add(h, "out", HT_OUT, HT_FLOAT, c->dtype, n);
}

static float u16_f16(const uint8_t *p) { return harness_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static void dequant_oracle(hcase_t *h) {
  const deco_op_case_t *c = h->c;
  const int type = c->dequant.type;
  const uint8_t *b = h->t[h->iv[0]].b;
  float *out = ht_expect_f(h, h->iv[1]);
  for (size_t i = 0; i < (size_t)c->dequant.n; ++i) {
    const size_t blk = i / 32, j = i % 32;
    double x;
    switch (type) {
    case Q_F32: {
      float f;
      memcpy(&f, b + 4 * i, 4);
      x = f;
      break;
    }
    case Q_F16: x = u16_f16(b + 2 * i); break;
    case Q_BF16: x = harness_bf16_to_f32((uint16_t)(b[2 * i] | (b[2 * i + 1] << 8))); break;
    case Q8_0: x = (double)u16_f16(b + blk * 34) * (int8_t)b[blk * 34 + 2 + j]; break;
    case Q4_0: {
      const uint8_t q = b[blk * 18 + 2 + j % 16];
      x = (double)u16_f16(b + blk * 18) * (double)((j < 16 ? q & 15 : q >> 4) - 8);
      break;
    }
    default: { /* Q4_1: d q + m, exact in double, rounded once below */
      const uint8_t q = b[blk * 20 + 4 + j % 16];
      x = (double)u16_f16(b + blk * 20) * (double)(j < 16 ? q & 15 : q >> 4) + (double)u16_f16(b + blk * 20 + 2);
      break;
    }
    }
    out[i] = (float)x;
  }
}

static deco_status_t dequant_call(hcase_t *h, void *const *p, harness_target_t *t) {
  const deco_op_case_t *c = h->c;
  deco_dequant_args_t a = DECO_DEQUANT_ARGS_INIT;
  a.type = (deco_quant_type_t)c->dequant.type;
  a.out_dtype = harness_dt(t, c->dtype);
  a.n = (size_t)c->dequant.n;
  a.in = p[h->iv[0]];
  a.out = p[h->iv[1]];
  return HARNESS_CALL(t, dequant, &a);
}

/* "Unlike the model's ops, the CPU backend writes f16 and bf16 too." */
static int dequant_cpu(const deco_op_case_t *c) {
  (void)c;
  return 1;
}

const harness_op_t harness_op_dequant = {DECO_OP_DEQUANT, dequant_setup, dequant_oracle, dequant_call, NULL,
                                         dequant_cpu};
