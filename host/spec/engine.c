/* host/spec/engine.c — one speculative step for a batch of sequences:
 * tree forward (all nodes' logits) → acceptance (greedy, or lossless
 * sampling with deterministic drafts) → KV compaction of the accepted paths
 * → commit. Everything between the forward and the final copy of the
 * outputs stays on the device; the host only learns the emitted tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "deco/spec.h"
#include "model/model_internal.h"

/* Device block, int32 words: tree_indptr[B+1] parents[B*N] tokens[B*N]
 * path[B*256] accept_len[B] bonus[B] nonfinite[B] offset[1] pad[1]
 * seed[2 words]. */
struct deco_spec_engine {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int max_seqs, max_nodes;
  float *logits;    /* [max_seqs * max_nodes][vocab] */
  deco_recycler_t *recycler; /* Token Recycling table to update, or NULL */
  int32_t *topk;    /* [max_seqs * max_nodes][DECO_RECYCLE_MAX_K] */
  int32_t *dev;     /* the device block */
  int32_t *host;    /* its host image */
  size_t words;
};

typedef struct layout {
  size_t indptr, parents, tokens, path, accept_len, bonus, nonfinite, offset, seed, total;
} layout_t;

static layout_t layout(int B, int N) {
  layout_t l;
  size_t o = 0;
  l.indptr = o, o += (size_t)B + 1;
  l.parents = o, o += (size_t)B * N;
  l.tokens = o, o += (size_t)B * N;
  l.path = o, o += (size_t)B * DECO_TREE_MAX_NODES;
  l.accept_len = o, o += (size_t)B;
  l.bonus = o, o += (size_t)B;
  l.nonfinite = o, o += (size_t)B;
  l.offset = o, o += 1;
  o = (o + 1) & ~(size_t)1; /* 8-byte alignment for the seed */
  l.seed = o, o += 2;
  l.total = o;
  return l;
}

deco_status_t deco_spec_engine_create(deco_model_t *model, deco_kv_cache_t *cache, int max_seqs, int max_nodes,
                                      deco_spec_engine_t **out) {
  static const char op[] = "deco_spec_engine_create";
  if (!model || !cache || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  deco_ctx_t *ctx = model->ctx;
  *out = NULL;
  DECO_CHECK_RANGE(ctx, max_seqs, 1, cache->max_seqs, op);
  DECO_CHECK_RANGE(ctx, max_nodes, 1, DECO_TREE_MAX_NODES, op);
  deco_spec_engine_t *e = calloc(1, sizeof *e);
  if (!e) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  e->model = model;
  e->cache = cache;
  e->max_seqs = max_seqs;
  e->max_nodes = max_nodes;
  layout_t l = layout(max_seqs, max_nodes);
  e->words = l.total;
  e->host = calloc(l.total, sizeof(int32_t));
  deco_status_t st = e->host ? DECO_STATUS_SUCCESS : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", op);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&e->dev, l.total * sizeof(int32_t));
  if (st == DECO_STATUS_SUCCESS)
    st = deco_malloc(ctx, (void **)&e->logits,
                     sizeof(float) * (size_t)max_seqs * max_nodes * model->cfg.vocab_size);
  if (st != DECO_STATUS_SUCCESS) {
    deco_spec_engine_destroy(e);
    return st;
  }
  *out = e;
  return DECO_STATUS_SUCCESS;
}

void deco_spec_engine_destroy(deco_spec_engine_t *e) {
  if (!e) return;
  deco_free(e->model->ctx, e->dev);
  deco_free(e->model->ctx, e->logits);
  deco_free(e->model->ctx, e->topk);
  free(e->host);
  free(e);
}

deco_status_t deco_spec_engine_set_recycler(deco_spec_engine_t *e, deco_recycler_t *r) {
  static const char op[] = "deco_spec_engine_set_recycler";
  if (!e) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: engine is NULL", op);
  deco_ctx_t *ctx = e->model->ctx;
  if (r && deco_recycler_vocab(r) != e->model->cfg.vocab_size)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the table has vocab %d, the model %d", op,
                     deco_recycler_vocab(r), e->model->cfg.vocab_size);
  if (r && !e->topk)
    DECO_TRY(deco_malloc(ctx, (void **)&e->topk,
                         sizeof(int32_t) * (size_t)e->max_seqs * e->max_nodes * DECO_RECYCLE_MAX_K));
  e->recycler = r;
  return DECO_STATUS_SUCCESS;
}

/* M[token j] <- top-k(logits j) for every node of the step. */
static deco_status_t recycle_update(deco_spec_engine_t *e, int total, const int32_t *d_indptr, const int32_t *d_tokens,
                                    int B) {
  deco_model_t *m = e->model;
  deco_ctx_t *ctx = m->ctx;
  const int V = m->cfg.vocab_size, k = deco_recycler_k(e->recycler);
  deco_topk_rows_args_t ta = {total, V, k, DECO_DTYPE_F32, e->logits, NULL, e->topk, NULL};
  DECO_TRY(deco_model_ensure_workspace(m, deco_topk_rows_workspace_size(ctx, &ta)));
  DECO_TRY(deco_topk_rows(ctx, &ta));
  deco_recycle_update_args_t ua = {B, total, d_indptr, d_tokens, e->topk, deco_recycler_table(e->recycler), V, k};
  DECO_TRY(deco_model_ensure_workspace(m, deco_recycle_update_workspace_size(ctx, &ua)));
  return deco_recycle_update(ctx, &ua);
}

/* Acceptance's non-finite flags (host copy): the first tree whose logits
 * were not finite fails the step, naming the position of that row. */
static deco_status_t check_nonfinite(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes,
                                     const int32_t *parents, const int32_t *flags) {
  static const char op[] = "deco_spec_engine_step";
  deco_ctx_t *ctx = e->model->ctx;
  for (int i = 0, t0 = 0; i < B; t0 += n_nodes[i], ++i) {
    const int flag = flags[i];
    if (flag < 0 || flag > n_nodes[i])
      return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: non-finite flag %d outside [0, %d]", op, i, flag,
                       n_nodes[i]);
    if (flag == 0) continue;
    int depth = 0;
    for (int v = flag - 1; v > 0; v = parents[t0 + v]) depth++;
    return DECO_FAIL(ctx, DECO_STATUS_NON_FINITE, "%s: the model gave non-finite logits at position %d (sequence %d)",
                     op, deco_kv_cache_seq_len(e->cache, seqs[i]) + depth, seqs[i]);
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_spec_engine_step(deco_spec_engine_t *e, int B, const int *seqs, const int *n_nodes,
                                    const int32_t *tokens, const int32_t *parents,
                                    const deco_spec_sampling_t *sampling, int32_t *emitted, int *n_emitted) {
  static const char op[] = "deco_spec_engine_step";
  if (!e) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: engine is NULL", op);
  deco_model_t *m = e->model;
  deco_ctx_t *ctx = m->ctx;
  if (!seqs || !n_nodes || !tokens || !parents || !sampling || !emitted || !n_emitted)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  DECO_CHECK_RANGE(ctx, B, 1, e->max_seqs, op);
  int total = 0;
  for (int i = 0; i < B; ++i) {
    DECO_CHECK_RANGE(ctx, n_nodes[i], 1, e->max_nodes, op);
    DECO_TRY(deco_tree_validate(parents + total, n_nodes[i]) == DECO_STATUS_SUCCESS
                 ? DECO_STATUS_SUCCESS
                 : DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: tree %d: %s", op, i, deco_last_error(NULL)));
    total += n_nodes[i];
  }
  const int V = m->cfg.vocab_size;

  /* 1. Tree forward: every node's logits. */
  deco_forward_args_t fa = {B, seqs, n_nodes, tokens, NULL, parents, DECO_LOGITS_ALL, e->logits};
  DECO_TRY(deco_forward(m, e->cache, &fa));

  /* 2. Acceptance on the device. */
  layout_t l = layout(e->max_seqs, e->max_nodes);
  int32_t *h = e->host;
  h[l.indptr] = 0;
  for (int i = 0; i < B; ++i) h[l.indptr + i + 1] = h[l.indptr + i] + n_nodes[i];
  memcpy(h + l.parents, parents, sizeof(int32_t) * (size_t)total);
  memcpy(h + l.tokens, tokens, sizeof(int32_t) * (size_t)total);
  h[l.offset] = (int32_t)sampling->offset;
  memcpy(h + l.seed, &sampling->seed, sizeof(uint64_t));
  /* Stream-ordered: the host does not wait for the forward to finish. The
   * host image is not touched again before the synchronous read-back below. */
  DECO_TRY(deco_memcpy_async(ctx, e->dev, h, l.total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  deco_tree_batch_t tree = {B, total, e->dev + l.indptr, e->dev + l.parents};
  deco_tree_verify_out_t vo = {.path = e->dev + l.path,
                               .accept_len = e->dev + l.accept_len,
                               .bonus = e->dev + l.bonus,
                               .nonfinite = e->dev + l.nonfinite};
  if (sampling->temperature == 0.0f) {
    deco_tree_accept_greedy_args_t ga = {tree, e->dev + l.tokens, DECO_DTYPE_F32, e->logits, V, vo};
    DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_greedy_workspace_size(ctx, &ga)));
    DECO_TRY(deco_tree_accept_greedy(ctx, &ga));
  } else {
    deco_tree_accept_sample_args_t sa = {tree,
                                         e->dev + l.tokens,
                                         DECO_DTYPE_F32,
                                         e->logits,
                                         V,
                                         sampling->temperature,
                                         sampling->top_k,
                                         sampling->top_p,
                                         DECO_DRAFT_DETERMINISTIC,
                                         NULL,
                                         (const uint64_t *)(e->dev + l.seed),
                                         (const uint32_t *)(e->dev + l.offset),
                                         vo};
    DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_sample_workspace_size(ctx, &sa)));
    DECO_TRY(deco_tree_accept_sample(ctx, &sa));
  }

  if (e->recycler) DECO_TRY(recycle_update(e, total, e->dev + l.indptr, e->dev + l.tokens, B));

  /* 3. Compaction of the accepted paths, all layers in one launch. */
  const int32_t *d_prefix, *d_table;
  int max_pages;
  deco_forward_last_batch(m, &d_prefix, &d_table, &max_pages);
  deco_kv_cache_t *kc = e->cache;
  deco_kv_compact_args_t ca = {deco_kv_cache_layer_view(kc, 0, d_table, max_pages),
                               m->cfg.n_layers,
                               kc->layer_elems,
                               B,
                               d_prefix,
                               vo.path,
                               vo.accept_len};
  DECO_TRY(deco_kv_compact(ctx, &ca));

  /* 4. What was emitted; commit. */
  DECO_TRY(deco_memcpy(ctx, h + l.path, e->dev + l.path, sizeof(int32_t) * (l.offset - l.path), DECO_COPY_CTX_TO_HOST));
  DECO_TRY(check_nonfinite(e, B, seqs, n_nodes, parents, h + l.nonfinite));
  int t0 = 0;
  for (int i = 0; i < B; ++i) {
    int a = h[l.accept_len + i];
    if (a < 1 || a > n_nodes[i])
      return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: accept_len %d outside [1, %d]", op, i, a, n_nodes[i]);
    int32_t *em = emitted + (size_t)i * DECO_TREE_MAX_NODES;
    for (int d = 1; d < a; ++d) {
      int node = h[l.path + (size_t)i * DECO_TREE_MAX_NODES + d];
      if (node <= 0 || node >= n_nodes[i])
        return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: tree %d: path node %d out of range", op, i, node);
      em[d - 1] = tokens[t0 + node];
    }
    em[a - 1] = h[l.bonus + i];
    n_emitted[i] = a;
    DECO_TRY(deco_kv_cache_commit(kc, seqs[i], a));
    t0 += n_nodes[i];
  }
  return DECO_STATUS_SUCCESS;
}
