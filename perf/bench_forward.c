/* perf/bench_forward.c — one decode step of the synthetic llama2-7b in bf16
 * (6.74 B parameters, 13.5 GB of weights) at batch 1 and 16 with a KV prefix
 * of 512 per sequence, against the floor bytes read / copy bandwidth
 * measured in the same run (bytes: every weight but the embedding table,
 * of which a step reads its tokens' rows, plus the K/V attended) (docs/PERF.md: target >= 84% of the floor at batch 1, graphed;
 * Hugging Face eager 21.3 ms, torch.compile with CUDA graphs 5.48 ms on an
 * H200). Also the verification forward of one sequence with a draft tree
 * of 64 and 81 nodes (tree attention; docs/PERF.md: <= 1.1x the decode step).
 * Each step is timed twice: eager deco_forward calls, and the same step as
 * one replayed CUDA graph of deco_forward_device (what a serving loop runs;
 * launch gaps gone), with the verify / decode ratios of both.
 *   bench_forward [--model llama2-7b|llama3-8b|smollm2-135m] [--reps N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bench.h"
#include "linear/matmul_path.h"
#include "ops/exec.h"

typedef struct step {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int n_seqs;
  int *seqs;
  int *n_new;
  int32_t *tokens;
  float *logits;
  const int32_t *parents; /* tree verification forward when set */
} step_t;

static int run_step(void *user) {
  step_t *s = user;
  deco_forward_args_t fa = {.n_seqs = s->n_seqs, .seqs = s->seqs, .n_new = s->n_new, .tokens = s->tokens,
                            .embeds = NULL, .parents = s->parents,
                            .logits_mode = s->parents ? DECO_LOGITS_ALL : DECO_LOGITS_LAST, .logits = s->logits};
  deco_status_t st = deco_forward(s->model, s->cache, &fa);
  if (st != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "forward: %s\n", deco_last_error(deco_model_ctx(s->model)));
    return 1;
  }
  return 0;
}

/* What bounds a step at small batches is the bytes it reads: every weight
 * but the embedding table, of which a step reads only its tokens' rows (a
 * shared classifier reads the table whole, as the classifier), plus each
 * sequence's K and V over every layer, in the model's dtype. The flops: 2
 * per matmul weight per token. */
static double stream_weight_bytes(const deco_model_t *m) {
  const deco_model_hparams_t *c = deco_model_get_hparams(m);
  const double all = (double)deco_model_weight_bytes(m), es = (double)deco_dtype_size(deco_model_dtype(m));
  return c->shared_classifier ? all : all - es * (double)c->vocab_size * c->dim;
}
static double kv_token_bytes(const deco_model_t *m) {
  const deco_model_hparams_t *c = deco_model_get_hparams(m);
  return 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * (double)deco_dtype_size(deco_model_dtype(m));
}
/* The K/V a step of s reads when each sequence's committed length is
 * `grown` slots longer than now (a causal step attends to its new tokens
 * too; a tree step to the committed prefix and at most its depth of nodes,
 * counted as all of them). */
static double step_kv_bytes(const step_t *s, double grown) {
  double slots = 0;
  for (int i = 0; i < s->n_seqs; ++i) slots += deco_kv_cache_seq_len(s->cache, s->seqs[i]) + grown + s->n_new[i];
  return slots * kv_token_bytes(s->model);
}

/* One step captured as a CUDA graph of deco_forward_device, its batch in
 * context memory (the same slots are rewritten by every replay). */
typedef struct graphed {
  deco_ctx_t *ctx;
  deco_graph_t *graph;
  int32_t *meta;
} graphed_t;

static int replay_step(void *user) {
  graphed_t *g = user;
  return deco_graph_replay(g->ctx, g->graph, 1) != DECO_STATUS_SUCCESS;
}

static void graphed_destroy(graphed_t *g) {
  deco_graph_destroy(g->graph);
  deco_free(g->ctx, g->meta);
  g->graph = NULL;
  g->meta = NULL;
}

#define GCHECK(expr, err_ctx)                                                         \
  do {                                                                                \
    if ((expr) != DECO_STATUS_SUCCESS) {                                              \
      fprintf(stderr, "bench_forward: %s: %s\n", #expr, deco_last_error(err_ctx));    \
      graphed_destroy(g);                                                             \
      free(h);                                                                        \
      return 1;                                                                       \
    }                                                                                 \
  } while (0)

static int graphed_create(const step_t *s, graphed_t *g) {
  g->ctx = deco_model_ctx(s->model);
  g->graph = NULL;
  g->meta = NULL;
  const int S = s->n_seqs, P = deco_kv_cache_max_pages(s->cache);
  int T = 0;
  for (int i = 0; i < S; ++i) T += s->n_new[i];
  /* tokens, positions, parents [T]; q_indptr [S+1]; kv_lens, prefix [S]; table [S][P] */
  const size_t o_pos = (size_t)T, o_par = 2 * (size_t)T, o_qi = 3 * (size_t)T, o_kv = o_qi + S + 1, o_pre = o_kv + S,
               o_tab = o_pre + S, total = o_tab + (size_t)S * P;
  int32_t *h = calloc(total, sizeof(int32_t));
  if (!h) return 1;
  int t = 0;
  for (int i = 0; i < S; ++i) {
    const int n = s->n_new[i], len = deco_kv_cache_seq_len(s->cache, s->seqs[i]);
    if (s->parents) GCHECK(deco_tree_positions(s->parents + t, n, len, h + o_pos + t), NULL);
    for (int j = 0; j < n; ++j) {
      h[t + j] = s->tokens[t + j];
      if (!s->parents) h[o_pos + t + j] = len + j;
      h[o_par + t + j] = s->parents ? s->parents[t + j] : j - 1;
    }
    h[o_qi + i] = t;
    t += n;
    h[o_kv + i] = len + n;
    h[o_pre + i] = len;
  }
  h[o_qi + S] = t;
  GCHECK(deco_malloc(g->ctx, (void **)&g->meta, total * sizeof(int32_t)), g->ctx);
  GCHECK(deco_memcpy(g->ctx, g->meta, h, total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX), g->ctx);
  GCHECK(deco_kv_cache_block_table(s->cache, s->seqs, S, g->meta + o_tab), g->ctx);
  int32_t *d = g->meta;
  deco_forward_device_args_t fa = {.n_seqs = S, .n_tokens = T, .tokens = d, .positions = d + o_pos,
                                   .q_indptr = d + o_qi, .kv_lens = d + o_kv, .prefix_lens = d + o_pre,
                                   .parents = s->parents ? d + o_par : NULL, .block_table = d + o_tab,
                                   .logits = s->logits};
  /* One eager call sizes the scratch and loads every kernel before capture. */
  GCHECK(deco_forward_device(s->model, s->cache, &fa), g->ctx);
  GCHECK(deco_ctx_synchronize(g->ctx), g->ctx);
  GCHECK(deco_graph_capture_begin(g->ctx), g->ctx);
  deco_status_t st = deco_forward_device(s->model, s->cache, &fa);
  deco_status_t ce = deco_graph_capture_end(g->ctx, &g->graph);
  GCHECK(st, g->ctx);
  GCHECK(ce, g->ctx);
  free(h);
  return 0;
}

int main(int argc, char **argv) {
  const char *name = "llama2-7b";
  int reps = 30;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 < argc && strcmp(argv[i], "--model") == 0) name = argv[i + 1];
    else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench_forward: unknown option or missing value: %s\n"
                      "usage: bench_forward [--model llama2-7b|llama3-8b|smollm2-135m] [--reps N]\n", argv[i]);
      return 2;
    }
  }
  if (reps < 1) {
    fprintf(stderr, "bench_forward: --reps must be >= 1\n");
    return 2;
  }
  if (deco_cuda_device_count() == 0) {
    fprintf(stderr, "bench_forward: no CUDA device\n");
    return 77;
  }
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = DECO_BACKEND_CUDA;
  deco_ctx_t *ctx;
  if (deco_ctx_create(&cc, &ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "%s\n", deco_last_error(NULL));
    return 1;
  }
  deco_bench_t b;
  if (deco_bench_init(&b, ctx) || deco_bench_measure_ceilings(&b)) return 1;
  fprintf(stderr, "%s: copy %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", b.device_name, b.copy_gbps, b.gemm_tflops);
  deco_model_t *model;
  deco_model_config_t mcfg = DECO_MODEL_CONFIG_INIT;
  mcfg.dtype = DECO_DTYPE_BF16;
  if (deco_model_create_synthetic(ctx, name, DECO_SYNTHETIC_SEED, &mcfg, &model) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "%s\n", deco_last_error(ctx));
    return 1;
  }
  const deco_model_hparams_t *c = deco_model_get_hparams(model);
  const double weight_bytes = stream_weight_bytes(model);
  /* Each matmul weight is one multiply-add per token. */
  const double flops_per_token = 2.0 * weight_bytes / (double)deco_dtype_size(deco_model_dtype(model));
  /* Tree forwards do not commit; sequence 0 needs room for one tree more. */
  const int prefix = 512, max_b = 16, reserve = prefix + 2 * (reps + 3) + 16, reserve0 = reserve + 81;
  deco_kv_cache_t *cache;
  if (deco_kv_cache_create(model, 16, max_b * ((reserve + 15) / 16) + (reserve0 - reserve + 15) / 16 + 1, max_b,
                           &cache) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "%s\n", deco_last_error(ctx));
    return 1;
  }
  int seqs[16], n_new[16];
  int32_t *tokens = malloc(sizeof(int32_t) * 512);
  float *logits;
  if (deco_malloc(ctx, (void **)&logits, sizeof(float) * (size_t)81 * c->vocab_size) != DECO_STATUS_SUCCESS) return 1;
  for (int i = 0; i < 512; ++i) tokens[i] = 1 + (int32_t)((i * 7919u) % (unsigned)(c->vocab_size - 1));
  for (int s = 0; s < max_b; ++s) {
    n_new[s] = prefix;
    if (deco_kv_cache_admit(cache, s ? reserve : reserve0, &seqs[s]) != DECO_STATUS_SUCCESS) {
      fprintf(stderr, "%s\n", deco_last_error(ctx));
      return 1;
    }
    step_t pre = {model, cache, 1, &seqs[s], &n_new[s], tokens, logits, NULL};
    if (run_step(&pre)) return 1;
  }
  /* Which matmul path the one-token step takes for the largest projection. */
  deco_matmul_args_t probe = {.dtype = DECO_DTYPE_BF16, .out_dtype = DECO_DTYPE_BF16, .m = 1, .n = c->hidden_dim,
                              .k = c->dim, .a = logits, .w = logits, .out = logits, .accumulate = 0};
  const deco_exec_t exec = deco_ops_exec(ctx);
  const char *path1 = deco_matmul_path_cuda(&exec, &probe);
  probe.m = 16;
  const char *path16 = deco_matmul_path_cuda(&exec, &probe);
  deco_bench_csv_header(stdout);
  const char *cmd = deco_bench_command(argc, argv);
  int batches[2] = {1, 16};
  double decode_us = 0, decode_graph_us = 0;
  for (int i = 0; i < 2; ++i) {
    int B = batches[i];
    for (int s = 0; s < B; ++s) n_new[s] = 1;
    step_t st = {model, cache, B, seqs, n_new, tokens, logits, NULL};
    deco_bench_stats_t stats;
    /* Eager steps commit their token: the timed ones (after 3 warm-ups)
     * attend on average 3 + (reps - 1) / 2 slots more than now. */
    double bytes = weight_bytes + step_kv_bytes(&st, 3 + (reps - 1) / 2.0);
    const double flops = flops_per_token * B;
    if (deco_bench_time(&b, run_step, &st, 3, reps, 0, &stats)) return 1;
    if (B == 1) decode_us = stats.median_us;
    char shape[128];
    snprintf(shape, sizeof shape, "%s bf16 decode B=%d prefix=%d", name, B, prefix);
    deco_bench_csv_row(stdout, &b, "forward", shape, B == 1 ? path1 : path16, &stats, bytes, flops, cmd);
    fprintf(stderr, "%s decode B=%d: %.3f ms (floor %.3f ms, %.0f%%)\n", name, B, stats.median_us / 1e3,
            deco_bench_floor_us(&b, bytes, flops) / 1e3,
            100.0 * deco_bench_floor_us(&b, bytes, flops) / stats.median_us);
    /* A replay attends to the lengths at capture, every time. */
    bytes = weight_bytes + step_kv_bytes(&st, 0);
    graphed_t g;
    if (graphed_create(&st, &g)) return 1;
    if (deco_bench_time(&b, replay_step, &g, 3, reps, 0, &stats)) return 1;
    graphed_destroy(&g);
    if (B == 1) decode_graph_us = stats.median_us;
    snprintf(shape, sizeof shape, "%s bf16 decode B=%d prefix=%d (CUDA graph)", name, B, prefix);
    deco_bench_csv_row(stdout, &b, "forward", shape, B == 1 ? path1 : path16, &stats, bytes, flops, cmd);
    fprintf(stderr, "%s decode B=%d as a CUDA graph: %.3f ms (%.0f%% of the %.3f ms floor)\n", name, B,
            stats.median_us / 1e3, 100.0 * deco_bench_floor_us(&b, bytes, flops) / stats.median_us,
            deco_bench_floor_us(&b, bytes, flops) / 1e3);
  }
  /* Verification forwards of one sequence: random draft trees of 64 and 81
   * nodes (each node's parent among the 8 before it). */
  int32_t parents[81];
  parents[0] = -1;
  for (int i = 1; i < 81; ++i) parents[i] = i - 1 - (int32_t)((i * 2654435761u >> 7) % (unsigned)(i < 8 ? i : 8));
  int verify[2] = {64, 81};
  for (int i = 0; i < 2; ++i) {
    int n = verify[i];
    step_t st = {model, cache, 1, seqs, &n, tokens, logits, parents};
    deco_bench_stats_t stats;
    /* Tree forwards commit nothing: every one reads the same K/V. */
    const double bytes = weight_bytes + step_kv_bytes(&st, 0), flops = flops_per_token * n;
    if (deco_bench_time(&b, run_step, &st, 2, reps, 0, &stats)) return 1;
    char shape[128];
    snprintf(shape, sizeof shape, "%s bf16 tree verification of %d nodes, prefix %d", name, n, prefix + 2 * (reps + 3));
    deco_bench_csv_row(stdout, &b, "forward", shape, "cublas+tree_attention", &stats, bytes, flops, cmd);
    double ratio = stats.median_us / decode_us;
    fprintf(stderr, "%s tree of %d nodes: %.3f ms = %.2f x the one-token step\n", name, n, stats.median_us / 1e3,
            ratio);
    /* A step that commits a tokens costs ratio decode steps (drafting and
     * acceptance aside): a must reach ratio to break even, 1.5 ratio for
     * 1.5x, 2 ratio for 2x. */
    fprintf(stderr, "  mean accepted tokens needed: %.2f to break even, %.2f for 1.5x, %.2f for 2x\n", ratio,
            1.5 * ratio, 2.0 * ratio);
    graphed_t g;
    if (graphed_create(&st, &g)) return 1;
    if (deco_bench_time(&b, replay_step, &g, 2, reps, 0, &stats)) return 1;
    graphed_destroy(&g);
    snprintf(shape, sizeof shape, "%s bf16 tree verification of %d nodes, prefix %d (CUDA graph)", name, n,
             prefix + 2 * (reps + 3));
    deco_bench_csv_row(stdout, &b, "forward", shape, "cublas+tree_attention", &stats, bytes, flops, cmd);
    ratio = stats.median_us / decode_graph_us;
    fprintf(stderr, "%s tree of %d nodes as a CUDA graph: %.3f ms = %.2f x the graphed one-token step\n", name, n,
            stats.median_us / 1e3, ratio);
    fprintf(stderr, "  mean accepted tokens needed: %.2f to break even, %.2f for 1.5x, %.2f for 2x\n", ratio,
            1.5 * ratio, 2.0 * ratio);
  }
  free(tokens);
  deco_free(ctx, logits);
  deco_kv_cache_destroy(cache);
  deco_model_destroy(model);
  deco_bench_destroy(&b);
  deco_ctx_destroy(ctx);
  return 0;
}
