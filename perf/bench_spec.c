/* perf/bench_spec.c — a Spec-Bench-style evaluation of the draft sources on
 * a real model: for every prompt of perf/prompts/prompts.tsv, plain decoding
 * (ar), prompt lookup, and Token Recycling with a cold table (reset for each
 * prompt) and a warm one (kept across the prompts, in corpus order, from a
 * cold start). Per kind and pooled (sum of tokens / sum of forwards, as
 * Spec-Bench pools): mean accepted tokens per forward and tokens/s. Runs on
 * the CPU or a GPU (where ar and recycle replay their step as a CUDA graph,
 * capture time excluded); greedy or sampled; every run goes to `steps`
 * positions (never stopping at BOS/EOS) so all methods do the same work.
 * seconds and tok_per_s are the decoding's: each prompt's prefill forward
 * (the same for every method) is timed apart, in prefill_seconds.
 *   bench_spec --model stories260K.bin --tokenizer tok512.bin [--backend cpu|cuda]
 *              [--dtype f32|bf16] [--prompts perf/prompts/prompts.tsv] [--steps 256]
 *              [--temperature 0] [--top-p 1] [--seed 42] [--loop graph|device|host]
 * A GGUF model (SmolLM2) needs no --tokenizer: its own encodes the prompts
 * by llama.cpp's rule; --chat wraps each one in the model's chat template
 * (a user turn, generation prompt appended), e.g. over perf/prompts-chat/.
 *   bench_spec --model SmolLM2-135M-Instruct.Q4_1.gguf --prompts perf/prompts-chat/prompts.tsv --chat
 *              [--new 64] [--max-per-kind 3] [--methods lookup,recycle-warm] [--threads 1]
 * --new N: N positions after each prompt (instead of --steps in all);
 * --max-per-kind K: the first K prompts of each kind; --methods: a comma
 * list of ar, lookup, recycle-cold, recycle-warm (default all four).
 * --loop (GPU): graph (default) replays each step as a CUDA graph; device
 * runs the same device-resident step eagerly; host drafts and accepts on the
 * host side of the engine (the CPU's loop). Lookup always drafts on the host.
 * CSV on stdout: method,kind,prompts,tokens,forwards,mean_accepted,seconds,tok_per_s,backend,dtype,
 * temperature,loop,prefill_seconds
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/prompts.h"
#include "common/wall.h"
#include "deco/deco.h"

static void print_row(const char *method, const deco_perf_tally_t *t, const char *backend, const char *dtype, float temp,
                      const char *loop) {
  double ma = t->forwards ? (double)t->tokens / t->forwards : 0.0;
  printf("%s,%s,%d,%ld,%ld,%.3f,%.3f,%.1f,%s,%s,%.2f,%s,%.3f\n", method, t->kind, t->prompts, t->tokens, t->forwards,
         ma, t->seconds, t->seconds > 0 ? t->tokens / t->seconds : 0.0, backend, dtype, temp, loop, t->prefill_seconds);
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *tok_path = NULL, *prompts_path = "perf/prompts/prompts.tsv";
  const char *backend_s = NULL, *dtype_s = NULL, *loop_s = "graph";
  int steps = 256, n_new = 0, threads = 0;
  int gguf = 0, chat = 0, max_per_kind = 0;
  const char *methods_s = "ar,lookup,recycle-cold,recycle-warm";
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 42;
  for (int i = 1; i < argc; i += 2) {
    if (!strcmp(argv[i], "--chat")) {
      chat = 1;
      --i; /* a flag */
      continue;
    }
    if (i + 1 >= argc) deco_perf_die(argv[i], "unknown option or missing value");
    if (!strcmp(argv[i], "--model")) model_path = argv[i + 1];
    else if (!strcmp(argv[i], "--tokenizer")) tok_path = argv[i + 1];
    else if (!strcmp(argv[i], "--prompts")) prompts_path = argv[i + 1];
    else if (!strcmp(argv[i], "--backend")) backend_s = argv[i + 1];
    else if (!strcmp(argv[i], "--dtype")) dtype_s = argv[i + 1];
    else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--temperature")) temperature = (float)atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--top-p")) top_p = (float)atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--loop")) loop_s = argv[i + 1];
    else if (!strcmp(argv[i], "--new")) n_new = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-per-kind")) max_per_kind = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--methods")) methods_s = argv[i + 1];
    else deco_perf_die(argv[i], "unknown option");
  }
  if (!model_path) deco_perf_die("usage", "--model FILE is required");
  gguf = deco_perf_is_gguf(model_path);
  if (!gguf && !tok_path) deco_perf_die("usage", "--tokenizer FILE is required with a llama2.c checkpoint");
  if (chat && !gguf) deco_perf_die("--chat", "needs a GGUF model (its chat template)");
  const int loop_graph = !strcmp(loop_s, "graph"), loop_device = loop_graph || !strcmp(loop_s, "device");
  if (!loop_device && strcmp(loop_s, "host")) deco_perf_die(loop_s, "--loop is graph, device or host");
  deco_backend_t backend = backend_s ? (strcmp(backend_s, "cuda") == 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU)
                                     : (deco_cuda_device_count() > 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU);
  deco_dtype_t dtype = dtype_s ? (strcmp(dtype_s, "bf16") == 0 ? DECO_DTYPE_BF16 : DECO_DTYPE_F32)
                               : (backend == DECO_BACKEND_CUDA ? DECO_DTYPE_BF16 : DECO_DTYPE_F32);
  deco_ctx_t *ctx = wall_ctx_create("bench_spec", backend, threads);
  if (!ctx) return 1;
  deco_model_t *model;
  deco_model_config_t config = DECO_MODEL_CONFIG_INIT;
  config.dtype = dtype;
  if (deco_model_load(ctx, model_path, &config, &model) != DECO_STATUS_SUCCESS) deco_perf_die(model_path, deco_last_error(ctx));
  const deco_model_hparams_t *mc = deco_model_get_hparams(model);
  deco_tokenizer_t *tok;
  if ((gguf ? deco_tokenizer_load_gguf(model_path, &tok) : deco_tokenizer_load(tok_path, mc->vocab_size, &tok)) !=
      DECO_STATUS_SUCCESS)
    deco_perf_die(gguf ? model_path : tok_path, deco_last_error(NULL));
  static deco_perf_prompt_t prompts[DECO_PERF_MAX_PROMPTS];
  uint64_t hash;
  const deco_perf_encoding_t encoding = chat ? DECO_PERF_ENCODE_CHAT : gguf ? DECO_PERF_ENCODE_GGUF : DECO_PERF_ENCODE_LLAMA2C;
  int n_prompts = deco_perf_read_prompts(prompts_path, tok, encoding, max_per_kind, prompts, &hash);
  if (steps > mc->seq_len) steps = mc->seq_len;
  if (n_new > 0)
    fprintf(stderr, "bench_spec: %d prompts (%s%s, fnv1a64 %016llx), %d positions after each, %s %s, temperature %.2f, %s loop\n",
            n_prompts, prompts_path, chat ? ", chat template" : "", (unsigned long long)hash, n_new,
            deco_backend_name(backend), deco_dtype_name(dtype), temperature,
            backend == DECO_BACKEND_CUDA ? loop_s : "host");
  else
    fprintf(stderr,
            "bench_spec: %d prompts (%s%s, fnv1a64 %016llx), %d positions each, %s %s, temperature %.2f, %s loop\n",
            n_prompts, prompts_path, chat ? ", chat template" : "", (unsigned long long)hash, steps,
            deco_backend_name(backend), deco_dtype_name(dtype), temperature,
            backend == DECO_BACKEND_CUDA ? loop_s : "host");
  deco_recycler_t *rec;
  deco_tree_template_t tmpl;
  deco_drafter_t *lookup, *recycle;
  const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  if (deco_recycler_create(ctx, mc->vocab_size, DECO_RECYCLE_DEFAULT_K, &rec) != DECO_STATUS_SUCCESS ||
      deco_tree_template_default(&tmpl) != DECO_STATUS_SUCCESS ||
      deco_drafter_create_recycle(rec, &tmpl, &recycle) != DECO_STATUS_SUCCESS ||
      deco_drafter_create_lookup(&lc, &lookup) != DECO_STATUS_SUCCESS)
    deco_perf_die("drafters", deco_last_error(ctx));
  printf("method,kind,prompts,tokens,forwards,mean_accepted,seconds,tok_per_s,backend,dtype,temperature,loop,"
         "prefill_seconds\n");
  const char *methods[4] = {"ar", "lookup", "recycle-cold", "recycle-warm"};
  double ar_rate = 0;
  for (int mth = 0; mth < 4; ++mth) {
    /* Only the methods asked for (a whole word of the comma list). */
    const size_t ml = strlen(methods[mth]);
    int wanted = 0;
    for (const char *q = methods_s; (q = strstr(q, methods[mth])) != NULL; q += ml)
      wanted |= (q == methods_s || q[-1] == ',') && (q[ml] == ',' || q[ml] == '\0');
    if (!wanted) continue;
    deco_generate_config_t c = deco_perf_generate_config(steps, temperature, top_p, seed);
    c.drafter = mth == 0 ? NULL : mth == 1 ? lookup : recycle;
    /* On the GPU, plain decoding and Token Recycling run their steps as CUDA
     * graphs (capture time excluded below); prompt lookup drafts on the host. */
    c.device_resident = backend == DECO_BACKEND_CUDA && (!c.drafter || deco_drafter_device_resident(c.drafter)) &&
                        loop_device;
    c.graph = c.device_resident && loop_graph;
    deco_perf_tally_t kinds[DECO_PERF_MAX_KINDS], pooled;
    int n_kinds = 0;
    memset(&pooled, 0, sizeof pooled);
    snprintf(pooled.kind, sizeof pooled.kind, "pooled");
    if (deco_recycler_reset(rec) != DECO_STATUS_SUCCESS) deco_perf_die("recycler", deco_last_error(ctx));
    /* Warm-up (not counted): one prompt, so first-use costs stay out. */
    deco_generate_stats_t st;
    if (n_new > 0) c.steps = prompts[0].n + n_new < mc->seq_len ? prompts[0].n + n_new : mc->seq_len;
    if (deco_generate(model, prompts[0].ids, prompts[0].n, &c, &st) != DECO_STATUS_SUCCESS)
      deco_perf_die(methods[mth], deco_last_error(ctx));
    if (deco_recycler_reset(rec) != DECO_STATUS_SUCCESS) deco_perf_die("recycler", deco_last_error(ctx));
    for (int p = 0; p < n_prompts; ++p) {
      if (mth == 2 && deco_recycler_reset(rec) != DECO_STATUS_SUCCESS) deco_perf_die("recycler", deco_last_error(ctx));
      if (n_new > 0) c.steps = prompts[p].n + n_new < mc->seq_len ? prompts[p].n + n_new : mc->seq_len;
      double t0 = deco_perf_now();
      if (deco_generate(model, prompts[p].ids, prompts[p].n, &c, &st) != DECO_STATUS_SUCCESS ||
          deco_ctx_synchronize(ctx) != DECO_STATUS_SUCCESS)
        deco_perf_die(methods[mth], deco_last_error(ctx));
      double secs = deco_perf_now() - t0 - st.capture_seconds - st.prefill_seconds;
      long forwards = st.forwards;
      deco_perf_tally_t *t = deco_perf_tally_for(kinds, &n_kinds, prompts[p].kind);
      deco_perf_tally_t *both[2] = {t, &pooled};
      for (int b = 0; b < 2; ++b) {
        both[b]->prompts++;
        both[b]->tokens += st.tokens;
        both[b]->forwards += forwards;
        both[b]->seconds += secs;
        both[b]->prefill_seconds += st.prefill_seconds;
      }
    }
    const char *loop = c.graph ? "graph" : c.device_resident ? "device" : "host";
    for (int k = 0; k < n_kinds; ++k)
      print_row(methods[mth], &kinds[k], deco_backend_name(backend), deco_dtype_name(dtype), temperature, loop);
    print_row(methods[mth], &pooled, deco_backend_name(backend), deco_dtype_name(dtype), temperature, loop);
    double rate = pooled.seconds > 0 ? pooled.tokens / pooled.seconds : 0;
    if (mth == 0) ar_rate = rate;
    fprintf(stderr, "%-13s pooled: mean accepted %.2f, %.1f tok/s (%.2fx ar)\n", methods[mth],
            pooled.forwards ? (double)pooled.tokens / pooled.forwards : 0.0, rate, ar_rate > 0 ? rate / ar_rate : 0);
  }
  deco_drafter_destroy(lookup);
  deco_drafter_destroy(recycle);
  deco_recycler_destroy(rec);
  deco_tokenizer_destroy(tok);
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  return 0;
}
