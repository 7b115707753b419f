/* host/model/forward.c — one forward pass of a Llama model over a ragged
 * batch (prefill, decode, or draft-tree verification), built only from the
 * public ops: embedding → per layer [RMSNorm → QKV → RoPE → KV append →
 * attention → O (+all-reduce) → RMSNorm(+residual) → gate/up → SwiGLU →
 * down (+all-reduce)] → final RMSNorm(+residual) → f32 logits.
 * The residual stream is f32; everything else is in the model dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deco/tree.h"
#include "model/model_internal.h"

#define DECO_MAX_FORWARD_TOKENS (1 << 20)

/* Device meta block, in int32 words: tokens[T] positions[T] q_indptr[S+1]
 * kv_lens[S] prefix_lens[S] parents[T] block_table[S][P]. */
typedef struct meta_layout {
  size_t tokens, positions, q_indptr, kv_lens, prefix, parents, block_table, total;
} meta_layout_t;

static meta_layout_t meta_layout(int T, int S, int P) {
  meta_layout_t l;
  size_t o = 0;
  l.tokens = o, o += (size_t)T;
  l.positions = o, o += (size_t)T;
  l.q_indptr = o, o += (size_t)S + 1;
  l.kv_lens = o, o += (size_t)S;
  l.prefix = o, o += (size_t)S;
  l.parents = o, o += (size_t)T;
  l.block_table = o, o += (size_t)S * P;
  l.total = o;
  return l;
}

static deco_status_t grow(deco_ctx_t *ctx, void **buf, size_t bytes) {
  deco_free(ctx, *buf);
  *buf = NULL;
  return deco_malloc(ctx, buf, bytes);
}

/* Grows the scratch buffers so a batch of T tokens over S sequences fits.
 * Allocation happens only when a batch is larger than every earlier one. */
static deco_status_t ensure_scratch(deco_model_t *m, int T, int S, int P) {
  deco_forward_scratch_t *s = &m->scratch;
  const deco_model_config_t *c = &m->cfg;
  deco_ctx_t *ctx = m->ctx;
  if (T > s->max_tokens) {
    s->max_tokens = 0; /* until every buffer below is regrown */
    int cap = T < 16 ? 16 : (T + 63) / 64 * 64;
    size_t es = deco_dtype_size(m->dtype);
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    DECO_TRY(grow(ctx, (void **)&s->x, (size_t)cap * c->dim * sizeof(float)));
    DECO_TRY(grow(ctx, &s->xb, (size_t)cap * c->dim * es));
    DECO_TRY(grow(ctx, &s->qkv, (size_t)cap * (qd + 2 * kvd) * es));
    DECO_TRY(grow(ctx, &s->att, (size_t)cap * qd * es));
    DECO_TRY(grow(ctx, &s->proj, (size_t)cap * c->dim * es));
    DECO_TRY(grow(ctx, &s->h13, (size_t)cap * 2 * c->hidden_dim * es));
    DECO_TRY(grow(ctx, &s->h, (size_t)cap * c->hidden_dim * es));
    s->max_tokens = cap;
  }
  if (S > s->max_seqs || P > s->max_pages || s->meta == NULL) {
    int seqs = S > s->max_seqs ? S : s->max_seqs;
    int pages = P > s->max_pages ? P : s->max_pages;
    s->max_seqs = seqs;
    s->max_pages = pages;
  }
  meta_layout_t l = meta_layout(s->max_tokens, s->max_seqs, s->max_pages);
  if (l.total > s->meta_count) {
    s->meta_count = 0;
    DECO_TRY(grow(ctx, (void **)&s->meta, l.total * sizeof(int32_t)));
    int32_t *h = realloc(s->meta_host, l.total * sizeof(int32_t));
    if (!h) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_forward: out of host memory");
    s->meta_host = h;
    s->meta_count = l.total;
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_ensure_workspace(deco_model_t *m, size_t bytes) {
  deco_ctx_t *ctx = m->ctx;
  if (deco_ctx_workspace_bytes(ctx) >= bytes) return DECO_STATUS_SUCCESS;
  if (m->workspace_bytes < bytes) {
    /* Take the buffer back from the context before freeing it. */
    if (ctx->workspace == m->workspace) DECO_TRY(deco_ctx_set_workspace(ctx, NULL, 0));
    m->workspace_bytes = 0;
    size_t grown = bytes + bytes / 4;
    DECO_TRY(grow(ctx, &m->workspace, grown));
    m->workspace_bytes = grown;
  }
  return deco_ctx_set_workspace(ctx, m->workspace, m->workspace_bytes);
}

void deco_forward_last_batch(const deco_model_t *m, const int32_t **prefix_lens, const int32_t **block_table,
                             int *max_pages) {
  const deco_forward_scratch_t *sc = &m->scratch;
  meta_layout_t l = meta_layout(sc->max_tokens, sc->max_seqs, sc->max_pages);
  *prefix_lens = sc->meta + l.prefix;
  *block_table = sc->meta + l.block_table;
  *max_pages = sc->last_pages;
}

static deco_status_t all_reduce(deco_model_t *m, void *buf, int T) {
  if (m->allreduce == NULL) return DECO_STATUS_SUCCESS;
  return m->allreduce(m->allreduce_user, buf, (size_t)T * m->cfg.dim, m->dtype);
}

static deco_status_t matmul(deco_model_t *m, const void *a, const void *w, void *out, int rows, int n, int k,
                            deco_dtype_t out_dtype) {
  deco_matmul_args_t args = {m->dtype, out_dtype, rows, n, k, a, w, out, 0};
  return deco_matmul(m->ctx, &args);
}

/* Host-side checks of the batch against the cache and the model; fills the
 * per-sequence tree depth bound used for positions. */
static deco_status_t check_batch(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int *total) {
  static const char op[] = "deco_forward";
  deco_ctx_t *ctx = m->ctx;
  const deco_model_config_t *c = &m->cfg;
  DECO_CHECK_RANGE(ctx, a->n_seqs, 1, kc->max_seqs, op);
  DECO_CHECK_PTR(ctx, a->seqs, op);
  DECO_CHECK_PTR(ctx, a->n_new, op);
  DECO_CHECK_PTR(ctx, a->logits, op);
  if (a->tokens == NULL && a->embeds == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: tokens and embeds are both NULL", op);
  if (a->logits_mode != DECO_LOGITS_LAST && a->logits_mode != DECO_LOGITS_ALL)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: logits_mode = %d", op, (int)a->logits_mode);
  long long t = 0;
  for (int i = 0; i < a->n_seqs; ++i) {
    int s = a->seqs[i];
    if (s < 0 || s >= kc->max_seqs || !kc->active[s])
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: seqs[%d] = %d is not an admitted sequence", op, i, s);
    for (int j = 0; j < i; ++j)
      if (a->seqs[j] == s)
        return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: sequence %d appears twice in the batch", op, s);
    int n = a->n_new[i];
    int max_new = a->parents ? DECO_TREE_MAX_NODES : DECO_MAX_FORWARD_TOKENS;
    if (n < 1 || n > max_new)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_new[%d] = %d outside [1, %d]", op, i, n, max_new);
    if (kc->len[s] + n > kc->n_seq_pages[s] * kc->page_size)
      return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d has %d + %d slots but reserved %d", op, s,
                       kc->len[s], n, kc->n_seq_pages[s] * kc->page_size);
    if (a->parents == NULL && kc->len[s] + n > c->seq_len)
      return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d would reach position %d >= seq_len %d", op, s,
                       kc->len[s] + n - 1, c->seq_len);
    t += n;
    if (t > DECO_MAX_FORWARD_TOKENS)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: more than %d tokens in one batch", op,
                       DECO_MAX_FORWARD_TOKENS);
  }
  if (a->tokens)
    for (long long i = 0; i < t; ++i)
      if (a->tokens[i] < 0 || a->tokens[i] >= c->vocab_size)
        return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: tokens[%lld] = %d outside the vocabulary [0, %d)",
                         op, i, a->tokens[i], c->vocab_size);
  *total = (int)t;
  return DECO_STATUS_SUCCESS;
}

/* Fills the host meta block; tree positions come from depths. */
static deco_status_t fill_meta(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int T,
                               meta_layout_t l, int P) {
  int32_t *h = m->scratch.meta_host;
  int S = a->n_seqs;
  int t = 0;
  h[l.q_indptr] = 0;
  for (int i = 0; i < S; ++i) {
    int s = a->seqs[i], n = a->n_new[i], len = kc->len[s];
    if (a->parents) {
      const int32_t *par = a->parents + t;
      deco_status_t st = deco_tree_positions(par, n, len, h + l.positions + t);
      if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(m->ctx, st, "deco_forward: tree %d: %s", i, deco_last_error(NULL));
      for (int j = 0; j < n; ++j) {
        if (h[l.positions + t + j] >= m->cfg.seq_len)
          return DECO_FAIL(m->ctx, DECO_STATUS_CAPACITY, "deco_forward: tree %d node %d at position %d >= seq_len %d",
                           i, j, h[l.positions + t + j], m->cfg.seq_len);
        h[l.parents + t + j] = par[j];
      }
    } else {
      for (int j = 0; j < n; ++j) {
        h[l.positions + t + j] = len + j;
        h[l.parents + t + j] = j - 1;
      }
    }
    if (a->tokens)
      for (int j = 0; j < n; ++j) h[l.tokens + t + j] = a->tokens[t + j];
    t += n;
    h[l.q_indptr + i + 1] = t;
    h[l.kv_lens + i] = len + n;
    h[l.prefix + i] = len;
    memcpy(h + l.block_table + (size_t)i * P, kc->pages + (size_t)s * kc->max_pages_per_seq, sizeof(int32_t) * (size_t)P);
  }
  (void)T;
  return DECO_STATUS_SUCCESS;
}

/* The batch as the kernels see it: context memory, host-known capacities. */
typedef struct batch_meta {
  int T, S, P;
  const int32_t *tokens, *positions, *q_indptr, *kv_lens, *prefix, *parents, *table;
} batch_meta_t;

/* Embedding and every layer; leaves the residual in sc->x and the last
 * down projection (not yet added) in sc->proj. embeds: host rows, or NULL. */
static deco_status_t run_layers(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm, const float *embeds) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_config_t *c = &m->cfg;
  deco_forward_scratch_t *sc = &m->scratch;
  const int T = bm->T, S = bm->S, P = bm->P;
  const int32_t *d_tokens = bm->tokens, *d_pos = bm->positions, *d_indptr = bm->q_indptr, *d_kv_lens = bm->kv_lens;
  const int32_t *d_prefix = bm->prefix, *d_parents = bm->parents, *d_table = bm->table;
  const size_t es = deco_dtype_size(m->dtype);
  const int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, hid = c->hidden_dim;

  deco_embedding_args_t emb = {m->dtype, T, c->vocab_size, dim, m->w.token_embedding, d_tokens, NULL, sc->x};
  if (embeds) {
    /* Ready embeddings: staged through the residual buffer itself. */
    DECO_TRY(deco_memcpy(ctx, sc->x, embeds, (size_t)T * dim * sizeof(float), DECO_COPY_HOST_TO_CTX));
  } else {
    DECO_TRY(deco_embedding(ctx, &emb));
  }
  deco_ragged_batch_t batch = {S, T, d_indptr, d_kv_lens};
  deco_tree_batch_t tree = {S, T, d_indptr, d_parents};
  sc->last_pages = P;
  /* Q, K and V come from one GEMM over the stacked rows of wq, wk, wv: token
   * t's output row is q | k | v, so the ops read q, k and v as column blocks
   * (row stride qkvd); gate and up likewise from one GEMM over w1 | w3. */
  const int qkvd = qd + 2 * kvd;
  void *q = sc->qkv, *k = (char *)sc->qkv + (size_t)qd * es, *v = (char *)sc->qkv + (size_t)(qd + kvd) * es;
  void *gate = sc->h13, *up = (char *)sc->h13 + (size_t)hid * es;
  /* Every layer's attention has the same arguments but for its cache view:
   * size the scratch once, with layer 0's. */
  const float scale = 1.0f / sqrtf((float)hd);
  deco_paged_kv_t view0 = deco_kv_cache_layer_view(kc, 0, d_table, P);
  deco_tree_attention_args_t ta = {view0, tree, d_prefix, c->n_heads, scale, q, sc->att, qkvd};
  deco_attention_args_t at = {view0, batch, c->n_heads, scale, q, sc->att, qkvd};
  DECO_TRY(deco_model_ensure_workspace(m, d_parents ? deco_tree_attention_workspace_size(ctx, &ta)
                                                    : deco_attention_workspace_size(ctx, &at)));

  for (int layer = 0; layer < c->n_layers; ++layer) {
    const size_t lo = (size_t)layer;
    /* Attention sublayer; the previous layer's down projection is added to
     * the residual by this RMSNorm. */
    deco_rmsnorm_args_t n1 = {m->dtype, T, dim, c->norm_eps, sc->x, layer ? sc->proj : NULL,
                              (char *)m->w.rms_att + lo * dim * es, sc->xb};
    DECO_TRY(deco_rmsnorm(ctx, &n1));
    DECO_TRY(matmul(m, sc->xb, (const char *)m->w.wqkv + lo * (size_t)qkvd * dim * es, sc->qkv, T, qkvd, dim,
                    m->dtype));
    deco_rope_args_t rope = {m->dtype, c->rope_style, T, c->n_heads, c->n_kv_heads, hd, c->rope_theta, d_pos, q, k,
                             qkvd, qkvd};
    DECO_TRY(deco_rope(ctx, &rope));
    deco_paged_kv_t view = deco_kv_cache_layer_view(kc, layer, d_table, P);
    deco_kv_append_args_t app = {view, batch, k, v, qkvd};
    DECO_TRY(deco_kv_append(ctx, &app));
    ta.cache = at.cache = view;
    DECO_TRY(d_parents ? deco_tree_attention(ctx, &ta) : deco_attention(ctx, &at));
    DECO_TRY(matmul(m, sc->att, (char *)m->w.wo + lo * dim * qd * es, sc->proj, T, dim, qd, m->dtype));
    DECO_TRY(all_reduce(m, sc->proj, T));
    /* FFN sublayer. */
    deco_rmsnorm_args_t n2 = {m->dtype, T, dim, c->norm_eps, sc->x, sc->proj, (char *)m->w.rms_ffn + lo * dim * es,
                              sc->xb};
    DECO_TRY(deco_rmsnorm(ctx, &n2));
    DECO_TRY(matmul(m, sc->xb, (const char *)m->w.w13 + lo * 2 * (size_t)hid * dim * es, sc->h13, T, 2 * hid, dim,
                    m->dtype));
    deco_swiglu_args_t sw = {m->dtype, (size_t)T * hid, gate, up, sc->h, hid, 2 * hid};
    DECO_TRY(deco_swiglu(ctx, &sw));
    DECO_TRY(matmul(m, sc->h, (char *)m->w.w2 + lo * dim * hid * es, sc->proj, T, dim, hid, m->dtype));
    DECO_TRY(all_reduce(m, sc->proj, T));
  }

  return DECO_STATUS_SUCCESS;
}

/* Final norm (adding the last down projection) of rows [first, T) and the
 * classifier into logits [T - first][vocab]. */
static deco_status_t final_rows(deco_model_t *m, int first, int rows, float *logits) {
  const deco_model_config_t *c = &m->cfg;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t es = deco_dtype_size(m->dtype);
  deco_rmsnorm_args_t nf = {m->dtype, rows, c->dim, c->norm_eps, sc->x + (size_t)first * c->dim,
                            (char *)sc->proj + (size_t)first * c->dim * es, m->w.rms_final, sc->xb};
  DECO_TRY(deco_rmsnorm(m->ctx, &nf));
  return matmul(m, sc->xb, m->w.wcls, logits, rows, c->vocab_size, c->dim, DECO_DTYPE_F32);
}

/* What both forwards check first: a model, a cache of that model, arguments. */
static deco_status_t check_model_cache(const deco_model_t *m, const deco_kv_cache_t *kc, const void *a,
                                       const char *op) {
  if (m == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", op);
  DECO_CHECK_PTR(m->ctx, kc, op);
  DECO_CHECK_PTR(m->ctx, a, op);
  if (kc->model != m)
    return DECO_FAIL(m->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the cache belongs to another model", op);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_forward(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a) {
  static const char op[] = "deco_forward";
  DECO_TRY(check_model_cache(m, kc, a, op));
  deco_ctx_t *ctx = m->ctx;
  int T = 0;
  DECO_TRY(check_batch(m, kc, a, &T));
  const deco_model_config_t *c = &m->cfg;
  const int S = a->n_seqs, P = kc->max_pages_per_seq;
  DECO_TRY(ensure_scratch(m, T, S, P));
  deco_forward_scratch_t *sc = &m->scratch;
  meta_layout_t l = meta_layout(sc->max_tokens, sc->max_seqs, sc->max_pages);
  DECO_TRY(fill_meta(m, kc, a, T, l, P));
  /* One upload of everything the kernels index with. */
  DECO_TRY(deco_memcpy(ctx, sc->meta, sc->meta_host, l.total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  batch_meta_t bm = {T, S, P, sc->meta + l.tokens, sc->meta + l.positions, sc->meta + l.q_indptr,
                     sc->meta + l.kv_lens, sc->meta + l.prefix, a->parents ? sc->meta + l.parents : NULL,
                     sc->meta + l.block_table};
  DECO_TRY(run_layers(m, kc, &bm, a->tokens ? NULL : a->embeds));

  /* Final norm (adding the last down projection) and the classifier, only on
   * the rows whose logits are wanted. */
  int contiguous = a->logits_mode == DECO_LOGITS_ALL || S == 1;
  if (!contiguous) {
    contiguous = 1;
    for (int i = 0; i < S; ++i)
      if (a->n_new[i] != 1) contiguous = 0;
  }
  if (contiguous) {
    int first = (a->logits_mode == DECO_LOGITS_LAST && S == 1) ? T - 1 : 0;
    DECO_TRY(final_rows(m, first, T - first, a->logits));
  } else {
    int t = 0;
    for (int i = 0; i < S; ++i) {
      t += a->n_new[i];
      DECO_TRY(final_rows(m, t - 1, 1, a->logits + (size_t)i * c->vocab_size));
    }
  }
  if (a->parents == NULL)
    for (int i = 0; i < S; ++i) kc->len[a->seqs[i]] += a->n_new[i];
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_cache_commit(deco_kv_cache_t *kc, int seq, int n) {
  static const char op[] = "deco_kv_cache_commit";
  if (kc == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: cache is NULL", op);
  deco_ctx_t *ctx = kc->model->ctx;
  if (seq < 0 || seq >= kc->max_seqs || !kc->active[seq])
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: sequence %d is not admitted", op, seq);
  if (n < 0 || kc->len[seq] + n > kc->n_seq_pages[seq] * kc->page_size || kc->len[seq] + n > kc->model->cfg.seq_len)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d has %d slots, cannot commit %d more", op, seq,
                     kc->len[seq], n);
  kc->len[seq] += n;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_forward_device(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_device_args_t *a) {
  static const char op[] = "deco_forward_device";
  DECO_TRY(check_model_cache(m, kc, a, op));
  deco_ctx_t *ctx = m->ctx;
  DECO_CHECK_RANGE(ctx, a->n_seqs, 1, kc->max_seqs, op);
  DECO_CHECK_RANGE(ctx, a->n_tokens, 1, DECO_MAX_FORWARD_TOKENS, op);
  DECO_CHECK_PTR(ctx, a->tokens, op);
  DECO_CHECK_PTR(ctx, a->positions, op);
  DECO_CHECK_PTR(ctx, a->q_indptr, op);
  DECO_CHECK_PTR(ctx, a->kv_lens, op);
  DECO_CHECK_PTR(ctx, a->block_table, op);
  DECO_CHECK_PTR(ctx, a->logits, op);
  if (a->parents) {
    DECO_CHECK_PTR(ctx, a->prefix_lens, op);
    if (a->n_tokens > a->n_seqs * DECO_TREE_MAX_NODES)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %d tokens for %d trees of at most %d nodes", op,
                       a->n_tokens, a->n_seqs, DECO_TREE_MAX_NODES);
  }
  const int T = a->n_tokens, S = a->n_seqs, P = kc->max_pages_per_seq;
  /* Grows only when this batch is larger than every earlier one: warm a
   * captured step up eagerly first. */
  DECO_TRY(ensure_scratch(m, T, S, P));
  batch_meta_t bm = {T, S, P, a->tokens, a->positions, a->q_indptr, a->kv_lens, a->prefix_lens, a->parents,
                     a->block_table};
  DECO_TRY(run_layers(m, kc, &bm, NULL));
  return final_rows(m, 0, T, a->logits);
}
