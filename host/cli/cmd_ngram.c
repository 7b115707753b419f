/* host/cli/cmd_ngram.c — `deco ngram build` (docs/CLI.md): counts the
 * n-grams of orders 2..6 of a corpus (text encoded with the model's
 * tokenizer, or id sequences) into superposed decoding's table file
 * (deco/superpose.h), written through a temporary file and a rename.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/default_model.h"

static void ngram_usage(FILE *f) {
  fputs("usage: deco ngram build --out TABLE (--text FILE | --ids FILE) [options]\n"
        "  --model FILE          llama2.c checkpoint or GGUF file whose vocabulary the table serves (default: stories260K)\n"
        "  --tokenizer FILE      llama2.c tokenizer.bin for --text (default with the built-in model: tok512)\n"
        "  --text FILE           one sequence per line, encoded as --prompt is (BOS, BPE); empty lines skipped\n"
        "  --ids FILE            one sequence per line in the --print-ids format\n"
        "  --out TABLE           the table file (temporary file + rename)\n"
        "  --max-bytes N         size cap; the rarest contexts are left out to fit (16777216)\n",
        f);
}

typedef struct ngram_options {
  const char *model, *tokenizer, *text, *ids, *out;
  size_t max_bytes;
} ngram_options_t;

static int parse_size(const char *s, size_t *out) {
  if (!*s) return -1;
  unsigned long long v = 0;
  for (const char *p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return -1;
    if (v > (~0ull - 9) / 10) return -1;
    v = v * 10 + (unsigned)(*p - '0');
  }
  if (v > (unsigned long long)(SIZE_MAX / 2)) return -1;
  *out = (size_t)v;
  return 0;
}

/* Where a string option's value goes, or NULL when a is not one. */
static const char **string_slot(ngram_options_t *o, const char *a) {
  static const char *const names[] = {"--model", "--tokenizer", "--text", "--ids", "--out"};
  const char **const fields[] = {&o->model, &o->tokenizer, &o->text, &o->ids, &o->out};
  _Static_assert(sizeof names / sizeof *names == sizeof fields / sizeof *fields, "one field per option");
  return deco_cli_text_field(a, names, fields, (int)(sizeof names / sizeof *names));
}

/* The option at argv[*i] and its value (*i steps past it); 0 or
 * DECO_EXIT_USAGE. */
static int parse_option(int argc, char **argv, int *i, ngram_options_t *o) {
  const char *a = argv[*i];
  const char **slot = string_slot(o, a);
  const int is_size = strcmp(a, "--max-bytes") == 0;
  if (!slot && !is_size) {
    deco_cli_error("ngram build: unknown option '%s' (see deco ngram --help)", a);
    return DECO_EXIT_USAGE;
  }
  const char *v = deco_cli_option_value(argc, argv, i);
  if (!v) return DECO_EXIT_USAGE;
  if (slot) {
    *slot = v;
  } else if (parse_size(v, &o->max_bytes) != 0) {
    deco_cli_error("--max-bytes: '%s' is not a byte count", v);
    return DECO_EXIT_USAGE;
  }
  return 0;
}

static int parse(int argc, char **argv, ngram_options_t *o) {
  *o = (ngram_options_t){.max_bytes = DECO_NGRAM_DEFAULT_MAX_BYTES};
  if (deco_cli_asks_help(argc, argv)) return DECO_CLI_HELP;
  for (int i = 0; i < argc; ++i)
    if (parse_option(argc, argv, &i, o) != 0) return DECO_EXIT_USAGE;
  if (!o->out) {
    deco_cli_error("ngram build needs --out TABLE");
    return DECO_EXIT_USAGE;
  }
  if (!o->text == !o->ids) {
    deco_cli_error("ngram build needs exactly one of --text FILE and --ids FILE");
    return DECO_EXIT_USAGE;
  }
  return 0;
}

typedef struct ids_sink {
  const char *path;
  deco_ngram_builder_t *b;
} ids_sink_t;

static int add_sequence(void *user, const int32_t *ids, int n, int line) {
  ids_sink_t *k = user;
  if (deco_ngram_builder_add(k->b, ids, n) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s:%d: %s", k->path, line, deco_last_error(NULL));
    return -1;
  }
  return 0;
}

/* --ids: one sequence per line, decimal ids separated by single spaces
 * (the --print-ids format; an empty line is skipped). */
static int add_ids(deco_ngram_builder_t *b, const char *path, char *text, size_t size, int vocab) {
  ids_sink_t k = {.path = path, .b = b};
  return deco_cli_read_id_lines(path, text, size, vocab, add_sequence, &k);
}

/* --text: each non-empty line of text[0..size) encoded as --prompt is
 * (BOS, dummy prefix, merges), whatever bytes it holds (a NUL is the
 * tokenizer's to refuse or encode). */
static int add_text(deco_ngram_builder_t *b, const char *path, const char *text, size_t size,
                    const deco_tokenizer_t *tok) {
  int32_t *ids = NULL;
  size_t cap = 0;
  int line = 0, rc = 0;
  for (const char *p = text, *stop = text + size; p < stop && rc == 0;) {
    const char *end = memchr(p, '\n', (size_t)(stop - p));
    const size_t len = (size_t)((end ? end : stop) - p);
    line++;
    if (len > (size_t)(1 << 28)) {
      deco_cli_error("%s:%d: a line of %zu bytes is too long", path, line, len);
      rc = -1;
      break;
    }
    if (len > 0) {
      if (4 * len + 8 > cap) { /* deco_tokenizer_tokenize's bound */
        cap = 4 * len + 8;
        int32_t *g = realloc(ids, sizeof(int32_t) * cap);
        if (!g) {
          deco_cli_error("%s: out of memory", path);
          rc = -1;
          break;
        }
        ids = g;
      }
      int n = 0;
      if (deco_tokenizer_tokenize(tok, p, len, DECO_TOKENIZE_ADD_SPECIAL, ids, (int)cap, &n) != DECO_STATUS_SUCCESS ||
          deco_ngram_builder_add(b, ids, n) != DECO_STATUS_SUCCESS) {
        deco_cli_error("%s:%d: %s", path, line, deco_last_error(NULL));
        rc = -1;
      }
    }
    if (!end) break;
    p = end + 1;
  }
  free(ids);
  return rc;
}

/* The vocabulary a table serves and the tokenizer --text is encoded with. */
typedef struct ngram_vocab {
  deco_model_hparams_t hp;
  int gguf;               /* the model is a GGUF file (its tokenizer is tok) */
  deco_tokenizer_t *tok;  /* NULL for --ids without a tokenizer */
  const void *tok_data;   /* a llama2.c tokenizer's bytes (hashed into the table) */
  size_t tok_size;
  char *tok_file;         /* tok_data when read from --tokenizer */
  const char *tok_name;
} ngram_vocab_t;

/* The model's vocabulary: a GGUF model carries its own (the table is tied
 * to the hash of its token list, as generate --superpose checks it), a
 * llama2.c checkpoint gives its size, as does the built-in model; 0 or an
 * exit status. */
static int read_model_vocab(const ngram_options_t *o, ngram_vocab_t *v) {
  v->gguf = o->model ? deco_cli_is_gguf(o->model) : 0;
  if (v->gguf < 0) return DECO_EXIT_BAD_INPUT;
  deco_status_t st;
  if (v->gguf) {
    if (o->tokenizer) {
      deco_cli_error("--tokenizer: %s is a GGUF file and carries its own vocabulary", o->model);
      return DECO_EXIT_BAD_INPUT;
    }
    st = deco_tokenizer_load_gguf(o->model, &v->tok);
    if (st == DECO_STATUS_SUCCESS) {
      memset(&v->hp, 0, sizeof v->hp);
      v->hp.vocab_size = deco_tokenizer_vocab_size(v->tok);
    }
  } else if (o->model) {
    st = deco_llama2c_read_hparams(o->model, &v->hp);
  } else {
    size_t n;
    const void *data = deco_default_model(&n);
    st = deco_llama2c_read_hparams_buffer(data, n, DECO_DEFAULT_MODEL_NAME, &v->hp);
  }
  if (st != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* A llama2.c tokenizer's bytes (--tokenizer, or the built-in one with the
 * built-in model) and the tokenizer loaded from them; --text needs one.
 * 0 or an exit status. */
static int read_llama2c_tokenizer(const ngram_options_t *o, ngram_vocab_t *v) {
  if (o->tokenizer) {
    if (!(v->tok_file = deco_cli_read_file(o->tokenizer, &v->tok_size))) return DECO_EXIT_BAD_INPUT;
    v->tok_data = v->tok_file;
    v->tok_name = o->tokenizer;
  } else if (!o->model) {
    v->tok_data = deco_default_tokenizer(&v->tok_size);
    v->tok_name = DECO_DEFAULT_TOKENIZER_NAME;
  }
  if (o->text && !v->tok_data && !v->tok) {
    deco_cli_error("--text needs --tokenizer: %s comes without one (or give --ids)", o->model);
    return DECO_EXIT_BAD_INPUT;
  }
  if (v->tok_data &&
      deco_tokenizer_load_buffer(v->tok_data, v->tok_size, v->tok_name, v->hp.vocab_size, &v->tok) !=
          DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* The corpus (--text or --ids) counted into a new builder *b; 0 or an exit
 * status. */
static int count_corpus(const ngram_options_t *o, const ngram_vocab_t *v, deco_ngram_builder_t **b) {
  const char *in = o->text ? o->text : o->ids;
  size_t corpus_size = 0;
  char *corpus = deco_cli_read_file(in, &corpus_size);
  int rc = DECO_EXIT_OK;
  if (!corpus || deco_ngram_builder_create(v->hp.vocab_size, b) != DECO_STATUS_SUCCESS) {
    if (corpus) deco_cli_error("%s", deco_last_error(NULL));
    rc = DECO_EXIT_BAD_INPUT;
  } else if ((o->text ? add_text(*b, in, corpus, corpus_size, v->tok) : add_ids(*b, in, corpus, corpus_size, v->hp.vocab_size)) != 0) {
    rc = DECO_EXIT_BAD_INPUT;
  }
  free(corpus);
  return rc;
}

/* The table from the counts, tied to the tokenizer's hash, saved to --out
 * and summed up on stderr; 0 or an exit status. */
static int save_table(const ngram_options_t *o, const ngram_vocab_t *v, deco_ngram_builder_t *b) {
  const uint64_t tok_hash = v->gguf       ? deco_cli_tokenizer_hash(v->tok)
                            : v->tok_data ? deco_ngram_hash_bytes(v->tok_data, v->tok_size)
                                          : 0;
  deco_ngram_table_t *t = NULL;
  if (deco_ngram_builder_finish(b, o->max_bytes, tok_hash, &t) != DECO_STATUS_SUCCESS ||
      deco_ngram_table_save(t, o->out) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    deco_ngram_table_destroy(t);
    return DECO_EXIT_BAD_INPUT;
  }
  deco_ngram_info_t info;
  deco_ngram_table_info(t, &info);
  fprintf(stderr,
          "ngram: corpus_tokens=%llu contexts=%u followers=%u pruned_contexts=%llu bytes=%zu vocab=%d "
          "tokenizer_hash=0x%016llx\n",
          (unsigned long long)info.corpus_tokens, (unsigned)info.n_contexts, (unsigned)info.n_followers,
          (unsigned long long)info.pruned_contexts, info.file_bytes, info.vocab_size,
          (unsigned long long)info.tokenizer_hash);
  deco_ngram_table_destroy(t);
  return DECO_EXIT_OK;
}

static int build(const ngram_options_t *o) {
  ngram_vocab_t v = {0};
  deco_ngram_builder_t *b = NULL;
  int rc = read_model_vocab(o, &v);
  if (rc == DECO_EXIT_OK) rc = read_llama2c_tokenizer(o, &v);
  if (rc == DECO_EXIT_OK) rc = count_corpus(o, &v, &b);
  if (rc == DECO_EXIT_OK) rc = save_table(o, &v, b);
  deco_ngram_builder_destroy(b);
  deco_tokenizer_destroy(v.tok);
  free(v.tok_file);
  return rc;
}

int deco_cli_ngram(int argc, char **argv) {
  /* Under a launcher with several ranks only rank 0 runs (docs/CLI.md). */
  const int launch_exit = deco_cli_launch_exit(argc, argv);
  if (launch_exit >= 0) return launch_exit;
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    ngram_usage(argc < 1 ? stderr : stdout);
    return argc < 1 ? DECO_EXIT_USAGE : deco_cli_close_stdout(DECO_EXIT_OK);
  }
  if (strcmp(argv[0], "build") != 0) {
    deco_cli_error("ngram: unknown subcommand '%s' (see deco ngram --help)", argv[0]);
    return DECO_EXIT_USAGE;
  }
  ngram_options_t o;
  const int rc = parse(argc - 1, argv + 1, &o);
  if (rc == DECO_CLI_HELP) {
    ngram_usage(stdout);
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  return rc != 0 ? rc : build(&o);
}
