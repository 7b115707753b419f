/* host/cli/options.c — parsing of `deco generate` options exactly as docs/CLI.md
 * lists them; malformed values are usage errors (exit 2).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void deco_cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("deco: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0') {
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
 * that rounds to 0 as a range error). */
static int parse_float(const char *opt, const char *s, float *out) {
  char *end;
  errno = 0;
  float v = strtof(s, &end);
  if (end == s || *end != '\0') {
    deco_cli_error("%s: '%s' is not a number", opt, s);
    return -1;
  }
  if (!isfinite(v) || (errno == ERANGE && fabsf(v) > 1.0f)) {
    deco_cli_error("%s: '%s' is not a finite float (largest %g)", opt, s, (double)FLT_MAX);
    return -1;
  }
  if (errno == ERANGE) {
    deco_cli_error("%s: '%s' is too small for a float: a nonzero value must be at least %g (use 0)", opt, s,
                   (double)FLT_MIN);
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
    if (*p < '0' || *p > '9') {
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

int deco_cli_parse(int argc, char **argv, deco_cli_options_t *o) {
  memset(o, 0, sizeof *o);
  o->synthetic = NULL;
  o->steps = 256;
  o->temperature = 1.0f;
  o->top_p = 0.9f;
  o->seed = 42;
  o->draft_len = 10;
  o->recycle_k = 8;
  for (int i = 0; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return DECO_CLI_HELP;
    /* Flags without a value. */
    if (strcmp(a, "--ignore-eos") == 0) {
      o->ignore_eos = 1;
      continue;
    }
    if (strcmp(a, "--print-ids") == 0) {
      o->print_ids = 1;
      continue;
    }
    if (strcmp(a, "--compare-ar") == 0) {
      o->compare_ar = 1;
      continue;
    }
    static const char *const with_value[] = {"--model", "--synthetic", "--tokenizer", "--prompt", "--prompt-ids",
                                              "--steps", "--temperature", "--top-p", "--seed", "--backend",
                                              "--dtype", "--spec", "--draft-len", "--tree-nodes", "--tree-template",
                                              "--recycle-k", "--recycle-state", NULL};
    int known = 0;
    for (int k = 0; with_value[k]; ++k)
      if (strcmp(a, with_value[k]) == 0) known = 1;
    if (!known) {
      deco_cli_error("unknown option '%s' (see deco --help)", a);
      return DECO_EXIT_USAGE;
    }
    if (i + 1 >= argc) {
      deco_cli_error("%s needs a value", a);
      return DECO_EXIT_USAGE;
    }
    const char *v = argv[++i];
    int bad = 0;
    if (strcmp(a, "--model") == 0) o->model_path = v;
    else if (strcmp(a, "--synthetic") == 0) o->synthetic = v;
    else if (strcmp(a, "--tokenizer") == 0) o->tokenizer_path = v;
    else if (strcmp(a, "--prompt") == 0) o->prompt = v;
    else if (strcmp(a, "--prompt-ids") == 0) {
      free(o->prompt_ids);
      o->prompt_ids = NULL;
      o->n_prompt_ids = 0;
      bad = parse_ids(v, o);
    } else if (strcmp(a, "--steps") == 0) bad = parse_int(a, v, 1, 1 << 30, &o->steps);
    else if (strcmp(a, "--temperature") == 0) {
      bad = parse_float(a, v, &o->temperature);
      if (!bad && o->temperature < 0.0f) {
        deco_cli_error("--temperature: %s must be >= 0", v);
        bad = 1;
      }
    } else if (strcmp(a, "--top-p") == 0) {
      bad = parse_float(a, v, &o->top_p);
      if (!bad && !(o->top_p > 0.0f && o->top_p <= 1.0f)) {
        deco_cli_error("--top-p: %s must be in (0, 1]", v);
        bad = 1;
      }
    } else if (strcmp(a, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (errno || end == v || *end != '\0' || v[0] == '-') {
        deco_cli_error("--seed: '%s' is not a non-negative integer", v);
        bad = 1;
      }
      o->seed = s;
    } else if (strcmp(a, "--backend") == 0) {
      o->backend_set = 1;
      if (strcmp(v, "cpu") == 0) o->backend = DECO_BACKEND_CPU;
      else if (strcmp(v, "cuda") == 0) o->backend = DECO_BACKEND_CUDA;
      else {
        deco_cli_error("--backend: '%s' is not cpu or cuda", v);
        bad = 1;
      }
    } else if (strcmp(a, "--dtype") == 0) {
      o->dtype_set = 1;
      if (strcmp(v, "f32") == 0) o->dtype = DECO_DTYPE_F32;
      else if (strcmp(v, "bf16") == 0) o->dtype = DECO_DTYPE_BF16;
      else {
        deco_cli_error("--dtype: '%s' is not f32 or bf16", v);
        bad = 1;
      }
    } else if (strcmp(a, "--spec") == 0) {
      if (strcmp(v, "none") == 0) o->spec = DECO_SPEC_NONE;
      else if (strcmp(v, "lookup") == 0) o->spec = DECO_SPEC_LOOKUP;
      else if (strcmp(v, "recycle") == 0) o->spec = DECO_SPEC_RECYCLE;
      else {
        deco_cli_error("--spec: '%s' is not none, lookup or recycle", v);
        bad = 1;
      }
    } else if (strcmp(a, "--draft-len") == 0) bad = parse_int(a, v, 1, 255, &o->draft_len);
    else if (strcmp(a, "--tree-nodes") == 0) bad = parse_int(a, v, 1, 255, &o->tree_nodes);
    else if (strcmp(a, "--tree-template") == 0) o->tree_template = v;
    else if (strcmp(a, "--recycle-k") == 0) {
      bad = parse_int(a, v, 1, 16, &o->recycle_k);
      o->recycle_k_set = 1;
    }
    else if (strcmp(a, "--recycle-state") == 0) o->recycle_state = v;
    if (bad) return DECO_EXIT_USAGE;
  }
  if (o->model_path && o->synthetic) {
    deco_cli_error("--model and --synthetic exclude each other");
    return DECO_EXIT_USAGE;
  }
  if (o->prompt && o->prompt_ids) {
    deco_cli_error("--prompt and --prompt-ids exclude each other");
    return DECO_EXIT_USAGE;
  }
  /* Options of Token Recycling mean nothing to another draft source. */
  const char *recycle_only = o->tree_template ? "--tree-template"
                             : o->recycle_state ? "--recycle-state"
                             : o->recycle_k_set ? "--recycle-k"
                                                : NULL;
  if (recycle_only && o->spec != DECO_SPEC_RECYCLE) {
    deco_cli_error("%s needs --spec recycle", recycle_only);
    return DECO_EXIT_USAGE;
  }
  if (o->backend_set && o->backend == DECO_BACKEND_CPU && o->dtype_set && o->dtype == DECO_DTYPE_BF16) {
    deco_cli_error("--dtype: bf16 is not supported by the cpu backend (use f32)");
    return DECO_EXIT_USAGE;
  }
  return 0;
}
