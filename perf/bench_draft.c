/* perf/bench_draft.c — mean accepted tokens of model drafts (issue 18) on
 * a real model over perf/prompts/prompts.tsv, one configuration per run:
 * plain decoding (ar), Token Recycling with a cold table per prompt
 * (recycle), or a model draft (draft: --draft-layers LIST of the target's
 * layers, or --draft-model FILE), a chain (--draft-width 1) or a top-w
 * tree, greedy or sampled. Every run goes to `steps` positions (never
 * stopping at a stop id). Any model deco loads (llama2.c with --tokenizer,
 * or GGUF with its own vocabulary); runs on the CPU (or CUDA, where model
 * drafts run eagerly from the host engine).
 *   bench_draft --model FILE [--tokenizer FILE] [--method ar|recycle|draft]
 *               [--draft-layers 0-2,4 | --draft-model FILE] [--draft-len 4] [--draft-width 1]
 *               [--tree-nodes 0] [--prompts perf/prompts/prompts.tsv] [--per-kind 0] [--steps 256]
 *               [--temperature 0] [--top-p 1] [--seed 42] [--backend cpu|cuda] [--threads N] [--label STR]
 *               [--layer-parallel N] [--no-calibrate 0|1]
 * CSV on stdout: label,kind,prompts,tokens,forwards,mean_accepted,seconds,tok_per_s,temperature,prefill_seconds
 * (seconds and tok_per_s: the decoding's, each prompt's prefill forward timed apart)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/prompts.h"
#include "common/wall.h"
#include "deco/deco.h"

static void print_row(const char *label, const deco_perf_tally_t *t, float temp) {
  printf("%s,%s,%d,%ld,%ld,%.3f,%.3f,%.2f,%.2f,%.3f\n", label, t->kind, t->prompts, t->tokens, t->forwards,
         t->forwards ? (double)t->tokens / t->forwards : 0.0, t->seconds, t->seconds > 0 ? t->tokens / t->seconds : 0.0,
         temp, t->prefill_seconds);
}

/* "0-2,4" -> sorted layers; returns the count. */
static int parse_layers(const char *s, int *layers, int cap) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10), b = a;
    if (end == p) deco_perf_die("--draft-layers", s);
    if (*end == '-') b = strtol(end + 1, &end, 10);
    for (long l = a; l <= b && n < cap; ++l) layers[n++] = (int)l;
    p = *end == ',' ? end + 1 : end;
  }
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && layers[j] < layers[j - 1]; --j) {
      int t = layers[j];
      layers[j] = layers[j - 1];
      layers[j - 1] = t;
    }
  return n;
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *tok_path = NULL, *prompts_path = "perf/prompts/prompts.tsv", *method = "ar";
  const char *layers_s = NULL, *draft_path = NULL, *backend_s = "cpu", *label = NULL;
  int steps = 256, per_kind = 0, K = 4, W = 1, nodes = 0, threads = 0, lp = 0, no_calibrate = 0;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 42;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--model")) model_path = v;
    else if (!strcmp(a, "--tokenizer")) tok_path = v;
    else if (!strcmp(a, "--prompts")) prompts_path = v;
    else if (!strcmp(a, "--method")) method = v;
    else if (!strcmp(a, "--draft-layers")) layers_s = v;
    else if (!strcmp(a, "--draft-model")) draft_path = v;
    else if (!strcmp(a, "--draft-len")) K = atoi(v);
    else if (!strcmp(a, "--draft-width")) W = atoi(v);
    else if (!strcmp(a, "--tree-nodes")) nodes = atoi(v);
    else if (!strcmp(a, "--per-kind")) per_kind = atoi(v);
    else if (!strcmp(a, "--steps")) steps = atoi(v);
    else if (!strcmp(a, "--temperature")) temperature = (float)atof(v);
    else if (!strcmp(a, "--top-p")) top_p = (float)atof(v);
    else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--backend")) backend_s = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--label")) label = v;
    else if (!strcmp(a, "--layer-parallel")) lp = atoi(v);
    else if (!strcmp(a, "--no-calibrate")) no_calibrate = atoi(v);
    else deco_perf_die(a, "unknown option");
  }
  if (!model_path) deco_perf_die("usage", "--model FILE is required");
  const deco_backend_t backend = strcmp(backend_s, "cuda") == 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  deco_ctx_t *ctx = wall_ctx_create("bench_draft", backend, threads);
  if (!ctx) return 1;
  deco_model_t *model, *draft = NULL;
  deco_model_config_t config = DECO_MODEL_CONFIG_INIT;
  if (deco_model_load(ctx, model_path, &config, &model) != DECO_STATUS_SUCCESS) deco_perf_die(model_path, deco_last_error(ctx));
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  deco_tokenizer_t *tok;
  if ((tok_path ? deco_tokenizer_load(tok_path, hp->vocab_size, &tok) : deco_tokenizer_load_gguf(model_path, &tok)) !=
      DECO_STATUS_SUCCESS)
    deco_perf_die(tok_path ? tok_path : model_path, deco_last_error(NULL));
  static deco_perf_prompt_t prompts[DECO_PERF_MAX_PROMPTS];
  uint64_t hash;
  const int n_prompts = deco_perf_read_prompts(prompts_path, tok, tok_path ? DECO_PERF_ENCODE_LLAMA2C : DECO_PERF_ENCODE_GGUF,
                                                per_kind, prompts, &hash);
  if (steps > hp->seq_len) steps = hp->seq_len;
  deco_drafter_t *drafter = NULL;
  deco_recycler_t *rec = NULL;
  deco_tree_template_t tmpl;
  int layers[256];
  if (!strcmp(method, "recycle")) {
    if (deco_recycler_create(ctx, hp->vocab_size, DECO_RECYCLE_DEFAULT_K, &rec) != DECO_STATUS_SUCCESS ||
        deco_tree_template_default(&tmpl) != DECO_STATUS_SUCCESS ||
        deco_drafter_create_recycle(rec, &tmpl, &drafter) != DECO_STATUS_SUCCESS)
      deco_perf_die("recycle", deco_last_error(ctx));
  } else if (!strcmp(method, "draft")) {
    deco_model_draft_config_t dc = DECO_MODEL_DRAFT_CONFIG_INIT;
    dc.draft_len = K;
    dc.width = W;
    dc.max_nodes = nodes;
    dc.temperature = temperature;
    dc.seed = seed;
    dc.max_len = steps;
    dc.layer_parallel = lp;
    dc.no_calibrate = no_calibrate;
    if (draft_path) {
      if (deco_model_load(ctx, draft_path, &config, &draft) != DECO_STATUS_SUCCESS)
        deco_perf_die(draft_path, deco_last_error(ctx));
    } else if (layers_s) {
      dc.layers = layers;
      dc.n_layers = parse_layers(layers_s, layers, 256);
    } else {
      deco_perf_die("draft", "--draft-layers or --draft-model");
    }
    if (deco_drafter_create_model(model, draft, &dc, &drafter) != DECO_STATUS_SUCCESS)
      deco_perf_die("draft", deco_last_error(ctx));
  } else if (strcmp(method, "ar")) {
    deco_perf_die(method, "--method is ar, recycle or draft");
  }
  fprintf(stderr, "bench_draft: %d prompts (%s, fnv1a64 %016llx), %d positions each, %s, temperature %.2f\n",
          n_prompts, prompts_path, (unsigned long long)hash, steps, deco_backend_name(backend), temperature);
  if (!label) label = method;
  deco_generate_config_t c = deco_perf_generate_config(steps, temperature, top_p, seed);
  c.drafter = drafter;
  deco_perf_tally_t kinds[DECO_PERF_MAX_KINDS], pooled;
  int n_kinds = 0;
  memset(&pooled, 0, sizeof pooled);
  snprintf(pooled.kind, sizeof pooled.kind, "pooled");
  for (int p = 0; p < n_prompts; ++p) {
    if (rec && deco_recycler_reset(rec) != DECO_STATUS_SUCCESS) deco_perf_die("recycler", deco_last_error(ctx));
    deco_generate_stats_t st;
    const double t0 = deco_perf_now();
    if (deco_generate(model, prompts[p].ids, prompts[p].n, &c, &st) != DECO_STATUS_SUCCESS ||
        deco_ctx_synchronize(ctx) != DECO_STATUS_SUCCESS)
      deco_perf_die(label, deco_last_error(ctx));
    const double secs = deco_perf_now() - t0 - st.prefill_seconds;
    deco_perf_tally_t *both[2] = {deco_perf_tally_for(kinds, &n_kinds, prompts[p].kind), &pooled};
    for (int b = 0; b < 2; ++b) {
      both[b]->prompts++;
      both[b]->tokens += st.tokens;
      both[b]->forwards += st.forwards;
      both[b]->seconds += secs;
      both[b]->prefill_seconds += st.prefill_seconds;
    }
  }
  for (int k = 0; k < n_kinds; ++k) print_row(label, &kinds[k], temperature);
  print_row(label, &pooled, temperature);
  fprintf(stderr, "%s pooled: mean accepted %.3f, %.2f tok/s\n", label,
          pooled.forwards ? (double)pooled.tokens / pooled.forwards : 0.0,
          pooled.seconds > 0 ? pooled.tokens / pooled.seconds : 0.0);
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
  deco_model_destroy(draft);
  deco_tokenizer_destroy(tok);
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  return 0;
}
