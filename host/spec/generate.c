/* host/spec/generate.c — the decoding loops: plain autoregressive decoding as
 * llama2.c's run.c does it (prompt ids forced, one forward per position),
 * and speculative decoding (draft tree → tree forward → accept → compact →
 * [recycle update] → commit), both with the prompt prefilled in one batched
 * forward. Every emitted id stands for one forward position, so steps and
 * the stopping rule mean the same in both. The device-resident variant keeps
 * the whole step in context memory and can replay it as a CUDA graph.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deco/spec.h"
#include "model/model_internal.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void emit(const deco_generate_config_t *c, int32_t id) {
  if (c->emit) c->emit(c->user, id);
}

/* Prefills every prompt id but the last and emits the forced ids; *pos gets
 * the position of the first generating forward. */
static deco_status_t prefill(deco_model_t *m, deco_kv_cache_t *kc, int seq, const int32_t *prompt, int n_prompt,
                             const deco_generate_config_t *c, float *d_logits, int *pos) {
  emit(c, prompt[0]);
  int n_forced = n_prompt - 1 < c->steps ? n_prompt - 1 : c->steps;
  if (n_forced > 0) {
    deco_forward_args_t fa = {1, &seq, &n_forced, prompt, NULL, NULL, DECO_LOGITS_LAST, d_logits};
    DECO_TRY(deco_forward(m, kc, &fa));
    for (int i = 1; i <= n_forced; ++i) emit(c, prompt[i]);
  }
  *pos = n_forced;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t run_plain(deco_model_t *m, deco_kv_cache_t *kc, int seq, const int32_t *prompt, int n_prompt,
                               const deco_generate_config_t *c, float *d_logits, deco_generate_stats_t *out) {
  deco_ctx_t *ctx = m->ctx;
  const int V = m->cfg.vocab_size;
  deco_sampler_t *sampler = NULL;
  float *logits = malloc(sizeof(float) * (size_t)V);
  deco_sampler_config_t sc = {c->temperature, c->top_p, c->seed};
  deco_status_t st = logits ? deco_sampler_create(V, &sc, &sampler)
                            : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_generate: host memory");
  if (st != DECO_STATUS_SUCCESS && logits) st = DECO_FAIL(ctx, st, "deco_generate: %s", deco_last_error(NULL));
  int pos = 0;
  if (st == DECO_STATUS_SUCCESS) st = prefill(m, kc, seq, prompt, n_prompt, c, d_logits, &pos);
  int32_t token = prompt[pos];
  while (st == DECO_STATUS_SUCCESS && pos < c->steps) {
    int one = 1;
    deco_forward_args_t fa = {1, &seq, &one, &token, NULL, NULL, DECO_LOGITS_LAST, d_logits};
    st = deco_forward(m, kc, &fa);
    if (st == DECO_STATUS_SUCCESS)
      st = deco_memcpy(ctx, logits, d_logits, sizeof(float) * (size_t)V, DECO_COPY_CTX_TO_HOST);
    if (st != DECO_STATUS_SUCCESS) break;
    int32_t next = deco_sampler_sample(sampler, logits, (uint32_t)pos, 0);
    if (next < 0) {
      st = DECO_FAIL(ctx, DECO_STATUS_NON_FINITE, "deco_generate: the model gave non-finite logits at position %d",
                     pos);
      break;
    }
    out->forwards++;
    pos++;
    if (!c->ignore_eos && (next == 1 || next == 2)) break;
    emit(c, next);
    out->tokens++;
    token = next;
  }
  deco_sampler_destroy(sampler);
  free(logits);
  return st;
}

/* Keeps the nodes of depth <= max_depth (a topological order stays one);
 * returns the new node count. */
static int prune_depth(int32_t *tokens, int32_t *parents, int n, int max_depth) {
  int32_t depth[DECO_TREE_MAX_NODES], remap[DECO_TREE_MAX_NODES];
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    depth[i] = i ? depth[parents[i]] + 1 : 0;
    if (depth[i] > max_depth) {
      remap[i] = -1;
      continue;
    }
    remap[i] = kept;
    tokens[kept] = tokens[i];
    parents[kept] = i ? remap[parents[i]] : -1;
    kept++;
  }
  return kept;
}

/* Device scratch of Token Recycling's drafting: parent[n] rank[n] root[1] draft[n]. */
typedef struct recycle_scratch {
  int32_t *dev;
  int n;
} recycle_scratch_t;

static deco_status_t draft(deco_model_t *m, const deco_generate_config_t *c, recycle_scratch_t *rs,
                           const int32_t *history, int n_hist, int32_t *tokens, int32_t *parents, int *n) {
  deco_ctx_t *ctx = m->ctx;
  if (c->source == DECO_DRAFT_LOOKUP) {
    deco_status_t st = deco_lookup_draft(history, n_hist, &c->lookup, tokens, parents, n);
    return st == DECO_STATUS_SUCCESS ? st : DECO_FAIL(ctx, st, "deco_generate: %s", deco_last_error(NULL));
  }
  const deco_tree_template_t *t = c->tmpl;
  int32_t *d_parent = rs->dev, *d_rank = d_parent + t->n_nodes, *d_root = d_rank + t->n_nodes, *d_draft = d_root + 1;
  deco_recycle_draft_args_t da = {1, t->n_nodes, d_root, d_parent, d_rank, deco_recycler_table(c->recycler),
                                  deco_recycler_vocab(c->recycler), deco_recycler_k(c->recycler), d_draft};
  DECO_TRY(deco_memcpy(ctx, d_root, &history[n_hist - 1], sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  DECO_TRY(deco_recycle_draft(ctx, &da));
  DECO_TRY(deco_memcpy(ctx, tokens, d_draft, sizeof(int32_t) * (size_t)t->n_nodes, DECO_COPY_CTX_TO_HOST));
  memcpy(parents, t->parent, sizeof(int32_t) * (size_t)t->n_nodes);
  *n = t->n_nodes;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t run_spec(deco_model_t *m, deco_kv_cache_t *kc, int seq, const int32_t *prompt, int n_prompt,
                              const deco_generate_config_t *c, float *d_logits, int max_nodes,
                              deco_generate_stats_t *out) {
  deco_ctx_t *ctx = m->ctx;
  deco_spec_engine_t *eng = NULL;
  recycle_scratch_t rs = {NULL, 0};
  int32_t *history = malloc(sizeof(int32_t) * (size_t)(c->steps + n_prompt + 1));
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES], emitted[DECO_TREE_MAX_NODES];
  deco_status_t st = history ? deco_spec_engine_create(m, kc, 1, max_nodes, &eng)
                             : DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_generate: host memory");
  if (st == DECO_STATUS_SUCCESS && c->source == DECO_DRAFT_RECYCLE) {
    const deco_tree_template_t *t = c->tmpl;
    rs.n = t->n_nodes;
    st = deco_spec_engine_set_recycler(eng, c->recycler);
    if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&rs.dev, sizeof(int32_t) * (size_t)(3 * rs.n + 1));
    if (st == DECO_STATUS_SUCCESS)
      st = deco_memcpy(ctx, rs.dev, t->parent, sizeof(int32_t) * (size_t)rs.n, DECO_COPY_HOST_TO_CTX);
    if (st == DECO_STATUS_SUCCESS)
      st = deco_memcpy(ctx, rs.dev + rs.n, t->rank, sizeof(int32_t) * (size_t)rs.n, DECO_COPY_HOST_TO_CTX);
  }
  int pos = 0, n_hist = 0;
  if (st == DECO_STATUS_SUCCESS) st = prefill(m, kc, seq, prompt, n_prompt, c, d_logits, &pos);
  if (st == DECO_STATUS_SUCCESS) {
    memcpy(history, prompt, sizeof(int32_t) * (size_t)(pos + 1));
    n_hist = pos + 1;
  }
  while (st == DECO_STATUS_SUCCESS && pos < c->steps) {
    int n;
    st = draft(m, c, &rs, history, n_hist, tokens, parents, &n);
    if (st != DECO_STATUS_SUCCESS) break;
    /* Never draft past steps: the root and d drafts cover d + 1 positions. */
    n = prune_depth(tokens, parents, n, c->steps - pos - 1);
    deco_spec_sampling_t sp = {c->temperature, 0, c->top_p, c->seed, (uint32_t)pos};
    int n_emitted;
    st = deco_spec_engine_step(eng, 1, &seq, &n, tokens, parents, &sp, emitted, &n_emitted);
    if (st != DECO_STATUS_SUCCESS) break;
    out->forwards++;
    int stop = 0;
    for (int i = 0; i < n_emitted && !stop; ++i) {
      pos++;
      if (!c->ignore_eos && (emitted[i] == 1 || emitted[i] == 2)) {
        stop = 1; /* the stop id and whatever was accepted after it are dropped */
        break;
      }
      emit(c, emitted[i]);
      out->tokens++;
      history[n_hist++] = emitted[i];
    }
    if (stop) break;
  }
  deco_free(ctx, rs.dev);
  deco_spec_engine_destroy(eng);
  free(history);
  return st;
}

/* ---- Device-resident loop ------------------------------------------------ */

/* Context-memory block of the device loop, in int32 words. */
typedef struct dev_layout {
  size_t state, tokens, parents, depth, rank, positions, q_indptr, kv_lens, prefix, tree_indptr, row_count, path,
      accept_len, bonus, nonfinite, seed, table, topk, out, total;
} dev_layout_t;

static dev_layout_t dev_layout(int n, int P, int k, int out_cap) {
  dev_layout_t l;
  size_t o = 0;
  l.state = o, o += sizeof(deco_spec_state_t) / sizeof(int32_t);
  l.tokens = o, o += (size_t)n;
  l.parents = o, o += (size_t)n;
  l.depth = o, o += (size_t)n;
  l.rank = o, o += (size_t)n;
  l.positions = o, o += (size_t)n;
  l.q_indptr = o, o += 2;
  l.kv_lens = o, o += 1;
  l.prefix = o, o += 1;
  l.tree_indptr = o, o += 2;
  l.row_count = o, o += 1;
  l.path = o, o += DECO_TREE_MAX_NODES;
  l.accept_len = o, o += 1;
  l.bonus = o, o += 1;
  l.nonfinite = o, o += 1;
  o = (o + 1) & ~(size_t)1; /* 8-byte alignment */
  l.seed = o, o += 2;
  l.table = o, o += (size_t)P;
  l.topk = o, o += (size_t)n * k;
  l.out = o, o += (size_t)out_cap;
  l.total = o;
  return l;
}

typedef struct dev_loop {
  deco_model_t *m;
  deco_kv_cache_t *kc;
  const deco_generate_config_t *c;
  int n, P, k, out_cap, recycle;
  dev_layout_t l;
  int32_t *dev;
  float *logits; /* [n][vocab] */
} dev_loop_t;

/* Enqueues one step: draft → prepare → tree forward → accept → compact →
 * [top-k, table update] → commit. Nothing here reads device memory on the
 * host, so the sequence can be captured. */
static deco_status_t enqueue_step(dev_loop_t *d) {
  deco_model_t *m = d->m;
  deco_ctx_t *ctx = m->ctx;
  const deco_generate_config_t *c = d->c;
  int32_t *w = d->dev;
  const dev_layout_t *l = &d->l;
  deco_spec_state_t *state = (deco_spec_state_t *)(w + l->state);
  const int V = m->cfg.vocab_size;
  if (d->recycle) {
    deco_recycle_draft_args_t da = {1, d->n, &state->root, w + l->parents, w + l->rank,
                                    deco_recycler_table(c->recycler), V, d->k, w + l->tokens};
    DECO_TRY(deco_recycle_draft(ctx, &da));
  }
  deco_spec_prepare_args_t pa = {state,          d->n,           w + l->depth,  c->steps,
                                 w + l->tokens,  w + l->positions, w + l->q_indptr, w + l->kv_lens,
                                 w + l->prefix,  w + l->tree_indptr, w + l->row_count};
  DECO_TRY(deco_spec_prepare(ctx, &pa));
  deco_forward_device_args_t fa = {1, d->n, w + l->tokens, w + l->positions, w + l->q_indptr, w + l->kv_lens,
                                   w + l->prefix, w + l->parents, w + l->table, d->logits};
  DECO_TRY(deco_forward_device(m, d->kc, &fa));
  deco_tree_batch_t tree = {1, d->n, w + l->tree_indptr, w + l->parents};
  deco_tree_verify_out_t vo = {
      .path = w + l->path, .accept_len = w + l->accept_len, .bonus = w + l->bonus, .nonfinite = w + l->nonfinite};
  if (c->temperature == 0.0f) {
    deco_tree_accept_greedy_args_t ga = {tree, w + l->tokens, DECO_DTYPE_F32, d->logits, V, vo};
    DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_greedy_workspace_size(ctx, &ga)));
    DECO_TRY(deco_tree_accept_greedy(ctx, &ga));
  } else {
    deco_tree_accept_sample_args_t sa = {tree, w + l->tokens, DECO_DTYPE_F32, d->logits, V, c->temperature, 0,
                                         c->top_p, DECO_DRAFT_DETERMINISTIC, NULL,
                                         (const uint64_t *)(w + l->seed), &state->offset, vo};
    DECO_TRY(deco_model_ensure_workspace(m, deco_tree_accept_sample_workspace_size(ctx, &sa)));
    DECO_TRY(deco_tree_accept_sample(ctx, &sa));
  }
  deco_kv_compact_args_t ca = {deco_kv_cache_layer_view(d->kc, 0, w + l->table, d->P), m->cfg.n_layers,
                               d->kc->layer_elems, 1, w + l->prefix, vo.path, vo.accept_len};
  DECO_TRY(deco_kv_compact(ctx, &ca));
  if (d->recycle) {
    deco_topk_rows_args_t ta = {d->n, V, d->k, DECO_DTYPE_F32, d->logits, w + l->row_count, w + l->topk, NULL};
    DECO_TRY(deco_model_ensure_workspace(m, deco_topk_rows_workspace_size(ctx, &ta)));
    DECO_TRY(deco_topk_rows(ctx, &ta));
    deco_recycle_update_args_t ua = {1, d->n, w + l->tree_indptr, w + l->tokens, w + l->topk,
                                     deco_recycler_table(c->recycler), V, d->k};
    DECO_TRY(deco_model_ensure_workspace(m, deco_recycle_update_workspace_size(ctx, &ua)));
    DECO_TRY(deco_recycle_update(ctx, &ua));
  }
  deco_spec_commit_args_t co = {.state = state,
                                .tokens = w + l->tokens,
                                .n_nodes = d->n,
                                .path = vo.path,
                                .accept_len = vo.accept_len,
                                .bonus = vo.bonus,
                                .steps = c->steps,
                                .ignore_eos = c->ignore_eos != 0,
                                .out = w + l->out,
                                .out_capacity = d->out_cap,
                                .nonfinite = vo.nonfinite};
  return deco_spec_commit(ctx, &co);
}

static deco_status_t read_state(dev_loop_t *d, deco_spec_state_t *s) {
  return deco_memcpy(d->m->ctx, s, d->dev + d->l.state, sizeof *s, DECO_COPY_CTX_TO_HOST);
}

static deco_status_t run_device(deco_model_t *m, deco_kv_cache_t *kc, int seq, const int32_t *prompt, int n_prompt,
                                const deco_generate_config_t *c, float *d_logits, deco_generate_stats_t *out) {
  static const char op[] = "deco_generate";
  deco_ctx_t *ctx = m->ctx;
  dev_loop_t d;
  memset(&d, 0, sizeof d);
  d.m = m;
  d.kc = kc;
  d.c = c;
  d.recycle = c->source == DECO_DRAFT_RECYCLE;
  d.n = d.recycle ? c->tmpl->n_nodes : 1;
  d.k = d.recycle ? deco_recycler_k(c->recycler) : 0;
  d.P = deco_kv_cache_max_pages(kc);
  d.out_cap = c->steps + 1;
  d.l = dev_layout(d.n, d.P, d.k, d.out_cap);
  int32_t *host = calloc(d.l.total, sizeof(int32_t));
  deco_graph_t *graph = NULL;
  if (!host) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: host memory", op);
  /* The tree: the template's, or the root alone for plain decoding. */
  const int32_t root_only = -1;
  const int32_t *parents = d.recycle ? c->tmpl->parent : &root_only;
  memcpy(host + d.l.parents, parents, sizeof(int32_t) * (size_t)d.n);
  if (d.recycle) memcpy(host + d.l.rank, c->tmpl->rank, sizeof(int32_t) * (size_t)d.n);
  deco_status_t st = deco_tree_depths(parents, d.n, host + d.l.depth);
  for (int j = 1; st == DECO_STATUS_SUCCESS && j < d.n; ++j)
    if (host[d.l.depth + j] < host[d.l.depth + j - 1])
      st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the template is not breadth first (node %d)", op, j);
  memcpy(host + d.l.seed, &c->seed, sizeof c->seed);
  int pos = 0;
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&d.dev, d.l.total * sizeof(int32_t));
  if (st == DECO_STATUS_SUCCESS)
    st = deco_malloc(ctx, (void **)&d.logits, sizeof(float) * (size_t)d.n * m->cfg.vocab_size);
  if (st == DECO_STATUS_SUCCESS) st = prefill(m, kc, seq, prompt, n_prompt, c, d_logits, &pos);
  if (st == DECO_STATUS_SUCCESS) {
    deco_spec_state_t s0 = {.len = pos, .root = prompt[pos], .done = pos >= c->steps, .offset = (uint32_t)pos};
    memcpy(host + d.l.state, &s0, sizeof s0);
    st = deco_memcpy(ctx, d.dev, host, d.l.total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_block_table(kc, &seq, 1, d.dev + d.l.table);
  deco_spec_state_t s = {0};
  if (st == DECO_STATUS_SUCCESS) st = read_state(&d, &s);
  /* Eager steps until done, or one eager step (sizes every buffer) and then
   * graph replays, checking the state every few replays. Each step emits at
   * least one id, so steps replays always suffice. */
  const int chunk = 8;
  int replays = 0;
  while (st == DECO_STATUS_SUCCESS && !s.done && replays < c->steps) {
    if (c->graph && replays > 0) {
      if (!graph) {
        double t0 = now_seconds();
        st = deco_graph_capture_begin(ctx);
        if (st == DECO_STATUS_SUCCESS) {
          deco_status_t cs = enqueue_step(&d);
          char msg[sizeof ctx->error];
          memcpy(msg, ctx->error, sizeof msg);
          st = deco_graph_capture_end(ctx, &graph);
          if (cs != DECO_STATUS_SUCCESS) { /* the op's failure, not the aborted capture's */
            memcpy(ctx->error, msg, sizeof msg);
            st = cs;
          }
        }
        out->capture_seconds += now_seconds() - t0;
        if (st != DECO_STATUS_SUCCESS) break;
      }
      /* Every step emits at least one id, so never replay past the step
       * limit; and since a replay after the end still costs a forward, aim
       * at the steps likely left at the mean rate so far (rounded down). */
      const int left = c->steps - s.len, per = s.forwards > 0 ? (s.len - pos) / s.forwards : 1;
      int todo = per > 1 ? (left + per - 1) / per : left;
      if (todo > chunk) todo = chunk;
      st = deco_graph_replay(ctx, graph, todo);
      replays += todo;
    } else {
      st = enqueue_step(&d);
      replays++;
    }
    if (st == DECO_STATUS_SUCCESS) st = read_state(&d, &s);
  }
  if (st == DECO_STATUS_SUCCESS && s.error)
    st = DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: a step's verification output was malformed", op);
  if (st == DECO_STATUS_SUCCESS && s.nonfinite) {
    const int node = s.nonfinite - 1;
    st = node < d.n ? DECO_FAIL(ctx, DECO_STATUS_NON_FINITE, "%s: the model gave non-finite logits at position %d", op,
                                s.len + host[d.l.depth + node])
                    : DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: non-finite flag %d outside the tree", op, s.nonfinite);
  }
  if (st == DECO_STATUS_SUCCESS && s.n_out > 0)
    st = deco_memcpy(ctx, host + d.l.out, d.dev + d.l.out, sizeof(int32_t) * (size_t)s.n_out, DECO_COPY_CTX_TO_HOST);
  if (st == DECO_STATUS_SUCCESS) {
    for (int i = 0; i < s.n_out; ++i) emit(c, host[d.l.out + i]);
    out->tokens = s.tokens;
    out->forwards = s.forwards;
    /* The host's view of the sequence catches up with the device's. */
    st = deco_kv_cache_commit(kc, seq, s.len - kc->len[seq]);
  }
  deco_graph_destroy(graph);
  deco_free(ctx, d.logits);
  deco_free(ctx, d.dev);
  free(host);
  return st;
}

deco_status_t deco_generate(deco_model_t *m, const int32_t *prompt, int n_prompt, const deco_generate_config_t *c,
                            deco_generate_stats_t *out) {
  static const char op[] = "deco_generate";
  if (!m) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", op);
  deco_ctx_t *ctx = m->ctx;
  if (!prompt || !c || !out) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  memset(out, 0, sizeof *out);
  const deco_model_config_t *cfg = &m->cfg;
  DECO_CHECK_RANGE(ctx, n_prompt, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, c->steps, 1, cfg->seq_len, op);
  for (int i = 0; i < n_prompt; ++i)
    if (prompt[i] < 0 || prompt[i] >= cfg->vocab_size)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: prompt[%d] = %d outside the vocabulary [0, %d)", op, i,
                       prompt[i], cfg->vocab_size);
  int max_nodes = 0;
  switch (c->source) {
  case DECO_DRAFT_NONE: break;
  case DECO_DRAFT_LOOKUP: max_nodes = c->lookup.max_nodes + 1; break;
  case DECO_DRAFT_RECYCLE:
    if (!c->recycler || !c->tmpl) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: recycler or template is NULL", op);
    if (deco_recycler_vocab(c->recycler) != cfg->vocab_size)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the table has vocab %d, the model %d", op,
                       deco_recycler_vocab(c->recycler), cfg->vocab_size);
    if (deco_tree_validate(c->tmpl->parent, c->tmpl->n_nodes) != DECO_STATUS_SUCCESS)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: template: %s", op, deco_last_error(NULL));
    DECO_TRY(deco_tree_template_check_k(c->tmpl, deco_recycler_k(c->recycler), "the template") == DECO_STATUS_SUCCESS
                 ? DECO_STATUS_SUCCESS
                 : DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, deco_last_error(NULL)));
    max_nodes = c->tmpl->n_nodes;
    break;
  default: return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: source = %d", op, (int)c->source);
  }
  DECO_CHECK_RANGE(ctx, max_nodes, 0, DECO_TREE_MAX_NODES, op);
  if (c->device_resident && c->source == DECO_DRAFT_LOOKUP)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: prompt lookup drafts on the host; it has no device-resident loop",
                     op);
  if (c->graph && !c->device_resident)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: graph needs device_resident", op);
  if (c->graph && ctx->backend != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: CUDA graphs need the CUDA backend", op);
  if (c->device_resident && max_nodes == 0) max_nodes = 1; /* plain decoding verifies one-node trees */
  /* Reserve min(seq_len, steps) slots plus one tree at admission. */
  const int page_size = 16, reserve = c->steps + max_nodes;
  deco_kv_cache_t *kc = c->cache;
  float *d_logits = NULL;
  int seq = c->seq;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (kc) {
    if (kc->model != m) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the cache belongs to another model", op);
    if (deco_kv_cache_seq_len(kc, seq) != 0 || deco_kv_cache_seq_capacity(kc, seq) < reserve)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: sequence %d of the given cache must be admitted, empty and reserve %d slots", op, seq,
                       reserve);
  } else {
    st = deco_kv_cache_create(m, page_size, (reserve + page_size - 1) / page_size, 1, &kc);
    if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_admit(kc, reserve, &seq);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&d_logits, sizeof(float) * (size_t)cfg->vocab_size);
  if (st == DECO_STATUS_SUCCESS && c->device_resident)
    st = run_device(m, kc, seq, prompt, n_prompt, c, d_logits, out);
  else if (st == DECO_STATUS_SUCCESS)
    st = c->source == DECO_DRAFT_NONE ? run_plain(m, kc, seq, prompt, n_prompt, c, d_logits, out)
                                      : run_spec(m, kc, seq, prompt, n_prompt, c, d_logits, max_nodes, out);
  deco_free(ctx, d_logits);
  if (kc != c->cache) deco_kv_cache_destroy(kc);
  return st;
}
