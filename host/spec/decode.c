/* host/spec/decode.c — deco_generate, the decoding loops: plain
 * autoregressive decoding as llama2.c's run.c does it (prompt ids forced,
 * one forward per position), speculative decoding driven from the host
 * (a drafter's tree → the engine's step), and the device-resident loop
 * (device_step.h), eager or replayed as a CUDA graph. All prefill the
 * prompt in one batched forward, and every emitted id stands for one
 * forward position, so steps and the stopping rule mean the same in all.
 * Every buffer is planned before the prefill; stats.step_allocations says
 * whether anything was allocated after that.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "model/sampler.h"
#include "spec/device_step.h"
#include "spec/verify.h"
#include "util/sized.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A run: the model, its cache and sequence, the resolved configuration. */
typedef struct run {
  deco_model_t *m;
  deco_ctx_t *ctx;
  deco_kv_cache_t *kc;
  int seq;
  deco_generate_config_t c;  /* defaults filled in */
  const int32_t *stop_ids;   /* the run's stop set (none with ignore_eos) */
  int n_stop_ids;
  const int32_t *prompt;
  int n_prompt;
  int n_forced;              /* prompt ids the prefill commits */
  float *d_logits;           /* [vocab] the prefill's and plain decoding's logits */
  int is_planned;
  size_t allocs_at_plan;     /* the context's allocation count once planned */
  deco_generate_stats_t *out;
} run_t;

static void emit(const run_t *r, int32_t id) {
  if (r->c.emit) r->c.emit(r->c.user, id);
}

static int is_stop(const run_t *r, int32_t id) {
  for (int i = 0; i < r->n_stop_ids; ++i)
    if (r->stop_ids[i] == id) return 1;
  return 0;
}

/* Planning is over: later allocations are counted against the plan. */
static void planned(run_t *r) {
  r->is_planned = 1;
  r->allocs_at_plan = deco_ctx_alloc_count(r->ctx);
}

/* Prefills every prompt id but the last and emits the forced ids; the
 * position of the first generating forward is r->n_forced. */
static deco_status_t prefill(run_t *r) {
  emit(r, r->prompt[0]);
  if (r->n_forced > 0) {
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &r->seq, .n_new = &r->n_forced, .tokens = r->prompt,
                              .embeds = NULL, .parents = NULL, .logits_mode = DECO_LOGITS_LAST,
                              .logits = r->d_logits, .schedule = NULL};
    DECO_TRY(deco_ctx_synchronize(r->ctx)); /* what was queued before is not the prefill's */
    const double t0 = now_seconds();
    DECO_TRY(deco_forward(r->m, r->kc, &fa));
    DECO_TRY(deco_ctx_synchronize(r->ctx));
    r->out->prefill_seconds = now_seconds() - t0;
    for (int i = 1; i <= r->n_forced; ++i) emit(r, r->prompt[i]);
  }
  return DECO_STATUS_SUCCESS;
}

/* The buffers of the prefill and of one-token forwards. */
static deco_status_t plan_causal(run_t *r) {
  deco_forward_plan_t fp = {.max_tokens = r->n_forced > 1 ? r->n_forced : 1, .max_seqs = 1, .causal = 1,
                            .tree = 0, .workspace_bytes = 0};
  return deco_model_plan(r->m, r->kc, &fp, NULL);
}

/* ---- Plain decoding ---------------------------------------------------------- */

static deco_status_t plain_steps(run_t *r, deco_sampler_t *sampler, float *logits) {
  const int V = deco_model_get_hparams(r->m)->vocab_size;
  int pos = r->n_forced;
  int32_t token = r->prompt[pos];
  while (pos < r->c.steps) {
    int one = 1;
    deco_forward_args_t fa = {.n_seqs = 1, .seqs = &r->seq, .n_new = &one, .tokens = &token, .embeds = NULL,
                              .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = r->d_logits,
                              .schedule = NULL};
    DECO_TRY(deco_forward(r->m, r->kc, &fa));
    DECO_TRY(deco_memcpy(r->ctx, logits, r->d_logits, sizeof(float) * (size_t)V, DECO_COPY_CTX_TO_HOST));
    int32_t next = deco_sampler_sample(sampler, logits, (uint32_t)pos, 0);
    if (next < 0)
      return DECO_FAIL(r->ctx, DECO_STATUS_NON_FINITE, "deco_generate: the model gave non-finite logits at position %d",
                       pos);
    r->out->forwards++;
    pos++;
    if (is_stop(r, next)) break;
    emit(r, next);
    r->out->tokens++;
    token = next;
  }
  return DECO_STATUS_SUCCESS;
}

static deco_status_t run_plain(run_t *r) {
  const int V = deco_model_get_hparams(r->m)->vocab_size;
  deco_sampler_t *sampler = NULL;
  float *logits = malloc(sizeof(float) * (size_t)V);
  deco_sampler_config_t sc = {.size = sizeof sc, .temperature = r->c.temperature, .top_k = r->c.top_k,
                              .top_p = r->c.top_p, .seed = r->c.seed};
  deco_status_t st = logits ? deco_sampler_create(V, &sc, &sampler)
                            : DECO_FAIL(r->ctx, DECO_STATUS_OUT_OF_MEMORY, "deco_generate: host memory");
  if (st != DECO_STATUS_SUCCESS && logits) st = DECO_FAIL(r->ctx, st, "deco_generate: %s", deco_last_error(NULL));
  if (st == DECO_STATUS_SUCCESS) st = plan_causal(r);
  if (st == DECO_STATUS_SUCCESS) planned(r);
  if (st == DECO_STATUS_SUCCESS) st = prefill(r);
  if (st == DECO_STATUS_SUCCESS) st = plain_steps(r, sampler, logits);
  deco_sampler_destroy(sampler);
  free(logits);
  return st;
}

/* ---- Speculative decoding driven from the host ----------------------------- */

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

static deco_status_t spec_steps(run_t *r, deco_spec_engine_t *eng) {
  int32_t tokens[DECO_TREE_MAX_NODES], parents[DECO_TREE_MAX_NODES], emitted[DECO_TREE_MAX_NODES];
  const deco_generate_config_t *c = &r->c;
  int pos = r->n_forced;
  while (pos < c->steps) {
    int n;
    DECO_TRY(deco_drafter_draft(c->drafter, r->seq, tokens, parents, &n));
    /* Never draft past steps: the root and d drafts cover d + 1 positions. */
    n = prune_depth(tokens, parents, n, c->steps - pos - 1);
    deco_spec_sampling_t sp = {.temperature = c->temperature, .top_k = c->top_k, .top_p = c->top_p,
                               .seed = c->seed, .offset = (uint32_t)pos};
    int n_emitted;
    DECO_TRY(deco_spec_engine_step(eng, 1, &r->seq, &n, tokens, parents, &sp, emitted, &n_emitted));
    r->out->forwards++;
    for (int i = 0; i < n_emitted; ++i) {
      pos++;
      if (is_stop(r, emitted[i])) return DECO_STATUS_SUCCESS; /* it and what was accepted after it are dropped */
      emit(r, emitted[i]);
      r->out->tokens++;
    }
  }
  return DECO_STATUS_SUCCESS;
}

/* The drafter begins the run's sequence, alone: a run is one sequence, so
 * the drafter first lets go of any other it holds. */
static deco_status_t begin_drafter(run_t *r) {
  deco_drafter_keep_only(r->c.drafter, r->seq);
  return deco_drafter_begin(r->c.drafter, r->m, r->seq, r->prompt, r->n_forced + 1);
}

static deco_status_t run_spec(run_t *r) {
  deco_spec_engine_t *eng = NULL;
  deco_status_t st = deco_spec_engine_create(r->m, r->kc, 1, deco_drafter_max_nodes(r->c.drafter), &eng);
  if (st == DECO_STATUS_SUCCESS) st = deco_spec_engine_set_drafter(eng, r->c.drafter);
  if (st == DECO_STATUS_SUCCESS) st = plan_causal(r);
  if (st == DECO_STATUS_SUCCESS) planned(r);
  if (st == DECO_STATUS_SUCCESS) st = prefill(r);
  if (st == DECO_STATUS_SUCCESS) st = begin_drafter(r);
  if (st == DECO_STATUS_SUCCESS) st = spec_steps(r, eng);
  deco_spec_engine_destroy(eng);
  return st;
}

/* ---- The device-resident loop ----------------------------------------------- */

/* Ends a capture of one step: the step's own failure wins over the
 * capture's (deco_graph_capture_end keeps its message). */
static deco_status_t capture(run_t *r, deco_device_step_t *step, deco_graph_t **graph) {
  double t0 = now_seconds();
  deco_status_t st = deco_graph_capture_begin(r->ctx);
  if (st == DECO_STATUS_SUCCESS) {
    const deco_status_t enqueued = deco_device_step_enqueue(step);
    st = deco_graph_capture_end(r->ctx, graph);
    if (enqueued != DECO_STATUS_SUCCESS) st = enqueued;
  }
  r->out->capture_seconds += now_seconds() - t0;
  return st;
}

/* Eager steps until done; with graph, one eager step and then replays of
 * one captured step, reading the state every few replays. The first step
 * stays eager even though the plan leaves nothing to allocate: lazy
 * initialisation inside libraries (cuBLAS, module loading) happens outside
 * the capture. Each step emits at least one id, so steps replays always
 * suffice. */
static deco_status_t device_steps(run_t *r, deco_device_step_t *step) {
  const deco_generate_config_t *c = &r->c;
  deco_graph_t *graph = NULL;
  deco_spec_state_t s;
  deco_status_t st = deco_device_step_state(step, &s);
  int replays = 0;
  while (st == DECO_STATUS_SUCCESS && !s.done && replays < c->steps) {
    if (c->graph && replays > 0) {
      if (!graph && (st = capture(r, step, &graph)) != DECO_STATUS_SUCCESS) break;
      /* Never replay past the step limit; and since a replay after the end
       * still costs a forward, aim at the steps likely left at the mean
       * rate so far (rounded down). */
      const int left = c->steps - s.len, per = s.forwards > 0 ? (s.len - r->n_forced) / s.forwards : 1;
      int todo = per > 1 ? (left + per - 1) / per : left;
      if (todo > c->replay_chunk) todo = c->replay_chunk;
      st = deco_graph_replay(r->ctx, graph, todo);
      replays += todo;
    } else {
      st = deco_device_step_enqueue(step);
      replays++;
    }
    if (st == DECO_STATUS_SUCCESS) st = deco_device_step_state(step, &s);
  }
  deco_graph_destroy(graph);
  if (st == DECO_STATUS_SUCCESS) {
    r->out->tokens = s.tokens;
    r->out->forwards = s.forwards;
  }
  return st;
}

static deco_status_t run_device(run_t *r) {
  const deco_generate_config_t *c = &r->c;
  const deco_device_step_config_t sc = {.model = r->m,
                                        .cache = r->kc,
                                        .seq = r->seq,
                                        .drafter = c->drafter,
                                        .steps = c->steps,
                                        .temperature = c->temperature,
                                        .top_k = c->top_k,
                                        .top_p = c->top_p,
                                        .seed = c->seed,
                                        .stop_ids = r->stop_ids,
                                        .n_stop_ids = r->n_stop_ids,
                                        .max_prefill = r->n_forced};
  deco_device_step_t *step = NULL;
  deco_status_t st = deco_device_step_create(&sc, &step);
  if (st == DECO_STATUS_SUCCESS) planned(r);
  if (st == DECO_STATUS_SUCCESS) st = prefill(r);
  if (st == DECO_STATUS_SUCCESS && c->drafter) st = begin_drafter(r);
  if (st == DECO_STATUS_SUCCESS) st = deco_device_step_start(step, r->n_forced, r->prompt[r->n_forced]);
  if (st == DECO_STATUS_SUCCESS) st = device_steps(r, step);
  const int32_t *ids = NULL;
  int n_ids = 0;
  if (st == DECO_STATUS_SUCCESS) st = deco_device_step_finish(step, &ids, &n_ids);
  for (int i = 0; st == DECO_STATUS_SUCCESS && i < n_ids; ++i) emit(r, ids[i]);
  if (st == DECO_STATUS_SUCCESS && c->drafter) st = deco_drafter_observe_host(c->drafter, r->seq, ids, n_ids);
  deco_device_step_destroy(step);
  return st;
}

/* ---- deco_generate ------------------------------------------------------------ */

/* The prompt's length, its ids within the vocabulary, and the steps. */
static deco_status_t check_prompt(run_t *r, const deco_model_hparams_t *hp, const char *op) {
  deco_ctx_t *ctx = r->ctx;
  const deco_generate_config_t *c = &r->c;
  DECO_CHECK_RANGE(ctx, r->n_prompt, 1, 1 << 30, op);
  DECO_CHECK_RANGE(ctx, c->steps, 1, hp->seq_len, op);
  const int i = (int)deco_first_id_outside(r->prompt, (size_t)r->n_prompt, hp->vocab_size);
  if (i < r->n_prompt)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: prompt[%d] = %d outside the vocabulary [0, %d)", op, i,
                     r->prompt[i], hp->vocab_size);
  return DECO_STATUS_SUCCESS;
}

/* The cache's page size and the replay chunk (defaults filled in), and
 * the sampling law, one for every loop and checked before anything runs:
 * top_k within its range, a finite temperature >= 0, top_p > 0 (above 1
 * the nucleus is everything, as 1: the speculative loops' acceptance takes
 * it as 1). */
static deco_status_t check_sizes(run_t *r, const char *op) {
  deco_ctx_t *ctx = r->ctx;
  deco_generate_config_t *c = &r->c;
  if (c->page_size == 0) c->page_size = DECO_GENERATE_PAGE_SIZE;
  if (c->replay_chunk == 0) c->replay_chunk = DECO_GENERATE_REPLAY_CHUNK;
  DECO_CHECK_RANGE(ctx, c->page_size, 1, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, c->replay_chunk, 1, 1 << 20, op);
  DECO_TRY(deco_sampling_law_check(ctx, c->top_k, c->temperature, c->top_p, op));
  if (c->top_p > 1.0f) c->top_p = 1.0f;
  return DECO_STATUS_SUCCESS;
}

/* Which loop runs: graphs need the device-resident loop on the CUDA
 * backend, and that loop a drafter that drafts on the device; and steps
 * within what the drafter was sized for, checked before anything runs. */
static deco_status_t check_loop(run_t *r, const char *op) {
  deco_ctx_t *ctx = r->ctx;
  const deco_generate_config_t *c = &r->c;
  if (c->graph && !c->device_resident)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: graph needs device_resident", op);
  if (c->graph && deco_ctx_backend(ctx) != DECO_BACKEND_CUDA)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED, "%s: CUDA graphs need the CUDA backend", op);
  if (c->device_resident && c->drafter && !deco_drafter_device_resident(c->drafter))
    return deco_drafter_refuse_device(c->drafter, ctx, op);
  const int max_steps = deco_drafter_max_steps(c->drafter);
  if (max_steps > 0 && c->steps > max_steps)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: steps = %d, but the drafter's draft cache (its max_len) serves at most %d", op, c->steps,
                     max_steps);
  return DECO_STATUS_SUCCESS;
}

/* The run's stop set: none (ignore_eos), the config's, or the model's. */
static deco_status_t pick_stop_ids(run_t *r, const deco_model_hparams_t *hp, const char *op) {
  const deco_generate_config_t *c = &r->c;
  if (c->ignore_eos) {
    r->stop_ids = NULL;
    r->n_stop_ids = 0;
  } else if (c->stop_ids) {
    DECO_CHECK_RANGE(r->ctx, c->n_stop_ids, 1, DECO_SPEC_MAX_STOP_IDS, op);
    r->stop_ids = c->stop_ids;
    r->n_stop_ids = c->n_stop_ids;
  } else {
    r->stop_ids = hp->stop_ids;
    r->n_stop_ids = hp->n_stop_ids;
  }
  return DECO_STATUS_SUCCESS;
}

/* The caller's configuration with its defaults, checked against the model
 * and the prompt; the run's stop set. */
static deco_status_t resolve(run_t *r, const deco_generate_config_t *in) {
  static const char op[] = "deco_generate";
  static const deco_generate_config_t defaults = DECO_GENERATE_CONFIG_INIT;
  DECO_TRY(deco_sized_read(r->ctx, &r->c, in, &defaults, sizeof defaults, "deco_generate: config"));
  const deco_model_hparams_t *hp = deco_model_get_hparams(r->m);
  DECO_TRY(check_prompt(r, hp, op));
  DECO_TRY(check_sizes(r, op));
  DECO_TRY(check_loop(r, op));
  DECO_TRY(pick_stop_ids(r, hp, op));
  r->n_forced = r->n_prompt - 1 < r->c.steps ? r->n_prompt - 1 : r->c.steps;
  return DECO_STATUS_SUCCESS;
}

/* The caller's sequence, checked, or a private cache reserving steps plus
 * one tree at admission. */
static deco_status_t open_cache(run_t *r) {
  static const char op[] = "deco_generate";
  const deco_generate_config_t *c = &r->c;
  /* Plain decoding on the host needs no tree slot; on the device it
   * verifies one-node trees. */
  const int tree = c->drafter ? deco_drafter_max_nodes(c->drafter) : c->device_resident ? 1 : 0;
  const int reserve = c->steps + tree;
  if (c->cache) {
    r->kc = c->cache;
    r->seq = c->seq;
    if (deco_kv_cache_model(r->kc) != r->m)
      return DECO_FAIL(r->ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the cache belongs to another model", op);
    if (deco_kv_cache_seq_len(r->kc, r->seq) != 0 || deco_kv_cache_seq_capacity(r->kc, r->seq) < reserve)
      return DECO_FAIL(r->ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: sequence %d of the given cache must be admitted, empty and reserve %d slots", op, r->seq,
                       reserve);
    return DECO_STATUS_SUCCESS;
  }
  DECO_TRY(deco_kv_cache_create(r->m, c->page_size, (reserve + c->page_size - 1) / c->page_size, 1, &r->kc));
  return deco_kv_cache_admit(r->kc, reserve, &r->seq);
}

deco_status_t deco_generate(deco_model_t *m, const int32_t *prompt, int n_prompt, const deco_generate_config_t *c,
                            deco_generate_stats_t *out) {
  static const char op[] = "deco_generate";
  if (!m) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: model is NULL", op);
  deco_ctx_t *ctx = deco_model_ctx(m);
  if (!prompt || !c || !out) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = (deco_generate_stats_t)DECO_GENERATE_STATS_INIT;
  run_t r = {.m = m, .ctx = ctx, .prompt = prompt, .n_prompt = n_prompt, .out = out};
  DECO_TRY(resolve(&r, c));
  deco_status_t st = open_cache(&r);
  if (st == DECO_STATUS_SUCCESS)
    st = deco_malloc(ctx, (void **)&r.d_logits, sizeof(float) * (size_t)deco_model_get_hparams(m)->vocab_size);
  if (st == DECO_STATUS_SUCCESS) {
    st = r.c.device_resident ? run_device(&r) : r.c.drafter ? run_spec(&r) : run_plain(&r);
    if (r.is_planned) out->step_allocations = (int)(deco_ctx_alloc_count(ctx) - r.allocs_at_plan);
  }
  deco_free(ctx, r.d_logits);
  if (r.kc != r.c.cache) deco_kv_cache_destroy(r.kc);
  return st;
}
