/* host/cli/cmd_compress.c — `deco compress` (docs/CLI.md): KV-head
 * compression, MHA -> GQA (deco/compress.h). Calibration ids come from a
 * text (the model's tokenizer) or an id file (deco eval's format); the
 * output goes to a temporary file in OUT's directory, then is renamed (or,
 * without --force, linked, which fails when OUT exists); a run ended by a
 * signal removes it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"

static void compress_usage(FILE *f) {
  fputs("usage: deco compress --model IN --kv-heads N --method svd|mean|keep (--calib FILE | --calib-ids FILE)\n"
        "                     [--calib-tokens T] --out OUT [--force] [options]\n"
        "  --model FILE          llama2.c checkpoint (written back as llama2.c) or GGUF file (written as F32 GGUF)\n"
        "  --kv-heads N          KV heads after: divides the model's and is smaller\n"
        "  --method M            svd (calibrated eigenvectors), mean (average a group), keep (its first head)\n"
        "  --calib FILE          calibration text, encoded whole (a GGUF's own vocabulary, or --tokenizer)\n"
        "  --calib-ids FILE      calibration ids, one sequence per line (deco eval's --ids format)\n"
        "  --calib-tokens T      use the first T calibration tokens (default: all)\n"
        "  --tokenizer FILE      llama2.c tokenizer.bin for --calib with a llama2.c model\n"
        "  --out FILE            the compressed checkpoint (temporary file + rename)\n"
        "  --force               replace an existing --out\n"
        "  --backend cpu|cuda    default: cuda when a device exists\n"
        "  --solver S            svd's eigensolver: auto (cusolver on cuda, else lapack), lapack, cusolver\n"
        "  --threads N           cpu: threads per op, 1-1024\n",
        f);
}

typedef struct compress_options {
  const char *model, *calib, *calib_ids, *tokenizer, *out;
  int kv_heads, force, backend_set, threads;
  long long calib_tokens; /* 0: all */
  deco_backend_t backend;
  deco_compress_method_t method;
  int method_set;
  deco_compress_solver_t solver;
} compress_options_t;

static int parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *out) {
  long long v = 0;
  if (!*s) goto bad;
  for (const char *p = s; *p; ++p) {
    if (*p < '0' || *p > '9' || v > (hi - (*p - '0')) / 10) goto bad;
    v = v * 10 + (*p - '0');
  }
  if (v < lo) goto bad;
  *out = v;
  return 0;
bad:
  deco_cli_error("%s: '%s' is not an integer in [%lld, %lld]", opt, s, lo, hi);
  return DECO_EXIT_USAGE;
}

/* The options other than paths that take a value: each reads its value v
 * (a: the option's name) into o; 0 or DECO_EXIT_USAGE. */
typedef int (*setting_fn)(const char *a, const char *v, compress_options_t *o);

/* An int setting in [1, hi] into *field; 0 or DECO_EXIT_USAGE. */
static int set_int(const char *a, const char *v, long long hi, int *field) {
  long long n = 0;
  if (parse_ll(a, v, 1, hi, &n) != 0) return DECO_EXIT_USAGE;
  *field = (int)n;
  return 0;
}

static int set_kv_heads(const char *a, const char *v, compress_options_t *o) {
  return set_int(a, v, 4096, &o->kv_heads);
}

static int set_calib_tokens(const char *a, const char *v, compress_options_t *o) {
  return parse_ll(a, v, 1, 1LL << 40, &o->calib_tokens) != 0 ? DECO_EXIT_USAGE : 0;
}

static int set_threads(const char *a, const char *v, compress_options_t *o) {
  return set_int(a, v, DECO_MAX_THREADS, &o->threads);
}

static int set_method(const char *a, const char *v, compress_options_t *o) {
  static const char *const methods[] = {"svd", "mean", "keep"};
  static const int method_ids[] = {DECO_COMPRESS_SVD, DECO_COMPRESS_MEAN, DECO_COMPRESS_KEEP};
  static const deco_cli_words_t method_words = {methods, method_ids, 3, "svd, mean or keep"};
  int w;
  o->method_set = 1;
  if (deco_cli_parse_word(a, v, &method_words, &w)) return DECO_EXIT_USAGE;
  o->method = (deco_compress_method_t)w;
  return 0;
}

static int set_solver(const char *a, const char *v, compress_options_t *o) {
  static const char *const solvers[] = {"auto", "lapack", "cusolver"};
  static const int solver_ids[] = {DECO_COMPRESS_SOLVER_AUTO, DECO_COMPRESS_SOLVER_LAPACK,
                                   DECO_COMPRESS_SOLVER_CUSOLVER};
  static const deco_cli_words_t solver_words = {solvers, solver_ids, 3, "auto, lapack or cusolver"};
  int w;
  if (deco_cli_parse_word(a, v, &solver_words, &w)) return DECO_EXIT_USAGE;
  o->solver = (deco_compress_solver_t)w;
  return 0;
}

static int set_backend(const char *a, const char *v, compress_options_t *o) {
  int w;
  o->backend_set = 1;
  if (deco_cli_parse_word(a, v, &deco_cli_backend_words, &w)) return DECO_EXIT_USAGE;
  o->backend = (deco_backend_t)w;
  return 0;
}

/* The setting option a names, or NULL when it names none. */
static setting_fn find_setting(const char *a) {
  static const struct {
    const char *name;
    setting_fn set;
  } settings[] = {{"--kv-heads", set_kv_heads}, {"--method", set_method},   {"--calib-tokens", set_calib_tokens},
                  {"--backend", set_backend},   {"--threads", set_threads}, {"--solver", set_solver}};
  for (size_t k = 0; k < sizeof settings / sizeof settings[0]; ++k)
    if (strcmp(a, settings[k].name) == 0) return settings[k].set;
  return NULL;
}

static int parse(int argc, char **argv, compress_options_t *o) {
  static const char *const paths[] = {"--model", "--calib", "--calib-ids", "--tokenizer", "--out"};
  *o = (compress_options_t){.method = DECO_COMPRESS_SVD, .solver = DECO_COMPRESS_SOLVER_AUTO};
  const char **const path_fields[] = {&o->model, &o->calib, &o->calib_ids, &o->tokenizer, &o->out};
  _Static_assert(sizeof paths / sizeof *paths == sizeof path_fields / sizeof *path_fields, "one field per option");
  if (deco_cli_asks_help(argc, argv)) return DECO_CLI_HELP;
  for (int i = 0; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--force") == 0) {
      o->force = 1;
      continue;
    }
    const char **slot = deco_cli_text_field(a, paths, path_fields, (int)(sizeof paths / sizeof *paths));
    const setting_fn set = find_setting(a); /* NULL for the paths */
    if (!slot && !set) {
      deco_cli_error("compress: unknown option '%s' (see deco compress --help)", a);
      return DECO_EXIT_USAGE;
    }
    const char *v = deco_cli_option_value(argc, argv, &i);
    if (!v) return DECO_EXIT_USAGE;
    if (slot) *slot = v;
    else if (set(a, v, o) != 0) return DECO_EXIT_USAGE;
  }
  if (!o->model || !o->out || !o->kv_heads || !o->method_set) {
    deco_cli_error("compress needs --model IN, --kv-heads N, --method svd|mean|keep and --out OUT");
    return DECO_EXIT_USAGE;
  }
  if (!o->calib == !o->calib_ids) {
    deco_cli_error("compress needs exactly one of --calib FILE and --calib-ids FILE");
    return DECO_EXIT_USAGE;
  }
  return 0;
}

typedef struct ids_sink {
  const char *path;
  deco_cli_ids_t *b;
} ids_sink_t;

static int add_sequence(void *user, const int32_t *ids, int n, int line) {
  ids_sink_t *k = user;
  (void)line;
  return deco_cli_ids_append(k->b, ids, (size_t)n, k->path);
}

/* --calib-ids: the --print-ids format, one sequence per line (empty lines
 * skipped); the sequences are calibrated back to back. */
static int read_ids(const char *path, char *text, size_t size, int vocab, deco_cli_ids_t *b) {
  ids_sink_t k = {.path = path, .b = b};
  return deco_cli_read_id_lines(path, text, size, vocab, add_sequence, &k);
}

/* --calib: the file's bytes encoded whole by the prompt rule. */
static int read_text(const compress_options_t *o, const char *text, size_t len, int vocab, deco_cli_ids_t *b) {
  deco_tokenizer_t *tok = NULL;
  deco_status_t s;
  const int gguf = deco_cli_is_gguf(o->model);
  if (gguf < 0) return -1;
  if (gguf) {
    s = deco_tokenizer_load_gguf(o->model, &tok); /* run() refused --tokenizer */
  } else if (o->tokenizer) {
    s = deco_tokenizer_load(o->tokenizer, vocab, &tok);
  } else {
    deco_cli_error("--calib needs --tokenizer: %s is a llama2.c checkpoint (or give --calib-ids)", o->model);
    return -1;
  }
  if (s != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return -1;
  }
  const int rc = deco_cli_ids_encode(b, tok, text, len, o->calib);
  deco_tokenizer_destroy(tok);
  return rc;
}

typedef struct progress_state {
  int printed; /* tenths reported */
} progress_state_t;

/* One line per tenth of the calibration, on runs of several chunks. */
static void on_progress(void *user, size_t done, size_t total) {
  progress_state_t *p = user;
  if (total <= 4096) return;
  const int tenth = (int)(done * 10 / total);
  if (tenth > p->printed) {
    p->printed = tenth;
    fprintf(stderr, "compress: calibrated %zu/%zu tokens\n", done, total);
  }
}

static const char *method_name(deco_compress_method_t m) {
  return m == DECO_COMPRESS_SVD ? "svd" : m == DECO_COMPRESS_MEAN ? "mean" : "keep";
}

/* What one run holds, freed by finish_run. */
typedef struct compress_run {
  deco_model_hparams_t hp;
  char *text; /* the calibration file */
  deco_cli_ids_t ids;
  size_t n; /* the calibration tokens used: ids.n, or --calib-tokens fewer */
  deco_ctx_t *ctx;
  const char *tmp; /* the temporary file next to OUT once made (g_tmp_path) */
  double *ke, *ve; /* per-layer energies kept */
} compress_run_t;

/* The calibration ids from --calib or --calib-ids into r (text, ids, n);
 * 0, or -1 once reported. */
static int load_calibration(const compress_options_t *o, compress_run_t *r) {
  const char *in = o->calib ? o->calib : o->calib_ids;
  size_t size = 0;
  if (!(r->text = deco_cli_read_file(in, &size))) return -1;
  if ((o->calib ? read_text(o, r->text, size, r->hp.vocab_size, &r->ids)
                : read_ids(in, r->text, size, r->hp.vocab_size, &r->ids)) != 0)
    return -1;
  r->n = r->ids.n;
  if (o->calib_tokens > 0 && (size_t)o->calib_tokens < r->n) r->n = (size_t)o->calib_tokens;
  return 0;
}

/* While the temporary file exists, a signal that ends the run (Ctrl-C, kill,
 * a closed terminal) removes it first, then ends the run as it would have:
 * an interrupted run leaves no OUT.tmp.* behind. A signal the caller ignores
 * stays ignored. */
static const int k_ending_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_ENDING (sizeof k_ending_signals / sizeof k_ending_signals[0])
static char g_tmp_path[4096];
static volatile sig_atomic_t g_tmp_armed;
static struct sigaction g_old_actions[N_ENDING];
static int g_replaced[N_ENDING];

static void on_ending_signal(int sig) {
  if (g_tmp_armed) unlink(g_tmp_path);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void unguard_tmp(void) {
  for (size_t k = 0; k < N_ENDING; ++k)
    if (g_replaced[k]) sigaction(k_ending_signals[k], &g_old_actions[k], NULL);
  g_tmp_armed = 0;
}

/* mkstemp on OUT.tmp.XXXXXX in g_tmp_path, the handler armed before the file
 * exists, so that no moment leaves it unguarded; the descriptor, or -1 with
 * errno. */
static int make_guarded_tmp(const char *out) {
  if ((size_t)snprintf(g_tmp_path, sizeof g_tmp_path, "%s.tmp.XXXXXX", out) >= sizeof g_tmp_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_ending_signal;
  sigemptyset(&sa.sa_mask);
  g_tmp_armed = 1;
  for (size_t k = 0; k < N_ENDING; ++k) {
    g_replaced[k] = sigaction(k_ending_signals[k], NULL, &g_old_actions[k]) == 0 &&
                    g_old_actions[k].sa_handler != SIG_IGN && sigaction(k_ending_signals[k], &sa, NULL) == 0;
  }
  const int fd = mkstemp(g_tmp_path);
  if (fd < 0) {
    const int e = errno;
    unguard_tmp();
    errno = e;
  }
  return fd;
}

/* The context (--backend, else CUDA when a device is there), the energy
 * arrays and the temporary file next to OUT, so that the rename stays on
 * one file system; 0, or -1 once reported. */
static int prepare_output(const compress_options_t *o, compress_run_t *r) {
  const deco_backend_t backend = deco_cli_backend_or_default(o->backend_set, o->backend);
  if (!(r->ctx = deco_cli_ctx_create(backend, o->threads))) return -1;
  r->ke = calloc((size_t)r->hp.n_layers, sizeof(double));
  r->ve = calloc((size_t)r->hp.n_layers, sizeof(double));
  if (!r->ke || !r->ve) {
    deco_cli_error("out of memory");
    return -1;
  }
  const int fd = make_guarded_tmp(o->out);
  if (fd < 0) {
    deco_cli_error("cannot write %s: %s", o->out, strerror(errno));
    return -1;
  }
  close(fd);
  r->tmp = g_tmp_path;
  return 0;
}

/* The compressed model into the temporary file, the energies into ke, ve;
 * 0, or -1 once reported. */
static int compress_to_tmp(const compress_options_t *o, compress_run_t *r) {
  progress_state_t ps = {0};
  deco_compress_config_t cfg = DECO_COMPRESS_CONFIG_INIT;
  cfg.n_kv_heads = o->kv_heads;
  cfg.method = o->method;
  cfg.solver = o->solver;
  cfg.progress = on_progress;
  cfg.progress_user = &ps;
  deco_compress_report_t rep = {.key_energy = r->ke, .value_energy = r->ve};
  if (deco_compress_model(r->ctx, o->model, r->ids.v, r->n, &cfg, r->tmp, &rep) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(r->ctx));
    return -1;
  }
  return 0;
}

/* The temporary file becomes OUT, with an ordinary new file's permissions;
 * 0, or -1 once reported. */
static int publish(const compress_options_t *o, const char *tmp) {
  /* mkstemp made it 0600: the permissions of an ordinary new file. */
  const mode_t mask = umask(0);
  umask(mask);
  if (chmod(tmp, 0666 & ~mask) != 0) {
    deco_cli_error("cannot write %s: %s", o->out, strerror(errno));
    return -1;
  }
  /* Without --force, link() refuses an OUT that appeared meanwhile. */
  if (o->force ? rename(tmp, o->out) != 0 : link(tmp, o->out) != 0) {
    deco_cli_error(errno == EEXIST ? "%s exists (give --force to replace it)" : "cannot write %s: %s", o->out,
                   strerror(errno));
    return -1;
  }
  return 0;
}

/* The per-layer energies kept, then the summary line, on stderr. */
static void report(const compress_options_t *o, const compress_run_t *r) {
  for (int l = 0; l < r->hp.n_layers; ++l)
    fprintf(stderr, "compress: layer=%d key_energy=%.6f value_energy=%.6f\n", l, r->ke[l], r->ve[l]);
  fprintf(stderr, "compress: method=%s kv_heads=%d->%d calib_tokens=%zu out=%s\n", method_name(o->method),
          r->hp.n_kv_heads, o->kv_heads, r->n, o->out);
}

/* Frees the inputs, the context and the outputs; the temporary file goes
 * too (renamed: already gone; linked: OUT stays). */
static void finish_run(compress_run_t *r) {
  free(r->text);
  free(r->ids.v);
  deco_ctx_destroy(r->ctx);
  if (r->tmp) unlink(r->tmp);
  unguard_tmp();
  free(r->ke);
  free(r->ve);
}

static int run(const compress_options_t *o) {
  compress_run_t r = {0};
  struct stat st;
  /* --force replaces a file, never a device, a FIFO or a folder (the
   * rename would put the checkpoint in /dev/null's place, or fail only
   * after the calibration). */
  if (stat(o->out, &st) == 0 && (!o->force || !S_ISREG(st.st_mode))) {
    deco_cli_error(S_ISREG(st.st_mode) ? "%s exists (give --force to replace it)"
                                       : "cannot write %s: not a regular file",
                   o->out);
    return DECO_EXIT_BAD_INPUT;
  }
  if (deco_model_read_hparams(o->model, &r.hp) != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s", deco_last_error(NULL));
    return DECO_EXIT_BAD_INPUT;
  }
  /* Refused with --calib-ids too, as every command refuses it. */
  const int gguf = o->tokenizer ? deco_cli_is_gguf(o->model) : 0;
  if (gguf < 0) return DECO_EXIT_BAD_INPUT;
  if (gguf) {
    deco_cli_error("--tokenizer: %s is a GGUF file and carries its own vocabulary", o->model);
    return DECO_EXIT_BAD_INPUT;
  }
  const int ok = load_calibration(o, &r) == 0 && prepare_output(o, &r) == 0 && compress_to_tmp(o, &r) == 0 &&
                 publish(o, r.tmp) == 0;
  if (ok) report(o, &r);
  finish_run(&r);
  return ok ? DECO_EXIT_OK : DECO_EXIT_BAD_INPUT;
}

int deco_cli_compress(int argc, char **argv) {
  /* Under a launcher with several ranks only rank 0 runs (docs/CLI.md). */
  const int launch_exit = deco_cli_launch_exit(argc, argv);
  if (launch_exit >= 0) return launch_exit;
  compress_options_t o;
  const int rc = parse(argc, argv, &o);
  if (rc == DECO_CLI_HELP) {
    compress_usage(stdout);
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  if (rc != 0) return rc;
  return run(&o);
}
