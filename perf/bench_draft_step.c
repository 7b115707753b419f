/* perf/bench_draft_step.c — what a model draft (issue 18) and a
 * layer-parallel draft (issue 19) cost per step on a synthetic shape, and
 * the speedup they give over plain decoding:
 *   - decode: the target's one-token step (B = 1, context --prefix + 1);
 *   - verify: the target's tree forward of a chain of K + 1 nodes (the
 *     root and K drafts; every node's logits) — the verification forward,
 *     acceptance and compaction excluded;
 *   - draft: one draft step of a layer-subset view of the target
 *     (deco_model_create_view): K levels, each a one-token forward of the
 *     view and the argmax of its logits (deco_topk_rows, k = 1) written
 *     into the next level's input on the device; sequential (every layer
 *     alone) and layer-parallel at each N of --lp: the draft's middle layers
 *     in groups of N consecutive layers (the model drafter's rule: its first
 *     and last layers alone, a group never spans a gap of the list), which
 *     the view runs fused (stacked Q/K/V, one attention launch per group).
 *     "calibrated" runs the first level with the sequential schedule (as
 *     the calibrating drafter does) and the K - 1 others grouped;
 *     "uncalibrated" groups every level.
 * A draft of D layers takes the target's first ceil(D / 2) and last
 * floor(D / 2) layers (D = the target's layer count: the target itself).
 * Caches are not prefilled: their pools hold random values and the forwards
 * are described in context memory (the cost does not depend on the
 * values); nothing is committed. On CUDA each step is captured once as a
 * CUDA graph and replayed; on the CPU it is called eagerly. Times: wall
 * clock around --inner replays and one synchronisation, the median of
 * --reps samples after 2 warm-up samples.
 *
 * Expected speedup of a configuration with mean accepted tokens a per
 * round: a x t_decode / (t_draft_step + t_verify), where t_draft_step = K x
 * t_draft_forward (argmaxes included); break-even at a = (t_draft_step +
 * t_verify) / t_decode. The acceptance comes from --accept
 * (seq=A,lp2=A,lp2u=A,...: seq for sequential drafts, lpN for N calibrated,
 * lpNu uncalibrated; the same value for every draft size), labelled by
 * --accept-label. The defaults are perf/NOTES.md's CPU measurements on
 * SmolLM2-135M-Instruct (a draft of 28 of its 30 layers, chains of 4,
 * greedy): acceptance cannot be measured on a synthetic model's random
 * weights. A configuration --accept does not name gets no expected row.
 *
 * End to end (unless --no-e2e): deco_generate of --steps positions
 * (a fixed 16-id prompt, greedy, never stopping) plainly, and with the
 * model drafter of every layer (the target as its own draft: acceptance is
 * forced, every full round commits K + 1 tokens), each --e2e-reps times
 * (median). Plain decoding runs the device-resident loop (graphed on
 * CUDA) and the host loop; the drafter runs device-resident (graphed on
 * CUDA) when deco_drafter_device_resident says it can, the host loop
 * otherwise. The loop that ran is the CSV's loop column; the speedup is
 * over plain decoding in the device-resident loop.
 *
 *   bench_draft_step [--shape llama3-8b] [--n-layers N] [--draft-layers 8,16] [--draft-len 4] [--lp 2,4]
 *                    [--prefix 512] [--steps 128] [--e2e-reps 3] [--no-e2e]
 *                    [--accept seq=2.66,lp2=2.89,lp4=2.77,lp2u=2.29,lp4u=1.66] [--accept-label STR]
 *                    [--backend cpu|cuda] [--dtype bf16|f32] [--reps N] [--inner N] [--threads N]
 *                    [--device LABEL] [--no-header]
 * --n-layers builds the shape with fewer layers (a quick CPU run).
 * CSV on stdout:
 *   bench,shape,path,median_us,tokens,n_layers,draft_layers,layer_parallel,draft_len,prefix,mean_accepted,
 *   speedup,loop,dtype,mode,device,command
 * bench: draft_step (path decode, verify, draft; median_us per step;
 * tokens: tokens the step forwards), draft_expected (median_us = t_draft_step
 * + t_verify; mean_accepted: the given a; speedup: the formula above;
 * loop: the acceptance's label), draft_e2e (path plain or self-draft;
 * median_us: microseconds per generated token; tokens: generated;
 * mean_accepted: tokens per target forward; speedup: over plain decoding's
 * device-resident loop). mode: graph on CUDA, eager on the CPU.
 * Exit 77 when --backend cuda finds no device.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wall.h"
#include "deco/deco.h"

#define MAX_LIST 16
#define MAX_K 32
#define PAGE 16
#define DEFAULT_ACCEPT "seq=2.66,lp2=2.89,lp4=2.77,lp2u=2.29,lp4u=1.66"
#define DEFAULT_ACCEPT_LABEL "NOTES CPU SmolLM2 28/30 layers chain 4 greedy"

typedef struct opts {
  deco_backend_t backend;
  deco_dtype_t dtype;
  int K, prefix, reps, inner;
  const char *shape, *device, *cmd, *mode;
} opts_t;

static deco_ctx_t *g_ctx;

#define CHECK(expr)                                                                  \
  do {                                                                               \
    if ((expr) != DECO_STATUS_SUCCESS) {                                             \
      fprintf(stderr, "bench_draft_step: %s: %s\n", #expr, deco_last_error(g_ctx));  \
      goto fail;                                                                     \
    }                                                                                \
  } while (0)

/* ---- One step: a list of forwards (each optionally followed by an argmax
 * into the next forward's input), replayed as a graph on CUDA ---- */

#define MAX_CALLS (MAX_K + 1)
typedef struct step {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int n;                                 /* forwards */
  deco_forward_device_args_t fa[MAX_CALLS];
  deco_layer_schedule_t sched[MAX_CALLS]; /* per-forward schedule when has_sched[i] */
  int has_sched[MAX_CALLS];
  deco_topk_rows_args_t am[MAX_CALLS];   /* argmax after forward i when am[i].k */
  deco_graph_t *graph;
} step_t;

static int step_eager(step_t *s) {
  for (int i = 0; i < s->n; ++i) {
    if (s->has_sched[i]) s->fa[i].schedule = &s->sched[i];
    if (deco_forward_device(s->model, s->cache, &s->fa[i]) != DECO_STATUS_SUCCESS) return 1;
    if (s->am[i].k && deco_topk_rows(g_ctx, &s->am[i]) != DECO_STATUS_SUCCESS) return 1;
  }
  return 0;
}

static int step_fn(void *u) {
  step_t *s = u;
  const deco_status_t st = s->graph ? deco_graph_replay(g_ctx, s->graph, 1)
                                    : (step_eager(s) ? DECO_STATUS_INVALID_ARGUMENT : DECO_STATUS_SUCCESS);
  if (st != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_draft_step: %s\n", deco_last_error(g_ctx));
    return 1;
  }
  return 0;
}

/* Median microseconds of the step: one eager run (sizes scratch, loads
 * kernels), a capture on CUDA, then the timed replays (calls). */
static int step_time(const opts_t *o, step_t *s, double *us) {
  int rc = 1;
  if (step_eager(s)) {
    fprintf(stderr, "bench_draft_step: %s\n", deco_last_error(g_ctx));
    return 1;
  }
  CHECK(deco_ctx_synchronize(g_ctx));
  if (o->backend == DECO_BACKEND_CUDA) {
    CHECK(deco_graph_capture_begin(g_ctx));
    const int bad = step_eager(s);
    const deco_status_t ce = deco_graph_capture_end(g_ctx, &s->graph);
    if (bad) {
      fprintf(stderr, "bench_draft_step: capture: %s\n", deco_last_error(g_ctx));
      goto fail;
    }
    CHECK(ce);
  }
  rc = wall_time(g_ctx, step_fn, s, 2, o->reps, o->inner, us);
fail:
  deco_graph_destroy(s->graph);
  s->graph = NULL;
  return rc;
}

/* A model (the target or a view) with a cache of random K/V holding prefix
 * committed-looking slots for one sequence, and the device buffers the
 * steps describe themselves with. */
typedef struct bed {
  deco_model_t *model;
  deco_kv_cache_t *cache;
  int seq, P;
  int32_t *meta;   /* the tokens [MAX_CALLS + 1] every forward reads from, then per forward i:
                      positions, parents [MAX_CALLS]; q_indptr [2]; kv_lens, prefix_lens [1] */
  int32_t *table;  /* [P] */
  float *logits;   /* [MAX_CALLS][vocab] */
} bed_t;

#define META_TOK 0
#define META_STRIDE (2 * MAX_CALLS + 4)
#define META_CALL(i) (MAX_CALLS + 1 + (i) * META_STRIDE)

static void bed_destroy(bed_t *b) {
  deco_free(g_ctx, b->meta);
  deco_free(g_ctx, b->table);
  deco_free(g_ctx, b->logits);
  deco_kv_cache_destroy(b->cache);
  b->meta = b->table = NULL;
  b->logits = NULL;
  b->cache = NULL;
}

static int bed_create(const opts_t *o, deco_model_t *model, size_t topk_ws, bed_t *b) {
  memset(b, 0, sizeof *b);
  b->model = model;
  const deco_model_hparams_t *hp = deco_model_get_hparams(model);
  const int need = o->prefix + MAX_CALLS + 1;
  CHECK(deco_kv_cache_create(model, PAGE, (need + PAGE - 1) / PAGE + 1, 1, &b->cache));
  CHECK(deco_kv_cache_admit(b->cache, need, &b->seq));
  void *k, *v;
  size_t bytes;
  CHECK(deco_kv_cache_pools(b->cache, &k, &v, &bytes));
  const size_t es = o->dtype == DECO_DTYPE_BF16 ? 2 : 4;
  deco_fill_random_args_t f = {.dtype = o->dtype, .n = bytes / es, .seed = 13, .tensor = 1, .scale = 1.0f,
                               .constant = 0.0f, .out = k};
  CHECK(deco_fill_random(g_ctx, &f));
  f.tensor = 2;
  f.out = v;
  CHECK(deco_fill_random(g_ctx, &f));
  b->P = deco_kv_cache_max_pages(b->cache);
  CHECK(deco_malloc(g_ctx, (void **)&b->table, sizeof(int32_t) * (size_t)b->P));
  CHECK(deco_kv_cache_block_table(b->cache, &b->seq, 1, b->table));
  CHECK(deco_malloc(g_ctx, (void **)&b->meta, sizeof(int32_t) * (size_t)META_CALL(MAX_CALLS)));
  CHECK(deco_malloc(g_ctx, (void **)&b->logits, sizeof(float) * (size_t)MAX_CALLS * hp->vocab_size));
  deco_forward_plan_t plan = DECO_FORWARD_PLAN_INIT;
  plan.max_tokens = MAX_CALLS;
  plan.tree = 1;
  plan.workspace_bytes = topk_ws;
  CHECK(deco_model_plan(model, b->cache, &plan, NULL));
  return 0;
fail:
  bed_destroy(b);
  return 1;
}

/* Forward i of a step: T tokens from tokens[tok0..] at positions
 * prefix + pos0 .., kv_len prefix + pos0 + T (causal), or a chain tree of T
 * nodes over the prefix (tree). */
static int bed_call(const opts_t *o, bed_t *b, step_t *s, int i, int tok0, int pos0, int T, int tree) {
  int32_t h[META_STRIDE];
  const int L = o->prefix + pos0;
  for (int j = 0; j < T; ++j) {
    h[j] = L + j;             /* positions (a chain's depth is its index) */
    h[MAX_CALLS + j] = j - 1; /* parents */
  }
  int32_t *tail = h + 2 * MAX_CALLS;
  tail[0] = 0;     /* q_indptr */
  tail[1] = T;
  tail[2] = L + T; /* kv_lens */
  tail[3] = L;     /* prefix_lens (tree) */
  int32_t *d = b->meta + META_CALL(i);
  CHECK(deco_memcpy(g_ctx, d, h, sizeof h, DECO_COPY_HOST_TO_CTX));
  deco_forward_device_args_t fa = DECO_FORWARD_DEVICE_ARGS_INIT;
  fa.n_seqs = 1;
  fa.n_tokens = T;
  fa.tokens = b->meta + META_TOK + tok0;
  fa.positions = d;
  fa.parents = tree ? d + MAX_CALLS : NULL;
  fa.q_indptr = d + 2 * MAX_CALLS;
  fa.kv_lens = d + 2 * MAX_CALLS + 2;
  fa.prefix_lens = d + 2 * MAX_CALLS + 3;
  fa.block_table = b->table;
  fa.logits = b->logits;
  s->fa[i] = fa;
  s->n = i + 1 > s->n ? i + 1 : s->n;
  return 0;
fail:
  return 1;
}

static int bed_tokens(bed_t *b, int vocab) {
  int32_t t[MAX_CALLS + 1];
  for (int j = 0; j <= MAX_CALLS; ++j) t[j] = 1 + (int32_t)((j * 7919u + 17u) % (unsigned)(vocab - 1));
  CHECK(deco_memcpy(g_ctx, b->meta + META_TOK, t, sizeof t, DECO_COPY_HOST_TO_CTX));
  return 0;
fail:
  return 1;
}

/* ---- Schedules ---- */

/* The draft's layers: the first ceil(D/2) and the last floor(D/2). */
static int draft_layers(int n, int D, int *layers) {
  const int a = (D + 1) / 2, z = D / 2;
  for (int i = 0; i < a; ++i) layers[i] = i;
  for (int i = 0; i < z; ++i) layers[a + i] = n - z + i;
  return D;
}

/* The model drafter's layer-parallel rule (N <= 1: every layer alone). */
static int group_layers(const int *layers, int D, int N, int *first, int *count) {
  int g = 0;
  for (int i = 0; i < D;) {
    int len = 1;
    if (N > 1 && i > 0 && i < D - 1)
      while (len < N && i + len < D - 1 && layers[i + len] == layers[i] + len) len++;
    first[g] = layers[i];
    count[g++] = len;
    i += len;
  }
  return g;
}

/* ---- Acceptance given by flag ---- */

typedef struct accept {
  char key[16][8];
  double a[16];
  int n;
} accept_t;

static int parse_accept(const char *s, accept_t *acc) {
  acc->n = 0;
  for (const char *p = s; *p;) {
    const char *eq = strchr(p, '=');
    if (!eq || eq == p || eq - p >= 8 || acc->n == 16) return 1;
    memcpy(acc->key[acc->n], p, (size_t)(eq - p));
    acc->key[acc->n][eq - p] = '\0';
    char *end;
    acc->a[acc->n] = strtod(eq + 1, &end);
    if (end == eq + 1 || !(acc->a[acc->n] >= 1.0) || (*end && *end != ',')) return 1;
    acc->n++;
    p = *end ? end + 1 : end;
  }
  return 0;
}

static double accept_of(const accept_t *acc, const char *key) {
  for (int i = 0; i < acc->n; ++i)
    if (!strcmp(acc->key[i], key)) return acc->a[i];
  return 0.0;
}

/* ---- Output ---- */

static void row(const opts_t *o, const char *bench, const char *path, double us, int tokens, int n_layers, int D,
                int N, double accepted, double speedup, const char *loop) {
  printf("%s,%s,", bench, o->shape);
  wall_csv_field(stdout, path);
  printf(",%.2f,%d,%d,%d,%d,%d,%d,", us, tokens, n_layers, D, N, o->K, o->prefix);
  if (accepted > 0) printf("%.3f", accepted);
  putchar(',');
  if (speedup > 0) printf("%.3f", speedup);
  putchar(',');
  wall_csv_field(stdout, loop);
  printf(",%s,%s,", o->dtype == DECO_DTYPE_BF16 ? "bf16" : "f32", o->mode);
  wall_csv_field(stdout, o->device);
  putchar(',');
  wall_csv_field(stdout, o->cmd);
  putchar('\n');
  fflush(stdout);
}

/* ---- End to end ---- */

static int generate_us(const opts_t *o, deco_model_t *target, deco_drafter_t *drafter, int device_resident, int graph,
                       int steps, int reps, double *us_per_token, double *accepted, int *tokens) {
  const deco_model_hparams_t *hp = deco_model_get_hparams(target);
  int32_t prompt[16];
  for (int i = 0; i < 16; ++i) prompt[i] = 1 + (int32_t)((i * 104729u + 7u) % (unsigned)(hp->vocab_size - 1));
  double *s = calloc((size_t)reps, sizeof(double));
  if (!s) return 1;
  for (int r = 0; r < reps; ++r) {
    deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
    c.steps = steps;
    c.drafter = drafter;
    c.temperature = 0.0f;
    c.ignore_eos = 1;
    c.device_resident = device_resident;
    c.graph = graph;
    deco_generate_stats_t st = DECO_GENERATE_STATS_INIT;
    const double t0 = wall_now_us();
    if (deco_generate(target, prompt, 16, &c, &st) != DECO_STATUS_SUCCESS) {
      fprintf(stderr, "bench_draft_step: deco_generate: %s\n", deco_last_error(g_ctx));
      free(s);
      return 1;
    }
    s[r] = (wall_now_us() - t0 - st.capture_seconds * 1e6) / (st.tokens > 0 ? st.tokens : 1);
    *accepted = st.forwards ? (double)st.tokens / st.forwards : 0.0;
    *tokens = st.tokens;
  }
  qsort(s, (size_t)reps, sizeof(double), wall_cmp_double);
  *us_per_token = reps % 2 ? s[reps / 2] : 0.5 * (s[reps / 2 - 1] + s[reps / 2]);
  free(s);
  return 0;
}

static int end_to_end(const opts_t *o, deco_model_t *target, int steps, int reps) {
  const deco_model_hparams_t *hp = deco_model_get_hparams(target);
  const int cuda = o->backend == DECO_BACKEND_CUDA;
  double plain_dev = 0, plain_host = 0, spec = 0, acc = 0;
  int tokens = 0, rc = 1;
  deco_drafter_t *drafter = NULL;
  int *layers = malloc(sizeof(int) * (size_t)hp->n_layers);
  if (!layers) return 1;
  if (generate_us(o, target, NULL, 1, cuda, steps, reps, &plain_dev, &acc, &tokens)) goto fail;
  row(o, "draft_e2e", "plain", plain_dev, tokens, hp->n_layers, 0, 0, acc, 1.0, cuda ? "device+graph" : "device");
  if (generate_us(o, target, NULL, 0, 0, steps, reps, &plain_host, &acc, &tokens)) goto fail;
  row(o, "draft_e2e", "plain", plain_host, tokens, hp->n_layers, 0, 0, acc, plain_dev / plain_host, "host");
  for (int i = 0; i < hp->n_layers; ++i) layers[i] = i;
  deco_model_draft_config_t dc = DECO_MODEL_DRAFT_CONFIG_INIT;
  dc.layers = layers;
  dc.n_layers = hp->n_layers;
  dc.draft_len = o->K;
  dc.max_len = steps + 16;
  dc.max_seqs = 1;
  CHECK(deco_drafter_create_model(target, NULL, &dc, &drafter));
  const int dev = deco_drafter_device_resident(drafter);
  if (generate_us(o, target, drafter, dev, dev && cuda, steps, reps, &spec, &acc, &tokens)) goto fail;
  const char *loop = dev ? (cuda ? "device+graph" : "device") : "host";
  row(o, "draft_e2e", "self-draft", spec, tokens, hp->n_layers, hp->n_layers, 1, acc, plain_dev / spec, loop);
  fprintf(stderr,
          "end to end, %d tokens: plain %.1f us/token (device loop%s), %.1f (host loop); the target as its own "
          "draft (chain %d, %s loop): %.1f us/token, %.2f tokens per target forward, %.2fx over the plain device "
          "loop, %.2fx over the plain host loop\n",
          tokens, plain_dev, cuda ? ", graphed" : "", plain_host, o->K, loop, spec, acc, plain_dev / spec,
          plain_host / spec);
  if (acc < o->K + 1 - 0.5)
    fprintf(stderr, "bench_draft_step: warning: %.2f tokens per forward with the target as its own draft (forced: "
                    "%d expected, less the last round's truncation)\n", acc, o->K + 1);
  rc = 0;
fail:
  deco_drafter_destroy(drafter);
  free(layers);
  return rc;
}

/* ---- main ---- */

int main(int argc, char **argv) {
  const char *shape = "llama3-8b", *draft_s = "8,16", *lp_s = "2,4", *accept_s = DEFAULT_ACCEPT, *accept_label = NULL;
  int n_layers = 0, steps = 128, e2e = 1, e2e_reps = 0;
  wall_opts_t w = WALL_OPTS_INIT;
  int accept_given = 0;
  opts_t o = {.K = 4, .prefix = 512};
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "--no-e2e")) {
      e2e = 0;
      continue;
    }
    const int taken = wall_option("bench_draft_step", argc, argv, &i, &w, &v);
    if (taken == 2) return 2;
    if (taken) continue;
    if (!strcmp(a, "--shape")) shape = v;
    else if (!strcmp(a, "--n-layers")) n_layers = atoi(v);
    else if (!strcmp(a, "--draft-layers")) draft_s = v;
    else if (!strcmp(a, "--draft-len")) o.K = atoi(v);
    else if (!strcmp(a, "--lp")) lp_s = v;
    else if (!strcmp(a, "--prefix")) o.prefix = atoi(v);
    else if (!strcmp(a, "--steps")) steps = atoi(v);
    else if (!strcmp(a, "--e2e-reps")) e2e_reps = atoi(v);
    else if (!strcmp(a, "--accept")) {
      accept_s = v;
      accept_given = 1;
    }
    else if (!strcmp(a, "--accept-label")) accept_label = v;
    else {
      fprintf(stderr, "bench_draft_step: unknown option %s\n", a);
      return 2;
    }
  }
  if (!accept_label) accept_label = accept_given ? "given" : DEFAULT_ACCEPT_LABEL;
  accept_t acc;
  if (parse_accept(accept_s, &acc)) {
    fprintf(stderr, "bench_draft_step: --accept %s: expected KEY=A,... (keys seq, lpN, lpNu; A >= 1)\n", accept_s);
    return 2;
  }
  deco_model_hparams_t hp;
  if (deco_synthetic_hparams(shape, &hp) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "bench_draft_step: %s\n", deco_last_error(NULL));
    return 2;
  }
  if (n_layers) {
    if (n_layers < 3 || n_layers > hp.n_layers) {
      fprintf(stderr, "bench_draft_step: --n-layers %d: expected 3..%d\n", n_layers, hp.n_layers);
      return 2;
    }
    hp.n_layers = n_layers;
  }
  int drafts[MAX_LIST], n_drafts, lps[MAX_LIST], n_lps = 0;
  if (wall_int_list(draft_s, 3, hp.n_layers, drafts, MAX_LIST, &n_drafts)) {
    fprintf(stderr, "bench_draft_step: --draft-layers %s: expected a comma list of layer counts 3..%d\n", draft_s,
            hp.n_layers);
    return 2;
  }
  if (strcmp(lp_s, "") && wall_int_list(lp_s, 2, DECO_MAX_LAYER_GROUP, lps, MAX_LIST, &n_lps)) {
    fprintf(stderr, "bench_draft_step: --lp %s: expected a comma list of group sizes 2..%d\n", lp_s,
            DECO_MAX_LAYER_GROUP);
    return 2;
  }
  if (o.K < 1 || o.K > MAX_K || o.prefix < 1 || steps < 18 || steps > hp.seq_len) {
    fprintf(stderr, "bench_draft_step: --draft-len %d --prefix %d --steps %d: expected 1..%d, >= 1, 18..%d\n", o.K,
            o.prefix, steps, MAX_K, hp.seq_len);
    return 2;
  }
  const int bd = wall_backend_dtype("bench_draft_step", w.backend, w.dtype, &o.backend, &o.dtype);
  if (bd) return bd;
  const int cuda = o.backend == DECO_BACKEND_CUDA;
  o.reps = w.reps > 0 ? w.reps : cuda ? 15 : 3;
  o.inner = w.inner > 0 ? w.inner : cuda ? 10 : 1;
  if (e2e_reps < 1) e2e_reps = cuda ? 3 : 1;
  o.shape = shape;
  o.mode = cuda ? "graph" : "eager";
  o.device = w.device ? w.device : cuda ? "cuda:0" : "cpu";
  char cmd[1024];
  wall_command(argc, argv, cmd, sizeof cmd);
  o.cmd = cmd;

  g_ctx = wall_ctx_create("bench_draft_step", o.backend, w.threads);
  if (!g_ctx) return 1;
  int rc = 1;
  deco_model_t *target = NULL, *view = NULL;
  bed_t tb = {0}, vb = {0};
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = o.dtype;
  CHECK(deco_model_create_synthetic_hparams(g_ctx, &hp, shape, DECO_SYNTHETIC_SEED, &mc, &target));
  deco_topk_rows_args_t am = DECO_TOPK_ROWS_ARGS_INIT;
  am.n_rows = 1;
  am.vocab = hp.vocab_size;
  am.k = 1;
  const size_t topk_ws = deco_topk_rows_workspace_size(g_ctx, &am);
  if (w.header)
    printf("bench,shape,path,median_us,tokens,n_layers,draft_layers,layer_parallel,draft_len,prefix,mean_accepted,"
           "speedup,loop,dtype,mode,device,command\n");
  fprintf(stderr, "bench_draft_step: %s (%d layers), %s, %s, chain of %d over a prefix of %d\n", shape, hp.n_layers,
          o.device, o.mode, o.K, o.prefix);

  /* The target: decode and verify. */
  if (bed_create(&o, target, topk_ws, &tb) || bed_tokens(&tb, hp.vocab_size)) goto fail;
  step_t s = {.model = target, .cache = tb.cache};
  if (bed_call(&o, &tb, &s, 0, 0, 0, 1, 0)) goto fail;
  double t_decode, t_verify;
  if (step_time(&o, &s, &t_decode)) goto fail;
  row(&o, "draft_step", "decode", t_decode, 1, hp.n_layers, 0, 0, 0, 0, o.mode);
  s = (step_t){.model = target, .cache = tb.cache};
  if (bed_call(&o, &tb, &s, 0, 0, 0, o.K + 1, 1)) goto fail;
  if (step_time(&o, &s, &t_verify)) goto fail;
  row(&o, "draft_step", "verify", t_verify, o.K + 1, hp.n_layers, 0, 0, 0, 0, o.mode);
  fprintf(stderr, "decode %.1f us, verify of a chain of %d + 1: %.1f us (%.2fx)\n", t_decode, o.K, t_verify,
          t_verify / t_decode);
  bed_destroy(&tb);
  fprintf(stderr, "%6s %-18s %12s %12s %12s %8s %9s %9s\n", "layers", "draft", "step_us", "fwd_us", "round_us", "a",
          "break-even", "speedup");

  /* Drafts: D layers, sequential and layer-parallel. */
  int layers[1024], first[1024], count[1024];
  for (int di = 0; di < n_drafts; ++di) {
    const int D = draft_layers(hp.n_layers, drafts[di], layers);
    for (int li = -1; li < n_lps; ++li) {
      const int N = li < 0 ? 1 : lps[li];
      if (N > 1 && N > D - 2) {
        fprintf(stderr, "%6d lp %d: skipped (more than the draft's %d middle layers)\n", D, N, D - 2);
        continue;
      }
      const int g = group_layers(layers, D, N, first, count);
      deco_layer_schedule_t sched = {.n_groups = g, .first = first, .count = count};
      CHECK(deco_model_create_view(target, &sched, &view));
      if (bed_create(&o, view, topk_ws, &vb) || bed_tokens(&vb, hp.vocab_size)) goto fail;
      int exact_first[1024], exact_count[1024];
      for (int i = 0; i < D; ++i) {
        exact_first[i] = layers[i];
        exact_count[i] = 1;
      }
      for (int cal = 1; cal >= (N > 1 ? 0 : 1); --cal) {
        s = (step_t){.model = view, .cache = vb.cache};
        for (int k = 0; k < o.K; ++k) {
          if (bed_call(&o, &vb, &s, k, k, k, 1, 0)) goto fail;
          if (N > 1 && cal && k == 0) {
            s.sched[0] = (deco_layer_schedule_t){.n_groups = D, .first = exact_first, .count = exact_count};
            s.has_sched[0] = 1;
          }
          deco_topk_rows_args_t a = am;
          a.logits = vb.logits;
          a.ids = vb.meta + META_TOK + k + 1;
          s.am[k] = a;
        }
        double t_step;
        if (step_time(&o, &s, &t_step)) goto fail;
        char path[64], key[16];
        if (N == 1) {
          snprintf(path, sizeof path, "draft sequential");
          snprintf(key, sizeof key, "seq");
        } else {
          snprintf(path, sizeof path, "draft lp %d %s", N, cal ? "calibrated" : "uncalibrated");
          snprintf(key, sizeof key, "lp%d%s", N, cal ? "" : "u");
        }
        row(&o, "draft_step", path, t_step, o.K, hp.n_layers, D, N, 0, 0, o.mode);
        const double round = t_step + t_verify, a = accept_of(&acc, key);
        if (a > 0)
          row(&o, "draft_expected", path, round, o.K, hp.n_layers, D, N, a, a * t_decode / round, accept_label);
        if (D == hp.n_layers && N == 1)
          row(&o, "draft_expected", "draft sequential, forced", round, o.K, hp.n_layers, D, N, o.K + 1.0,
              (o.K + 1.0) * t_decode / round, "forced: the target as its own draft");
        char sp[32] = "-", as[16] = "-";
        if (a > 0) {
          snprintf(sp, sizeof sp, "%.2fx", a * t_decode / round);
          snprintf(as, sizeof as, "%.2f", a);
        }
        fprintf(stderr, "%6d %-18s %12.1f %12.1f %12.1f %8s %9.2f %9s\n", D, path + 6, t_step, t_step / o.K, round,
                as, round / t_decode, sp);
      }
      bed_destroy(&vb);
      deco_model_destroy(view);
      view = NULL;
    }
  }
  fprintf(stderr, "acceptance a: %s (%s); speedup = a x t_decode / (t_draft_step + t_verify)\n", accept_s,
          accept_label);
  if (e2e && end_to_end(&o, target, steps, e2e_reps)) goto fail;
  rc = 0;
fail:
  bed_destroy(&vb);
  bed_destroy(&tb);
  deco_model_destroy(view);
  deco_model_destroy(target);
  deco_ctx_destroy(g_ctx);
  return rc;
}
