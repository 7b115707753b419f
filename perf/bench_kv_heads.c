/* perf/bench_kv_heads.c — what KV-head compression (issue 16) buys in
 * speed: one shape (default the synthetic llama2-7b, 32 query heads) built
 * at several KV-head counts (deco_model_create_synthetic_hparams with
 * n_kv_heads replaced: 32, 16, 8, 4 — what `deco compress` outputs runs on
 * exactly these GQA kernels), and for each count and batch:
 *   - decode attention alone (deco_attention on the model's own paged
 *     cache, one new token per sequence over a context of L keys), against
 *     its memory floor: the K/V bytes it reads (plus q and out) over the
 *     copy bandwidth measured in the same run, so its time should fall in
 *     proportion to the KV bytes (docs/PERF.md asks >= 80% of the floor);
 *   - the whole decode step (deco_forward_device of B one-token sequences
 *     at position L - 1, the logits of every sequence), against the floor
 *     of the weights it streams plus the K/V of every layer;
 *   - KV bytes per token (every layer, K and V) and the largest batch
 *     whose KV at context L fits a budget (--budget-gib, default 40).
 * The cache is not prefilled: its pools are filled with random values and
 * the forwards are described in context memory with kv_lens = L (the cost
 * of attention does not depend on the values), so a 4096-token context
 * costs no prefill. Nothing is committed: every repetition sees the same
 * cache. On CUDA the step and the attention are each captured once as a
 * CUDA graph and replayed (the attention graph runs one call per layer's
 * pool, so consecutive calls read different K/V, as in a step — a batch
 * smaller than the largest also moves to other sequences' pages from call
 * to call — and the time is per call); on the CPU they are called eagerly. Times are wall clock
 * around --inner replays (calls) and one synchronisation, the median of
 * --reps samples after 2 warm-up samples.
 *
 * The step's layers: --layers N builds N layers (default: the shape's
 * count: the whole step, measured); --layers LO,HI builds both and
 * extrapolates the whole step as rest + n_layers x per-layer, where
 * per-layer = (t_HI - t_LO) / (HI - LO) and rest = t_LO - LO x per-layer
 * (a GPU whose memory does not hold the whole model's KV at the largest
 * batch: 32 KV heads at B = 32 and L = 4096 are 64 GiB). The kv_step_full
 * row's path says which ("measured" or "extrapolated LO,HI").
 *
 *   bench_kv_heads [--shape llama2-7b] [--kv-heads 32,16,8,4] [--batch 32,1] [--context 4096]
 *                  [--layers N | --layers LO,HI] [--budget-gib 40] [--backend cpu|cuda] [--dtype bf16|f32]
 *                  [--reps N] [--inner N] [--threads N] [--device LABEL] [--no-header]
 * CSV on stdout, one row per (KV heads, batch, what):
 *   bench,shape,path,median_us,floor_us,pct_of_floor,kv_heads,batch,context,layers,kv_bytes_per_token,
 *   bytes_read,batch_in_budget,budget_gib,dtype,mode,device,command
 * bench: kv_attention (one layer's decode attention; path: the kernel
 * deco_attention_path names), kv_step (the step of the model built with
 * `layers` layers) or kv_step_full (the whole model's step, measured or
 * extrapolated); floor_us = bytes_read / copy bandwidth (mode: graph on
 * CUDA, eager on the CPU). A summary table goes to stderr.
 * A KV-head count that does not divide the query heads fails before
 * anything is timed (exit 1); exit 77 when --backend cuda finds no device.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wall.h"
#include "deco/deco.h"

#define MAX_LIST 16
#define PAGE 16

typedef struct opts {
  deco_backend_t backend;
  deco_dtype_t dtype;
  int context, lo, hi, reps, inner;
  int batches[MAX_LIST], n_batches, max_b;
  double budget_gib, copy_gbps;
} opts_t;

#define CHECK(expr)                                                                 \
  do {                                                                              \
    if ((expr) != DECO_STATUS_SUCCESS) {                                            \
      fprintf(stderr, "bench_kv_heads: %s: %s\n", #expr, deco_last_error(ctx));    \
      goto fail;                                                                    \
    }                                                                               \
  } while (0)

typedef struct graphed {
  deco_ctx_t *ctx;
  deco_graph_t *graph;
  deco_model_t *model;
  deco_kv_cache_t *cache;
  deco_forward_device_args_t fa;
  deco_attention_args_t *att; /* [n_att] attention calls (one per layer) */
  int n_att;
} graphed_t;

/* One unit: a graph replay on CUDA; on the CPU the step, or every
 * attention call. */
static int unit_fn(void *user) {
  graphed_t *g = user;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (g->graph) st = deco_graph_replay(g->ctx, g->graph, 1);
  else if (g->att)
    for (int i = 0; i < g->n_att && st == DECO_STATUS_SUCCESS; ++i) st = deco_attention(g->ctx, &g->att[i]);
  else st = deco_forward_device(g->model, g->cache, &g->fa);
  if (st != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_kv_heads: %s\n", deco_last_error(g->ctx));
    return 1;
  }
  return 0;
}

/* Captures what unit_fn runs eagerly (CUDA only), after one eager call that
 * sizes the scratch and loads every kernel. */
static int capture(graphed_t *g, int cuda) {
  deco_ctx_t *ctx = g->ctx;
  if (unit_fn(g)) return 1;
  if (deco_ctx_synchronize(ctx) != DECO_STATUS_SUCCESS) goto fail;
  if (!cuda) return 0;
  CHECK(deco_graph_capture_begin(ctx));
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (g->att) {
    for (int i = 0; i < g->n_att && st == DECO_STATUS_SUCCESS; ++i) st = deco_attention(ctx, &g->att[i]);
  } else {
    st = deco_forward_device(g->model, g->cache, &g->fa);
  }
  deco_status_t ce = deco_graph_capture_end(ctx, &g->graph);
  CHECK(st);
  CHECK(ce);
  return 0;
fail:
  return 1;
}

typedef struct timing {
  double step_us[MAX_LIST]; /* per batch */
  double att_us[MAX_LIST];
  char att_path[MAX_LIST][48];
} timing_t;

/* Builds the shape hp with `layers` layers, fills its cache's pools and
 * times the step (and, with att, the attention) for every batch. */
static int time_model(deco_ctx_t *ctx, const opts_t *o, const deco_model_hparams_t *hp0, int layers, int att,
                      timing_t *t) {
  int rc = 1;
  deco_model_t *model = NULL;
  deco_kv_cache_t *cache = NULL;
  float *logits = NULL;
  int32_t *meta = NULL, *h = NULL;
  void *q = NULL, *out = NULL, *ws = NULL;
  deco_attention_args_t *calls = NULL;
  int seqs[1024]; /* --batch is at most 1024 */
  deco_model_hparams_t hp = *hp0;
  hp.n_layers = layers;
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = o->dtype;
  char label[96];
  snprintf(label, sizeof label, "kv%d-l%d", hp.n_kv_heads, layers);
  CHECK(deco_model_create_synthetic_hparams(ctx, &hp, label, DECO_SYNTHETIC_SEED, &mc, &model));
  const int L = o->context, B = o->max_b, pps = (L + PAGE - 1) / PAGE, n_pages = B * pps + 1;
  CHECK(deco_kv_cache_create(model, PAGE, n_pages, B, &cache));
  for (int s = 0; s < B; ++s) CHECK(deco_kv_cache_admit(cache, L, &seqs[s]));
  void *kp, *vp;
  size_t pool_bytes;
  CHECK(deco_kv_cache_pools(cache, &kp, &vp, &pool_bytes));
  const size_t es = o->dtype == DECO_DTYPE_BF16 ? 2 : 4;
  deco_fill_random_args_t fk = {.dtype = o->dtype, .n = pool_bytes / es, .seed = 11, .tensor = 1, .scale = 1.0f,
                                .constant = 0.0f, .out = kp};
  deco_fill_random_args_t fv = fk;
  fv.tensor = 2;
  fv.out = vp;
  CHECK(deco_fill_random(ctx, &fk));
  CHECK(deco_fill_random(ctx, &fv));
  CHECK(deco_malloc(ctx, (void **)&logits, sizeof(float) * (size_t)B * hp.vocab_size));
  const int P = deco_kv_cache_max_pages(cache);
  /* tokens, positions [B]; q_indptr [B+1]; kv_lens, prefix [B]; table [B][P] */
  const size_t o_pos = (size_t)B, o_qi = 2 * (size_t)B, o_kv = o_qi + B + 1, o_pre = o_kv + B, o_tab = o_pre + B,
               total = o_tab + (size_t)B * P;
  h = calloc(total, sizeof(int32_t));
  if (!h) goto fail;
  for (int s = 0; s < B; ++s) {
    h[s] = 1 + (int32_t)((s * 7919u) % (unsigned)(hp.vocab_size - 1));
    h[o_pos + s] = L - 1;
    h[o_kv + s] = L;
    h[o_pre + s] = L - 1;
  }
  for (int s = 0; s <= B; ++s) h[o_qi + s] = s;
  CHECK(deco_malloc(ctx, (void **)&meta, total * sizeof(int32_t)));
  CHECK(deco_memcpy(ctx, meta, h, total * sizeof(int32_t), DECO_COPY_HOST_TO_CTX));
  CHECK(deco_kv_cache_block_table(cache, seqs, B, meta + o_tab));
  const int cuda = o->backend == DECO_BACKEND_CUDA;
  for (int i = 0; i < o->n_batches; ++i) {
    const int b = o->batches[i];
    graphed_t g = {.ctx = ctx, .model = model, .cache = cache};
    g.fa = (deco_forward_device_args_t)DECO_FORWARD_DEVICE_ARGS_INIT;
    g.fa.n_seqs = b;
    g.fa.n_tokens = b;
    g.fa.tokens = meta;
    g.fa.positions = meta + o_pos;
    g.fa.q_indptr = meta + o_qi;
    g.fa.kv_lens = meta + o_kv;
    g.fa.prefix_lens = meta + o_pre;
    g.fa.block_table = meta + o_tab; /* the first b rows */
    g.fa.logits = logits;
    if (capture(&g, cuda)) goto fail;
    const int r = wall_time(ctx, unit_fn, &g, 2, o->reps, o->inner, &t->step_us[i]);
    deco_graph_destroy(g.graph);
    if (r) goto fail;
  }
  if (att) {
    /* Decode attention alone over the same pools: one call per layer; a
     * batch smaller than the largest reads other sequences' pages at each
     * layer (rows l x b mod (B - b + 1) on), so that no call finds its K/V
     * in L2 (B = 1 at 4 KV heads and L = 4096 reads 8 MiB a call). */
    const size_t qn = (size_t)B * hp.n_heads * hp.head_dim, layer_elems = pool_bytes / es / (size_t)layers;
    CHECK(deco_malloc(ctx, &q, qn * es));
    CHECK(deco_malloc(ctx, &out, qn * es));
    deco_fill_random_args_t fq = {.dtype = o->dtype, .n = qn, .seed = 11, .tensor = 3, .scale = 2.0f,
                                  .constant = 0.0f, .out = q};
    CHECK(deco_fill_random(ctx, &fq));
    calls = calloc((size_t)layers, sizeof *calls);
    if (!calls) goto fail;
    for (int i = 0; i < o->n_batches; ++i) {
      const int b = o->batches[i];
      for (int l = 0; l < layers; ++l) {
        deco_attention_args_t a = DECO_ATTENTION_ARGS_INIT;
        a.cache = (deco_paged_kv_t){.dtype = o->dtype, .n_kv_heads = hp.n_kv_heads, .head_dim = hp.head_dim,
                                    .page_size = PAGE, .n_pages = n_pages,
                                    .k_pages = (char *)kp + (size_t)l * layer_elems * es,
                                    .v_pages = (char *)vp + (size_t)l * layer_elems * es,
                                    .block_table = meta + o_tab + (size_t)((l * b) % (B - b + 1)) * P,
                                    .max_pages_per_seq = P};
        a.batch = (deco_ragged_batch_t){.n_seqs = b, .n_tokens = b, .q_indptr = meta + o_qi, .kv_lens = meta + o_kv};
        a.n_heads = hp.n_heads;
        a.scale = 1.0f / sqrtf((float)hp.head_dim);
        a.q = q;
        a.out = out;
        calls[l] = a;
      }
      /* Workspace of its own for the calls (set to none after; the model
       * lends its own again at its next forward). */
      const size_t wsb = deco_attention_workspace_size(ctx, &calls[0]);
      deco_free(ctx, ws);
      ws = NULL;
      if (wsb) CHECK(deco_malloc(ctx, &ws, wsb));
      CHECK(deco_ctx_set_workspace(ctx, ws, wsb));
      snprintf(t->att_path[i], sizeof t->att_path[i], "deco_attention:%s", deco_attention_path(ctx, &calls[0]));
      graphed_t g = {.ctx = ctx, .att = calls, .n_att = layers};
      if (capture(&g, cuda)) goto fail;
      double us;
      const int r = wall_time(ctx, unit_fn, &g, 2, o->reps, o->inner, &us);
      deco_graph_destroy(g.graph);
      if (r) goto fail;
      t->att_us[i] = us / layers;
    }
  }
  rc = 0;
fail:
  if (att) deco_ctx_set_workspace(ctx, NULL, 0);
  free(calls);
  free(h);
  deco_free(ctx, ws);
  deco_free(ctx, q);
  deco_free(ctx, out);
  deco_free(ctx, meta);
  deco_free(ctx, logits);
  deco_kv_cache_destroy(cache);
  deco_model_destroy(model);
  return rc;
}

static void row(const char *bench, const char *shape, const char *path, double us, double bytes, const opts_t *o,
                int kv_heads, int b, int layers, double kv_tok, long fit, const char *mode, const char *device,
                const char *cmd) {
  const double floor_us = bytes / (o->copy_gbps * 1e3);
  printf("%s,%s,", bench, shape);
  wall_csv_field(stdout, path);
  printf(",%.2f,%.2f,%.1f,%d,%d,%d,%d,%.0f,%.0f,%ld,%g,%s,%s,", us, floor_us, 100.0 * floor_us / us, kv_heads, b,
         o->context, layers, kv_tok, bytes, fit, o->budget_gib, o->dtype == DECO_DTYPE_BF16 ? "bf16" : "f32", mode);
  wall_csv_field(stdout, device);
  putchar(',');
  wall_csv_field(stdout, cmd);
  putchar('\n');
}

int main(int argc, char **argv) {
  const char *shape = "llama2-7b", *heads_s = "32,16,8,4", *batch_s = "32,1", *layers_s = NULL;
  wall_opts_t w = WALL_OPTS_INIT;
  opts_t o = {.context = 4096, .budget_gib = 40.0};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = NULL;
    const int taken = wall_option("bench_kv_heads", argc, argv, &i, &w, &v);
    if (taken == 2) return 2;
    if (taken) continue;
    if (!strcmp(a, "--shape")) shape = v;
    else if (!strcmp(a, "--kv-heads")) heads_s = v;
    else if (!strcmp(a, "--batch")) batch_s = v;
    else if (!strcmp(a, "--context")) o.context = atoi(v);
    else if (!strcmp(a, "--layers")) layers_s = v;
    else if (!strcmp(a, "--budget-gib")) o.budget_gib = atof(v);
    else {
      fprintf(stderr, "bench_kv_heads: unknown option %s\n", a);
      return 2;
    }
  }
  int heads[MAX_LIST], n_heads;
  if (wall_int_list(heads_s, 1, 1024, heads, MAX_LIST, &n_heads)) {
    fprintf(stderr, "bench_kv_heads: --kv-heads %s: expected a comma list of counts >= 1\n", heads_s);
    return 2;
  }
  if (wall_int_list(batch_s, 1, 1024, o.batches, MAX_LIST, &o.n_batches)) {
    fprintf(stderr, "bench_kv_heads: --batch %s: expected a comma list of sizes 1..1024\n", batch_s);
    return 2;
  }
  o.max_b = 0;
  for (int i = 0; i < o.n_batches; ++i) o.max_b = o.batches[i] > o.max_b ? o.batches[i] : o.max_b;
  if (o.context < 2 || !(o.budget_gib > 0)) {
    fprintf(stderr, "bench_kv_heads: --context %d --budget-gib %g: expected context >= 2, budget > 0\n", o.context,
            o.budget_gib);
    return 2;
  }
  const int bd = wall_backend_dtype("bench_kv_heads", w.backend, w.dtype, &o.backend, &o.dtype);
  if (bd) return bd;
  const int cuda = o.backend == DECO_BACKEND_CUDA;
  o.reps = w.reps > 0 ? w.reps : cuda ? 10 : 3;
  o.inner = w.inner > 0 ? w.inner : cuda ? 5 : 1;
  deco_model_hparams_t base;
  if (deco_synthetic_hparams(shape, &base) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_kv_heads: %s\n", deco_last_error(NULL));
    return 2;
  }
  o.lo = 0;
  o.hi = base.n_layers;
  if (layers_s) {
    const int n = sscanf(layers_s, "%d,%d", &o.lo, &o.hi);
    if (n == 1) {
      o.hi = o.lo;
      o.lo = 0;
    }
    if (n < 1 || o.hi < 1 || o.hi > base.n_layers || (n == 2 && (o.lo < 1 || o.lo >= o.hi))) {
      fprintf(stderr, "bench_kv_heads: --layers %s: expected N or LO,HI with 1 <= LO < HI <= %d\n", layers_s,
              base.n_layers);
      return 2;
    }
  }
  if (base.seq_len < o.context) base.seq_len = o.context;
  /* Every count is checked before anything is timed. */
  for (int i = 0; i < n_heads; ++i)
    if (base.n_heads % heads[i] != 0) {
      fprintf(stderr, "bench_kv_heads: %s: %d KV heads do not divide its %d query heads\n", shape, heads[i],
              base.n_heads);
      return 1;
    }
  deco_ctx_t *ctx = wall_ctx_create("bench_kv_heads", o.backend, w.threads);
  if (!ctx) return 1;
  if (wall_copy_gbps(ctx, cuda ? (size_t)1 << 30 : (size_t)64 << 20, &o.copy_gbps)) {
    deco_ctx_destroy(ctx);
    return 1;
  }
  const char *device = w.device ? w.device : cuda ? "cuda:0" : "cpu";
  const char *mode = cuda ? "graph" : "eager";
  char cmd[1024];
  wall_command(argc, argv, cmd, sizeof cmd);
  fprintf(stderr, "bench_kv_heads: %s, %s, copy %.0f GB/s (read + write), context %d, step layers %s\n", shape,
          device, o.copy_gbps, o.context, o.lo ? "extrapolated" : "measured");
  if (w.header)
    printf("bench,shape,path,median_us,floor_us,pct_of_floor,kv_heads,batch,context,layers,kv_bytes_per_token,"
           "bytes_read,batch_in_budget,budget_gib,dtype,mode,device,command\n");
  fprintf(stderr, "%8s %5s %10s %9s %7s %11s %9s %7s %12s %10s\n", "kv_heads", "B", "attn_us", "floor_us", "%floor",
          "step_us", "floor_us", "%floor", "KV B/token", "B in budget");
  const size_t es = o.dtype == DECO_DTYPE_BF16 ? 2 : 4;
  const double L = o.context, budget = o.budget_gib * 1073741824.0;
  int rc = 0;
  for (int k = 0; k < n_heads && rc == 0; ++k) {
    deco_model_hparams_t hp = base;
    hp.n_kv_heads = heads[k];
    timing_t hi = {0}, lo = {0};
    if (time_model(ctx, &o, &hp, o.hi, 1, &hi) || (o.lo && time_model(ctx, &o, &hp, o.lo, 0, &lo))) {
      rc = 1;
      break;
    }
    const double kv_layer_tok = 2.0 * hp.n_kv_heads * hp.head_dim * (double)es; /* K and V, one layer */
    const double kv_tok = kv_layer_tok * hp.n_layers;
    const long fit = (long)floor(budget / (kv_tok * L));
    /* Bytes a step reads besides K/V: every weight but the embedding
     * table (B rows of it; the classifier is read whole, tied or not). */
    const double d = hp.dim, hd = hp.head_dim, es_d = (double)es;
    const double layer_w =
        es_d * (d * (hp.n_heads + 2.0 * hp.n_kv_heads) * hd + d * hp.n_heads * hd + 3.0 * d * hp.hidden_dim + 2.0 * d);
    const double head_w = es_d * (d + (double)hp.vocab_size * d);
    for (int i = 0; i < o.n_batches; ++i) {
      const int b = o.batches[i];
      const double q_bytes = 2.0 * b * hp.n_heads * hd * es_d; /* q read, out written */
      const double att_bytes = b * L * kv_layer_tok + q_bytes;
      row("kv_attention", shape, hi.att_path[i], hi.att_us[i], att_bytes, &o, hp.n_kv_heads, b, 1, kv_tok, fit, mode,
          device, cmd);
      const double step_bytes_hi = o.hi * (layer_w + b * L * kv_layer_tok) + head_w;
      row("kv_step", shape, "forward_device", hi.step_us[i], step_bytes_hi, &o, hp.n_kv_heads, b, o.hi, kv_tok, fit,
          mode, device, cmd);
      double full_us = hi.step_us[i];
      char how[48] = "measured";
      if (o.lo) {
        const double per = (hi.step_us[i] - lo.step_us[i]) / (o.hi - o.lo), rest = lo.step_us[i] - o.lo * per;
        full_us = rest + hp.n_layers * per;
        snprintf(how, sizeof how, "extrapolated %d,%d", o.lo, o.hi);
        if (!(per > 0))
          fprintf(stderr, "bench_kv_heads: warning: %d KV heads, B = %d: the step of %d layers (%.1f us) is no slower "
                          "than of %d (%.1f us): the extrapolation means nothing\n",
                  hp.n_kv_heads, b, o.hi, hi.step_us[i], o.lo, lo.step_us[i]);
        row("kv_step", shape, "forward_device", lo.step_us[i], o.lo * (layer_w + b * L * kv_layer_tok) + head_w, &o,
            hp.n_kv_heads, b, o.lo, kv_tok, fit, mode, device, cmd);
      }
      const double step_bytes = hp.n_layers * (layer_w + b * L * kv_layer_tok) + head_w;
      if (o.lo || o.hi == hp.n_layers)
        row("kv_step_full", shape, how, full_us, step_bytes, &o, hp.n_kv_heads, b, hp.n_layers, kv_tok, fit, mode,
            device, cmd);
      const double af = att_bytes / (o.copy_gbps * 1e3), sf = step_bytes / (o.copy_gbps * 1e3);
      fprintf(stderr, "%8d %5d %10.2f %9.2f %6.0f%% %11.1f %9.1f %6.0f%% %12.0f %10ld%s\n", hp.n_kv_heads, b,
              hi.att_us[i], af, 100.0 * af / hi.att_us[i], full_us, sf, 100.0 * sf / full_us, kv_tok, fit,
              o.lo || o.hi == hp.n_layers ? "" : " (step of fewer layers)");
    }
    fflush(stdout);
  }
  deco_ctx_destroy(ctx);
  return rc;
}
