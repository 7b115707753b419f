/* host/spec/generate.c — the decoding loops: plain autoregressive decoding as
 * llama2.c's run.c does it (prompt ids forced, one forward per position),
 * and speculative decoding (draft tree → tree forward → accept → compact →
 * [recycle update] → commit), both with the prompt prefilled in one batched
 * forward. Every emitted id stands for one forward position, so steps and
 * the stopping rule mean the same in both.
 */
#include <stdlib.h>
#include <string.h>

#include "deco/spec.h"
#include "model/model_internal.h"

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
  /* Reserve min(seq_len, steps) slots plus one tree at admission. */
  const int page_size = 16, reserve = c->steps + max_nodes;
  deco_kv_cache_t *kc = NULL;
  float *d_logits = NULL;
  int seq;
  deco_status_t st = deco_kv_cache_create(m, page_size, (reserve + page_size - 1) / page_size, 1, &kc);
  if (st == DECO_STATUS_SUCCESS) st = deco_kv_cache_admit(kc, reserve, &seq);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, (void **)&d_logits, sizeof(float) * (size_t)cfg->vocab_size);
  if (st == DECO_STATUS_SUCCESS)
    st = c->source == DECO_DRAFT_NONE ? run_plain(m, kc, seq, prompt, n_prompt, c, d_logits, out)
                                      : run_spec(m, kc, seq, prompt, n_prompt, c, d_logits, max_nodes, out);
  deco_free(ctx, d_logits);
  deco_kv_cache_destroy(kc);
  return st;
}
