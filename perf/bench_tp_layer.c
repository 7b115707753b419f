/* perf/bench_tp_layer.c — what one rank of a tensor-parallel Llama computes
 * per step, timed on one device: the rank's shard (deco_shard_hparams: the
 * query heads / TP, the KV heads / TP or one replicated, the FFN columns
 * ceil(hidden / TP)) built as a synthetic model at TP 1
 * (deco_model_create_synthetic_hparams), which runs exactly the rank's
 * arithmetic without its two all-reduces per layer. perf/tp_cost_model.py
 * adds those from an assumed interconnect (docs/PERF.md, "Tensor
 * parallelism").
 *
 * Per layer, by difference: the same shard is built with lo and hi layers
 * (default 1 and 5) and the step timed on each;
 * us_per_layer = (t_hi - t_lo) / (hi - lo), and us_rest = t_lo - lo x
 * us_per_layer is what a step costs besides its layers: the embedding
 * lookup, the final norm and the classifier over the whole vocabulary
 * (replicated: every rank runs it), plus the launch or replay overhead. The
 * difference cancels that constant part, which a per-layer share of a
 * whole-model time would not; a model of few layers also fits one GPU at
 * shapes whose whole model does not (the 70B shape).
 *
 * Steps, with a KV prefix of 512 (as bench_forward): decode (one token,
 * B = 1, the last token's logits) and the verification forward of a draft
 * tree of 81 nodes (bench_forward's tree: each node's parent among the 8
 * before it; every node's logits). Both are device-resident forwards
 * (deco_forward_device, nothing committed, so every repetition sees the
 * same cache); on CUDA each is captured once as a CUDA graph and replayed
 * (--inner replays per sample), on the CPU called eagerly. Times are wall
 * clock around the replays and a synchronisation; the median of --reps
 * samples after 2 warm-up samples.
 *
 *   bench_tp_layer --shape llama3-8b|llama2-7b|llama3-70b|llama2-70b|smollm2-135m
 *                  [--tp 1,2,4,8] [--backend cpu|cuda] [--dtype bf16|f32] [--layers LO,HI]
 *                  [--reps N] [--inner N] [--prefix 512] [--nodes 81] [--threads N] [--device LABEL]
 *                  [--no-header]
 * CSV on stdout (one row per TP size and step):
 *   bench,shape,tp,step,tokens,heads,kv_heads,hidden,dim,n_layers,dtype,layers_lo,layers_hi,us_lo,us_hi,
 *   us_per_layer,us_rest,layer_weight_bytes,mode,device,command
 * heads, kv_heads, hidden: the rank's shard; dim and n_layers: the full
 * model's (the cost model multiplies by n_layers); layer_weight_bytes: one
 * layer of the shard in the model dtype; mode: graph (CUDA) or eager (CPU);
 * device: --device's label (perf/tp_cost.sh passes the GPU's or CPU's
 * name; default cuda:0 or cpu).
 * A TP size the heads do not allow fails with the library's message
 * (exit 1). Exit 77 when --backend cuda finds no device.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wall.h"
#include "deco/deco.h"

#define MAX_TP 16
#define MAX_NODES 256

/* The 70B shapes the synthetic names lack: Llama 2 70B (32000 words) and
 * Llama 3 70B (128256). */
static int shape_hparams(const char *name, deco_model_hparams_t *hp) {
  const int is_l2 = strcmp(name, "llama2-70b") == 0, is_l3 = strcmp(name, "llama3-70b") == 0;
  if (is_l2 || is_l3) {
    if (deco_synthetic_hparams("llama3-8b", hp) != DECO_STATUS_SUCCESS) return 1;
    hp->dim = 8192;
    hp->hidden_dim = 28672;
    hp->n_layers = 80;
    hp->n_heads = 64;
    hp->n_kv_heads = 8;
    hp->head_dim = 128;
    hp->vocab_size = is_l3 ? 128256 : 32000;
    hp->seq_len = is_l3 ? 8192 : 4096;
    hp->rope_theta = is_l3 ? 500000.0f : 10000.0f;
    hp->rope_style = is_l3 ? DECO_ROPE_HALF_SPLIT : DECO_ROPE_INTERLEAVED;
    return 0;
  }
  if (deco_synthetic_hparams(name, hp) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_tp_layer: %s (or llama2-70b, llama3-70b)\n", deco_last_error(NULL));
    return 1;
  }
  return 0;
}

typedef struct opts {
  deco_backend_t backend;
  deco_dtype_t dtype;
  int lo, hi, reps, inner, prefix, nodes;
} opts_t;

#define CHECK(expr)                                                                                        \
  do {                                                                                                     \
    if ((expr) != DECO_STATUS_SUCCESS) {                                                                   \
      fprintf(stderr, "bench_tp_layer: %s: %s\n", #expr, deco_last_error(ctx));                            \
      goto fail;                                                                                           \
    }                                                                                                      \
  } while (0)

/* Median microseconds of one step (T tokens of one sequence with the cache
 * at len; parents set: a tree) on model. */
static int time_step(deco_ctx_t *ctx, const opts_t *o, deco_model_t *model, deco_kv_cache_t *cache, int seq, int T,
                     const int32_t *parents, const int32_t *tokens, float *logits, double *median_us) {
  int rc = 1;
  deco_graph_t *graph = NULL;
  int32_t *meta = NULL, *h = NULL;
  double *samples = NULL;
  const int P = deco_kv_cache_max_pages(cache), len = deco_kv_cache_seq_len(cache, seq);
  /* tokens, positions, parents [T]; q_indptr [2]; kv_lens, prefix [1]; table [P] */
  const size_t o_pos = (size_t)T, o_par = 2 * (size_t)T, o_qi = 3 * (size_t)T, o_kv = o_qi + 2, o_pre = o_kv + 1,
               o_tab = o_pre + 1, total = o_tab + (size_t)P;
  h = calloc(total, sizeof(int32_t));
  samples = calloc((size_t)o->reps, sizeof(double));
  if (!h || !samples) {
    fprintf(stderr, "bench_tp_layer: out of host memory\n");
    goto fail;
  }
  if (parents) CHECK(deco_tree_positions(parents, T, len, h + o_pos));
  for (int j = 0; j < T; ++j) {
    h[j] = tokens[j];
    if (!parents) h[o_pos + j] = len + j;
    h[o_par + j] = parents ? parents[j] : j - 1;
  }
  h[o_qi] = 0;
  h[o_qi + 1] = T;
  h[o_kv] = len + T;
  h[o_pre] = len;
  CHECK(deco_malloc(ctx, (void **)&meta, total * sizeof(int32_t)));
  CHECK(deco_memcpy(ctx, meta, h, total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  CHECK(deco_kv_cache_block_table(cache, &seq, 1, meta + o_tab));
  deco_forward_device_args_t fa = DECO_FORWARD_DEVICE_ARGS_INIT;
  fa.n_seqs = 1;
  fa.n_tokens = T;
  fa.tokens = meta;
  fa.positions = meta + o_pos;
  fa.q_indptr = meta + o_qi;
  fa.kv_lens = meta + o_kv;
  fa.prefix_lens = meta + o_pre;
  fa.parents = parents ? meta + o_par : NULL;
  fa.block_table = meta + o_tab;
  fa.logits = logits;
  /* One eager call sizes the scratch and loads every kernel. */
  CHECK(deco_forward_device(model, cache, &fa));
  CHECK(deco_ctx_synchronize(ctx));
  const int graphed = o->backend == DECO_BACKEND_CUDA;
  if (graphed) {
    CHECK(deco_graph_capture_begin(ctx));
    deco_status_t st = deco_forward_device(model, cache, &fa);
    deco_status_t ce = deco_graph_capture_end(ctx, &graph);
    CHECK(st);
    CHECK(ce);
  }
  for (int r = -2; r < o->reps; ++r) {
    const double t0 = wall_now_us();
    if (graphed) {
      CHECK(deco_graph_replay(ctx, graph, o->inner));
    } else {
      for (int i = 0; i < o->inner; ++i) CHECK(deco_forward_device(model, cache, &fa));
    }
    CHECK(deco_ctx_synchronize(ctx));
    if (r >= 0) samples[r] = (wall_now_us() - t0) / o->inner;
  }
  qsort(samples, (size_t)o->reps, sizeof(double), wall_cmp_double);
  *median_us = o->reps % 2 ? samples[o->reps / 2] : 0.5 * (samples[o->reps / 2 - 1] + samples[o->reps / 2]);
  rc = 0;
fail:
  deco_graph_destroy(graph);
  deco_free(ctx, meta);
  free(h);
  free(samples);
  return rc;
}

/* The shard local with layers layers: decode and verify medians. */
static int time_model(deco_ctx_t *ctx, const opts_t *o, const deco_model_hparams_t *local, int layers,
                      const char *label, const int32_t *parents, double us[2]) {
  int rc = 1;
  deco_model_t *model = NULL;
  deco_kv_cache_t *cache = NULL;
  float *logits = NULL;
  int32_t *tokens = NULL;
  deco_model_hparams_t hp = *local;
  hp.n_layers = layers;
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = o->dtype;
  CHECK(deco_model_create_synthetic_hparams(ctx, &hp, label, DECO_SYNTHETIC_SEED, &mc, &model));
  const int page = 16, need = o->prefix + o->nodes + 1;
  CHECK(deco_kv_cache_create(model, page, (need + page - 1) / page + 1, 1, &cache));
  int seq;
  CHECK(deco_kv_cache_admit(cache, need, &seq));
  const int n_tok = o->prefix > o->nodes ? o->prefix : o->nodes;
  tokens = malloc(sizeof(int32_t) * (size_t)n_tok);
  if (!tokens) goto fail;
  for (int i = 0; i < n_tok; ++i) tokens[i] = 1 + (int32_t)((i * 7919u) % (unsigned)(hp.vocab_size - 1));
  CHECK(deco_malloc(ctx, (void **)&logits, sizeof(float) * (size_t)o->nodes * hp.vocab_size));
  /* The prefix, committed (a causal forward of prefix tokens). */
  int n_new = o->prefix;
  deco_forward_args_t fa = {.n_seqs = 1, .seqs = &seq, .n_new = &n_new, .tokens = tokens, .embeds = NULL,
                            .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  CHECK(deco_forward(model, cache, &fa));
  CHECK(deco_ctx_synchronize(ctx));
  if (time_step(ctx, o, model, cache, seq, 1, NULL, tokens, logits, &us[0])) goto fail;
  if (time_step(ctx, o, model, cache, seq, o->nodes, parents, tokens, logits, &us[1])) goto fail;
  rc = 0;
fail:
  free(tokens);
  deco_free(ctx, logits);
  deco_kv_cache_destroy(cache);
  deco_model_destroy(model);
  return rc;
}


int main(int argc, char **argv) {
  const char *shape = NULL, *tp_list = "1", *layers_s = NULL;
  wall_opts_t w = WALL_OPTS_INIT;
  opts_t o = {.prefix = 512, .nodes = 81};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = NULL;
    const int taken = wall_option("bench_tp_layer", argc, argv, &i, &w, &v);
    if (taken == 2) return 2;
    if (taken) continue;
    if (!strcmp(a, "--shape")) shape = v;
    else if (!strcmp(a, "--tp")) tp_list = v;
    else if (!strcmp(a, "--layers")) layers_s = v;
    else if (!strcmp(a, "--prefix")) o.prefix = atoi(v);
    else if (!strcmp(a, "--nodes")) o.nodes = atoi(v);
    else {
      fprintf(stderr, "bench_tp_layer: unknown option %s\n", a);
      return 2;
    }
  }
  if (!shape) {
    fprintf(stderr, "usage: bench_tp_layer --shape NAME [--tp 1,2,4,8] [--backend cpu|cuda] [--dtype bf16|f32] "
                    "[--layers LO,HI] [--reps N] [--inner N] [--prefix 512] [--nodes 81] [--threads N] "
                    "[--device LABEL] [--no-header]\n");
    return 2;
  }
  const int bd = wall_backend_dtype("bench_tp_layer", w.backend, w.dtype, &o.backend, &o.dtype);
  if (bd) return bd;
  const int cuda = o.backend == DECO_BACKEND_CUDA;
  o.lo = 1;
  o.hi = 5;
  if (layers_s && (sscanf(layers_s, "%d,%d", &o.lo, &o.hi) != 2 || o.lo < 1 || o.hi <= o.lo)) {
    fprintf(stderr, "bench_tp_layer: --layers %s: expected LO,HI with 1 <= LO < HI\n", layers_s);
    return 2;
  }
  o.reps = w.reps > 0 ? w.reps : cuda ? 15 : 5;
  o.inner = w.inner > 0 ? w.inner : cuda ? 10 : 1;
  if (o.prefix < 1 || o.nodes < 1 || o.nodes > MAX_NODES) {
    fprintf(stderr, "bench_tp_layer: --prefix %d --nodes %d: expected prefix >= 1 and nodes 1..%d\n", o.prefix,
            o.nodes, MAX_NODES);
    return 2;
  }
  int tps[MAX_TP], n_tp = 0;
  if (wall_int_list(tp_list, 1, 1024, tps, MAX_TP, &n_tp)) {
    fprintf(stderr, "bench_tp_layer: --tp %s: expected a comma list of sizes >= 1 (at most %d)\n", tp_list, MAX_TP);
    return 2;
  }
  deco_model_hparams_t full;
  if (shape_hparams(shape, &full)) return 2;
  /* Every TP size is checked before anything is timed. */
  for (int i = 0; i < n_tp; ++i) {
    deco_model_hparams_t local;
    if (deco_shard_hparams(&full, tps[i], &local) != DECO_STATUS_SUCCESS) {
      fprintf(stderr, "bench_tp_layer: %s: %s\n", shape, deco_last_error(NULL));
      return 1;
    }
  }
  deco_ctx_t *ctx = wall_ctx_create("bench_tp_layer", o.backend, w.threads);
  if (!ctx) return 1;
  const char *device = w.device ? w.device : cuda ? "cuda:0" : "cpu";
  /* The command that reproduces the run. */
  char cmd[1024];
  wall_command(argc, argv, cmd, sizeof cmd);
  int32_t parents[MAX_NODES];
  parents[0] = -1;
  for (int i = 1; i < o.nodes; ++i) parents[i] = i - 1 - (int32_t)((i * 2654435761u >> 7) % (unsigned)(i < 8 ? i : 8));
  const char *dtype_name = o.dtype == DECO_DTYPE_BF16 ? "bf16" : "f32";
  const size_t dsize = o.dtype == DECO_DTYPE_BF16 ? 2 : 4;
  if (w.header)
    printf("bench,shape,tp,step,tokens,heads,kv_heads,hidden,dim,n_layers,dtype,layers_lo,layers_hi,us_lo,us_hi,"
           "us_per_layer,us_rest,layer_weight_bytes,mode,device,command\n");
  int rc = 0;
  for (int i = 0; i < n_tp && rc == 0; ++i) {
    deco_model_hparams_t local;
    deco_shard_hparams(&full, tps[i], &local); /* checked above */
    char label[96];
    snprintf(label, sizeof label, "%s-tp%d-shard", shape, tps[i]);
    double lo[2], hi[2];
    if (time_model(ctx, &o, &local, o.lo, label, parents, lo) ||
        time_model(ctx, &o, &local, o.hi, label, parents, hi)) {
      rc = 1;
      break;
    }
    const size_t d = (size_t)local.dim, hd = (size_t)local.head_dim;
    const size_t qkv = (size_t)(local.n_heads + 2 * local.n_kv_heads) * hd * d, wo = d * (size_t)local.n_heads * hd;
    const size_t ffn = 3 * (size_t)local.hidden_dim * d;
    const size_t layer_bytes = (qkv + wo + ffn + 2 * d) * dsize;
    const char *steps[2] = {"decode", "verify"};
    const int tokens[2] = {1, o.nodes};
    for (int s = 0; s < 2; ++s) {
      const double per = (hi[s] - lo[s]) / (o.hi - o.lo), rest = lo[s] - o.lo * per;
      printf("tp_layer,%s,%d,%s,%d,%d,%d,%d,%d,%d,%s,%d,%d,%.2f,%.2f,%.2f,%.2f,%zu,%s,", shape, tps[i], steps[s],
             tokens[s], local.n_heads, local.n_kv_heads, local.hidden_dim, full.dim, full.n_layers, dtype_name, o.lo,
             o.hi, lo[s], hi[s], per, rest, layer_bytes, cuda ? "graph" : "eager");
      wall_csv_field(stdout, device);
      putchar(',');
      wall_csv_field(stdout, cmd);
      putchar('\n');
      fprintf(stderr, "%s TP %d %s: %.1f us per layer, %.1f us besides the layers (%d layers: %.1f us, %d: %.1f us)\n",
              shape, tps[i], steps[s], per, rest, o.lo, lo[s], o.hi, hi[s]);
    }
    fflush(stdout);
  }
  deco_ctx_destroy(ctx);
  return rc;
}
