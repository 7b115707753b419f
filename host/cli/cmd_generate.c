/* host/cli/cmd_generate.c — the `deco generate` command: resolve the
 * backend, check the model file, the tokenizer and the values that depend
 * on the model (in docs/CLI.md's order), then decode (cli/runs.c) — plain
 * or speculative — printing ids or run.c's text and the stats line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/default_model.h"
#include "cli/runs.h"

/* Prints ids or text as they are produced. The first failed write is
 * remembered (errno) and nothing more is written: EPIPE means the reader
 * went away, anything else is an error the run reports (docs/CLI.md). */
typedef struct printer {
  const deco_cli_options_t *o;
  const deco_tokenizer_t *tok;
  int32_t prev;
  int count;
  int write_errno; /* 0 while every write succeeded */
} printer_t;

static void put(printer_t *p, const char *buf, size_t len, int flush) {
  if (p->write_errno) return;
  errno = 0;
  if ((len && fwrite(buf, 1, len, stdout) != len) || (flush && fflush(stdout) != 0))
    p->write_errno = errno ? errno : EIO;
}

static void print_id(void *user, int32_t id) {
  printer_t *p = user;
  if (p->o->print_ids) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, p->count ? " %d" : "%d", id);
    put(p, buf, (size_t)n, 0);
  } else if (p->count) {
    size_t len;
    const char *piece = deco_tokenizer_decode(p->tok, p->prev, id, &len);
    put(p, piece, len, 1);
  }
  p->prev = id;
  p->count++;
}

/* The final newline, flushed: a write error that only shows there (a full
 * disk, a closed descriptor) is still caught. main() closes stdout. */
static void finish_output(printer_t *p) { put(p, "\n", 1, 1); }

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* A value of the stats line: spaces become '_', and every byte outside
 * printable ASCII '?', so a file name cannot break or forge the line. */
static void stats_value(char *s) {
  for (; *s; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == ' ') *s = '_';
    else if (c < 0x21 || c > 0x7e) *s = '?';
  }
}

/* --recycle-state is saved at the end (a temporary file beside it, then a
 * rename): refuse a location that cannot take it before generating. */
static int check_state_path(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    deco_cli_error("--recycle-state: %s is not a regular file", path);
    return -1;
  }
  char *copy = strdup(path);
  if (!copy) {
    deco_cli_error("out of memory");
    return -1;
  }
  const char *dir = dirname(copy);
  int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0;
  if (!ok) deco_cli_error("--recycle-state: cannot create a file in %s: %s", dir, strerror(errno ? errno : ENOTDIR));
  free(copy);
  return ok ? 0 : -1;
}

static void print_stats(const deco_cli_options_t *o, const deco_cli_run_result_t *gen, deco_backend_t backend,
                        deco_dtype_t dtype, const char *model_label) {
  double tok_per_s = gen->seconds > 0.0 ? gen->tokens / gen->seconds : 0.0;
  fprintf(stderr, "stats: tokens=%d seconds=%.3f tok_per_s=%.2f backend=%s dtype=%s model=%s", gen->tokens,
          gen->seconds, tok_per_s, deco_backend_name(backend), deco_dtype_name(dtype), model_label);
  if (o->spec != DECO_CLI_SPEC_NONE)
    fprintf(stderr, " forwards=%d mean_accepted=%.2f", gen->forwards,
            gen->forwards ? (double)gen->tokens / gen->forwards : 0.0);
  if (o->compare_ar) fprintf(stderr, " speedup=%.2f", gen->speedup);
  fputc('\n', stderr);
}

/* The model the options name: the built-in stories260K, a checkpoint (a
 * llama2.c file or a GGUF file), or a synthetic shape — its header read
 * (checked against the file), its label for the stats line. Returns an
 * exit status (0 to go on). */
typedef struct model_source {
  int builtin;
  const void *builtin_data;
  size_t builtin_bytes;
  deco_model_hparams_t hp;
  char label[512];
} model_source_t;

static int read_model_header(const deco_cli_options_t *o, model_source_t *ms) {
  ms->builtin = !o->model_path && !o->synthetic;
  if (ms->builtin) {
    ms->builtin_data = deco_default_model(&ms->builtin_bytes);
    if (deco_llama2c_read_hparams_buffer(ms->builtin_data, ms->builtin_bytes, DECO_DEFAULT_MODEL_NAME, &ms->hp) !=
        DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    snprintf(ms->label, sizeof ms->label, "%s", DECO_DEFAULT_MODEL_NAME);
  } else if (o->model_path) {
    /* A llama2.c checkpoint or a GGUF file, told apart by the magic. */
    if (deco_model_read_hparams(o->model_path, &ms->hp) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    snprintf(ms->label, sizeof ms->label, "%s", base_name(o->model_path));
  } else {
    if (deco_synthetic_hparams(o->synthetic, &ms->hp) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--synthetic: %s", deco_last_error(NULL));
      return DECO_EXIT_USAGE;
    }
    snprintf(ms->label, sizeof ms->label, "synthetic:%s", o->synthetic);
  }
  stats_value(ms->label);
  return DECO_EXIT_OK;
}

/* The tokenizer file, when text goes in or out and one is given or built
 * in; 0 or an exit status. */
static int load_tokenizer(const deco_cli_options_t *o, const model_source_t *ms, int need, deco_tokenizer_t **tok) {
  *tok = NULL;
  if (!need) return DECO_EXIT_OK;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (o->tokenizer_path) {
    st = deco_tokenizer_load(o->tokenizer_path, ms->hp.vocab_size, tok);
  } else if (ms->builtin) {
    size_t n;
    const void *data = deco_default_tokenizer(&n);
    st = deco_tokenizer_load_buffer(data, n, DECO_DEFAULT_TOKENIZER_NAME, ms->hp.vocab_size, tok);
  }
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return DECO_EXIT_OK;
}

/* Values that conflict with the model: ids >= vocab, steps > seq_len, text
 * with no tokenizer and no built-in vocabulary (then the byte vocabulary
 * of the synthetic models); 0 or -1. */
static int check_against_model(const deco_cli_options_t *o, const model_source_t *ms, int need_tokenizer,
                               deco_tokenizer_t **tok) {
  for (int i = 0; o->prompt_ids && i < o->n_prompt_ids; ++i)
    if (o->prompt_ids[i] >= ms->hp.vocab_size) {
      deco_cli_error("--prompt-ids: id %d >= vocab %d", o->prompt_ids[i], ms->hp.vocab_size);
      return -1;
    }
  if (o->steps > ms->hp.seq_len) {
    deco_cli_error("--steps: %d > seq_len %d of %s", o->steps, ms->hp.seq_len, ms->label);
    return -1;
  }
  if (need_tokenizer && !*tok) {
    if (!ms->hp.builtin_vocab) {
      deco_cli_error("%s needs --tokenizer: %s has no built-in vocabulary (or use --print-ids with --prompt-ids)",
                     o->prompt ? "--prompt" : "printing text", ms->label);
      return -1;
    }
    if (deco_tokenizer_create_bytes(tok) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return -1;
    }
  }
  return 0;
}

/* The prompt's ids: --prompt-ids as given, --prompt encoded, or the
 * model's BOS alone (malloc'd); 0 or -1 (also for a model without BOS and
 * no prompt). */
static int build_prompt(const deco_cli_options_t *o, const model_source_t *ms, const deco_tokenizer_t *tok,
                        int32_t **prompt, int *n_prompt) {
  int cap = o->prompt_ids ? o->n_prompt_ids : o->prompt ? (int)strlen(o->prompt) + 3 : 1;
  *prompt = malloc(sizeof(int32_t) * (size_t)cap);
  if (!*prompt) {
    deco_cli_error("out of memory");
    return -1;
  }
  if (o->prompt_ids) {
    *n_prompt = o->n_prompt_ids;
    memcpy(*prompt, o->prompt_ids, sizeof(int32_t) * (size_t)*n_prompt);
  } else if (o->prompt) {
    if (deco_tokenizer_encode(tok, o->prompt, 1, 0, *prompt, cap, n_prompt) != DECO_STATUS_SUCCESS) {
      deco_cli_error("--prompt: %s", deco_last_error(NULL));
      return -1;
    }
  } else {
    /* No prompt: the model's BOS alone. A GGUF file may name none (then
     * there is nothing to start from). */
    if (ms->hp.bos_id < 0) {
      deco_cli_error("no prompt: %s names no BOS id (tokenizer.ggml.bos_token_id) to start from; give --prompt-ids",
                     ms->label);
      return -1;
    }
    *n_prompt = 1;
    (*prompt)[0] = ms->hp.bos_id;
  }
  return 0;
}

/* The context and the full model load; 0 or -1. */
static int load_model(const deco_cli_options_t *o, const model_source_t *ms, deco_backend_t backend,
                      deco_dtype_t dtype, deco_ctx_t **ctx, deco_model_t **model) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = backend;
  if (deco_ctx_create(&cc, ctx) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--backend %s: %s", deco_backend_name(backend), deco_last_error(NULL));
    return -1;
  }
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = dtype;
  deco_status_t st =
      ms->builtin ? deco_model_load_llama2c_buffer(*ctx, ms->builtin_data, ms->builtin_bytes, DECO_DEFAULT_MODEL_NAME,
                                                   &mc, model)
      : o->model_path ? deco_model_load(*ctx, o->model_path, &mc, model)
                      : deco_model_create_synthetic(*ctx, o->synthetic, DECO_SYNTHETIC_SEED, &mc, model);
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(*ctx));
    return -1;
  }
  return 0;
}

/* Decodes, prints, and ends the output; 0 or -1. */
static int generate_and_print(const deco_cli_options_t *o, deco_model_t *model, const deco_tokenizer_t *tok,
                              const int32_t *prompt, int n_prompt, deco_backend_t backend, deco_dtype_t dtype,
                              const char *label) {
  printer_t pr = {.o = o, .tok = tok, .prev = 0, .count = 0, .write_errno = 0};
  deco_cli_run_result_t gen = {0};
  deco_cli_run_input_t in = {.o = o, .prompt = prompt, .n_prompt = n_prompt, .emit = print_id, .user = &pr};
  if (deco_cli_run(model, &in, &gen) != 0) return -1;
  finish_output(&pr);
  if (pr.write_errno && pr.write_errno != EPIPE) {
    deco_cli_error("stdout: %s", strerror(pr.write_errno));
    return -1;
  }
  print_stats(o, &gen, backend, dtype, label);
  return 0;
}

int deco_cli_generate(const deco_cli_options_t *o) {
  deco_backend_t backend = o->backend_set ? o->backend
                                          : (deco_cuda_device_count() > 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU);
  deco_dtype_t dtype = o->dtype_set ? o->dtype : (backend == DECO_BACKEND_CUDA ? DECO_DTYPE_BF16 : DECO_DTYPE_F32);
  if (backend == DECO_BACKEND_CPU && dtype != DECO_DTYPE_F32) {
    deco_cli_error("--dtype: %s is not supported by the cpu backend (use f32)", deco_dtype_name(dtype));
    return DECO_EXIT_USAGE;
  }
  /* 1. The model file (or the synthetic name, or the built-in model). */
  model_source_t ms;
  int rc = read_model_header(o, &ms);
  if (rc != DECO_EXIT_OK) return rc;
  /* --draft-layers against the model's layers (sorted, so the last). */
  if (o->n_draft_layers && o->draft_layers[o->n_draft_layers - 1] >= ms.hp.n_layers) {
    deco_cli_error("--draft-layers: layer %d outside the %d layers of %s", o->draft_layers[o->n_draft_layers - 1],
                   ms.hp.n_layers, ms.label);
    return DECO_EXIT_USAGE;
  }
  /* 2. The tokenizer file, when text goes in or out. */
  const int need_tokenizer = o->prompt != NULL || !o->print_ids;
  deco_tokenizer_t *tok = NULL;
  rc = load_tokenizer(o, &ms, need_tokenizer, &tok);
  if (rc != DECO_EXIT_OK) return rc;
  /* 3. Where the recycling state will be saved; then values that conflict
   * with the model; 4. load; 5. generate. */
  rc = DECO_EXIT_BAD_INPUT;
  int32_t *prompt = NULL;
  int n_prompt = 0;
  deco_ctx_t *ctx = NULL;
  deco_model_t *model = NULL;
  if ((!o->recycle_state || check_state_path(o->recycle_state) == 0) &&
      check_against_model(o, &ms, need_tokenizer, &tok) == 0 && build_prompt(o, &ms, tok, &prompt, &n_prompt) == 0 &&
      load_model(o, &ms, backend, dtype, &ctx, &model) == 0 &&
      generate_and_print(o, model, tok, prompt, n_prompt, backend, dtype, ms.label) == 0)
    rc = DECO_EXIT_OK;
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  deco_tokenizer_destroy(tok);
  free(prompt);
  return rc;
}
