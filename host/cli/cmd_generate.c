/* host/cli/cmd_generate.c — the `deco generate` command: resolve the
 * backend, check the model file, the tokenizer and the values that depend
 * on the model (in docs/CLI.md's order), then decode (cli/runs.c) — plain
 * or speculative — printing ids or run.c's text and the stats line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/default_model.h"
#include "cli/runs.h"

/* Prints ids or text as they are produced. The first failed write is
 * remembered (errno) and nothing more is written: EPIPE means the reader
 * went away, anything else is an error the run reports (docs/CLI.md). */
typedef struct printer {
  const deco_cli_options_t *o;
  const deco_tokenizer_t *tok;
  deco_text_decoder_t *dec; /* GGUF text: the streaming decoder, else NULL (run.c's pieces) */
  int first_printed;        /* text: the first id whose text is printed (run.c: 1; GGUF and chat: the prompt's end) */
  int32_t prev;
  int count;
  int wrote;       /* some bytes went to stdout */
  int write_errno; /* 0 while every write succeeded */
} printer_t;

static void put(printer_t *p, const char *buf, size_t len, int flush) {
  if (p->write_errno) return;
  errno = 0;
  if ((len && fwrite(buf, 1, len, stdout) != len) || (flush && fflush(stdout) != 0))
    p->write_errno = errno ? errno : EIO;
  p->wrote |= len > 0;
}

static void print_id(void *user, int32_t id) {
  printer_t *p = user;
  if (p->o->print_ids) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, p->count ? " %d" : "%d", id);
    put(p, buf, (size_t)n, 0);
  } else if (p->count >= p->first_printed && p->dec) {
    const char *text;
    size_t len;
    if (deco_text_decoder_push(p->dec, id, &text, &len) == DECO_STATUS_SUCCESS) put(p, text, len, 1);
  } else if (p->count >= p->first_printed) {
    size_t len;
    const char *piece = deco_tokenizer_decode(p->tok, p->prev, id, &len);
    put(p, piece, len, 1);
  }
  p->prev = id;
  p->count++;
}

/* The final newline, flushed: a write error that only shows there (a full
 * disk, a closed descriptor) is still caught. main() closes stdout. */
static void finish_output(printer_t *p) {
  const char *text;
  size_t len;
  if (p->dec && deco_text_decoder_flush(p->dec, &text, &len) == DECO_STATUS_SUCCESS) put(p, text, len, 0);
  put(p, "\n", 1, 1);
}

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
                        deco_dtype_t dtype, const char *model_label, int tp) {
  double tok_per_s = gen->seconds > 0.0 ? gen->tokens / gen->seconds : 0.0;
  fprintf(stderr, "stats: tokens=%d seconds=%.3f tok_per_s=%.2f backend=%s dtype=%s model=%s", gen->tokens,
          gen->seconds, tok_per_s, deco_backend_name(backend), deco_dtype_name(dtype), model_label);
  if (o->spec != DECO_CLI_SPEC_NONE)
    fprintf(stderr, " forwards=%d mean_accepted=%.2f", gen->forwards,
            gen->forwards ? (double)gen->tokens / gen->forwards : 0.0);
  if (o->compare_ar) fprintf(stderr, " speedup=%.2f", gen->speedup);
  if (tp > 0) fprintf(stderr, " tp=%d", tp);
  if (o->superpose) fprintf(stderr, " forwards=%d drafts=%d", gen->forwards, gen->drafts);
  fputc('\n', stderr);
}

/* The model the options name: the built-in stories260K, a checkpoint (a
 * llama2.c file or a GGUF file), or a synthetic shape — its header read
 * (checked against the file), its label for the stats line. Returns an
 * exit status (0 to go on). */
typedef struct model_source {
  int builtin;
  int gguf; /* --model is a GGUF file (it carries its tokenizer) */
  const void *builtin_data;
  size_t builtin_bytes;
  deco_model_hparams_t hp;
  const char *path; /* --model as given, else NULL */
  char label[512];  /* the stats line's model= (printable, no blanks) */
} model_source_t;

/* The model as messages name it: the file as given, else the label. */
static const char *model_name(const model_source_t *ms) {
  return ms->path ? ms->path : ms->label;
}

static int read_model_header(const deco_cli_options_t *o, model_source_t *ms) {
  memset(ms, 0, sizeof *ms);
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
    ms->path = o->model_path;
    snprintf(ms->label, sizeof ms->label, "%s", base_name(o->model_path));
    ms->gguf = deco_cli_is_gguf(o->model_path) == 1;
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
  if (ms->gguf && o->tokenizer_path) {
    deco_cli_error("--tokenizer: %s is a GGUF file, which carries its own vocabulary", o->model_path);
    return DECO_EXIT_BAD_INPUT;
  }
  if (!need) return DECO_EXIT_OK;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (ms->gguf) {
    st = deco_tokenizer_load_gguf(o->model_path, tok);
    if (st == DECO_STATUS_SUCCESS && deco_tokenizer_vocab_size(*tok) != ms->hp.vocab_size) {
      deco_cli_error("%s: the vocabulary holds %d tokens, the model's output %d", o->model_path,
                     deco_tokenizer_vocab_size(*tok), ms->hp.vocab_size);
      return DECO_EXIT_BAD_INPUT;
    }
  } else if (o->tokenizer_path) {
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

/* Values that conflict with the model: ids >= vocab, steps > seq_len, a
 * --draft-layers layer beyond its layers, text with no tokenizer and no
 * built-in vocabulary (then the byte vocabulary of the synthetic models);
 * 0 or -1. */
static int check_against_model(const deco_cli_options_t *o, const model_source_t *ms, int need_tokenizer,
                               deco_tokenizer_t **tok) {
  for (int i = 0; o->prompt_ids && i < o->n_prompt_ids; ++i)
    if (o->prompt_ids[i] >= ms->hp.vocab_size) {
      deco_cli_error("--prompt-ids: id %d >= vocab %d", o->prompt_ids[i], ms->hp.vocab_size);
      return -1;
    }
  if (o->superpose && o->superpose_m > ms->hp.vocab_size) {
    deco_cli_error("--superpose-m: %d > vocab %d", o->superpose_m, ms->hp.vocab_size);
    return -1;
  }
  if (o->steps > ms->hp.seq_len) {
    deco_cli_error("--steps: %d > seq_len %d of %s", o->steps, ms->hp.seq_len, model_name(ms));
    return -1;
  }
  /* --draft-layers against the model's layers (sorted, so the last). */
  if (o->n_draft_layers && o->draft_layers[o->n_draft_layers - 1] >= ms->hp.n_layers) {
    deco_cli_error("--draft-layers: layer %d outside the %d layers of %s", o->draft_layers[o->n_draft_layers - 1],
                   ms->hp.n_layers, model_name(ms));
    return -1;
  }
  if (need_tokenizer && !*tok) {
    if (!ms->hp.builtin_vocab) {
      deco_cli_error("%s needs --tokenizer: %s has no built-in vocabulary (or use %s)",
                     o->prompt ? "--prompt" : "printing text", model_name(ms),
                     o->prompt ? "--prompt-ids with --print-ids" : "--print-ids");
      return -1;
    }
    if (deco_tokenizer_create_bytes(tok) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return -1;
    }
  }
  return 0;
}

/* The library's last error as the CLI's, prefixed with the option that
 * failed; -1. */
static int option_failed(const char *option) {
  deco_cli_error("%s: %s", option, deco_last_error(NULL));
  return -1;
}

/* The chat template's rendering of --system and --prompt into *prompt
 * (cap ids, grown to fit when the template needs more); *end_token gets
 * the template's end token. 0 or -1. */
static int render_chat_prompt(const deco_cli_options_t *o, const deco_tokenizer_t *tok, int cap, int32_t **prompt,
                              int *n_prompt, int32_t *end_token) {
  /* AUTO stays AUTO for the rendering (the file's template keeps its
   * default system message); resolving it first gives the error that
   * quotes an unrecognised template. */
  const deco_chat_template_t tmpl = o->chat_template;
  deco_chat_template_t resolved;
  if (deco_chat_template_resolve(tok, tmpl, &resolved) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return -1;
  }
  const char *user = o->prompt ? o->prompt : "";
  deco_status_t st = deco_chat_render(tok, tmpl, o->system, user, 1, *prompt, cap, n_prompt);
  if (st == DECO_STATUS_CAPACITY) {
    int32_t *more = realloc(*prompt, sizeof(int32_t) * (size_t)*n_prompt);
    if (!more) {
      deco_cli_error("out of memory");
      return -1;
    }
    *prompt = more;
    st = deco_chat_render(tok, tmpl, o->system, user, 1, *prompt, *n_prompt, n_prompt);
  }
  if (st != DECO_STATUS_SUCCESS) return option_failed("--chat");
  if (*n_prompt == 0) {
    deco_cli_error("--chat: the template gave no ids, and %s adds no BOS: nothing to start from", o->model_path);
    return -1;
  }
  *end_token = deco_chat_end_token(tok, tmpl);
  return 0;
}

/* --prompt encoded into prompt (cap ids): a GGUF model's by the llama.cpp
 * rule (special-token text kept as text), a llama2.c model's with BOS.
 * 0 or -1. */
static int encode_text_prompt(const deco_cli_options_t *o, const model_source_t *ms, const deco_tokenizer_t *tok,
                              int32_t *prompt, int cap, int *n_prompt) {
  const deco_status_t st =
      ms->gguf ? deco_tokenizer_tokenize(tok, o->prompt, strlen(o->prompt), DECO_TOKENIZE_ADD_SPECIAL, prompt, cap,
                                         n_prompt)
               : deco_tokenizer_encode(tok, o->prompt, 1, 0, prompt, cap, n_prompt);
  if (st != DECO_STATUS_SUCCESS) return option_failed("--prompt");
  if (ms->gguf && *n_prompt == 0) {
    deco_cli_error("--prompt: empty, and %s adds no BOS: nothing to start from", o->model_path);
    return -1;
  }
  return 0;
}

/* No prompt: the model's BOS alone. A GGUF file may name none (then
 * there is nothing to start from). 0 or -1. */
static int bos_prompt(const model_source_t *ms, int32_t *prompt, int *n_prompt) {
  if (ms->hp.bos_id < 0) {
    deco_cli_error("no prompt: %s names no BOS id (tokenizer.ggml.bos_token_id) to start from; give --prompt-ids",
                   model_name(ms));
    return -1;
  }
  *n_prompt = 1;
  prompt[0] = ms->hp.bos_id;
  return 0;
}

/* How many ids build_prompt allocates for text_len bytes of prompt text:
 * --prompt-ids' count, room for a chat rendering or an encoding, or 1
 * (BOS). */
static int prompt_capacity(const deco_cli_options_t *o, size_t text_len) {
  if (o->prompt_ids) return o->n_prompt_ids;
  if (o->chat) return 3 * (int)text_len + 512;
  if (o->prompt) return 4 * (int)text_len + 8; /* deco_tokenizer_tokenize's bound */
  return 1;
}

/* The prompt's ids: --prompt-ids as given, --prompt encoded (a GGUF
 * model's by the llama.cpp rule, special-token text kept as text), the
 * chat template's rendering (with --chat; *end_token gets the template's
 * end token, -1 if none), or the model's BOS alone (malloc'd); 0 or -1
 * (also for a model without BOS and no prompt). */
static int build_prompt(const deco_cli_options_t *o, const model_source_t *ms, const deco_tokenizer_t *tok,
                        int32_t **prompt, int *n_prompt, int32_t *end_token) {
  *end_token = -1;
  const size_t text_len = (o->prompt ? strlen(o->prompt) : 0) + (o->system ? strlen(o->system) : 0);
  if (text_len > (size_t)(1 << 28)) {
    deco_cli_error("--prompt: %zu bytes is too long", text_len);
    return -1;
  }
  const int cap = prompt_capacity(o, text_len);
  *prompt = malloc(sizeof(int32_t) * (size_t)cap);
  if (!*prompt) {
    deco_cli_error("out of memory");
    return -1;
  }
  if (o->prompt_ids) {
    *n_prompt = o->n_prompt_ids;
    memcpy(*prompt, o->prompt_ids, sizeof(int32_t) * (size_t)*n_prompt);
    return 0;
  }
  if (o->chat) return render_chat_prompt(o, tok, cap, prompt, n_prompt, end_token);
  if (o->prompt) return encode_text_prompt(o, ms, tok, *prompt, cap, n_prompt);
  return bos_prompt(ms, *prompt, n_prompt);
}

/* The context and the full model load; 0 or -1. */
static int load_model(const deco_cli_options_t *o, const model_source_t *ms, deco_backend_t backend,
                      deco_dtype_t dtype, deco_comm_t *comm, int device, deco_ctx_t **ctx, deco_model_t **model) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = backend;
  cc.device = device; /* NCCL ranks: each its own GPU */
  /* Ranks that share the cores run one thread per op unless told. */
  if (comm && deco_comm_backend(comm) == DECO_COMM_THREADS && deco_comm_size(comm) > 1)
    cc.n_threads = o->threads ? o->threads : 1;
  if (deco_ctx_create(&cc, ctx) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--backend %s: %s", deco_backend_name(backend), deco_last_error(NULL));
    return -1;
  }
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = dtype;
  mc.comm = comm;
  mc.tp_rank = deco_comm_rank(comm);
  mc.tp_size = deco_comm_size(comm);
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

/* The stop ids when a chat adds its template's end token to the model's
 * (stops[] of DECO_MAX_STOP_IDS + 1); 0 when the model's apply as they are. */
static int stop_set(const model_source_t *ms, int32_t end_token, int32_t *stops) {
  if (end_token < 0) return 0;
  int n = ms->hp.n_stop_ids;
  memcpy(stops, ms->hp.stop_ids, sizeof(int32_t) * (size_t)n);
  for (int i = 0; i < n; ++i)
    if (stops[i] == end_token) return n;
  stops[n++] = end_token;
  return n;
}

/* The printer of one output (a run, or one draft of --superpose). */
static int printer_open(printer_t *pr, const deco_cli_options_t *o, const model_source_t *ms,
                        const deco_tokenizer_t *tok, const int32_t *prompt, int n_prompt) {
  /* Text: run.c's pieces after the first id; a GGUF model's (or a chat's)
   * text starts after the prompt (as --steps cuts it). */
  const int reply_only = ms->gguf || o->chat;
  *pr = (printer_t){.o = o, .tok = tok, .dec = NULL,
                    .first_printed = reply_only ? (n_prompt <= o->steps ? n_prompt : o->steps + 1) : 1, .prev = 0,
                    .count = 0, .wrote = 0, .write_errno = 0};
  /* GGUF text continues the prompt's text, if it has any: a SentencePiece
   * reply keeps its leading space, as a byte-level BPE reply does. */
  unsigned flags = DECO_DETOKENIZE_VALID_UTF8;
  for (int j = 0; !o->print_ids && ms->gguf && j < n_prompt && j < pr->first_printed; ++j)
    if (deco_tokenizer_token_type(tok, prompt[j]) != DECO_TOKEN_TYPE_CONTROL) flags |= DECO_DETOKENIZE_CONTINUATION;
  if (!o->print_ids && ms->gguf && deco_text_decoder_create(tok, flags, &pr->dec) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return -1;
  }
  return 0;
}

/* Decodes, prints, and ends the output; 0 or -1. */
static int generate_and_print(const deco_cli_options_t *o, const model_source_t *ms, deco_model_t *model,
                              const deco_tokenizer_t *tok, const int32_t *prompt, int n_prompt, int32_t end_token,
                              deco_backend_t backend, deco_dtype_t dtype, deco_comm_t *comm) {
  int32_t stops[DECO_MAX_STOP_IDS + 1];
  const int n_stops = stop_set(ms, end_token, stops);
  if (deco_comm_rank(comm) != 0) {
    /* Every rank reaches the same ids; rank 0 prints them. */
    deco_cli_run_result_t gen = {0};
    deco_cli_run_input_t in = {.o = o, .prompt = prompt, .n_prompt = n_prompt, .emit = NULL, .user = NULL,
                               .stop_ids = n_stops ? stops : NULL, .n_stop_ids = n_stops};
    return deco_cli_run(model, &in, &gen) != 0 ? -1 : 0;
  }
  printer_t pr;
  if (printer_open(&pr, o, ms, tok, prompt, n_prompt) != 0) return -1;
  deco_cli_run_result_t gen = {0};
  deco_cli_run_input_t in = {.o = o, .prompt = prompt, .n_prompt = n_prompt, .emit = print_id, .user = &pr,
                             .stop_ids = n_stops ? stops : NULL, .n_stop_ids = n_stops};
  int rc = deco_cli_run(model, &in, &gen);
  /* A run that fails midway still ends the line it began. */
  if (rc == 0) finish_output(&pr);
  else if (pr.wrote) put(&pr, "\n", 1, 1);
  deco_text_decoder_destroy(pr.dec);
  if (rc != 0) return -1;
  if (pr.write_errno && pr.write_errno != EPIPE) {
    deco_cli_error("stdout: %s", strerror(pr.write_errno));
    return -1;
  }
  print_stats(o, &gen, backend, dtype, ms->label, comm ? deco_comm_size(comm) : 0);
  return 0;
}

/* --superpose: the n-gram table, checked against the model's vocabulary
 * and, when both are known, the tokenizer file's hash (a GGUF model's: the
 * hash of its token list, deco_cli_tokenizer_hash) (NULL table with
 * --ngram-alpha 0); 0 or an exit status. */
static int load_ngram(const deco_cli_options_t *o, const model_source_t *ms, deco_ngram_table_t **table) {
  *table = NULL;
  if (!o->superpose || o->ngram_alpha == 0.0f) return DECO_EXIT_OK;
  uint64_t hash = 0;
  if (o->tokenizer_path) {
    /* A regular file only: a FIFO is refused at once, never waited on. */
    size_t len = 0;
    char *buf = deco_cli_read_file(o->tokenizer_path, &len);
    if (!buf) return DECO_EXIT_BAD_INPUT;
    hash = deco_ngram_hash_bytes(buf, len);
    free(buf);
  } else if (ms->builtin) {
    size_t n;
    const void *data = deco_default_tokenizer(&n);
    hash = deco_ngram_hash_bytes(data, n);
  } else if (ms->gguf) {
    /* The GGUF's own tokenizer: its token list's hash. */
    deco_tokenizer_t *tok = NULL;
    if (deco_tokenizer_load_gguf(o->model_path, &tok) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    hash = deco_cli_tokenizer_hash(tok);
    deco_tokenizer_destroy(tok);
  }
  if (deco_ngram_table_load(o->ngram_path, ms->hp.vocab_size, hash, table) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return DECO_EXIT_OK;
}

/* --superpose: K drafts from one run, printed best first (docs/CLI.md);
 * 0 or -1. */
static int superpose_and_print(const deco_cli_options_t *o, const model_source_t *ms, deco_model_t *model,
                               const deco_tokenizer_t *tok, const deco_ngram_table_t *table, const int32_t *prompt,
                               int n_prompt, int32_t end_token, deco_backend_t backend, deco_dtype_t dtype) {
  deco_ctx_t *ctx = deco_model_ctx(model);
  if (o->threads > 0 && deco_ctx_set_threads(ctx, o->threads) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--threads: %s", deco_last_error(ctx));
    return -1;
  }
  int32_t stops[DECO_MAX_STOP_IDS + 1];
  const int n_stops = stop_set(ms, end_token, stops);
  deco_superpose_config_t c = DECO_SUPERPOSE_CONFIG_INIT;
  c.k = o->superpose;
  c.m = o->superpose_m;
  c.temperature = o->superpose_temp;
  c.alpha = o->ngram_alpha;
  c.ngram = table;
  c.steps = o->steps;
  c.ignore_eos = o->ignore_eos;
  c.stop_ids = n_stops ? stops : NULL;
  c.n_stop_ids = n_stops;
  c.graph = backend == DECO_BACKEND_CUDA;
  deco_superpose_result_t res = DECO_SUPERPOSE_RESULT_INIT;
  const double t0 = deco_cli_now_seconds();
  deco_status_t st = deco_superpose_generate(model, 1, &prompt, &n_prompt, &c, &res);
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
  const double seconds = deco_cli_now_seconds() - t0;
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(ctx));
    deco_superpose_result_free(&res);
    return -1;
  }
  /* Each draft as plain decoding prints its ids: the prompt's committed
   * ids, then the draft's. */
  const int n_lead = res.n_forced[0] + 1;
  int write_errno = 0;
  for (int i = 0; i < res.n_drafts[0] && !write_errno; ++i) {
    const deco_superpose_draft_t *d = &res.drafts[i];
    printer_t pr;
    if (printer_open(&pr, o, ms, tok, prompt, n_prompt) != 0) {
      deco_superpose_result_free(&res);
      return -1;
    }
    if (!o->print_ids) {
      char head[64];
      int len = snprintf(head, sizeof head, "[%d] logp=%.3f\n", i, d->logp);
      put(&pr, head, (size_t)len, 0);
    }
    for (int j = 0; j < n_lead; ++j) print_id(&pr, prompt[j]);
    for (int j = 0; j < d->n_ids; ++j) print_id(&pr, d->ids[j]);
    finish_output(&pr);
    deco_text_decoder_destroy(pr.dec);
    write_errno = pr.write_errno;
  }
  deco_cli_run_result_t gen = {.tokens = res.stats.tokens, .forwards = res.stats.forwards, .seconds = seconds,
                               .drafts = res.n_drafts[0]};
  deco_superpose_result_free(&res);
  if (write_errno && write_errno != EPIPE) {
    deco_cli_error("stdout: %s", strerror(write_errno));
    return -1;
  }
  print_stats(o, &gen, backend, dtype, ms->label, 0);
  return 0;
}

/* A file's size and bytes into the hash (a missing file, or anything but a
 * regular file: a marker; the run refuses it later with its own message).
 * Opened without blocking, so a FIFO is never waited on. */
static uint64_t hash_file(uint64_t h, const char *path) {
  if (path == NULL) return deco_comm_hash(h, "-", 1);
  struct stat st;
  const int fd = deco_cli_open_regular(path, 0, &st);
  FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
  if (f == NULL) {
    if (fd >= 0) close(fd);
    return deco_comm_hash(h, "?", 1);
  }
  unsigned char buf[1 << 14];
  long long total = 0;
  for (size_t k; (k = fread(buf, 1, sizeof buf, f)) > 0; total += (long long)k) h = deco_comm_hash(h, buf, k);
  fclose(f);
  return deco_comm_hash(h, &total, sizeof total);
}

static uint64_t hash_size(uint64_t h, const char *path) {
  struct stat sb;
  const long long bytes = path == NULL ? -2 : stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
  return deco_comm_hash(h, &bytes, sizeof bytes);
}

static uint64_t hash_str(uint64_t h, const char *s) {
  return s ? deco_comm_hash(h, s, strlen(s) + 1) : deco_comm_hash(h, "", 0) ^ 0x9e3779b97f4a7c15ull;
}

/* Every rank must run the same model with the same options: a 64-bit hash
 * of the architecture, the file's size and every option that changes the
 * ids or the sequence of collectives (speculation and its drafts, the tree
 * template's contents, --compare-ar, the chat wrapping, superposition), all-gathered before
 * anything is loaded (deco_comm_check_same). */
static uint64_t config_hash(const deco_cli_options_t *o, const model_source_t *ms, deco_backend_t backend,
                            deco_dtype_t dtype, const int32_t *prompt, int n_prompt) {
  uint64_t h = DECO_COMM_HASH_INIT;
  const deco_model_hparams_t *hp = &ms->hp;
  const int arch[] = {hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim,
                      hp->vocab_size, hp->seq_len, hp->shared_classifier, (int)hp->rope_style};
  h = deco_comm_hash(h, arch, sizeof arch);
  const long long file_bytes = ms->builtin ? (long long)ms->builtin_bytes : -3;
  h = deco_comm_hash(h, &file_bytes, sizeof file_bytes);
  if (!ms->builtin) h = hash_size(h, o->model_path);
  const int opts[] = {o->steps, o->ignore_eos, (int)o->spec, o->draft_len, o->tree_nodes, o->recycle_k,
                      (int)backend, (int)dtype, n_prompt, o->compare_ar, o->n_draft_layers, o->draft_width,
                      o->layer_parallel, o->no_calibrate, o->chat, (int)o->chat_template, o->superpose,
                      o->superpose_m, o->draft_model != NULL, o->tree_template != NULL};
  h = deco_comm_hash(h, opts, sizeof opts);
  if (o->n_draft_layers) h = deco_comm_hash(h, o->draft_layers, sizeof(int) * (size_t)o->n_draft_layers);
  const float fl[] = {o->temperature, o->top_p, o->superpose_temp, o->ngram_alpha};
  h = deco_comm_hash(h, fl, sizeof fl);
  h = deco_comm_hash(h, &o->seed, sizeof o->seed);
  h = hash_file(h, o->tree_template);
  if (o->draft_model) h = hash_size(h, o->draft_model);
  if (o->ngram_path) h = hash_size(h, o->ngram_path);
  h = hash_str(h, o->system);
  return deco_comm_hash(h, prompt, sizeof(int32_t) * (size_t)n_prompt);
}

/* One rank's run (comm NULL: the ordinary single-process run). */
static int generate_rank(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype, deco_comm_t *comm,
                         int device) {
  /* 1. The model file (or the synthetic name, or the built-in model). */
  model_source_t ms;
  int rc = read_model_header(o, &ms);
  if (rc != DECO_EXIT_OK) return rc;
  /* The default --steps is cut to a shorter context; a given one is not. */
  deco_cli_options_t cut;
  if (!o->steps_set && o->steps > ms.hp.seq_len && ms.hp.seq_len > 0) {
    cut = *o;
    cut.steps = ms.hp.seq_len;
    o = &cut;
  }
  /* 2. The tokenizer file, when text goes in or out. */
  const int need_tokenizer = o->prompt != NULL || !o->print_ids || o->chat;
  deco_tokenizer_t *tok = NULL;
  rc = load_tokenizer(o, &ms, need_tokenizer, &tok);
  if (rc != DECO_EXIT_OK) return rc;
  /* 3. Where the recycling state will be saved; then values that conflict
   * with the model; (tensor parallelism: every rank agrees on all of it);
   * 4. load; 5. generate. */
  /* 3. --superpose's n-gram table. */
  deco_ngram_table_t *table = NULL;
  rc = load_ngram(o, &ms, &table);
  if (rc != DECO_EXIT_OK) {
    deco_tokenizer_destroy(tok);
    return rc;
  }
  rc = DECO_EXIT_BAD_INPUT;
  int32_t *prompt = NULL;
  int n_prompt = 0;
  int32_t end_token = -1;
  deco_ctx_t *ctx = NULL;
  deco_model_t *model = NULL;
  if ((!o->recycle_state || check_state_path(o->recycle_state) == 0) &&
      check_against_model(o, &ms, need_tokenizer, &tok) == 0 &&
      build_prompt(o, &ms, tok, &prompt, &n_prompt, &end_token) == 0) {
    deco_status_t st = comm ? deco_comm_check_same(comm, NULL, config_hash(o, &ms, backend, dtype, prompt, n_prompt),
                                                   "configuration hash (model, file sizes, options)")
                            : DECO_STATUS_SUCCESS;
    if (st != DECO_STATUS_SUCCESS) deco_cli_error("%s", deco_last_error(NULL));
    else if (load_model(o, &ms, backend, dtype, comm, device, &ctx, &model) == 0 &&
             (o->superpose
                  ? superpose_and_print(o, &ms, model, tok, table, prompt, n_prompt, end_token, backend, dtype)
                  : generate_and_print(o, &ms, model, tok, prompt, n_prompt, end_token, backend, dtype, comm)) == 0)
      rc = DECO_EXIT_OK;
  }
  deco_ngram_table_destroy(table);
  deco_model_destroy(model);
  deco_ctx_destroy(ctx);
  deco_tokenizer_destroy(tok);
  free(prompt);
  return rc;
}

/* ---- Tensor parallelism: --tp N, --comm threads|mpi ---- */

typedef struct rank_job {
  const deco_cli_options_t *o;
  deco_backend_t backend;
  deco_dtype_t dtype;
  deco_comm_t *comm;
  int device;
  int rc;
  char msg[1024];
} rank_job_t;

/* A failure caused by another rank's abort, not this rank's own. */
static int is_abort_echo(const char *msg) { return strstr(msg, "communicator was aborted") != NULL; }

/* One rank of the threads communicator: quiet; a failure aborts the others. */
static void *rank_thread(void *p) {
  rank_job_t *j = p;
  deco_cli_quiet = 1;
  deco_cli_last_error[0] = '\0';
  j->rc = generate_rank(j->o, j->backend, j->dtype, j->comm, j->device);
  snprintf(j->msg, sizeof j->msg, "%s", deco_cli_last_error);
  if (j->rc != DECO_EXIT_OK) deco_comm_abort(j->comm);
  return NULL;
}

/* One process's NCCL ranks need a GPU each: with fewer than `need` here
 * (none, or no driver, which CUDA reports as an "insufficient driver"), 1
 * after the message. (A launched rank leaves it to deco_comm_nccl_create,
 * which fails only after the collective bootstrap every rank enters.) */
static int nccl_gpus_missing(int need) {
  const int gpus = deco_cuda_device_count();
  if (gpus == 0) deco_cli_error("--comm nccl: no CUDA device found (or no driver)");
  else if (gpus < need) deco_cli_error("--comm nccl: --tp %d needs a GPU per rank, this host has %d", need, gpus);
  return gpus < need;
}

/* tp ranks as threads of this process: over the threads communicator on
 * the CPU, or over NCCL with GPU r for rank r (deco_comm_nccl_create_all:
 * the ranks' communicators abort together and are destroyed together,
 * deco_comm_destroy_all). The exit
 * status and the one message printed are those of the lowest rank that
 * failed on its own (the others only saw its abort). */
static int generate_threads(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype, int tp,
                            deco_comm_backend_t kind) {
  if (kind == DECO_COMM_NCCL && nccl_gpus_missing(tp)) return DECO_EXIT_BAD_INPUT;
  deco_comm_t *comms[DECO_COMM_MAX_RANKS];
  const deco_status_t cst = kind == DECO_COMM_NCCL ? deco_comm_nccl_create_all(tp, NULL, comms)
                                                   : deco_comm_threads_create(tp, comms);
  if (cst != DECO_STATUS_SUCCESS) {
    deco_cli_error("--tp %d --comm %s: %s", tp, deco_comm_backend_name(kind), deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  rank_job_t *jobs = calloc((size_t)tp, sizeof *jobs);
  pthread_t th[DECO_COMM_MAX_RANKS];
  int started = 0;
  for (int r = 0; jobs && r < tp; ++r) {
    jobs[r] = (rank_job_t){.o = o, .backend = backend, .dtype = dtype, .comm = comms[r],
                           .device = kind == DECO_COMM_NCCL ? r : 0, .rc = DECO_EXIT_BAD_INPUT};
    if (pthread_create(&th[r], NULL, rank_thread, &jobs[r]) != 0) {
      deco_comm_abort(comms[0]);
      break;
    }
    ++started;
  }
  for (int r = 0; r < started; ++r) pthread_join(th[r], NULL);
  int rc = DECO_EXIT_OK, chosen = -1;
  for (int r = 0; jobs && r < started && rc == DECO_EXIT_OK; ++r)
    if (jobs[r].rc != DECO_EXIT_OK && !is_abort_echo(jobs[r].msg)) chosen = r, rc = jobs[r].rc;
  for (int r = 0; jobs && r < started && rc == DECO_EXIT_OK; ++r)
    if (jobs[r].rc != DECO_EXIT_OK) chosen = r, rc = jobs[r].rc;
  if (!jobs || started < tp) {
    deco_cli_error("--tp %d: cannot start the rank threads", tp);
    rc = DECO_EXIT_BAD_INPUT;
  } else if (chosen == 0) {
    deco_cli_error("%s", jobs[0].msg);
  } else if (chosen > 0) {
    deco_cli_error("rank %d: %s", chosen, jobs[chosen].msg);
  }
  /* Together: NCCL's finalize is collective over the ranks' communicators,
   * which this one thread holds all of. */
  deco_comm_destroy_all(comms, tp);
  free(jobs);
  return rc;
}

/* One rank per process under a launcher (mpirun, srun): the communicator
 * from the environment (MPI on the CPU; NCCL on the GPU of the launcher's
 * local rank); rank 0 prints, the others print only failures of their own,
 * naming their rank. */
static int generate_launched(const deco_cli_options_t *o, deco_backend_t backend, deco_dtype_t dtype,
                             deco_comm_backend_t kind, int device) {
  deco_comm_t *comm = NULL;
  const deco_status_t cst = kind == DECO_COMM_NCCL ? deco_comm_nccl_create(NULL, &comm) : deco_comm_mpi_create(&comm);
  if (cst != DECO_STATUS_SUCCESS) {
    deco_cli_error("--comm %s: %s", deco_comm_backend_name(kind), deco_last_error(NULL));
    return kind == DECO_COMM_NCCL ? DECO_EXIT_BAD_INPUT : DECO_EXIT_USAGE;
  }
  const int rank = deco_comm_rank(comm), size = deco_comm_size(comm);
  if (o->tp && o->tp != size) {
    deco_cli_error("--tp %d: the launcher started %d ranks", o->tp, size);
    deco_comm_destroy(comm);
    return DECO_EXIT_USAGE;
  }
  deco_cli_quiet = rank != 0;
  int rc = generate_rank(o, backend, dtype, comm, device);
  deco_cli_quiet = 0;
  if (rc != DECO_EXIT_OK && rank != 0 && !is_abort_echo(deco_cli_last_error))
    fprintf(stderr, "deco: error: rank %d: %s\n", rank, deco_cli_last_error);
  /* A failing rank must not leave the others in a collective. */
  if (rc != DECO_EXIT_OK) deco_comm_abort(comm);
  deco_comm_destroy(comm);
  return rc;
}

/* The communicator a --tp/--comm run uses: --comm as given; under a
 * launcher NCCL's when the ranks run on CUDA (--backend cuda, or unset with
 * a GPU here) and this build has NCCL, MPI's otherwise; without a launcher
 * --tp N runs N threads. */
static deco_comm_backend_t choose_comm(const deco_cli_options_t *o, int launched) {
  const int on_cuda = deco_cli_backend_or_default(o->backend_set, o->backend) == DECO_BACKEND_CUDA;
  const deco_comm_backend_t launched_comm =
      on_cuda && deco_comm_backend_available(DECO_COMM_NCCL) ? DECO_COMM_NCCL : DECO_COMM_MPI;
  return o->comm_set ? o->comm : launched ? launched_comm : DECO_COMM_THREADS;
}

/* The usage errors of the communicator choice and of the options a
 * tensor-parallel run does not take; 0 or -1. */
static int check_comm_usage(const deco_cli_options_t *o, deco_comm_backend_t comm, int launched, int tp_run) {
  if (tp_run && comm == DECO_COMM_MPI && !launched) {
    deco_cli_error("--comm mpi needs a launcher (mpirun, srun): none of OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE, "
                   "SLURM_PROCID/STEP_NUM_TASKS or RANK/WORLD_SIZE describes more than one rank");
    return -1;
  }
  if (launched && comm == DECO_COMM_THREADS) {
    deco_cli_error("--comm threads: under a launcher every process is a rank (use --comm mpi or nccl)");
    return -1;
  }
  if (!tp_run) return 0;
  if (comm == DECO_COMM_NCCL && !deco_comm_backend_available(DECO_COMM_NCCL)) {
    deco_cli_error("--comm nccl: this deco was built without NCCL (a CUDA build finds it beside the toolkit)");
    return -1;
  }
  if (o->superpose) {
    deco_cli_error("--superpose: not with tensor parallelism (its runner drives one model)");
    return -1;
  }
  if (o->recycle_state) {
    deco_cli_error("--recycle-state: not with tensor parallelism (every rank holds the same table)");
    return -1;
  }
  return 0;
}

/* The backend and dtype the run uses: --backend and --dtype as given, else
 * the communicator's backend for a tensor-parallel run (the host
 * communicators carry host buffers: their ranks run on the CPU; NCCL's run
 * on GPUs), CUDA when a GPU is here, the CPU otherwise, and bf16 on CUDA,
 * f32 on the CPU; 0, or -1 for a usage error. */
static int choose_backend_dtype(const deco_cli_options_t *o, deco_comm_backend_t comm, int tp_run,
                                deco_backend_t *backend, deco_dtype_t *dtype) {
  const deco_backend_t tp_backend = comm == DECO_COMM_NCCL ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  *backend = tp_run && !o->backend_set ? tp_backend : deco_cli_backend_or_default(o->backend_set, o->backend);
  if (tp_run && *backend != tp_backend) {
    deco_cli_error("--comm %s: its ranks run on the %s backend (use --backend %s)", deco_comm_backend_name(comm),
                   deco_backend_name(tp_backend), deco_backend_name(tp_backend));
    return -1;
  }
  return deco_cli_dtype_for(*backend, o->dtype_set, o->dtype, dtype);
}

int deco_cli_generate(const deco_cli_options_t *o) {
  deco_comm_env_t env;
  const int found = deco_cli_launch_env(&env);
  if (found < 0) return DECO_EXIT_USAGE;
  const int launched = found > 0 && env.size > 1;
  const deco_comm_backend_t comm = choose_comm(o, launched);
  const int tp_run = o->tp > 0 || o->comm_set || launched;
  if (check_comm_usage(o, comm, launched, tp_run) != 0) return DECO_EXIT_USAGE;
  deco_backend_t backend;
  deco_dtype_t dtype;
  if (choose_backend_dtype(o, comm, tp_run, &backend, &dtype) != 0) return DECO_EXIT_USAGE;
  if (!tp_run) return generate_rank(o, backend, dtype, NULL, 0);
  if (launched) return generate_launched(o, backend, dtype, comm, env.local_rank);
  return generate_threads(o, backend, dtype, o->tp > 0 ? o->tp : 1, comm);
}
