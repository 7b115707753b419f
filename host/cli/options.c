/* host/cli/options.c — parsing of `deco generate` options exactly as docs/CLI.md
 * lists them; malformed values are usage errors (exit 2).
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_util.h"

_Thread_local int deco_cli_quiet;
_Thread_local char deco_cli_last_error[1024];

void deco_cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(deco_cli_last_error, sizeof deco_cli_last_error, fmt, ap);
  va_end(ap);
  if (!deco_cli_quiet) fprintf(stderr, "deco: error: %s\n", deco_cli_last_error);
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* A decimal integer as typed: digits, after a minus sign at most (no
 * blanks or plus sign, which strtol would skip), within [lo, hi]. */
static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !is_digit(s[s[0] == '-']) || *end != '\0') {
    deco_cli_error("%s: '%s' is not an integer", opt, s);
    return -1;
  }
  if (v < lo || v > hi) {
    deco_cli_error("%s: %ld outside [%ld, %ld]", opt, v, lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* A decimal or hexadecimal float that a float holds: finite, and either 0
 * or at least FLT_MIN in magnitude (strtof reports a subnormal or a value
 * that rounds to 0 as a range error). The bound is printed with the digits
 * that give FLT_MIN back; zero_ok: the option takes 0, and the message says
 * so. */
static int parse_float(const char *opt, const char *s, int zero_ok, float *out) {
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (end == s || *end != '\0' || isspace((unsigned char)s[0])) { /* as typed: strtof skips blanks */
    deco_cli_error("%s: '%s' is not a number", opt, s);
    return -1;
  }
  if (!isfinite(v) || (errno == ERANGE && fabsf(v) > 1.0f)) {
    deco_cli_error("%s: '%s' is not a finite float (largest %g)", opt, s, (double)FLT_MAX);
    return -1;
  }
  if (errno == ERANGE) {
    deco_cli_error("%s: '%s' is too small for a float: a nonzero value must be at least %.9g%s", opt, s,
                   (double)FLT_MIN, zero_ok ? " (use 0)" : "");
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_ids(const char *s, deco_cli_options_t *o) {
  size_t len = strlen(s);
  int32_t *ids = malloc(sizeof(int32_t) * (len / 2 + 2));
  int n = 0;
  const char *p = s;
  if (!ids) {
    deco_cli_error("--prompt-ids: out of memory");
    return -1;
  }
  while (1) {
    char *end;
    errno = 0;
    if (!is_digit(*p)) {
      deco_cli_error("--prompt-ids: '%s' is not a comma-separated list of decimal ids", s);
      free(ids);
      return -1;
    }
    long v = strtol(p, &end, 10);
    if (errno || v > 0x7fffffffL) {
      deco_cli_error("--prompt-ids: id '%.*s' is too large", (int)(end - p), p);
      free(ids);
      return -1;
    }
    ids[n++] = (int32_t)v;
    if (*end == '\0') break;
    if (*end != ',') {
      deco_cli_error("--prompt-ids: '%s' is not a comma-separated list of decimal ids", s);
      free(ids);
      return -1;
    }
    p = end + 1;
  }
  o->prompt_ids = ids;
  o->n_prompt_ids = n;
  return 0;
}

static int cmp_int(const void *a, const void *b) {
  const int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* --draft-layers' list as it grows. */
typedef struct layer_list {
  int *v;
  int n, cap;
} layer_list_t;

static int layers_malformed(const char *s) {
  deco_cli_error("--draft-layers: '%s' is not a comma-separated list of layers and ranges (e.g. 0-2,4)", s);
  return -1;
}

/* The item of list s at p, a layer or a range A-B (A <= B), as *a..*b;
 * *end is after it. 0, or -1 once the error is printed. */
static int parse_layer_item(const char *s, const char *p, long *a, long *b, char **end) {
  if (!is_digit(*p)) return layers_malformed(s);
  errno = 0;
  *a = strtol(p, end, 10);
  *b = *a;
  if (**end == '-') {
    p = *end + 1;
    if (!is_digit(*p)) return layers_malformed(s);
    *b = strtol(p, end, 10);
  }
  if (errno || *a > 65535 || *b > 65535) {
    deco_cli_error("--draft-layers: '%s': a layer is too large", s);
    return -1;
  }
  if (*b < *a) {
    deco_cli_error("--draft-layers: '%s': the range %ld-%ld is empty", s, *a, *b);
    return -1;
  }
  return 0;
}

/* Appends the layers a..b to l. 0, or -1 once the error is printed. */
static int push_layer_range(layer_list_t *l, long a, long b) {
  for (long x = a; x <= b; ++x) {
    if (l->n == l->cap) {
      const int cap = l->cap ? 2 * l->cap : 16;
      int *grown = realloc(l->v, sizeof(int) * (size_t)cap);
      if (!grown) {
        deco_cli_error("--draft-layers: out of memory");
        return -1;
      }
      l->v = grown;
      l->cap = cap;
    }
    l->v[l->n++] = (int)x;
  }
  return 0;
}

/* Every item of s, in the order written, into l. 0, or -1 once the error
 * is printed. */
static int read_layer_list(const char *s, layer_list_t *l) {
  for (const char *p = s;;) {
    long a, b;
    char *end;
    if (parse_layer_item(s, p, &a, &b, &end) != 0 || push_layer_range(l, a, b) != 0) return -1;
    if (*end == '\0') return 0;
    if (*end != ',') return layers_malformed(s);
    p = end + 1;
  }
}

/* The sorted list l names each layer once. 0, or -1 once the error is
 * printed. */
static int check_layers_distinct(const char *s, const layer_list_t *l) {
  for (int i = 1; i < l->n; ++i)
    if (l->v[i] == l->v[i - 1]) {
      deco_cli_error("--draft-layers: '%s' names layer %d twice (overlapping ranges)", s, l->v[i]);
      return -1;
    }
  return 0;
}

/* --draft-layers: comma-separated layers and ranges A-B (A <= B), e.g.
 * 0-2,4; sorted; a layer named twice is an error. The range against the
 * model is checked once its header is read. */
static int parse_layers(const char *s, deco_cli_options_t *o) {
  layer_list_t l = {0};
  int rc = read_layer_list(s, &l);
  if (rc == 0) {
    qsort(l.v, (size_t)l.n, sizeof(int), cmp_int);
    rc = check_layers_distinct(s, &l);
  }
  if (rc != 0) {
    free(l.v);
    return -1;
  }
  free(o->draft_layers);
  o->draft_layers = l.v;
  o->n_draft_layers = l.n;
  return 0;
}

/* A non-negative decimal that fits 64 bits. */
static int parse_seed(const char *v, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long s = strtoull(v, &end, 10);
  if (errno || !is_digit(v[0]) || *end != '\0') {
    deco_cli_error("--seed: '%s' is not a non-negative integer", v);
    return -1;
  }
  *out = s;
  return 0;
}

static int parse_chat_template(const char *v, deco_cli_options_t *o) {
  o->chat_template_set = 1;
  if (deco_chat_template_from_name(v, &o->chat_template) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--chat-template: '%s' is not auto, chatml, llama3 or none", v);
    return -1;
  }
  return 0;
}

/* The options that take a value: four tables by kind and one of options
 * with a parser of their own; an option is known when one of them names it.
 * Fields are offsets into deco_cli_options_t; set notes that the option was
 * given (NO_SET: nothing does). */
/* The offset of field, which must be of type T (a compile error otherwise). */
#define OPT(field, T) \
  (offsetof(deco_cli_options_t, field) + 0 * sizeof(_Generic(((deco_cli_options_t *)0)->field, T: 1)))
#define NO_SET ((size_t)-1)
#define AT(o, off, type) ((type *)((char *)(o) + (off)))

/* Kept as given. */
static const struct text_option {
  const char *name;
  size_t field;
} text_options[] = {
    {"--model", OPT(model_path, const char *)},
    {"--synthetic", OPT(synthetic, const char *)},
    {"--tokenizer", OPT(tokenizer_path, const char *)},
    {"--prompt", OPT(prompt, const char *)},
    {"--draft-model", OPT(draft_model, const char *)},
    {"--tree-template", OPT(tree_template, const char *)},
    {"--recycle-state", OPT(recycle_state, const char *)},
    {"--system", OPT(system, const char *)},
    {"--ngram", OPT(ngram_path, const char *)},
};

/* An integer in lo..hi. */
static const struct int_option {
  const char *name;
  size_t field;
  long lo, hi;
  size_t set;
} int_options[] = {
    {"--steps", OPT(steps, int), 1, 1 << 30, OPT(steps_set, int)},
    {"--draft-len", OPT(draft_len, int), 1, 255, OPT(draft_len_set, int)},
    {"--draft-width", OPT(draft_width, int), 1, 16, NO_SET},
    {"--layer-parallel", OPT(layer_parallel, int), 1, 16, NO_SET},
    {"--tree-nodes", OPT(tree_nodes, int), 1, 255, NO_SET},
    {"--recycle-k", OPT(recycle_k, int), 1, 16, OPT(recycle_k_set, int)},
    {"--threads", OPT(threads, int), 1, DECO_MAX_THREADS, NO_SET},
    {"--tp", OPT(tp, int), 1, DECO_COMM_MAX_RANKS, NO_SET},
    {"--superpose", OPT(superpose, int), 1, DECO_SUPERPOSE_MAX_K, NO_SET},
    {"--superpose-m", OPT(superpose_m, int), 1, DECO_SUPERPOSE_MAX_M, OPT(superpose_m_set, int)},
};

/* A float within lo..hi (lo itself excluded when lo_open); out of range is
 * "OPT: V must be RANGE". */
static const struct float_option {
  const char *name;
  size_t field;
  float lo, hi;
  int lo_open;
  const char *range;
  size_t set;
} float_options[] = {
    {"--temperature", OPT(temperature, float), 0.0f, FLT_MAX, 0, ">= 0", NO_SET},
    {"--top-p", OPT(top_p, float), 0.0f, 1.0f, 1, "in (0, 1]", NO_SET},
    {"--superpose-temp", OPT(superpose_temp, float), 0.0f, FLT_MAX, 1, "> 0", OPT(superpose_temp_set, int)},
    {"--ngram-alpha", OPT(ngram_alpha, float), 0.0f, 1.0f, 0, "in [0, 1]", OPT(ngram_alpha_set, int)},
};

/* --spec's words, indexed by deco_cli_spec_t. */
static const char *const spec_names[] = {"none", "lookup", "recycle", "draft"};
static const int spec_ids[] = {DECO_CLI_SPEC_NONE, DECO_CLI_SPEC_LOOKUP, DECO_CLI_SPEC_RECYCLE, DECO_CLI_SPEC_DRAFT};
static const deco_cli_words_t spec_words = {spec_names, spec_ids, 4, "none, lookup, recycle or draft"};
static const char *const comm_names[] = {"threads", "mpi", "nccl"};
static const int comm_ids[] = {DECO_COMM_THREADS, DECO_COMM_MPI, DECO_COMM_NCCL};
static const deco_cli_words_t comm_words = {comm_names, comm_ids, 3, "threads, mpi or nccl"};

/* One of a few words, kept in an enum field (stored as an int). */
_Static_assert(sizeof(deco_backend_t) == sizeof(int) && sizeof(deco_dtype_t) == sizeof(int) &&
                   sizeof(deco_cli_spec_t) == sizeof(int) && sizeof(deco_comm_backend_t) == sizeof(int),
               "the word options' enums are ints");
static const struct word_option {
  const char *name;
  const deco_cli_words_t *words;
  size_t field, set;
} word_options[] = {
    {"--backend", &deco_cli_backend_words, OPT(backend, deco_backend_t), OPT(backend_set, int)},
    {"--dtype", &deco_cli_dtype_words, OPT(dtype, deco_dtype_t), OPT(dtype_set, int)},
    {"--spec", &spec_words, OPT(spec, deco_cli_spec_t), NO_SET},
    {"--comm", &comm_words, OPT(comm, deco_comm_backend_t), OPT(comm_set, int)},
};

static int set_prompt_ids(const char *v, deco_cli_options_t *o) {
  free(o->prompt_ids);
  o->prompt_ids = NULL;
  o->n_prompt_ids = 0;
  return parse_ids(v, o);
}

static int set_seed(const char *v, deco_cli_options_t *o) {
  return parse_seed(v, &o->seed);
}

static const struct own_option {
  const char *name;
  int (*parse)(const char *v, deco_cli_options_t *o);
} own_options[] = {
    {"--prompt-ids", set_prompt_ids},
    {"--seed", set_seed},
    {"--draft-layers", parse_layers},
    {"--chat-template", parse_chat_template},
};

/* The entry of table t (n entries of size bytes, each starting with its
 * name) that names option a, or NULL. */
static const void *find_option(const void *t, size_t n, size_t size, const char *a) {
  for (size_t k = 0; k < n; ++k) {
    const void *e = (const char *)t + k * size;
    if (strcmp(a, *(const char *const *)e) == 0) return e;
  }
  return NULL;
}
#define FIND(table, a) find_option((table), sizeof(table) / sizeof *(table), sizeof *(table), (a))

static void note_set(deco_cli_options_t *o, size_t set) {
  if (set != NO_SET) *AT(o, set, int) = 1;
}

static int parse_int_option(const struct int_option *e, const char *v, deco_cli_options_t *o) {
  note_set(o, e->set);
  return parse_int(e->name, v, e->lo, e->hi, AT(o, e->field, int));
}

static int parse_float_option(const struct float_option *e, const char *v, deco_cli_options_t *o) {
  note_set(o, e->set);
  float *f = AT(o, e->field, float);
  if (parse_float(e->name, v, !e->lo_open && e->lo == 0.0f, f) != 0) return -1;
  if (!(e->lo_open ? *f > e->lo : *f >= e->lo) || *f > e->hi) { /* *f is finite */
    deco_cli_error("%s: %s must be %s", e->name, v, e->range);
    return -1;
  }
  return 0;
}

static int parse_word_option(const struct word_option *e, const char *v, deco_cli_options_t *o) {
  note_set(o, e->set);
  int word = 0;
  if (deco_cli_parse_word(e->name, v, e->words, &word) != 0) return -1;
  *AT(o, e->field, int) = word;
  return 0;
}

/* The value v of option a (a known option that takes one); 0 or -1. */
static int parse_value(const char *a, const char *v, deco_cli_options_t *o) {
  const struct text_option *t;
  const struct int_option *i;
  const struct float_option *f;
  const struct word_option *w;
  const struct own_option *p;
  if ((t = FIND(text_options, a))) *AT(o, t->field, const char *) = v;
  else if ((i = FIND(int_options, a))) return parse_int_option(i, v, o);
  else if ((f = FIND(float_options, a))) return parse_float_option(f, v, o);
  else if ((w = FIND(word_options, a))) return parse_word_option(w, v, o);
  else if ((p = FIND(own_options, a))) return p->parse(v, o);
  return 0;
}

/* 1 when a is an option without a value (and sets it). */
static int parse_flag(const char *a, deco_cli_options_t *o) {
  if (strcmp(a, "--ignore-eos") == 0) o->ignore_eos = 1;
  else if (strcmp(a, "--print-ids") == 0) o->print_ids = 1;
  else if (strcmp(a, "--compare-ar") == 0) o->compare_ar = 1;
  else if (strcmp(a, "--chat") == 0) o->chat = 1;
  else if (strcmp(a, "--no-calibrate") == 0) o->no_calibrate = 1;
  else return 0;
  return 1;
}

static int takes_value(const char *a) {
  return FIND(text_options, a) || FIND(int_options, a) || FIND(float_options, a) || FIND(word_options, a) ||
         FIND(own_options, a);
}

/* A group of options that mean nothing unless ok: given is the first of
 * them on the command line (NULL: none). -1 after the usage error
 * "GIVEN needs WHAT" when one was given and ok is 0. */
static int group_needs(const char *given, int ok, const char *what) {
  if (!given || ok) return 0;
  deco_cli_error("%s needs %s", given, what);
  return -1;
}

/* The first name whose option was given (given[k] != 0), in the order
 * listed; NULL when none was. */
static const char *first_given(const char *const *names, const int *given, int n) {
  for (int k = 0; k < n; ++k)
    if (given[k]) return names[k];
  return NULL;
}

/* One model and one prompt. */
static int check_inputs(const deco_cli_options_t *o) {
  if (o->model_path && o->synthetic) {
    deco_cli_error("--model and --synthetic exclude each other");
    return -1;
  }
  if (o->prompt && o->prompt_ids) {
    deco_cli_error("--prompt and --prompt-ids exclude each other");
    return -1;
  }
  return 0;
}

/* Options of Token Recycling mean nothing to another draft source. */
static int check_recycle(const deco_cli_options_t *o) {
  static const char *const names[] = {"--tree-template", "--recycle-state", "--recycle-k"};
  const int given[] = {o->tree_template != NULL, o->recycle_state != NULL, o->recycle_k_set};
  return group_needs(first_given(names, given, 3), o->spec == DECO_CLI_SPEC_RECYCLE, "--spec recycle");
}

/* Superposed decoding's options need --superpose, which has no drafter
 * and no timing runs. */
static int check_superpose(const deco_cli_options_t *o) {
  static const char *const names[] = {"--ngram", "--superpose-m", "--superpose-temp", "--ngram-alpha"};
  const int given[] = {o->ngram_path != NULL, o->superpose_m_set, o->superpose_temp_set, o->ngram_alpha_set};
  if (group_needs(first_given(names, given, 4), o->superpose, "--superpose")) return -1;
  if (o->superpose && o->spec != DECO_CLI_SPEC_NONE) {
    deco_cli_error("--superpose and --spec %s exclude each other", spec_names[o->spec]);
    return -1;
  }
  if (o->superpose && o->compare_ar) {
    deco_cli_error("--superpose and --compare-ar exclude each other");
    return -1;
  }
  if (o->superpose && o->ngram_alpha > 0.0f && !o->ngram_path) {
    deco_cli_error("--superpose needs --ngram TABLE (or --ngram-alpha 0)");
    return -1;
  }
  return 0;
}

/* Chat options need --chat; a chat turn is text. */
static int check_chat(const deco_cli_options_t *o) {
  static const char *const names[] = {"--system", "--chat-template"};
  const int given[] = {o->system != NULL, o->chat_template_set};
  if (group_needs(first_given(names, given, 2), o->chat, "--chat")) return -1;
  if (o->chat && o->prompt_ids) {
    deco_cli_error("--chat and --prompt-ids exclude each other (the template makes the prompt's ids)");
    return -1;
  }
  if (o->system && o->chat_template == DECO_CHAT_TEMPLATE_NONE) {
    deco_cli_error("--system: --chat-template none has no system message");
    return -1;
  }
  return 0;
}

/* Options of model drafts likewise; a model draft names its draft. */
static int check_draft(const deco_cli_options_t *o) {
  static const char *const names[] = {"--draft-model", "--draft-layers", "--draft-width", "--layer-parallel"};
  const int given[] = {o->draft_model != NULL, o->draft_layers != NULL, o->draft_width != 0, o->layer_parallel != 0};
  if (group_needs(first_given(names, given, 4), o->spec == DECO_CLI_SPEC_DRAFT, "--spec draft")) return -1;
  if (o->no_calibrate && o->layer_parallel < 2) {
    deco_cli_error("--no-calibrate needs --layer-parallel N with N >= 2");
    return -1;
  }
  if (o->spec == DECO_CLI_SPEC_DRAFT && !o->draft_model == !o->draft_layers) {
    deco_cli_error("--spec draft needs %s", o->draft_model ? "--draft-model or --draft-layers, not both"
                                                           : "--draft-model FILE or --draft-layers LIST");
    return -1;
  }
  return 0;
}

static int check_backend(const deco_cli_options_t *o) {
  if (o->backend_set && o->backend == DECO_BACKEND_CPU && o->dtype_set && o->dtype == DECO_DTYPE_BF16) {
    deco_cli_error("--dtype: bf16 is not supported by the cpu backend (use f32)");
    return -1;
  }
  return 0;
}

/* Options that exclude each other or need another (docs/CLI.md), checked
 * in this order: the first conflict is the one reported. */
static int check_combination(const deco_cli_options_t *o) {
  if (check_inputs(o) || check_recycle(o) || check_superpose(o) || check_chat(o) || check_draft(o) ||
      check_backend(o))
    return -1;
  return 0;
}

int deco_cli_parse(int argc, char **argv, deco_cli_options_t *o) {
  *o = (deco_cli_options_t){.steps = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 42, .draft_len = 10,
                            .recycle_k = 8, .spec = DECO_CLI_SPEC_NONE,
                            .chat_template = DECO_CHAT_TEMPLATE_AUTO, .superpose_m = DECO_SUPERPOSE_DEFAULT_M,
                            .superpose_temp = DECO_SUPERPOSE_DEFAULT_TEMPERATURE,
                            .ngram_alpha = DECO_SUPERPOSE_DEFAULT_ALPHA};
  if (deco_cli_asks_help(argc, argv)) return DECO_CLI_HELP; /* wherever it stands, as the other commands */
  for (int i = 0; i < argc; ++i) {
    const char *a = argv[i];
    if (parse_flag(a, o)) continue;
    if (!takes_value(a)) {
      deco_cli_error("unknown option '%s' (see deco --help)", a);
      return DECO_EXIT_USAGE;
    }
    const char *v = deco_cli_option_value(argc, argv, &i);
    if (!v || parse_value(a, v, o)) return DECO_EXIT_USAGE;
  }
  return check_combination(o) ? DECO_EXIT_USAGE : 0;
}
