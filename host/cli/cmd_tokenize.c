/* host/cli/cmd_tokenize.c — `deco tokenize` (docs/CLI.md): the ids of a
 * text, as the prompt rule encodes it, on one line in --print-ids format;
 * or, with --decode, the text of such a line. The model's tokenizer: a
 * GGUF file's vocabulary, a llama2.c checkpoint's --tokenizer, or the
 * built-in tok512.
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

static void tokenize_usage(FILE *f) {
  fputs("usage: deco tokenize [--model FILE] [--tokenizer FILE] (--text STR | --file F | --decode IDS) [--special]\n"
        "  --model FILE      GGUF file (its vocabulary) or llama2.c checkpoint (default: stories260K, built in)\n"
        "  --tokenizer FILE  llama2.c tokenizer.bin (default with the built-in model: tok512)\n"
        "  --text STR        encode STR\n"
        "  --file F          encode the bytes of F exactly\n"
        "  --decode IDS      the text of a line of ids (as --print-ids writes it)\n"
        "  --special         encode: special-token text becomes those tokens; decode: print them\n",
        f);
}

typedef struct tok_opts {
  const char *model, *tokenizer, *text, *file, *decode;
  int special;
} tok_opts_t;

/* Where the value of option a goes; NULL when a takes no value. */
static const char **value_slot(tok_opts_t *o, const char *a) {
  static const char *const names[] = {"--model", "--tokenizer", "--text", "--file", "--decode"};
  const char **const fields[] = {&o->model, &o->tokenizer, &o->text, &o->file, &o->decode};
  _Static_assert(sizeof names / sizeof *names == sizeof fields / sizeof *fields, "one field per option");
  return deco_cli_text_field(a, names, fields, (int)(sizeof names / sizeof *names));
}

/* The option at argv[*i] (and its value: *i moves past it); 0, or
 * DECO_EXIT_USAGE after the message. */
static int parse_option(int argc, char **argv, int *i, tok_opts_t *o) {
  const char *a = argv[*i];
  const char **slot = value_slot(o, a);
  if (slot) {
    *slot = deco_cli_option_value(argc, argv, i);
    return *slot ? 0 : DECO_EXIT_USAGE;
  }
  if (strcmp(a, "--special") == 0) {
    o->special = 1;
    return 0;
  }
  deco_cli_error("tokenize: unknown option '%s' (see deco tokenize --help)", a);
  return DECO_EXIT_USAGE;
}

/* 0, DECO_CLI_HELP, or DECO_EXIT_USAGE after the message. */
static int parse(int argc, char **argv, tok_opts_t *o) {
  memset(o, 0, sizeof *o);
  if (deco_cli_asks_help(argc, argv)) return DECO_CLI_HELP;
  for (int i = 0; i < argc; ++i) {
    const int rc = parse_option(argc, argv, &i, o);
    if (rc != 0) return rc;
  }
  int inputs = (o->text != NULL) + (o->file != NULL) + (o->decode != NULL);
  if (inputs != 1) {
    deco_cli_error("tokenize: give exactly one of --text, --file, --decode");
    return DECO_EXIT_USAGE;
  }
  return 0;
}

/* The tokenizer the options name; an exit status (0 to go on). */
static int load_tokenizer(const tok_opts_t *o, deco_tokenizer_t **tok) {
  *tok = NULL;
  if (!o->model) {
    size_t n;
    const void *p = deco_default_tokenizer(&n);
    const char *name = o->tokenizer ? o->tokenizer : DECO_DEFAULT_TOKENIZER_NAME;
    deco_status_t s = o->tokenizer ? deco_tokenizer_load(o->tokenizer, 512, tok)
                                   : deco_tokenizer_load_buffer(p, n, name, 512, tok);
    if (s != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    return 0;
  }
  const int gguf = deco_cli_is_gguf(o->model);
  if (gguf < 0) return DECO_EXIT_BAD_INPUT;
  if (gguf) {
    if (o->tokenizer) {
      deco_cli_error("--tokenizer: %s is a GGUF file, which carries its own vocabulary", o->model);
      return DECO_EXIT_BAD_INPUT;
    }
    if (deco_tokenizer_load_gguf(o->model, tok) != DECO_STATUS_SUCCESS) {
      deco_cli_error("%s", deco_last_error(NULL));
      return DECO_EXIT_BAD_INPUT;
    }
    return 0;
  }
  deco_model_hparams_t hp;
  if (deco_llama2c_read_hparams(o->model, &hp) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  if (!o->tokenizer) {
    deco_cli_error("--tokenizer: %s is a llama2.c checkpoint; give its tokenizer.bin", o->model);
    return DECO_EXIT_BAD_INPUT;
  }
  if (deco_tokenizer_load(o->tokenizer, hp.vocab_size, tok) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

/* Writes; 0, or an exit status after the message (a reader that left is
 * the end of output, not an error). */
static int put(const void *p, size_t n, int *gone) {
  if (*gone) return 0;
  if ((n && fwrite(p, 1, n, stdout) != n) || ferror(stdout)) {
    if (errno == EPIPE) {
      *gone = 1;
      return 0;
    }
    deco_cli_error("stdout: %s", strerror(errno ? errno : EIO));
    return DECO_EXIT_BAD_INPUT;
  }
  return 0;
}

static int finish(int *gone) {
  errno = 0;
  if (fflush(stdout) != 0 && errno != EPIPE && !*gone) {
    deco_cli_error("stdout: %s", strerror(errno ? errno : EIO));
    return DECO_EXIT_BAD_INPUT;
  }
  errno = 0;
  if (fclose(stdout) != 0 && errno != EPIPE && !*gone) {
    deco_cli_error("stdout: %s", strerror(errno ? errno : EIO));
    return DECO_EXIT_BAD_INPUT;
  }
  return DECO_EXIT_OK;
}

static int encode(const deco_tokenizer_t *tok, const tok_opts_t *o) {
  char *data = NULL;
  size_t len = 0;
  if (o->file && !(data = deco_cli_read_file(o->file, &len))) return DECO_EXIT_BAD_INPUT;
  const char *text = o->file ? data : o->text;
  if (!o->file) len = strlen(text);
  unsigned flags = DECO_TOKENIZE_ADD_SPECIAL | (o->special ? DECO_TOKENIZE_PARSE_SPECIAL : 0);
  int n = 0;
  deco_status_t s = deco_tokenizer_tokenize(tok, text, len, flags, NULL, 0, &n);
  int32_t *ids = NULL;
  if (s == DECO_STATUS_CAPACITY) {
    ids = malloc(sizeof(int32_t) * (size_t)n);
    s = ids ? deco_tokenizer_tokenize(tok, text, len, flags, ids, n, &n) : DECO_STATUS_OUT_OF_MEMORY;
  }
  free(data);
  if (s != DECO_STATUS_SUCCESS) {
    free(ids);
    deco_cli_error("%s: %s", o->file ? o->file : "--text", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  int gone = 0, rc = 0;
  char buf[16];
  for (int i = 0; i < n && rc == 0; ++i) {
    int k = snprintf(buf, sizeof buf, i ? " %d" : "%d", (int)ids[i]);
    rc = put(buf, (size_t)k, &gone);
  }
  free(ids);
  if (rc == 0) rc = put("\n", 1, &gone);
  return rc ? rc : finish(&gone);
}

static int decode(const deco_tokenizer_t *tok, const tok_opts_t *o) {
  /* The --print-ids line: decimal ids, single spaces, an optional final newline. */
  const char *p = o->decode;
  size_t cap = strlen(p) / 2 + 1;
  int32_t *ids = malloc(sizeof(int32_t) * cap);
  int n = 0;
  if (!ids) {
    deco_cli_error("out of memory");
    return DECO_EXIT_BAD_INPUT;
  }
  size_t plen = strlen(p);
  if (plen && p[plen - 1] == '\n') --plen;
  for (size_t i = 0; i < plen;) {
    if (n > 0) {
      if (p[i] != ' ') goto bad;
      ++i;
    }
    long long v = 0; /* stops growing past INT32_MAX: any more digits are >= vocab too */
    size_t start = i;
    for (; i < plen && p[i] >= '0' && p[i] <= '9'; ++i)
      if (v <= INT32_MAX) v = v * 10 + (p[i] - '0');
    if (i == start || (i < plen && p[i] != ' ')) goto bad;
    if (v >= deco_tokenizer_vocab_size(tok)) {
      deco_cli_error("--decode: id %.*s >= vocab %d", (int)(i - start), p + start, deco_tokenizer_vocab_size(tok));
      free(ids);
      return DECO_EXIT_BAD_INPUT;
    }
    ids[n++] = (int32_t)v;
  }
  unsigned flags = DECO_DETOKENIZE_VALID_UTF8 | (o->special ? DECO_DETOKENIZE_SPECIAL : 0);
  size_t need = 0;
  deco_status_t s = deco_tokenizer_detokenize(tok, ids, n, flags, NULL, 0, &need);
  char *text = NULL;
  if (s == DECO_STATUS_CAPACITY) {
    text = malloc(need);
    s = text ? deco_tokenizer_detokenize(tok, ids, n, flags, text, need, &need) : DECO_STATUS_OUT_OF_MEMORY;
  }
  free(ids);
  if (s != DECO_STATUS_SUCCESS) {
    free(text);
    deco_cli_error("--decode: %s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  int gone = 0;
  int rc = put(text, need, &gone);
  free(text);
  if (rc == 0) rc = put("\n", 1, &gone);
  return rc ? rc : finish(&gone);
bad:
  free(ids);
  deco_cli_error("--decode: expected decimal ids separated by single spaces");
  return DECO_EXIT_USAGE;
}

int deco_cli_tokenize(int argc, char **argv) {
  /* Under a launcher with several ranks only rank 0 runs (docs/CLI.md). */
  const int launch_exit = deco_cli_launch_exit(argc, argv);
  if (launch_exit >= 0) return launch_exit;
  tok_opts_t o;
  int rc = parse(argc, argv, &o);
  if (rc == DECO_CLI_HELP) {
    tokenize_usage(stdout);
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  if (rc != 0) return rc;
  deco_tokenizer_t *tok;
  rc = load_tokenizer(&o, &tok);
  if (rc != 0) return rc;
  rc = o.decode ? decode(tok, &o) : encode(tok, &o);
  deco_tokenizer_destroy(tok);
  return rc;
}
