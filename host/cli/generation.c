/* host/cli/generation.c — plain autoregressive decoding as llama2.c's run.c
 * does it (prompt tokens forced, one forward per position, stop at ids 1/2
 * unless --ignore-eos), with the prompt prefilled in one batched forward.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/generation.h"

static int fail(deco_ctx_t *ctx, const char *what) {
  deco_cli_error("%s: %s", what, deco_last_error(ctx));
  return 1;
}

int deco_cli_run_generation(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out) {
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
