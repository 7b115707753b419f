/* host/cli/runs.c — the runs behind `deco generate`: the drafter the
 * options ask for (prompt lookup, Token Recycling's table and template, or
 * a draft model / layer subset),
 * the printed run through deco_generate, and with --compare-ar the timing
 * runs (plain and speculative, each warmed up, median of 3). Every
 * speculative run starts from the same table: cold, or --recycle-state.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/runs.h"

#include "cli/cli_util.h"

double deco_cli_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct cli_env {
  deco_model_t *model;
  deco_generate_config_t cfg;  /* the speculative (or plain) run */
  deco_drafter_t *drafter;     /* NULL with --spec none */
  deco_model_t *draft_model;   /* --draft-model */
  deco_recycler_t *recycler;   /* --spec recycle */
  deco_tree_template_t tmpl;
  const deco_cli_options_t *o;
} cli_env_t;

static int lookup_setup(cli_env_t *env) {
  deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
  lc.draft_len = env->o->draft_len;
  if (env->o->tree_nodes) lc.max_nodes = env->o->tree_nodes;
  if (deco_drafter_create_lookup(&lc, &env->drafter) != DECO_STATUS_SUCCESS) {
    deco_cli_error("prompt lookup: %s", deco_last_error(NULL));
    return 1;
  }
  return 0;
}

static int recycle_setup(cli_env_t *env) {
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
  if (deco_recycler_create(ctx, deco_model_get_hparams(env->model)->vocab_size, o->recycle_k, &env->recycler) !=
          DECO_STATUS_SUCCESS ||
      deco_drafter_create_recycle(env->recycler, &env->tmpl, &env->drafter) != DECO_STATUS_SUCCESS) {
    deco_cli_error("token recycling: %s", deco_last_error(ctx));
    return 1;
  }
  return 0;
}

/* FNV-1a 64 of a GGUF file's vocabulary (every token's text, each
 * followed by a 0 byte) in *h; 0 for a file that is not GGUF, for the
 * built-in and synthetic models (their vocabulary comes with the target)
 * and for a GGUF file whose tokenizer does not load here (e.g. a byte-level
 * BPE in a build without PCRE2), whose reason goes to why. Returns whether
 * path is a GGUF file, or -1 after the message when it cannot be read. */
static int vocab_hash(const char *path, uint64_t *h, char *why, size_t why_size) {
  *h = 0;
  if (!path) return 0;
  const int gguf = deco_cli_is_gguf(path);
  if (gguf <= 0) return gguf;
  deco_tokenizer_t *tok = NULL;
  if (deco_tokenizer_load_gguf(path, &tok) != DECO_STATUS_SUCCESS) {
    snprintf(why, why_size, "%s", deco_last_error(NULL));
    return 1;
  }
  *h = 1469598103934665603ull;
  for (int32_t id = 0; id < deco_tokenizer_vocab_size(tok); ++id) {
    size_t len = 0;
    const char *t = deco_tokenizer_token_text(tok, id, &len);
    for (size_t i = 0; t && i <= len; ++i) {
      *h ^= i < len ? (unsigned char)t[i] : 0u;
      *h *= 1099511628211ull;
    }
  }
  deco_tokenizer_destroy(tok);
  return 1;
}

/* The tokenizer hashes of the target and the draft model; 0, or 1 after
 * the message when they cannot be compared (one vocabulary known, the
 * other not: a GGUF file against another kind, or a GGUF tokenizer that
 * did not load, named with its reason). Neither known: the vocabulary
 * sizes, checked before, are all there is to compare. */
static int tokenizer_hashes(const deco_cli_options_t *o, deco_model_draft_config_t *dc) {
  char why[2][512] = {"", ""};
  const int tg = vocab_hash(o->model_path, &dc->target_tokenizer_hash, why[0], sizeof why[0]);
  const int dg = tg < 0 ? -1 : vocab_hash(o->draft_model, &dc->draft_tokenizer_hash, why[1], sizeof why[1]);
  if (tg < 0 || dg < 0) return 1;
  if ((dc->target_tokenizer_hash == 0) == (dc->draft_tokenizer_hash == 0)) return 0;
  if (tg != dg)
    deco_cli_error("--draft-model: %s and the target do not share a tokenizer (one is a GGUF file, the other not)",
                   o->draft_model);
  else
    deco_cli_error("--draft-model: %s and the target cannot be compared: %s", o->draft_model,
                   why[0][0] ? why[0] : why[1]);
  return 1;
}

/* --spec draft: the draft model (--draft-model, loaded in the target's
 * context and dtype) or the target's layers (--draft-layers). */
static int draft_setup(cli_env_t *env) {
  const deco_cli_options_t *o = env->o;
  deco_ctx_t *ctx = deco_model_ctx(env->model);
  deco_model_draft_config_t dc = DECO_MODEL_DRAFT_CONFIG_INIT;
  dc.draft_len = o->draft_len_set ? o->draft_len : 4;
  /* Levels below position --steps would be drafted and dropped: a tree
   * re-forwards every node above its frontier at each level. */
  if (dc.draft_len > o->steps) dc.draft_len = o->steps;
  dc.width = o->draft_width ? o->draft_width : 1;
  dc.max_nodes = o->tree_nodes;
  dc.temperature = o->temperature;
  dc.seed = o->seed;
  dc.max_len = o->steps;
  dc.layer_parallel = o->layer_parallel;
  dc.no_calibrate = o->no_calibrate;
  if (o->draft_model) {
    deco_model_hparams_t hp;
    if (deco_model_read_hparams(o->draft_model, &hp) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--draft-model: %s", deco_last_error(NULL));
      return 1;
    }
    const int vocab = deco_model_get_hparams(env->model)->vocab_size;
    if (hp.vocab_size != vocab) {
      deco_cli_error("--draft-model: %s has a vocabulary of %d ids, the target %d", o->draft_model, hp.vocab_size,
                     vocab);
      return 1;
    }
    if (tokenizer_hashes(o, &dc)) return 1;
    deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
    mc.dtype = deco_model_dtype(env->model);
    if (deco_model_load(ctx, o->draft_model, &mc, &env->draft_model) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--draft-model: %s", deco_last_error(ctx));
      return 1;
    }
  } else {
    dc.layers = o->draft_layers;
    dc.n_layers = o->n_draft_layers;
  }
  if (deco_drafter_create_model(env->model, env->draft_model, &dc, &env->drafter) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--spec draft: %s", deco_last_error(ctx));
    return 1;
  }
  return 0;
}

/* The table every speculative run starts from. */
static int recycle_reset(cli_env_t *env) {
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
static int run_once(cli_env_t *env, const deco_cli_run_input_t *in, int speculative, int print,
                    deco_cli_run_result_t *out) {
  deco_generate_config_t c = env->cfg;
  c.drafter = speculative ? env->drafter : NULL;
  /* On the GPU, a drafter that drafts on the device (Token Recycling; a
   * model's chain, greedy or sampled, or top-w tree, without
   * --layer-parallel) runs its step as a CUDA graph, and so does the plain
   * decoding it is compared with (--compare-ar); prompt lookup, trees with
   * sampled siblings, layer-parallel drafts and drafts past the device's
   * node limit draft on the host (deco_drafter_device_resident). */
  const int on_gpu = deco_ctx_backend(deco_model_ctx(env->model)) == DECO_BACKEND_CUDA;
  c.device_resident = c.graph =
      on_gpu && (c.drafter ? deco_drafter_device_resident(c.drafter) : env->o->compare_ar);
  c.emit = print ? in->emit : NULL;
  c.user = in->user;
  if (c.drafter && env->recycler && recycle_reset(env)) return 1;
  deco_generate_stats_t stats = DECO_GENERATE_STATS_INIT;
  double t0 = deco_cli_now_seconds();
  deco_status_t st = deco_generate(env->model, in->prompt, in->n_prompt, &c, &stats);
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(deco_model_ctx(env->model));
  out->seconds = deco_cli_now_seconds() - t0;
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
static int median_rate(cli_env_t *env, const deco_cli_run_input_t *in, int speculative, double *rate,
                       double *seconds) {
  double secs[3];
  deco_cli_run_result_t g;
  for (int i = 0; i < 3; ++i) {
    if (run_once(env, in, speculative, 0, &g)) return 1;
    secs[i] = g.seconds - g.capture_seconds; /* --compare-ar: graph capture excluded */
  }
  qsort(secs, 3, sizeof secs[0], cmp_double);
  *seconds = secs[1];
  *rate = secs[1] > 0 ? g.tokens / secs[1] : 0;
  return 0;
}

/* --compare-ar: plain decoding warmed up and timed, then the speculative
 * runs timed; the printed run warmed those up. */
static int compare_ar(cli_env_t *env, const deco_cli_run_input_t *in, deco_cli_run_result_t *out) {
  deco_cli_run_result_t warm;
  double ar_rate, ar_secs, spec_rate, spec_secs;
  if (run_once(env, in, 0, 0, &warm) || median_rate(env, in, 0, &ar_rate, &ar_secs) ||
      median_rate(env, in, env->drafter != NULL, &spec_rate, &spec_secs))
    return 1;
  out->seconds = spec_secs;
  out->speedup = ar_rate > 0 ? spec_rate / ar_rate : 0;
  return 0;
}

int deco_cli_run(deco_model_t *model, const deco_cli_run_input_t *in, deco_cli_run_result_t *out) {
  const deco_cli_options_t *o = in->o;
  cli_env_t env = {.model = model, .o = o, .drafter = NULL, .recycler = NULL};
  env.cfg = (deco_generate_config_t)DECO_GENERATE_CONFIG_INIT;
  env.cfg.steps = o->steps;
  env.cfg.temperature = o->temperature;
  env.cfg.top_p = o->top_p;
  env.cfg.seed = o->seed;
  env.cfg.ignore_eos = o->ignore_eos;
  env.cfg.stop_ids = in->stop_ids;
  env.cfg.n_stop_ids = in->n_stop_ids;
  int rc = 1;
  memset(out, 0, sizeof *out);
  /* --threads: the CPU ops' thread count (results do not depend on it). */
  if (o->threads > 0 && deco_ctx_set_threads(deco_model_ctx(model), o->threads) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--threads: %s", deco_last_error(deco_model_ctx(model)));
    goto done;
  }
  if (o->spec == DECO_CLI_SPEC_LOOKUP && lookup_setup(&env)) goto done;
  if (o->spec == DECO_CLI_SPEC_RECYCLE && recycle_setup(&env)) goto done;
  if (o->spec == DECO_CLI_SPEC_DRAFT && draft_setup(&env)) goto done;
  /* The printed run (it also warms up the speculative path). */
  if (run_once(&env, in, env.drafter != NULL, 1, out)) goto done;
  if (o->compare_ar && compare_ar(&env, in, out)) goto done;
  /* Every speculative run started from the same table with the same draws,
   * so the table is the one the printed run left. */
  if (env.recycler && o->recycle_state &&
      deco_recycler_save(env.recycler, o->recycle_state) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--recycle-state: %s", deco_last_error(deco_model_ctx(model)));
    goto done;
  }
  rc = 0;
done:
  deco_drafter_destroy(env.drafter);
  deco_recycler_destroy(env.recycler);
  deco_model_destroy(env.draft_model);
  return rc;
}
