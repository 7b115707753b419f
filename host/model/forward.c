/* host/model/forward.c — one forward pass of a Llama model over a ragged
 * batch (prefill, decode, or draft-tree verification), built only from the
 * public ops: embedding → per layer [RMSNorm → QKV → RoPE → KV append →
 * attention → O (+all-reduce) → RMSNorm(+residual) → gate/up → SwiGLU →
 * down (+all-reduce)] → final RMSNorm(+residual) → f32 logits.
 * The residual stream is f32; everything else is in the model dtype.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deco/comm.h"
#include "deco/tree.h"
#include "model/model_internal.h"
#include "util/arena.h"

#define DECO_MAX_FORWARD_TOKENS (1 << 20)

/* The batch description: int32 arrays, in context memory and (same
 * layout) in the host image that deco_forward fills and uploads at once;
 * with fused groups of up to G layers (G > 1) also their virtual batch. */
static void meta_layout(deco_arena_t *a, deco_forward_meta_t *mt, int T, int S, int P, int G) {
  mt->tokens = deco_arena_take(a, (size_t)T, sizeof(int32_t), sizeof(int32_t));
  mt->positions = deco_arena_take(a, (size_t)T, sizeof(int32_t), sizeof(int32_t));
  mt->q_indptr = deco_arena_take(a, (size_t)S + 1, sizeof(int32_t), sizeof(int32_t));
  mt->kv_lens = deco_arena_take(a, (size_t)S, sizeof(int32_t), sizeof(int32_t));
  mt->prefix = deco_arena_take(a, (size_t)S, sizeof(int32_t), sizeof(int32_t));
  mt->parents = deco_arena_take(a, (size_t)T, sizeof(int32_t), sizeof(int32_t));
  mt->block_table = deco_arena_take(a, (size_t)S * P, sizeof(int32_t), sizeof(int32_t));
  const size_t g = G > 1 ? (size_t)G : 0, i4 = sizeof(int32_t);
  mt->g_q_indptr = deco_arena_take(a, g ? g * S + 1 : 0, i4, i4);
  mt->g_kv_lens = deco_arena_take(a, g * S, i4, i4);
  mt->g_prefix = deco_arena_take(a, g * S, i4, i4);
  mt->g_positions = deco_arena_take(a, g * T, i4, i4);
  mt->g_parents = deco_arena_take(a, g * T, i4, i4);
  mt->g_table = deco_arena_take(a, g * S * P, i4, i4);
}

/* The whole scratch block for T tokens over S sequences (block-table rows
 * of P pages) and layer groups of up to G layers: activations, then the
 * batch description. */
static void scratch_layout(deco_arena_t *a, deco_forward_scratch_t *s, const deco_model_t *m, int T, int S, int P,
                           int G) {
  const deco_model_hparams_t *c = &m->hp;
  const size_t es = deco_dtype_size(m->dtype), t = (size_t)T;
  const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
  s->x = deco_arena_take(a, t * c->dim, sizeof(float), DECO_ARENA_ALIGN);
  s->xb = deco_arena_take(a, t * c->dim, es, DECO_ARENA_ALIGN);
  s->qkv = deco_arena_take(a, t * (qd + 2 * kvd), es, DECO_ARENA_ALIGN);
  s->att = deco_arena_take(a, t * qd, es, DECO_ARENA_ALIGN);
  s->proj = deco_arena_take(a, t * c->dim, es, DECO_ARENA_ALIGN);
  s->h13 = deco_arena_take(a, t * 2 * c->hidden_dim, es, DECO_ARENA_ALIGN);
  s->h = deco_arena_take(a, t * c->hidden_dim, es, DECO_ARENA_ALIGN);
  /* Groups of one layer use proj; larger groups keep every attention output. */
  s->group_att = deco_arena_take(a, G > 1 ? (size_t)G * t * c->dim : 0, es, DECO_ARENA_ALIGN);
  /* Fused groups: every member's Q/K/V and attention output, layer-major. */
  const size_t F = m->fused.max_group > 1 ? (size_t)m->fused.max_group : 0;
  s->fused_group = (int)F;
  s->g_qkv = deco_arena_take(a, F * t * (qd + 2 * kvd), es, DECO_ARENA_ALIGN);
  s->g_att = deco_arena_take(a, F * t * qd, es, DECO_ARENA_ALIGN);
  deco_arena_take(a, 0, 1, DECO_ARENA_ALIGN);
  meta_layout(a, &s->meta, T, S, P, (int)F);
}

/* Grows the scratch so a batch of T tokens over S sequences with block
 * rows of P pages and layer groups of G layers fits. Allocates only when
 * the batch is larger than every earlier one (or than the plan). */
static deco_status_t ensure_scratch(deco_model_t *m, int T, int S, int P, int G) {
  deco_forward_scratch_t *s = &m->scratch;
  if (m->lp_size > G) G = m->lp_size; /* groups across ranks gather every rank's output */
  if (s->block && T <= s->max_tokens && S <= s->max_seqs && P <= s->max_pages && G <= s->max_group)
    return DECO_STATUS_SUCCESS;
  deco_ctx_t *ctx = m->ctx;
  if (m->plan_held)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY,
                     "held plan (deco_model_hold_plan): a batch of %d tokens over %d sequences, %d pages per row "
                     "and groups of %d layers exceeds the plan's %d, %d, %d and %d",
                     T, S, P, G, s->max_tokens, s->max_seqs, s->max_pages, s->max_group);
  const int cap = T <= s->max_tokens ? s->max_tokens : T < 16 ? 16 : (T + 63) / 64 * 64;
  const int seqs = S > s->max_seqs ? S : s->max_seqs, pages = P > s->max_pages ? P : s->max_pages;
  const int group = G > s->max_group ? G : s->max_group;
  deco_free(ctx, s->block);
  free(s->meta_image);
  deco_forward_scratch_t grown = {.max_tokens = cap, .max_seqs = seqs, .max_pages = pages, .max_group = group};
  *s = (deco_forward_scratch_t){0}; /* until every buffer below exists */
  deco_arena_t a = DECO_ARENA_SIZING;
  scratch_layout(&a, &grown, m, cap, seqs, pages, group);
  grown.block_bytes = a.bytes;
  DECO_TRY(deco_malloc(ctx, &grown.block, grown.block_bytes));
  a = DECO_ARENA_SIZING;
  meta_layout(&a, &grown.meta_host, cap, seqs, pages, m->fused.max_group);
  grown.meta_bytes = a.bytes;
  grown.meta_image = malloc(grown.meta_bytes);
  if (!grown.meta_image) {
    deco_free(ctx, grown.block);
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_forward: out of host memory");
  }
  a = deco_arena_at(grown.block);
  scratch_layout(&a, &grown, m, cap, seqs, pages, group);
  a = deco_arena_at(grown.meta_image);
  meta_layout(&a, &grown.meta_host, cap, seqs, pages, m->fused.max_group);
  *s = grown;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_ensure_workspace(deco_model_t *m, size_t bytes) {
  deco_ctx_t *ctx = m->ctx;
  if (deco_ctx_workspace_bytes(ctx) >= bytes) return DECO_STATUS_SUCCESS;
  if (m->workspace_bytes < bytes) {
    /* Any held model on the context may have captured the workspace lent
     * now, whichever model lent it. */
    if (ctx->plan_holds > 0) /* m's own hold among them */
      return DECO_FAIL(ctx, DECO_STATUS_CAPACITY,
                       "held plan (deco_model_hold_plan): %zu bytes of workspace needed, the plan has %zu", bytes,
                       m->workspace_bytes);
    /* Take the buffer back from the context before freeing it. */
    deco_ctx_return_workspace(ctx, m->workspace);
    deco_free(ctx, m->workspace);
    m->workspace = NULL;
    m->workspace_bytes = 0;
    size_t grown = bytes + bytes / 4;
    DECO_TRY(deco_malloc(ctx, &m->workspace, grown));
    m->workspace_bytes = grown;
  }
  deco_ctx_lend_workspace(ctx, m->workspace, m->workspace_bytes);
  return DECO_STATUS_SUCCESS;
}

void deco_forward_last_batch(const deco_model_t *m, const int32_t **prefix_lens, const int32_t **block_table) {
  *prefix_lens = m->scratch.meta.prefix;
  *block_table = m->scratch.meta.block_table;
}

/* The row-parallel projections (wo, w2) leave each rank a partial sum over
 * its heads or FFN columns: summed across ranks, in rank order, the same
 * bits on every rank (deco/comm.h). */
static deco_status_t all_reduce(deco_model_t *m, void *buf, int T) {
  if (m->comm == NULL) return DECO_STATUS_SUCCESS;
  return deco_comm_all_reduce_sum(m->comm, m->ctx, buf, (size_t)T * m->hp.dim, deco_comm_dtype_of(m->dtype));
}

static deco_status_t matmul(deco_model_t *m, const void *a, const void *w, void *out, int rows, int n, int k,
                            deco_dtype_t out_dtype) {
  deco_matmul_args_t args = {.dtype = m->dtype, .out_dtype = out_dtype, .m = rows, .n = n, .k = k, .a = a, .w = w,
                             .out = out, .accumulate = 0};
  return deco_matmul(m->ctx, &args);
}

/* The schedule a forward runs: its own (checked) or the model's. */
typedef struct schedule_view {
  int n_groups; /* 0: every layer alone */
  const int *first, *count;
  int max_group;
} schedule_view_t;

static deco_status_t resolve_schedule(deco_model_t *m, const deco_layer_schedule_t *s, schedule_view_t *v,
                                      const char *op) {
  if (s == NULL) {
    *v = (schedule_view_t){.n_groups = m->schedule.n_groups, .first = m->schedule.first,
                           .count = m->schedule.count, .max_group = m->schedule.max_group};
    return DECO_STATUS_SUCCESS;
  }
  char what[64];
  snprintf(what, sizeof what, "%s: schedule", op);
  *v = (schedule_view_t){.n_groups = s->n_groups, .first = s->first, .count = s->count};
  DECO_TRY(deco_schedule_check(m->ctx, s, m->hp.n_layers, &v->max_group, what));
  /* Groups across ranks: one layer a rank, as the view's own schedule. */
  if (m->lp_comm && v->max_group > m->lp_size)
    return DECO_FAIL(m->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: a group of %d layers needs %d ranks, the communicator has %d",
                     what, v->max_group, v->max_group, m->lp_size);
  return DECO_STATUS_SUCCESS;
}

/* Host-side checks of the batch's sequence i: admitted, listed once, and
 * new tokens that fit its reservation and the model's context. */
static deco_status_t check_seq(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int i,
                               const char *op) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
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
  if (a->logits_mode == DECO_LOGITS_TAIL && (a->n_tail < 1 || a->n_tail > n))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_tail = %d outside [1, n_new[%d] = %d]", op, a->n_tail,
                     i, n);
  if (kc->len[s] + n > kc->n_seq_pages[s] * kc->page_size)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d has %d + %d slots but reserved %d", op, s,
                     kc->len[s], n, kc->n_seq_pages[s] * kc->page_size);
  if (a->parents == NULL && kc->len[s] + n > c->seq_len)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "%s: sequence %d would reach position %d >= seq_len %d", op, s,
                     kc->len[s] + n - 1, c->seq_len);
  return DECO_STATUS_SUCCESS;
}

/* The batch's t ids within the vocabulary. */
static deco_status_t check_tokens(deco_model_t *m, const deco_forward_args_t *a, long long t, const char *op) {
  const deco_model_hparams_t *c = &m->hp;
  const long long i = (long long)deco_first_id_outside(a->tokens, (size_t)t, c->vocab_size);
  if (i < t)
    return DECO_FAIL(m->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: tokens[%lld] = %d outside the vocabulary [0, %d)",
                     op, i, a->tokens[i], c->vocab_size);
  return DECO_STATUS_SUCCESS;
}

/* The batch's own fields, before any sequence: the count, the arrays,
 * an input, the logits mode. */
static deco_status_t check_batch_fields(deco_ctx_t *ctx, const deco_kv_cache_t *kc, const deco_forward_args_t *a,
                                        const char *op) {
  DECO_CHECK_RANGE(ctx, a->n_seqs, 1, kc->max_seqs, op);
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->seqs), DECO_PTR_ARG(a->n_new), DECO_PTR_ARG(a->logits)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  if (a->tokens == NULL && a->embeds == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: tokens and embeds are both NULL", op);
  if (a->logits_mode != DECO_LOGITS_LAST && a->logits_mode != DECO_LOGITS_ALL && a->logits_mode != DECO_LOGITS_TAIL)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: logits_mode = %d", op, (int)a->logits_mode);
  return DECO_STATUS_SUCCESS;
}

/* Host-side checks of the batch against the cache and the model; *total
 * gets the batch's token count. */
static deco_status_t check_batch(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int *total) {
  static const char op[] = "deco_forward";
  deco_ctx_t *ctx = m->ctx;
  DECO_TRY(check_batch_fields(ctx, kc, a, op));
  long long t = 0;
  for (int i = 0; i < a->n_seqs; ++i) {
    DECO_TRY(check_seq(m, kc, a, i, op));
    t += a->n_new[i];
    if (t > DECO_MAX_FORWARD_TOKENS)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: more than %d tokens in one batch", op,
                       DECO_MAX_FORWARD_TOKENS);
  }
  if (a->tokens) DECO_TRY(check_tokens(m, a, t, op));
  *total = (int)t;
  return DECO_STATUS_SUCCESS;
}

/* Positions and parents of sequence i's rows [t, t + n) of the host image,
 * after len cached tokens: a chain, or tree i's depths (every node within
 * seq_len). */
static deco_status_t fill_seq_positions(deco_model_t *m, const deco_forward_args_t *a, int i, int t, int n, int len) {
  const deco_forward_meta_t *h = &m->scratch.meta_host;
  if (a->parents == NULL) {
    for (int j = 0; j < n; ++j) {
      h->positions[t + j] = len + j;
      h->parents[t + j] = j - 1;
    }
    return DECO_STATUS_SUCCESS;
  }
  const int32_t *par = a->parents + t;
  deco_status_t st = deco_tree_positions(par, n, len, h->positions + t);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(m->ctx, st, "deco_forward: tree %d: %s", i, deco_last_error(NULL));
  for (int j = 0; j < n; ++j) {
    if (h->positions[t + j] >= m->hp.seq_len)
      return DECO_FAIL(m->ctx, DECO_STATUS_CAPACITY, "deco_forward: tree %d node %d at position %d >= seq_len %d", i,
                       j, h->positions[t + j], m->hp.seq_len);
    h->parents[t + j] = par[j];
  }
  return DECO_STATUS_SUCCESS;
}

/* The fused groups' virtual batch, from the host image's first T rows of
 * S sequences (block-table rows of P pages): layer i of a group, sequence
 * s is sequence i·S + s over the pools from the group's first layer on,
 * where the i-th layer's page p is page i·n_pages + p. */
static void fill_fused_meta(const deco_forward_meta_t *h, int G, int S, int T, int P, int n_pages) {
  for (int i = 0; i < G; ++i) {
    const int32_t off = (int32_t)((long long)i * n_pages); /* < 2^30: check_model_cache */
    for (int j = 0; j < S; ++j) {
      const int v = i * S + j;
      h->g_q_indptr[v + 1] = i * T + h->q_indptr[j + 1];
      h->g_kv_lens[v] = h->kv_lens[j];
      h->g_prefix[v] = h->prefix[j];
      for (int p = 0; p < P; ++p) {
        const int32_t page = h->block_table[(size_t)j * P + p];
        h->g_table[(size_t)v * P + p] = page < 0 ? page : page + off;
      }
    }
    memcpy(h->g_positions + (size_t)i * T, h->positions, sizeof(int32_t) * (size_t)T);
    memcpy(h->g_parents + (size_t)i * T, h->parents, sizeof(int32_t) * (size_t)T);
  }
  if (G > 1) h->g_q_indptr[0] = 0;
}

/* Fills the host image of the batch description; tree positions come from
 * depths. P: block-table row length. */
static deco_status_t fill_meta(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int P) {
  const deco_forward_meta_t *h = &m->scratch.meta_host;
  int S = a->n_seqs;
  int t = 0;
  h->q_indptr[0] = 0;
  for (int i = 0; i < S; ++i) {
    int s = a->seqs[i], n = a->n_new[i], len = kc->len[s];
    DECO_TRY(fill_seq_positions(m, a, i, t, n, len));
    if (a->tokens)
      for (int j = 0; j < n; ++j) h->tokens[t + j] = a->tokens[t + j];
    t += n;
    h->q_indptr[i + 1] = t;
    h->kv_lens[i] = len + n;
    h->prefix[i] = len;
    memcpy(h->block_table + (size_t)i * P, kc->pages + (size_t)s * kc->max_pages_per_seq, sizeof(int32_t) * (size_t)P);
  }
  fill_fused_meta(h, m->scratch.fused_group, S, t, P, kc->n_pages);
  return DECO_STATUS_SUCCESS;
}

/* The batch as the kernels see it: context memory, host-known capacities. */
typedef struct batch_meta {
  int T, S, P;
  const int32_t *tokens, *positions, *q_indptr, *kv_lens, *prefix, *parents, *table;
  /* The fused groups' virtual batch (deco_forward_meta_t), or NULL: the
   * device forward, whose batch description the caller owns, runs every
   * group unfused. */
  const int32_t *g_q_indptr, *g_kv_lens, *g_prefix, *g_positions, *g_parents, *g_table;
} batch_meta_t;

/* The arguments every layer's attention shares (the cache view is set per
 * layer): tree attention with parents, else causal. */
typedef struct attention_call {
  deco_tree_attention_args_t tree;
  deco_attention_args_t causal;
  int is_tree;
} attention_call_t;

static attention_call_t attention_call(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm) {
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const int qkvd = c->n_heads * c->head_dim + 2 * c->n_kv_heads * c->head_dim;
  const float scale = 1.0f / sqrtf((float)c->head_dim);
  const deco_paged_kv_t view0 = deco_kv_cache_layer_view(kc, 0, bm->table, bm->P);
  attention_call_t call = {.is_tree = bm->parents != NULL};
  call.tree = (deco_tree_attention_args_t){
      .cache = view0,
      .tree = {.n_trees = bm->S, .n_nodes = bm->T, .tree_indptr = bm->q_indptr, .parent = bm->parents},
      .prefix_lens = bm->prefix,
      .n_heads = c->n_heads,
      .scale = scale,
      .q = sc->qkv,
      .out = sc->att,
      .q_stride = qkvd};
  call.causal = (deco_attention_args_t){
      .cache = view0,
      .batch = {.n_seqs = bm->S, .n_tokens = bm->T, .q_indptr = bm->q_indptr, .kv_lens = bm->kv_lens},
      .n_heads = c->n_heads,
      .scale = scale,
      .q = sc->qkv,
      .out = sc->att,
      .q_stride = qkvd};
  return call;
}

/* Workspace the attention of a batch needs (every layer's is the same). */
static size_t attention_workspace(deco_model_t *m, const attention_call_t *call) {
  return call->is_tree ? deco_tree_attention_workspace_size(m->ctx, &call->tree)
                       : deco_attention_workspace_size(m->ctx, &call->causal);
}

/* Attention sublayer of layer l: out = Wo · Attn(RMSNorm(x += add)) (add
 * may be NULL), the layer's K/V appended to the cache on the way. */
static deco_status_t attention_sublayer(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                                        attention_call_t *call, int l, const void *add, void *out) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t es = deco_dtype_size(m->dtype), lo = (size_t)l;
  const int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, T = bm->T;
  /* Q, K and V come from one GEMM over the stacked rows of wq, wk, wv: token
   * t's output row is q | k | v, so the ops read q, k and v as column blocks
   * (row stride qkvd). */
  const int qkvd = qd + 2 * kvd;
  void *q = sc->qkv, *k = (char *)sc->qkv + (size_t)qd * es, *v = (char *)sc->qkv + (size_t)(qd + kvd) * es;
  deco_rmsnorm_args_t n1 = {.dtype = m->dtype, .n_rows = T, .dim = dim, .eps = c->norm_eps, .residual = sc->x,
                            .add = add, .weight = (char *)m->w.rms_att + lo * dim * es, .out = sc->xb};
  DECO_TRY(deco_rmsnorm(ctx, &n1));
  DECO_TRY(matmul(m, sc->xb, (const char *)m->w.wqkv + lo * (size_t)qkvd * dim * es, sc->qkv, T, qkvd, dim, m->dtype));
  deco_rope_args_t rope = {.dtype = m->dtype, .style = c->rope_style, .n_tokens = T, .n_heads = c->n_heads,
                           .n_kv_heads = c->n_kv_heads, .head_dim = hd, .theta = c->rope_theta,
                           .positions = bm->positions, .q = q, .k = k, .q_stride = qkvd, .k_stride = qkvd};
  DECO_TRY(deco_rope(ctx, &rope));
  deco_paged_kv_t view = deco_kv_cache_layer_view(kc, l, bm->table, bm->P);
  deco_kv_append_args_t app = {.cache = view,
                               .batch = {.n_seqs = bm->S, .n_tokens = T, .q_indptr = bm->q_indptr,
                                         .kv_lens = bm->kv_lens},
                               .k = k,
                               .v = v,
                               .kv_stride = qkvd};
  DECO_TRY(deco_kv_append(ctx, &app));
  call->tree.cache = call->causal.cache = view;
  DECO_TRY(call->is_tree ? deco_tree_attention(ctx, &call->tree) : deco_attention(ctx, &call->causal));
  DECO_TRY(matmul(m, sc->att, (char *)m->w.wo + lo * dim * qd * es, out, T, dim, qd, m->dtype));
  return all_reduce(m, out, T);
}

/* FFN sublayer of layer l: proj = W2 · SwiGLU(W13 · RMSNorm'(x += add));
 * gate and up come from one GEMM over w1 | w3. */
static deco_status_t ffn_sublayer(deco_model_t *m, const batch_meta_t *bm, int l, const void *add) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t es = deco_dtype_size(m->dtype), lo = (size_t)l;
  const int dim = c->dim, hid = c->hidden_dim, T = bm->T;
  void *gate = sc->h13, *up = (char *)sc->h13 + (size_t)hid * es;
  deco_rmsnorm_args_t n2 = {.dtype = m->dtype, .n_rows = T, .dim = dim, .eps = c->norm_eps, .residual = sc->x,
                            .add = add, .weight = (char *)m->w.rms_ffn + lo * dim * es, .out = sc->xb};
  DECO_TRY(deco_rmsnorm(ctx, &n2));
  DECO_TRY(matmul(m, sc->xb, (const char *)m->w.w13 + lo * 2 * (size_t)hid * dim * es, sc->h13, T, 2 * hid, dim,
                  m->dtype));
  deco_swiglu_args_t sw = {.dtype = m->dtype, .n = (size_t)T * hid, .gate = gate, .up = up, .out = sc->h,
                           .row_len = hid, .in_stride = 2 * hid};
  DECO_TRY(deco_swiglu(ctx, &sw));
  DECO_TRY(matmul(m, sc->h, (char *)m->w.w2 + lo * dim * hid * es, sc->proj, T, dim, hid, m->dtype));
  return all_reduce(m, sc->proj, T);
}

/* The attention arguments of a fused group of count layers: the virtual
 * batch of count·S sequences (deco_forward_meta_t) over the pools from
 * layer first on, queries and outputs layer-major in g_qkv and g_att. */
static attention_call_t fused_attention_call(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm, int first,
                                             int count) {
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const batch_meta_t vb = {.T = count * bm->T, .S = count * bm->S, .P = bm->P, .q_indptr = bm->g_q_indptr,
                           .kv_lens = bm->g_kv_lens, .prefix = bm->g_prefix, .positions = bm->g_positions,
                           .parents = bm->parents ? bm->g_parents : NULL, .table = bm->g_table};
  attention_call_t call = attention_call(m, kc, &vb);
  deco_paged_kv_t view = deco_kv_cache_layer_view(kc, first, bm->g_table, bm->P);
  view.n_pages = count * kc->n_pages;
  call.tree.cache = call.causal.cache = view;
  call.tree.q = call.causal.q = sc->g_qkv;
  call.tree.out = call.causal.out = sc->g_att;
  (void)c;
  return call;
}

/* The attention sublayers of a fused group fg entered with x (+ add):
 * A_i = Wo_i · Attn_i(RMSNorm_i(h₁)) for every member i into group_att[i],
 * with one weightless RMSNorm, one batched GEMM over the stacked
 * norm-folded Q/K/V (its output layer-major, [count][T][qkv]), one RoPE and
 * one KV append over the virtual batch (layer i's tokens are tokens i·T ..,
 * its sequences i·S ..), one attention over it, and one batched GEMM for
 * the count O projections. */
static deco_status_t fused_attention(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                                     const deco_fused_group_t *fg, const void *add) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t es = deco_dtype_size(m->dtype);
  const int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, T = bm->T;
  const int qkvd = qd + 2 * kvd, N = fg->count, VT = N * T;
  deco_rmsnorm_args_t n1 = {.dtype = m->dtype, .n_rows = T, .dim = dim, .eps = c->norm_eps, .residual = sc->x,
                            .add = add, .weight = m->fused.ones, .out = sc->xb};
  DECO_TRY(deco_rmsnorm(ctx, &n1));
  deco_matmul_batched_args_t qkv = {
      .mm = {.dtype = m->dtype, .out_dtype = m->dtype, .m = T, .n = qkvd, .k = dim, .a = sc->xb, .w = fg->wqkv,
             .out = sc->g_qkv, .accumulate = 0},
      .n_batch = N, .stride_a = 0, .stride_w = (long long)qkvd * dim, .stride_out = (long long)T * qkvd};
  DECO_TRY(deco_matmul_batched(ctx, &qkv));
  void *k = (char *)sc->g_qkv + (size_t)qd * es, *v = (char *)sc->g_qkv + (size_t)(qd + kvd) * es;
  deco_rope_args_t rope = {.dtype = m->dtype, .style = c->rope_style, .n_tokens = VT, .n_heads = c->n_heads,
                           .n_kv_heads = c->n_kv_heads, .head_dim = hd, .theta = c->rope_theta,
                           .positions = bm->g_positions, .q = sc->g_qkv, .k = k, .q_stride = qkvd,
                           .k_stride = qkvd};
  DECO_TRY(deco_rope(ctx, &rope));
  attention_call_t call = fused_attention_call(m, kc, bm, fg->first, N);
  deco_kv_append_args_t app = {.cache = call.causal.cache,
                               .batch = {.n_seqs = N * bm->S, .n_tokens = VT, .q_indptr = bm->g_q_indptr,
                                         .kv_lens = bm->g_kv_lens},
                               .k = k,
                               .v = v,
                               .kv_stride = qkvd};
  DECO_TRY(deco_kv_append(ctx, &app));
  DECO_TRY(call.is_tree ? deco_tree_attention(ctx, &call.tree) : deco_attention(ctx, &call.causal));
  deco_matmul_batched_args_t o = {
      .mm = {.dtype = m->dtype, .out_dtype = m->dtype, .m = T, .n = dim, .k = qd, .a = sc->g_att,
             .w = (const char *)m->w.wo + (size_t)fg->first * dim * qd * es, .out = sc->group_att, .accumulate = 0},
      .n_batch = N, .stride_a = (long long)T * qd, .stride_w = (long long)dim * qd, .stride_out = (long long)T * dim};
  return deco_matmul_batched(ctx, &o);
}

/* The attention sublayers of a group across ranks (deco_model_create_view_ranks):
 * x (+ add) becomes the group input h₁, broadcast from rank 0; rank r
 * computes A_r of layer first + r (r < count; its K/V go to its own cache)
 * and the ranks' outputs are all-gathered into group_att [size][T][dim], in
 * rank order, so group_att[i] = A_i on every rank. */
static deco_status_t ranks_attention(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                                     attention_call_t *call, int first, int count, const void *add) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t n = (size_t)bm->T * c->dim;
  if (add) {
    /* h₁ = x + add (the normalised copy is not used). */
    deco_rmsnorm_args_t a = {.dtype = m->dtype, .n_rows = bm->T, .dim = c->dim, .eps = c->norm_eps,
                             .residual = sc->x, .add = add, .weight = m->w.rms_final, .out = sc->xb};
    DECO_TRY(deco_rmsnorm(ctx, &a));
  }
  DECO_TRY(deco_comm_broadcast(m->lp_comm, ctx, sc->x, n, DECO_COMM_F32, 0));
  if (m->lp_rank < count) {
    DECO_TRY(attention_sublayer(m, kc, bm, call, first + m->lp_rank, NULL, sc->proj));
  } else {
    DECO_TRY(deco_memset(ctx, sc->proj, 0, n * deco_dtype_size(m->dtype)));
  }
  return deco_comm_all_gather(m->lp_comm, ctx, sc->proj, sc->group_att, n, deco_comm_dtype_of(m->dtype));
}

/* Row block i of group_att [count][T][dim]: layer first + i's attention
 * output within a group. */
static void *group_att_of(deco_model_t *m, const batch_meta_t *bm, int i) {
  const size_t out_bytes = (size_t)bm->T * m->hp.dim * deco_dtype_size(m->dtype);
  return (char *)m->scratch.group_att + (size_t)i * out_bytes;
}

/* The attention sublayers of a group of count > 1 layers, all reading the
 * group's input x (+ add), into group_att: across ranks, as one fused
 * group, or layer by layer. */
static deco_status_t group_attention(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                                     attention_call_t *call, int first, int count, const void *add) {
  const deco_fused_group_t *fg = bm->g_q_indptr ? deco_model_fused_group(m, first, count) : NULL;
  if (m->lp_comm) return ranks_attention(m, kc, bm, call, first, count, add);
  if (fg) return fused_attention(m, kc, bm, fg, add);
  for (int i = 0; i < count; ++i)
    DECO_TRY(attention_sublayer(m, kc, bm, call, first + i, i == 0 ? add : NULL, group_att_of(m, bm, i)));
  return DECO_STATUS_SUCCESS;
}

/* The FFN sublayers of a group, in layer order: each adds its layer's
 * attention output (group_att) and, after the first, the previous FFN's. */
static deco_status_t group_ffns(deco_model_t *m, const batch_meta_t *bm, int first, int count) {
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  for (int i = 0; i < count; ++i) {
    if (i > 0) {
      /* h += the previous layer's FFN output (the normalised copy is not used). */
      deco_rmsnorm_args_t add = {.dtype = m->dtype, .n_rows = bm->T, .dim = c->dim, .eps = c->norm_eps,
                                 .residual = sc->x, .add = sc->proj, .weight = m->w.rms_final, .out = sc->xb};
      DECO_TRY(deco_rmsnorm(m->ctx, &add));
    }
    DECO_TRY(ffn_sublayer(m, bm, first + i, group_att_of(m, bm, i)));
  }
  return DECO_STATUS_SUCCESS;
}

/* Layers first .. first + count - 1 entered with the residual x (+ *pending,
 * the previous layer's down projection, not yet added; NULL before the
 * first layer). One layer: the ordinary layer. Several: every attention
 * sublayer reads the group's input h1, then each layer in order adds its
 * attention output and its FFN's (DESIGN.md, "The model config"). On
 * return the group's last down projection is pending in proj. */
static deco_status_t run_group(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm, attention_call_t *call,
                               int first, int count, const void **pending) {
  deco_forward_scratch_t *sc = &m->scratch;
  if (count == 1) {
    DECO_TRY(attention_sublayer(m, kc, bm, call, first, *pending, sc->proj));
    DECO_TRY(ffn_sublayer(m, bm, first, sc->proj));
  } else {
    DECO_TRY(group_attention(m, kc, bm, call, first, count, *pending));
    DECO_TRY(group_ffns(m, bm, first, count));
  }
  *pending = sc->proj;
  return DECO_STATUS_SUCCESS;
}

/* The input rows into the residual sc->x: bm->tokens, else embeds_host
 * (host rows) or embeds_dev (context memory). */
static deco_status_t embed_input(deco_model_t *m, const batch_meta_t *bm, const float *embeds_host,
                                 const float *embeds_dev) {
  deco_ctx_t *ctx = m->ctx;
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const int T = bm->T;
  if (embeds_host) {
    /* Ready embeddings from the host: staged through the residual buffer itself. */
    return deco_memcpy(ctx, sc->x, embeds_host, (size_t)T * c->dim * sizeof(float), DECO_COPY_HOST_TO_CTX);
  }
  deco_embedding_args_t emb = {.dtype = m->dtype, .n_tokens = T, .vocab = c->vocab_size, .dim = c->dim,
                               .table = m->w.token_embedding, .tokens = bm->tokens, .embeds = embeds_dev,
                               .out = sc->x};
  return deco_embedding(ctx, &emb);
}

/* The workspace every layer's attention needs: call's (layer 0's), and
 * each fused group size's virtual batch's when groups are fused (an
 * attention's workspace does not grow monotonically with its batch, so
 * the largest group alone does not bound a smaller one's). */
static size_t layers_workspace(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                               const attention_call_t *call) {
  size_t ws = attention_workspace(m, call);
  if (!bm->g_q_indptr) return ws;
  for (int g = 0; g < m->fused.n_groups; ++g) {
    const int count = m->fused.groups[g].count;
    int seen = count < 2;
    for (int h = 0; h < g && !seen; ++h) seen = m->fused.groups[h].count == count;
    if (seen) continue;
    const attention_call_t fc = fused_attention_call(m, kc, bm, 0, count);
    const size_t need = attention_workspace(m, &fc);
    if (need > ws) ws = need;
  }
  return ws;
}

/* The input and every scheduled layer; leaves the residual in sc->x and the
 * last down projection (not yet added) in sc->proj, or *added = 0 when no
 * layer ran. Input: bm->tokens, else embeds_host (host rows) or
 * embeds_dev (context memory). */
static deco_status_t run_layers(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *bm,
                                const schedule_view_t *sched, const float *embeds_host, const float *embeds_dev,
                                const void **pending) {
  const deco_model_hparams_t *c = &m->hp;
  DECO_TRY(embed_input(m, bm, embeds_host, embeds_dev));
  /* Every layer's attention has the same arguments but for its cache view:
   * the workspace is sized once, with layer 0's. */
  attention_call_t call = attention_call(m, kc, bm);
  DECO_TRY(deco_model_ensure_workspace(m, layers_workspace(m, kc, bm, &call)));
  *pending = NULL;
  const int n_groups = sched->n_groups ? sched->n_groups : c->n_layers;
  for (int g = 0; g < n_groups; ++g) {
    const int first = sched->n_groups ? sched->first[g] : g, count = sched->n_groups ? sched->count[g] : 1;
    DECO_TRY(run_group(m, kc, bm, &call, first, count, pending));
  }
  return DECO_STATUS_SUCCESS;
}

/* Final norm (adding the last down projection, if a layer ran) of rows
 * [first, first + rows) and the classifier into logits [rows][vocab]. */
static deco_status_t final_rows(deco_model_t *m, const void *pending, int first, int rows, float *logits) {
  const deco_model_hparams_t *c = &m->hp;
  deco_forward_scratch_t *sc = &m->scratch;
  const size_t es = deco_dtype_size(m->dtype);
  deco_rmsnorm_args_t nf = {.dtype = m->dtype, .n_rows = rows, .dim = c->dim, .eps = c->norm_eps,
                            .residual = sc->x + (size_t)first * c->dim,
                            .add = pending ? (const char *)pending + (size_t)first * c->dim * es : NULL,
                            .weight = m->w.rms_final, .out = sc->xb};
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
  /* A fused group's attention reads its layers' pools as one of G times
   * the pages, within the kernels' 2^30. */
  if (m->fused.max_group > 1 && (long long)m->fused.max_group * kc->n_pages > (1LL << 30))
    return DECO_FAIL(m->ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: fused layer groups of %d layers over a cache of %d pages: more than 2^30 pages at once", op,
                     m->fused.max_group, kc->n_pages);
  return DECO_STATUS_SUCCESS;
}

/* The batch of T tokens as the kernels see it (block-table rows of P
 * pages): fill_meta's host image uploaded at once into the scratch's
 * batch description; with fused groups also their virtual batch. */
static deco_status_t upload_batch(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a, int T, int P,
                                  batch_meta_t *bm) {
  deco_forward_scratch_t *sc = &m->scratch;
  DECO_TRY(fill_meta(m, kc, a, P));
  /* One upload of everything the kernels index with. */
  DECO_TRY(deco_memcpy(m->ctx, sc->meta.tokens, sc->meta_image, sc->meta_bytes, DECO_COPY_HOST_TO_CTX));
  *bm = (batch_meta_t){.T = T, .S = a->n_seqs, .P = P, .tokens = sc->meta.tokens, .positions = sc->meta.positions,
                       .q_indptr = sc->meta.q_indptr, .kv_lens = sc->meta.kv_lens, .prefix = sc->meta.prefix,
                       .parents = a->parents ? sc->meta.parents : NULL, .table = sc->meta.block_table};
  if (sc->fused_group > 1) {
    bm->g_q_indptr = sc->meta.g_q_indptr;
    bm->g_kv_lens = sc->meta.g_kv_lens;
    bm->g_prefix = sc->meta.g_prefix;
    bm->g_positions = sc->meta.g_positions;
    bm->g_parents = sc->meta.g_parents;
    bm->g_table = sc->meta.g_table;
  }
  return DECO_STATUS_SUCCESS;
}

/* Whether the rows whose logits are wanted (each sequence's last tail
 * tokens) are the batch's last rows, or all of them. */
static int wanted_rows_contiguous(const deco_forward_args_t *a, int tail) {
  if (a->logits_mode == DECO_LOGITS_ALL || a->n_seqs == 1) return 1;
  for (int i = 0; i < a->n_seqs; ++i)
    if (a->n_new[i] != tail) return 0;
  return 1;
}

/* Final norm (adding the last down projection) and the classifier, only on
 * the rows whose logits are wanted: each sequence's last `tail` tokens, or
 * every token (ALL). */
static deco_status_t wanted_logits(deco_model_t *m, const deco_forward_args_t *a, const void *pending, int T) {
  const int S = a->n_seqs;
  const int tail = a->logits_mode == DECO_LOGITS_TAIL ? a->n_tail : 1;
  if (wanted_rows_contiguous(a, tail)) {
    int first = (a->logits_mode != DECO_LOGITS_ALL && S == 1) ? T - tail : 0;
    return final_rows(m, pending, first, T - first, a->logits);
  }
  int t = 0;
  for (int i = 0; i < S; ++i) {
    t += a->n_new[i];
    DECO_TRY(final_rows(m, pending, t - tail, tail, a->logits + (size_t)i * tail * m->hp.vocab_size));
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_forward(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_args_t *a) {
  static const char op[] = "deco_forward";
  DECO_TRY(check_model_cache(m, kc, a, op));
  int T = 0;
  DECO_TRY(check_batch(m, kc, a, &T));
  schedule_view_t sched;
  DECO_TRY(resolve_schedule(m, a->schedule, &sched, op));
  const int S = a->n_seqs, P = kc->max_pages_per_seq;
  DECO_TRY(ensure_scratch(m, T, S, P, sched.max_group));
  batch_meta_t bm;
  DECO_TRY(upload_batch(m, kc, a, T, P, &bm));
  const void *pending;
  DECO_TRY(run_layers(m, kc, &bm, &sched, a->tokens ? NULL : a->embeds, NULL, &pending));
  DECO_TRY(wanted_logits(m, a, pending, T));
  if (a->parents == NULL)
    for (int i = 0; i < S; ++i) kc->len[a->seqs[i]] += a->n_new[i];
  return DECO_STATUS_SUCCESS;
}

/* A device tree batch's host-known arguments: the prefix lengths, and no
 * more tokens than its trees can hold. */
static deco_status_t check_device_trees(deco_ctx_t *ctx, const deco_forward_device_args_t *a, const char *op) {
  DECO_CHECK_PTR(ctx, a->prefix_lens, op);
  if (a->n_tokens > a->n_seqs * DECO_TREE_MAX_NODES)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %d tokens for %d trees of at most %d nodes", op,
                     a->n_tokens, a->n_seqs, DECO_TREE_MAX_NODES);
  return DECO_STATUS_SUCCESS;
}

/* The device forward's host-known arguments: sizes and pointers (the
 * batch itself is in context memory). */
static deco_status_t check_device_args(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_device_args_t *a,
                                       const char *op) {
  deco_ctx_t *ctx = m->ctx;
  DECO_CHECK_RANGE(ctx, a->n_seqs, 1, kc->max_seqs, op);
  DECO_CHECK_RANGE(ctx, a->n_tokens, 1, DECO_MAX_FORWARD_TOKENS, op);
  if (a->tokens == NULL && a->embeds == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: tokens and embeds are both NULL", op);
  const deco_ptr_arg_t arrays[] = {DECO_PTR_ARG(a->positions), DECO_PTR_ARG(a->q_indptr), DECO_PTR_ARG(a->kv_lens),
                                   DECO_PTR_ARG(a->block_table), DECO_PTR_ARG(a->logits)};
  DECO_CHECK_PTR_ARGS(ctx, arrays, op);
  return a->parents ? check_device_trees(ctx, a, op) : DECO_STATUS_SUCCESS;
}

deco_status_t deco_forward_device(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_device_args_t *a) {
  static const char op[] = "deco_forward_device";
  DECO_TRY(check_model_cache(m, kc, a, op));
  DECO_TRY(check_device_args(m, kc, a, op));
  schedule_view_t sched;
  DECO_TRY(resolve_schedule(m, a->schedule, &sched, op));
  const int T = a->n_tokens, S = a->n_seqs, P = kc->max_pages_per_seq;
  /* Allocates only beyond the plan (deco_model_plan) or the largest batch
   * so far: plan before capturing. */
  DECO_TRY(ensure_scratch(m, T, S, P, sched.max_group));
  batch_meta_t bm = {.T = T, .S = S, .P = P, .tokens = a->tokens, .positions = a->positions, .q_indptr = a->q_indptr,
                     .kv_lens = a->kv_lens, .prefix = a->prefix_lens, .parents = a->parents,
                     .table = a->block_table};
  const void *pending;
  DECO_TRY(run_layers(m, kc, &bm, &sched, NULL, a->tokens ? NULL : a->embeds, &pending));
  return final_rows(m, pending, 0, T, a->logits);
}

deco_status_t deco_model_hold_plan(deco_model_t *m, int hold) {
  if (!m) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_model_hold_plan: model is NULL");
  if (hold && !m->plan_held) ++m->ctx->plan_holds;
  if (!hold && m->plan_held) --m->ctx->plan_holds;
  m->plan_held = hold != 0;
  return DECO_STATUS_SUCCESS;
}

/* The next batch size a plan's scan looks at: every size up to 4096, then
 * steps of 1/64 (the workspace changes slowly there). */
static int next_size(int n) { return n < 4096 ? n + 1 : n + n / 64; }

/* The attention's workspace is not monotone in the batch (fewer tokens or
 * sequences may split the keys into more chunks): the largest over every
 * batch of up to bm->T tokens over up to bm->S sequences the plan admits. */
static size_t attention_workspace_max(deco_model_t *m, deco_kv_cache_t *kc, const batch_meta_t *full) {
  size_t most = 0;
  batch_meta_t bm = *full;
  for (int S = 1; S <= full->S; S = next_size(S))
    for (int T = S; T <= full->T && (!full->parents || T <= S * DECO_TREE_MAX_NODES); T = next_size(T)) {
      bm.S = S;
      bm.T = T;
      const attention_call_t call = attention_call(m, kc, &bm);
      const size_t need = attention_workspace(m, &call);
      if (need > most) most = need;
    }
  const attention_call_t call = attention_call(m, kc, full);
  const size_t need = attention_workspace(m, &call);
  return need > most ? need : most;
}

/* A plan's sizes within the cache's and the forward's limits. */
static deco_status_t check_plan(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_plan_t *p, const char *op) {
  deco_ctx_t *ctx = m->ctx;
  DECO_CHECK_RANGE(ctx, p->max_seqs, 1, kc->max_seqs, op);
  DECO_CHECK_RANGE(ctx, p->max_tokens, p->max_seqs, DECO_MAX_FORWARD_TOKENS, op);
  DECO_CHECK_RANGE(ctx, p->causal, 0, 1, op);
  DECO_CHECK_RANGE(ctx, p->tree, 0, 1, op);
  if (p->tree && p->max_tokens > p->max_seqs * DECO_TREE_MAX_NODES)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %d tokens for %d trees of at most %d nodes", op,
                     p->max_tokens, p->max_seqs, DECO_TREE_MAX_NODES);
  return DECO_STATUS_SUCCESS;
}

/* The attentions' workspace at the plan's sizes (T tokens over S
 * sequences, block-table rows of P pages; at least p->workspace_bytes),
 * over the scratch's own batch description (only its capacities matter). */
static size_t plan_workspace(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_plan_t *p, int T, int S,
                             int P) {
  deco_forward_scratch_t *sc = &m->scratch;
  batch_meta_t bm = {.T = T, .S = S, .P = P, .tokens = sc->meta.tokens, .positions = sc->meta.positions,
                     .q_indptr = sc->meta.q_indptr, .kv_lens = sc->meta.kv_lens, .prefix = sc->meta.prefix,
                     .parents = NULL, .table = sc->meta.block_table};
  size_t ws = p->workspace_bytes;
  /* A fused group's attention runs over a virtual batch of up to G times
   * the sequences and tokens (deco_forward_meta_t): the largest over those
   * batches too. */
  const int G = sc->fused_group;
  const batch_meta_t fused = {.T = G * T, .S = G * S, .P = P, .q_indptr = sc->meta.g_q_indptr,
                              .kv_lens = sc->meta.g_kv_lens, .prefix = sc->meta.g_prefix,
                              .positions = sc->meta.g_positions, .table = sc->meta.g_table};
  for (int tree = 0; tree < 2; ++tree)
    if (tree ? p->tree : p->causal) {
      bm.parents = tree ? sc->meta.parents : NULL;
      size_t need = attention_workspace_max(m, kc, &bm);
      if (need > ws) ws = need;
      if (G > 1) {
        batch_meta_t vb = fused;
        vb.parents = tree ? sc->meta.g_parents : NULL;
        need = attention_workspace_max(m, kc, &vb);
        if (need > ws) ws = need;
      }
    }
  return ws;
}

deco_status_t deco_model_plan(deco_model_t *m, deco_kv_cache_t *kc, const deco_forward_plan_t *p,
                              deco_forward_sizes_t *sizes) {
  static const char op[] = "deco_model_plan";
  DECO_TRY(check_model_cache(m, kc, p, op));
  DECO_TRY(check_plan(m, kc, p, op));
  const int T = p->max_tokens, S = p->max_seqs, P = kc->max_pages_per_seq;
  DECO_TRY(ensure_scratch(m, T, S, P, m->schedule.max_group));
  const size_t ws = plan_workspace(m, kc, p, T, S, P);
  DECO_TRY(deco_model_ensure_workspace(m, ws));
  if (sizes) {
    /* What is held: the scratch rounds its tokens up (ensure_scratch). */
    sizes->scratch_bytes = m->scratch.block_bytes;
    sizes->workspace_bytes = ws;
  }
  return DECO_STATUS_SUCCESS;
}
