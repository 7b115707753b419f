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
 * CSV on stdout: label,kind,prompts,tokens,forwards,mean_accepted,seconds,tok_per_s,temperature
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deco/deco.h"

#define MAX_PROMPTS 256
#define N_KINDS_MAX 16

typedef struct prompt {
  char kind[32];
  int32_t ids[512];
  int n;
} prompt_t;

typedef struct tally {
  char kind[32];
  int prompts;
  long tokens, forwards;
  double seconds;
} tally_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_draft: %s: %s\n", what, msg);
  exit(1);
}

static uint64_t fnv1a64(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

/* The first per_kind prompts of each kind (0: all). */
static int read_prompts(const char *path, const deco_tokenizer_t *tok, int per_kind, prompt_t *p, uint64_t *hash) {
  FILE *f = fopen(path, "rb");
  if (!f) die(path, "cannot open");
  static char text[1 << 20];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = '\0';
  *hash = fnv1a64(text, len);
  int n = 0;
  for (char *line = strtok(text, "\n"); line && n < MAX_PROMPTS; line = strtok(NULL, "\n")) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = '\0';
    int same = 0;
    for (int i = 0; i < n; ++i) same += strcmp(p[i].kind, line) == 0;
    if (per_kind > 0 && same >= per_kind) continue;
    snprintf(p[n].kind, sizeof p[n].kind, "%.31s", line);
    if (deco_tokenizer_encode(tok, tab + 1, deco_tokenizer_add_bos(tok), 0, p[n].ids, 512, &p[n].n) !=
        DECO_STATUS_SUCCESS)
      die(path, deco_last_error(NULL));
    n++;
  }
  return n;
}

static tally_t *tally_for(tally_t *t, int *n, const char *kind) {
  for (int i = 0; i < *n; ++i)
    if (strcmp(t[i].kind, kind) == 0) return &t[i];
  memset(&t[*n], 0, sizeof t[*n]);
  snprintf(t[*n].kind, sizeof t[*n].kind, "%.31s", kind);
  return &t[(*n)++];
}

static void print_row(const char *label, const tally_t *t, float temp) {
  printf("%s,%s,%d,%ld,%ld,%.3f,%.3f,%.2f,%.2f\n", label, t->kind, t->prompts, t->tokens, t->forwards,
         t->forwards ? (double)t->tokens / t->forwards : 0.0, t->seconds, t->seconds > 0 ? t->tokens / t->seconds : 0.0,
         temp);
}

/* "0-2,4" -> sorted layers; returns the count. */
static int parse_layers(const char *s, int *layers, int cap) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10), b = a;
    if (end == p) die("--draft-layers", s);
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
    else die(a, "unknown option");
  }
  if (!model_path) die("usage", "--model FILE is required");
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = strcmp(backend_s, "cuda") == 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  deco_ctx_t *ctx;
  deco_model_t *model, *draft = NULL;
  if (deco_ctx_create(&cc, &ctx) != DECO_STATUS_SUCCESS) die("context", deco_last_error(NULL));
  if (threads > 0 && deco_ctx_set_threads(ctx, threads) != DECO_STATUS_SUCCESS) die("threads", deco_last_error(ctx));
  deco_model_config_t config = DECO_MODEL_CONFIG_INIT;
  if (deco_model_load(ctx, model_path, &config, &model) != DECO_STATUS_SUCCESS) die(model_path, deco_last_error(ctx));
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  deco_tokenizer_t *tok;
  if ((tok_path ? deco_tokenizer_load(tok_path, hp->vocab_size, &tok) : deco_tokenizer_load_gguf(model_path, &tok)) !=
      DECO_STATUS_SUCCESS)
    die(tok_path ? tok_path : model_path, deco_last_error(NULL));
  static prompt_t prompts[MAX_PROMPTS];
  uint64_t hash;
  const int n_prompts = read_prompts(prompts_path, tok, per_kind, prompts, &hash);
  if (steps > hp->seq_len) steps = hp->seq_len;
  deco_drafter_t *drafter = NULL;
  deco_recycler_t *rec = NULL;
  deco_tree_template_t tmpl;
  int layers[256];
  if (!strcmp(method, "recycle")) {
    if (deco_recycler_create(ctx, hp->vocab_size, DECO_RECYCLE_DEFAULT_K, &rec) != DECO_STATUS_SUCCESS ||
        deco_tree_template_default(&tmpl) != DECO_STATUS_SUCCESS ||
        deco_drafter_create_recycle(rec, &tmpl, &drafter) != DECO_STATUS_SUCCESS)
      die("recycle", deco_last_error(ctx));
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
        die(draft_path, deco_last_error(ctx));
    } else if (layers_s) {
      dc.layers = layers;
      dc.n_layers = parse_layers(layers_s, layers, 256);
    } else {
      die("draft", "--draft-layers or --draft-model");
    }
    if (deco_drafter_create_model(model, draft, &dc, &drafter) != DECO_STATUS_SUCCESS)
      die("draft", deco_last_error(ctx));
  } else if (strcmp(method, "ar")) {
    die(method, "--method is ar, recycle or draft");
  }
  fprintf(stderr, "bench_draft: %d prompts (%s, fnv1a64 %016llx), %d positions each, %s, temperature %.2f\n",
          n_prompts, prompts_path, (unsigned long long)hash, steps, deco_backend_name(cc.backend), temperature);
  if (!label) label = method;
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = temperature;
  c.top_p = top_p;
  c.seed = seed;
  c.ignore_eos = 1;
  c.drafter = drafter;
  tally_t kinds[N_KINDS_MAX], pooled;
  int n_kinds = 0;
  memset(&pooled, 0, sizeof pooled);
  snprintf(pooled.kind, sizeof pooled.kind, "pooled");
  for (int p = 0; p < n_prompts; ++p) {
    if (rec && deco_recycler_reset(rec) != DECO_STATUS_SUCCESS) die("recycler", deco_last_error(ctx));
    deco_generate_stats_t st;
    const double t0 = now_seconds();
    if (deco_generate(model, prompts[p].ids, prompts[p].n, &c, &st) != DECO_STATUS_SUCCESS ||
        deco_ctx_synchronize(ctx) != DECO_STATUS_SUCCESS)
      die(label, deco_last_error(ctx));
    const double secs = now_seconds() - t0;
    tally_t *both[2] = {tally_for(kinds, &n_kinds, prompts[p].kind), &pooled};
    for (int b = 0; b < 2; ++b) {
      both[b]->prompts++;
      both[b]->tokens += st.tokens;
      both[b]->forwards += st.forwards;
      both[b]->seconds += secs;
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
