/* host/cli/generation.c — the runs behind `deco generate`: the draft source
 * the options ask for (prompt lookup, or Token Recycling's table and
 * template), the printed run through deco_generate, and with --compare-ar the
 * timing runs (plain and speculative, each warmed up, median of 3). Every
 * speculative run starts from the same table: cold, or --recycle-state.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/generation.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct gen_env {
  deco_model_t *model;
  deco_generate_config_t cfg;  /* the speculative (or plain) configuration */
  deco_recycler_t *recycler;
  deco_tree_template_t tmpl;
  const deco_cli_options_t *o;
} gen_env_t;

static int recycle_setup(gen_env_t *env) {
  const deco_cli_options_t *o = env->o;
  deco_ctx_t *ctx = deco_model_ctx(env->model);
  const char *tname = o->tree_template ? o->tree_template : "the built-in template";
  deco_status_t st = o->tree_template ? deco_tree_template_load(o->tree_template, &env->tmpl)
                                      : deco_tree_template_default(&env->tmpl);
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("--tree-template: %s", deco_last_error(NULL));
    return 1;
  }
  if (deco_tree_template_check_k(&env->tmpl, o->recycle_k, tname) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--recycle-k: %s", deco_last_error(NULL));
    return 1;
  }
  /* --tree-nodes keeps the first N draft nodes (a breadth-first prefix). */
  int keep = o->tree_nodes ? o->tree_nodes : 80;
  if (env->tmpl.n_nodes > keep + 1) env->tmpl.n_nodes = keep + 1;
  if (deco_recycler_create(ctx, deco_model_get_config(env->model)->vocab_size, o->recycle_k, &env->recycler) !=
      DECO_STATUS_SUCCESS) {
    deco_cli_error("token recycling: %s", deco_last_error(ctx));
    return 1;
  }
  env->cfg.recycler = env->recycler;
  env->cfg.tmpl = &env->tmpl;
  return 0;
}

/* The table every speculative run starts from. */
static int recycle_reset(gen_env_t *env) {
  deco_ctx_t *ctx = deco_model_ctx(env->model);
  struct stat sb;
  if (deco_recycler_reset(env->recycler) != DECO_STATUS_SUCCESS) {
    deco_cli_error("token recycling: %s", deco_last_error(ctx));
    return 1;
  }
  if (env->o->recycle_state && stat(env->o->recycle_state, &sb) == 0 &&
      deco_recycler_load(env->recycler, env->o->recycle_state) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--recycle-state: %s", deco_last_error(ctx));
    return 1;
  }
  return 0;
}

/* One run; speculative = 0 forces plain decoding. */
static int run_once(gen_env_t *env, const deco_generation_config_t *gc, int speculative, int print,
                    deco_generation_t *out) {
  deco_generate_config_t c = env->cfg;
  if (!speculative) c.source = DECO_DRAFT_NONE;
  /* On the GPU, Token Recycling runs its step as a CUDA graph, and so does
   * the plain decoding it is compared with (--compare-ar); prompt lookup
   * drafts on the host. */
  int on_gpu = deco_ctx_backend(deco_model_ctx(env->model)) == DECO_BACKEND_CUDA;
  c.device_resident = c.graph =
      on_gpu && (c.source == DECO_DRAFT_RECYCLE || (c.source == DECO_DRAFT_NONE && env->o->compare_ar));
  c.emit = print ? gc->emit : NULL;
  c.user = gc->user;
  if (c.source == DECO_DRAFT_RECYCLE && recycle_reset(env)) return 1;
  deco_generate_stats_t stats = {0, 0, 0.0};
  double t0 = now_seconds();
  deco_status_t st = deco_generate(env->model, gc->prompt, gc->n_prompt, &c, &stats);
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(deco_model_ctx(env->model));
  out->seconds = now_seconds() - t0;
  out->capture_seconds = stats.capture_seconds;
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(deco_model_ctx(env->model)));
    return 1;
  }
  out->tokens = stats.tokens;
  out->forwards = stats.forwards;
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds and tokens/s of three silent runs. */
static int median_rate(gen_env_t *env, const deco_generation_config_t *gc, int speculative, double *rate,
                       double *seconds) {
  double secs[3];
  deco_generation_t g;
  for (int i = 0; i < 3; ++i) {
    if (run_once(env, gc, speculative, 0, &g)) return 1;
    secs[i] = g.seconds - g.capture_seconds; /* --compare-ar: graph capture excluded */
  }
  qsort(secs, 3, sizeof secs[0], cmp_double);
  *seconds = secs[1];
  *rate = secs[1] > 0 ? g.tokens / secs[1] : 0;
  return 0;
}

int deco_cli_run_generation(deco_model_t *model, const deco_generation_config_t *gc, deco_generation_t *out) {
  const deco_cli_options_t *o = gc->o;
  gen_env_t env;
  memset(&env, 0, sizeof env);
  env.model = model;
  env.o = o;
  env.cfg.steps = o->steps;
  env.cfg.temperature = o->temperature;
  env.cfg.top_p = o->top_p;
  env.cfg.seed = o->seed;
  env.cfg.ignore_eos = o->ignore_eos;
  env.cfg.source = o->spec == DECO_SPEC_LOOKUP ? DECO_DRAFT_LOOKUP
                   : o->spec == DECO_SPEC_RECYCLE ? DECO_DRAFT_RECYCLE
                                                  : DECO_DRAFT_NONE;
  deco_lookup_config_t lc = {3, 1, o->draft_len, o->tree_nodes ? o->tree_nodes : 32};
  env.cfg.lookup = lc;
  const int speculative = env.cfg.source != DECO_DRAFT_NONE;
  int rc = 1;
  memset(out, 0, sizeof *out);
  if (env.cfg.source == DECO_DRAFT_RECYCLE && recycle_setup(&env)) goto done;
  /* The printed run (it also warms up the speculative path). */
  if (run_once(&env, gc, speculative, 1, out)) goto done;
  if (o->compare_ar) {
    deco_generation_t warm;
    double ar_rate, ar_secs, spec_rate, spec_secs;
    if (run_once(&env, gc, 0, 0, &warm) || median_rate(&env, gc, 0, &ar_rate, &ar_secs) ||
        median_rate(&env, gc, speculative, &spec_rate, &spec_secs))
      goto done;
    out->seconds = spec_secs;
    out->speedup = ar_rate > 0 ? spec_rate / ar_rate : 0;
  }
  /* Every speculative run started from the same table with the same draws,
   * so the table is the one the printed run left. */
  if (env.recycler && o->recycle_state &&
      deco_recycler_save(env.recycler, o->recycle_state) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--recycle-state: %s", deco_last_error(deco_model_ctx(model)));
    goto done;
  }
  rc = 0;
done:
  deco_recycler_destroy(env.recycler);
  return rc;
}
