/* host/cli/generation.c — the decoding loops of `deco generate`: plain
 * autoregressive decoding as llama2.c's run.c does it (prompt tokens
 * forced, one forward per position, stop at ids 1/2 unless --ignore-eos),
 * and speculative decoding (draft tree → verify → emit the accepted drafts
 * and the bonus token), both with the prompt prefilled in one batched
 * forward. Every emitted token stands for one forward position, so --steps
 * and the stopping rule mean the same in both.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/generation.h"

static int fail(deco_ctx_t *ctx, const char *what) {
  deco_cli_error("%s: %s", what, deco_last_error(ctx));
  return 1;
}

static int run_plain(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out) {
  const deco_cli_options_t *o = gc->o;
  deco_ctx_t *ctx = deco_model_ctx(model);
  const deco_model_config_t *cfg = deco_model_get_config(model);
  const int V = cfg->vocab_size, steps = o->steps;
  memset(out, 0, sizeof *out);
  int rc = 1;
  deco_kv_cache_t *kc = NULL;
  deco_sampler_t *sampler = NULL;
  float *d_logits = NULL, *logits = malloc(sizeof(float) * (size_t)V);
  int seq;
  const int page_size = 16;
  int reserve = steps < cfg->seq_len ? steps : cfg->seq_len;
  if (deco_kv_cache_create(model, page_size, (reserve + page_size - 1) / page_size, 1, &kc) != DECO_STATUS_SUCCESS) {
    rc = fail(ctx, "kv cache");
    goto done;
  }
  if (deco_kv_cache_admit(kc, reserve, &seq) != DECO_STATUS_SUCCESS ||
      deco_malloc(ctx, (void **)&d_logits, sizeof(float) * (size_t)V) != DECO_STATUS_SUCCESS) {
    rc = fail(ctx, "kv cache");
    goto done;
  }
  deco_sampler_config_t sc = {o->temperature, o->top_p, o->seed};
  if (deco_sampler_create(V, &sc, &sampler) != DECO_STATUS_SUCCESS) {
    rc = fail(NULL, "sampler");
    goto done;
  }
  gc->emit(gc->user, gc->prompt[0]);
  int n_forced = gc->n_prompt - 1 < steps ? gc->n_prompt - 1 : steps;
  if (n_forced > 0) {
    int n = n_forced;
    deco_forward_args_t fa = {1, &seq, &n, gc->prompt, NULL, NULL, DECO_LOGITS_LAST, d_logits};
    if (deco_forward(model, kc, &fa) != DECO_STATUS_SUCCESS) {
      rc = fail(ctx, "prefill");
      goto done;
    }
    for (int i = 1; i <= n_forced; ++i) gc->emit(gc->user, gc->prompt[i]);
  }
  int pos = n_forced;
  int32_t token = gc->prompt[n_forced];
  while (pos < steps) {
    int one = 1;
    deco_forward_args_t fa = {1, &seq, &one, &token, NULL, NULL, DECO_LOGITS_LAST, d_logits};
    if (deco_forward(model, kc, &fa) != DECO_STATUS_SUCCESS ||
        deco_memcpy(ctx, logits, d_logits, sizeof(float) * (size_t)V, DECO_COPY_CTX_TO_HOST) != DECO_STATUS_SUCCESS) {
      rc = fail(ctx, "forward");
      goto done;
    }
    int32_t next = deco_sampler_sample(sampler, logits, (uint32_t)pos, 0);
    pos++;
    if (!o->ignore_eos && (next == 1 || next == 2)) break;
    gc->emit(gc->user, next);
    out->tokens++;
    token = next;
  }
  rc = 0;
done:
  deco_sampler_destroy(sampler);
  deco_free(ctx, d_logits);
  deco_kv_cache_destroy(kc);
  free(logits);
  return rc;
}

/* Keeps the nodes of depth <= max_depth (a topological order stays one);
 * returns the new node count. */
static int prune_depth(int32_t *tokens, int32_t *parents, int n, int max_depth) {
  int32_t depth[DECO_TREE_MAX_NODES], remap[DECO_TREE_MAX_NODES];
  int m = 0;
  for (int i = 0; i < n; ++i) {
    depth[i] = i ? depth[parents[i]] + 1 : 0;
    if (depth[i] > max_depth) {
      remap[i] = -1;
      continue;
    }
    remap[i] = m;
    tokens[m] = tokens[i];
    parents[m] = i ? remap[parents[i]] : -1;
    m++;
  }
  return m;
}

static int run_spec(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out) {
  const deco_cli_options_t *o = gc->o;
  deco_ctx_t *ctx = deco_model_ctx(model);
  const deco_model_config_t *cfg = deco_model_get_config(model);
  const int steps = o->steps;
  const int tree_nodes = o->tree_nodes ? o->tree_nodes : 32;
  const int max_nodes = tree_nodes + 1;
  memset(out, 0, sizeof *out);
  int rc = 1, seq;
  deco_kv_cache_t *kc = NULL;
  deco_spec_engine_t *eng = NULL;
  float *d_logits = NULL;
  int32_t *history = malloc(sizeof(int32_t) * (size_t)(steps + gc->n_prompt + 1));
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES], emitted[DECO_TREE_MAX_NODES];
  const int page_size = 16;
  int reserve = (steps < cfg->seq_len ? steps : cfg->seq_len) + max_nodes;
  if (deco_kv_cache_create(model, page_size, (reserve + page_size - 1) / page_size, 1, &kc) != DECO_STATUS_SUCCESS ||
      deco_kv_cache_admit(kc, reserve, &seq) != DECO_STATUS_SUCCESS ||
      deco_spec_engine_create(model, kc, 1, max_nodes, &eng) != DECO_STATUS_SUCCESS ||
      deco_malloc(ctx, (void **)&d_logits, sizeof(float) * (size_t)cfg->vocab_size) != DECO_STATUS_SUCCESS) {
    rc = fail(ctx, "speculative decoding");
    goto done;
  }
  gc->emit(gc->user, gc->prompt[0]);
  int n_forced = gc->n_prompt - 1 < steps ? gc->n_prompt - 1 : steps;
  if (n_forced > 0) {
    int n = n_forced;
    deco_forward_args_t fa = {1, &seq, &n, gc->prompt, NULL, NULL, DECO_LOGITS_LAST, d_logits};
    if (deco_forward(model, kc, &fa) != DECO_STATUS_SUCCESS) {
      rc = fail(ctx, "prefill");
      goto done;
    }
    for (int i = 1; i <= n_forced; ++i) gc->emit(gc->user, gc->prompt[i]);
  }
  memcpy(history, gc->prompt, sizeof(int32_t) * (size_t)(n_forced + 1));
  int n_hist = n_forced + 1, pos = n_forced;
  deco_lookup_config_t lc = {3, 1, o->draft_len, tree_nodes};
  while (pos < steps) {
    int n;
    if (deco_lookup_draft(history, n_hist, &lc, tokens, parents, &n) != DECO_STATUS_SUCCESS) {
      rc = fail(NULL, "draft");
      goto done;
    }
    /* Never draft past --steps: the root and d drafts cover d + 1 positions. */
    n = prune_depth(tokens, parents, n, steps - pos - 1);
    deco_spec_sampling_t sp = {o->temperature, 0, o->top_p, o->seed, (uint32_t)pos};
    int n_emitted;
    if (deco_spec_engine_step(eng, 1, &seq, &n, tokens, parents, &sp, emitted, &n_emitted) != DECO_STATUS_SUCCESS) {
      rc = fail(ctx, "speculative step");
      goto done;
    }
    out->forwards++;
    int stop = 0;
    for (int i = 0; i < n_emitted; ++i) {
      pos++;
      if (!o->ignore_eos && (emitted[i] == 1 || emitted[i] == 2)) {
        stop = 1; /* the stop id and anything accepted after it are dropped */
        break;
      }
      gc->emit(gc->user, emitted[i]);
      out->tokens++;
      history[n_hist++] = emitted[i];
    }
    if (stop) break;
  }
  rc = 0;
done:
  deco_free(ctx, d_logits);
  deco_spec_engine_destroy(eng);
  deco_kv_cache_destroy(kc);
  free(history);
  return rc;
}

int deco_cli_run_generation(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out) {
  switch (gc->o->spec) {
  case DECO_SPEC_NONE: return run_plain(model, gc, out);
  case DECO_SPEC_LOOKUP: return run_spec(model, gc, out);
  default: break;
  }
  deco_cli_error("--spec: this draft source is not available");
  return 1;
}
