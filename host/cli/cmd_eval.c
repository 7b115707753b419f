/* host/cli/cmd_eval.c — `deco eval` (docs/CLI.md): teacher-forced
 * perplexity of a model on id sequences (--ids, the --print-ids format one
 * sequence per line) or on a text file (encoded whole with the model's
 * tokenizer, scored in windows of the context), and against a reference
 * model the mean KL(R || M) and top-1 agreement (deco/eval.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/default_model.h"
#include "deco/eval.h"

static void eval_usage(FILE *f) {
  fputs("usage: deco eval [--model FILE] [--ref FILE] (--text FILE | --ids FILE) [options]\n"
        "  --model FILE          llama2.c checkpoint or GGUF file (default: stories260K, built in)\n"
        "  --ref FILE            reference model of the same vocabulary: adds KL(ref || model) and top-1 agreement\n"
        "  --text FILE           the file's bytes, encoded as one text, scored in windows of the context\n"
        "  --ids FILE            one sequence per line in the --print-ids format; empty lines skipped\n"
        "  --tokenizer FILE      llama2.c tokenizer.bin for --text (default with the built-in model: tok512)\n"
        "  --backend cpu|cuda    default: cuda when a device exists\n"
        "  --dtype f32|bf16      cpu: f32; cuda: bf16 by default\n"
        "  --threads N           cpu: threads per op, 1-1024\n",
        f);
}

typedef struct eval_options {
  const char *model, *ref, *text, *ids, *tokenizer;
  int backend_set, dtype_set, threads;
  deco_backend_t backend;
  deco_dtype_t dtype;
} eval_options_t;

/* The value v of --backend, --dtype or --threads; 0 or DECO_EXIT_USAGE. */
static int parse_setting(const char *a, const char *v, eval_options_t *o) {
  int w;
  if (strcmp(a, "--backend") == 0) {
    o->backend_set = 1;
    if (deco_cli_parse_word(a, v, &deco_cli_backend_words, &w)) return DECO_EXIT_USAGE;
    o->backend = (deco_backend_t)w;
  } else if (strcmp(a, "--dtype") == 0) {
    o->dtype_set = 1;
    if (deco_cli_parse_word(a, v, &deco_cli_dtype_words, &w)) return DECO_EXIT_USAGE;
    o->dtype = (deco_dtype_t)w;
  } else {
    char *end;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (errno || v[0] < '0' || v[0] > '9' || *end || t < 1 || t > DECO_MAX_THREADS) {
      deco_cli_error("--threads: '%s' is not an integer in [1, %d]", v, DECO_MAX_THREADS);
      return DECO_EXIT_USAGE;
    }
    o->threads = (int)t;
  }
  return 0;
}

/* 0, DECO_CLI_HELP, or DECO_EXIT_USAGE after the message. */
static int parse(int argc, char **argv, eval_options_t *o) {
  static const char *const paths[] = {"--model", "--ref", "--text", "--ids", "--tokenizer"};
  memset(o, 0, sizeof *o);
  const char **const path_fields[] = {&o->model, &o->ref, &o->text, &o->ids, &o->tokenizer};
  _Static_assert(sizeof paths / sizeof *paths == sizeof path_fields / sizeof *path_fields, "one field per option");
  if (deco_cli_asks_help(argc, argv)) return DECO_CLI_HELP;
  for (int i = 0; i < argc; ++i) {
    const char *a = argv[i];
    const char **slot = deco_cli_text_field(a, paths, path_fields, (int)(sizeof paths / sizeof *paths));
    const int known = slot || strcmp(a, "--backend") == 0 || strcmp(a, "--dtype") == 0 || strcmp(a, "--threads") == 0;
    if (!known) {
      deco_cli_error("eval: unknown option '%s' (see deco eval --help)", a);
      return DECO_EXIT_USAGE;
    }
    const char *v = deco_cli_option_value(argc, argv, &i);
    if (!v) return DECO_EXIT_USAGE;
    if (slot) *slot = v;
    else if (parse_setting(a, v, o) != 0) return DECO_EXIT_USAGE;
  }
  if (!o->text == !o->ids) {
    deco_cli_error("eval needs exactly one of --text FILE and --ids FILE");
    return DECO_EXIT_USAGE;
  }
  return 0;
}

/* Sequences to score: ids back to back, seq_start[s] where each begins. */
typedef struct corpus {
  deco_cli_ids_t ids;
  size_t *start; /* [n_seqs + 1] */
  size_t n_seqs, cap_seqs;
} corpus_t;

/* Ends the sequence begun at the last end (nothing for an empty one). */
static int corpus_end_seq(corpus_t *c) {
  if (c->n_seqs + 2 > c->cap_seqs) {
    size_t cap = c->cap_seqs ? 2 * c->cap_seqs : 64;
    size_t *g = realloc(c->start, sizeof(size_t) * cap);
    if (!g) return -1;
    if (!c->start) g[0] = 0;
    c->start = g;
    c->cap_seqs = cap;
  }
  if (c->ids.n > c->start[c->n_seqs]) c->start[++c->n_seqs] = c->ids.n;
  return 0;
}

typedef struct ids_sink {
  const char *path;
  corpus_t *c;
} ids_sink_t;

static int add_sequence(void *user, const int32_t *ids, int n, int line) {
  ids_sink_t *k = user;
  (void)line;
  if (deco_cli_ids_append(&k->c->ids, ids, (size_t)n, k->path) != 0) return -1;
  if (corpus_end_seq(k->c) != 0) {
    deco_cli_error("%s: out of memory", k->path);
    return -1;
  }
  return 0;
}

/* --ids: the --print-ids format, one sequence per line; an empty line is
 * skipped; a line of more than INT_MAX ids (the evaluator counts a
 * sequence's positions in an int) is refused. */
static int read_ids(const char *path, char *text, size_t size, int vocab, corpus_t *c) {
  ids_sink_t k = {.path = path, .c = c};
  return deco_cli_read_id_lines(path, text, size, vocab, add_sequence, &k);
}

/* --text: the file's bytes encoded as one text (the prompt rule). */
static int read_text(const char *path, const char *text, size_t len, const deco_tokenizer_t *tok, corpus_t *c) {
  if (deco_cli_ids_encode(&c->ids, tok, text, len, path) != 0) return -1;
  if (corpus_end_seq(c) != 0) {
    deco_cli_error("%s: out of memory", path);
    return -1;
  }
  return 0;
}

/* The model's header: the built-in one or a file; 0 or an exit status. */
static int read_header(const char *path, deco_model_hparams_t *hp) {
  deco_status_t s;
  if (path) {
    s = deco_model_read_hparams(path, hp);
  } else {
    size_t n;
    const void *data = deco_default_model(&n);
    s = deco_llama2c_read_hparams_buffer(data, n, DECO_DEFAULT_MODEL_NAME, hp);
  }
  if (s != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* --text's tokenizer: the GGUF file's own (model_gguf), --tokenizer, or the
 * built-in tok512; 0 or an exit status. */
static int load_tokenizer(const eval_options_t *o, int model_gguf, int vocab, deco_tokenizer_t **tok) {
  deco_status_t s;
  if (model_gguf) {
    s = deco_tokenizer_load_gguf(o->model, tok);
  } else if (o->tokenizer) {
    s = deco_tokenizer_load(o->tokenizer, vocab, tok);
  } else if (!o->model) {
    size_t n;
    const void *data = deco_default_tokenizer(&n);
    s = deco_tokenizer_load_buffer(data, n, DECO_DEFAULT_TOKENIZER_NAME, vocab, tok);
  } else {
    deco_cli_error("--text needs --tokenizer: %s is a llama2.c checkpoint (or give --ids)", o->model);
    return DECO_EXIT_BAD_INPUT;
  }
  if (s != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

static int load_model(deco_ctx_t *ctx, const char *path, deco_dtype_t dtype, deco_model_t **m) {
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = dtype;
  deco_status_t s;
  if (path) {
    s = deco_model_load(ctx, path, &mc, m);
  } else {
    size_t n;
    const void *data = deco_default_model(&n);
    s = deco_model_load_llama2c_buffer(ctx, data, n, DECO_DEFAULT_MODEL_NAME, &mc, m);
  }
  if (s != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(ctx));
    return -1;
  }
  return 0;
}

/* What a run builds step by step. */
typedef struct eval_run {
  const eval_options_t *o;
  deco_backend_t backend;
  deco_dtype_t dtype;
  deco_model_hparams_t hp; /* the model's header */
  int model_gguf;          /* --model is a GGUF file */
  deco_tokenizer_t *tok;   /* --text only */
  corpus_t c;
  deco_ctx_t *ctx;
  deco_model_t *model, *ref;
} eval_run_t;

/* The backend (cuda when a device exists) and its dtype (bf16 on cuda);
 * 0 or DECO_EXIT_USAGE. */
static int pick_backend(eval_run_t *r) {
  const eval_options_t *o = r->o;
  r->backend = deco_cli_backend_or_default(o->backend_set, o->backend);
  return deco_cli_dtype_for(r->backend, o->dtype_set, o->dtype, &r->dtype) ? DECO_EXIT_USAGE : 0;
}

/* Two GGUF files carry their tokenizers: the same vocabulary size is not
 * enough, the token lists must be the same. --text keeps the model's for the
 * corpus. 0 or an exit status. */
static int check_same_tokenizers(eval_run_t *r) {
  const eval_options_t *o = r->o;
  deco_tokenizer_t *a = NULL, *b = NULL;
  if (deco_tokenizer_load_gguf(o->model, &a) != DECO_STATUS_SUCCESS ||
      deco_tokenizer_load_gguf(o->ref, &b) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    deco_tokenizer_destroy(a);
    return DECO_EXIT_BAD_INPUT;
  }
  const uint64_t ha = deco_cli_tokenizer_hash(a), hb = deco_cli_tokenizer_hash(b);
  if (o->text) r->tok = a;
  else deco_tokenizer_destroy(a);
  deco_tokenizer_destroy(b);
  if (ha != hb) {
    deco_cli_error("--ref: %s and %s have different tokenizers (token list hashes %016llx and %016llx)", o->ref,
                   o->model, (unsigned long long)hb, (unsigned long long)ha);
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* The headers (the vocabularies must agree) and which file brings the
 * vocabulary; 0 or an exit status. */
static int check_models(eval_run_t *r) {
  const eval_options_t *o = r->o;
  deco_model_hparams_t rhp;
  int rc = read_header(o->model, &r->hp);
  if (rc == 0 && o->ref) rc = read_header(o->ref, &rhp);
  if (rc != 0) return rc;
  if (o->ref && rhp.vocab_size != r->hp.vocab_size) {
    deco_cli_error("--ref: %s has a vocabulary of %d ids, %s of %d (the models must share one)", o->ref,
                   rhp.vocab_size, o->model ? o->model : DECO_DEFAULT_MODEL_NAME, r->hp.vocab_size);
    return DECO_EXIT_BAD_INPUT;
  }
  r->model_gguf = o->model && deco_cli_is_gguf(o->model) == 1;
  if (o->ref && r->model_gguf && deco_cli_is_gguf(o->ref) == 1 && (rc = check_same_tokenizers(r)) != 0) return rc;
  if (o->tokenizer && r->model_gguf) {
    deco_cli_error("--tokenizer: %s is a GGUF file, which carries its own vocabulary", o->model);
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* The file to score, read into the corpus: something to score, with at
 * least one sequence of two ids or more. 0 or DECO_EXIT_BAD_INPUT. */
static int read_corpus(eval_run_t *r) {
  const eval_options_t *o = r->o;
  const char *in = o->text ? o->text : o->ids;
  size_t size = 0;
  char *data = deco_cli_read_file(in, &size);
  if (!data) return DECO_EXIT_BAD_INPUT;
  const int bad =
      o->text ? read_text(in, data, size, r->tok, &r->c) : read_ids(in, data, size, r->hp.vocab_size, &r->c);
  free(data);
  if (bad) return DECO_EXIT_BAD_INPUT;
  if (r->c.ids.n == 0) {
    deco_cli_error("%s: no %s to score", in, o->text ? "text" : "ids");
    return DECO_EXIT_BAD_INPUT;
  }
  if (r->c.ids.n == r->c.n_seqs) {
    deco_cli_error("%s: nothing to score: every sequence holds one id (a position is scored by the id after it)", in);
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* The backend and the models; 0 or DECO_EXIT_BAD_INPUT. */
static int load_models(eval_run_t *r) {
  if (!(r->ctx = deco_cli_ctx_create(r->backend, r->o->threads))) return DECO_EXIT_BAD_INPUT;
  if (load_model(r->ctx, r->o->model, r->dtype, &r->model) != 0 ||
      (r->o->ref && load_model(r->ctx, r->o->ref, r->dtype, &r->ref) != 0))
    return DECO_EXIT_BAD_INPUT;
  return 0;
}

/* Scores every sequence and prints the line of results; 0 or
 * DECO_EXIT_BAD_INPUT. */
static int score(const eval_run_t *r) {
  const char *in = r->o->text ? r->o->text : r->o->ids;
  const corpus_t *c = &r->c;
  deco_eval_config_t ec = DECO_EVAL_CONFIG_INIT;
  ec.ref = r->ref;
  /* A text's later windows start afresh from its BOS, as the first does. */
  if (r->tok && c->ids.n > 0 && c->ids.v[0] == deco_tokenizer_special(r->tok, DECO_TOKEN_BOS) &&
      deco_tokenizer_add_bos(r->tok))
    ec.window_bos = c->ids.v[0];
  deco_eval_stats_t acc = DECO_EVAL_STATS_INIT;
  for (size_t s = 0; s < c->n_seqs; ++s)
    if (deco_eval_ids(r->model, c->ids.v + c->start[s], (int)(c->start[s + 1] - c->start[s]), &ec, &acc) !=
        DECO_STATUS_SUCCESS) {
      deco_cli_error("%s: %s", in, deco_last_error(r->ctx));
      return DECO_EXIT_BAD_INPUT;
    }
  fprintf(stderr, "eval: tokens=%lld ppl=%.4f", acc.tokens, deco_eval_perplexity(&acc));
  if (r->ref)
    fprintf(stderr, " ref_ppl=%.4f kl=%.6f top1=%.4f", deco_eval_ref_perplexity(&acc), acc.kl / (double)acc.tokens,
            (double)acc.top1 / (double)acc.tokens);
  fputc('\n', stderr);
  return DECO_EXIT_OK;
}

static int run_eval(const eval_options_t *o) {
  eval_run_t r = {.o = o};
  int rc = pick_backend(&r);
  if (rc == 0) rc = check_models(&r);
  if (rc == 0 && o->text && !r.tok) rc = load_tokenizer(o, r.model_gguf, r.hp.vocab_size, &r.tok);
  if (rc == 0) rc = read_corpus(&r);
  if (rc == 0) rc = load_models(&r);
  if (rc == 0) rc = score(&r);
  deco_model_destroy(r.ref);
  deco_model_destroy(r.model);
  deco_ctx_destroy(r.ctx);
  deco_tokenizer_destroy(r.tok);
  free(r.c.ids.v);
  free(r.c.start);
  return rc;
}

int deco_cli_eval(int argc, char **argv) {
  /* Under a launcher with several ranks only rank 0 runs (docs/CLI.md). */
  const int launch_exit = deco_cli_launch_exit(argc, argv);
  if (launch_exit >= 0) return launch_exit;
  eval_options_t o;
  const int rc = parse(argc, argv, &o);
  if (rc == DECO_CLI_HELP) {
    eval_usage(stdout);
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  return rc != 0 ? rc : run_eval(&o);
}
