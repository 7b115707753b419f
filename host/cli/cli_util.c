/* host/cli/cli_util.c — option reading, file reading, the GGUF check and
 * the launcher rank shared by the `deco` commands (cli_util.h).
 */
#define _GNU_SOURCE
#include "cli/cli_util.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "deco/comm.h"
#include "deco/tokenizer.h"

int deco_cli_asks_help(int argc, char **argv) {
  for (int i = 0; i < argc; ++i)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
  return 0;
}

const char *deco_cli_option_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    deco_cli_error("%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

static const char *const backend_names[] = {"cpu", "cuda"}, *const dtype_names[] = {"f32", "bf16"};
static const int backend_values[] = {DECO_BACKEND_CPU, DECO_BACKEND_CUDA},
                 dtype_values[] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
const deco_cli_words_t deco_cli_backend_words = {backend_names, backend_values, 2, "cpu or cuda"},
                       deco_cli_dtype_words = {dtype_names, dtype_values, 2, "f32 or bf16"};

int deco_cli_parse_word(const char *opt, const char *v, const deco_cli_words_t *words, int *out) {
  for (int i = 0; i < words->n; ++i)
    if (strcmp(v, words->names[i]) == 0) {
      *out = words->values[i];
      return 0;
    }
  deco_cli_error("%s: '%s' is not %s", opt, v, words->expected);
  return -1;
}

const char **deco_cli_text_field(const char *a, const char *const *names, const char **const *fields, int n) {
  for (int k = 0; k < n; ++k)
    if (strcmp(a, names[k]) == 0) return fields[k];
  return NULL;
}

deco_backend_t deco_cli_backend_or_default(int set, deco_backend_t asked) {
  if (set) return asked;
  return deco_cuda_device_count() > 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
}

int deco_cli_dtype_for(deco_backend_t backend, int set, deco_dtype_t asked, deco_dtype_t *dtype) {
  *dtype = set ? asked : (backend == DECO_BACKEND_CUDA ? DECO_DTYPE_BF16 : DECO_DTYPE_F32);
  if (backend == DECO_BACKEND_CPU && *dtype != DECO_DTYPE_F32) {
    deco_cli_error("--dtype: %s is not supported by the cpu backend (use f32)", deco_dtype_name(*dtype));
    return -1;
  }
  return 0;
}

deco_ctx_t *deco_cli_ctx_create(deco_backend_t backend, int threads) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = backend;
  deco_ctx_t *ctx = NULL;
  if (deco_ctx_create(&cc, &ctx) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--backend %s: %s", deco_backend_name(backend), deco_last_error(NULL));
    return NULL;
  }
  if (threads > 0 && deco_ctx_set_threads(ctx, threads) != DECO_STATUS_SUCCESS) {
    deco_cli_error("--threads: %s", deco_last_error(ctx));
    deco_ctx_destroy(ctx);
    return NULL;
  }
  return ctx;
}

int deco_cli_close_stdout(int rc) {
  errno = 0;
  if (fclose(stdout) != 0 && errno != EPIPE && rc == DECO_EXIT_OK) {
    deco_cli_error("stdout: %s", strerror(errno ? errno : EIO));
    return DECO_EXIT_BAD_INPUT;
  }
  return rc;
}

int deco_cli_open_regular(const char *path, int report, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (report) deco_cli_error("cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    if (report) deco_cli_error("cannot read %s: not a regular file", path);
    close(fd);
    return -1;
  }
  return fd;
}

char *deco_cli_read_file(const char *path, size_t *size) {
  struct stat st;
  const int fd = deco_cli_open_regular(path, 1, &st);
  if (fd < 0) return NULL;
  const size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  size_t done = 0;
  while (buf && done < n) {
    const ssize_t r = read(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += (size_t)r;
  }
  close(fd);
  if (!buf || done != n) {
    deco_cli_error(buf ? "cannot read %s: it changed while it was read" : "cannot read %s: out of memory", path);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *size = n;
  return buf;
}

/* Room for at least want ids; -1 after "path: out of memory". */
static int ids_reserve(deco_cli_ids_t *b, size_t want, const char *path) {
  if (want <= b->cap) return 0;
  size_t cap = b->cap ? 2 * b->cap : 1024;
  if (cap < want) cap = want;
  int32_t *g = realloc(b->v, sizeof(int32_t) * cap);
  if (!g) {
    deco_cli_error("%s: out of memory", path);
    return -1;
  }
  b->v = g;
  b->cap = cap;
  return 0;
}

int deco_cli_ids_append(deco_cli_ids_t *b, const int32_t *ids, size_t n, const char *path) {
  if (ids_reserve(b, b->n + n, path)) return -1;
  memcpy(b->v + b->n, ids, sizeof(int32_t) * n);
  b->n += n;
  return 0;
}

int deco_cli_ids_encode(deco_cli_ids_t *b, const struct deco_tokenizer *tok, const char *text, size_t len,
                        const char *path) {
  int n = 0;
  deco_status_t s = deco_tokenizer_tokenize(tok, text, len, DECO_TOKENIZE_ADD_SPECIAL, NULL, 0, &n);
  if (s == DECO_STATUS_CAPACITY) {
    if (ids_reserve(b, b->n + (size_t)n, path)) return -1;
    s = deco_tokenizer_tokenize(tok, text, len, DECO_TOKENIZE_ADD_SPECIAL, b->v + b->n, n, &n);
  }
  if (s != DECO_STATUS_SUCCESS) {
    deco_cli_error("%s: %s", path, deco_last_error(NULL));
    return -1;
  }
  b->n += (size_t)n;
  return 0;
}

/* The --print-ids reader's state: where the messages point and the ids of
 * the current line. */
typedef struct id_reader {
  const char *path;
  int vocab;
  int number; /* the current line, from 1 */
  deco_cli_ids_t ids;
} id_reader_t;

/* The decimal id at *q (a digit), below the vocabulary; *q moves past its
 * digits. 0 or -1 after the message. */
static int read_id(const id_reader_t *r, const char **q, int32_t *id) {
  const char *digits = *q, *p = *q;
  long long v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) v = v < (1LL << 40) ? v * 10 + (*p - '0') : v; /* saturates */
  *q = p;
  if (v >= r->vocab) {
    deco_cli_error("%s:%d: id %.*s >= vocab %d", r->path, r->number, (int)(p - digits > 24 ? 24 : p - digits), digits,
                   r->vocab);
    return -1;
  }
  *id = (int32_t)v;
  return 0;
}

/* The ids of the line at p (NUL-terminated), separated by single spaces,
 * into r->ids. 0 or -1 after the message. */
static int read_id_line(id_reader_t *r, const char *p) {
  r->ids.n = 0;
  for (const char *q = p; *q;) {
    if (r->ids.n >= (size_t)INT_MAX) {
      deco_cli_error("%s:%d: more than %d ids on one line", r->path, r->number, INT_MAX);
      return -1;
    }
    if (r->ids.n > 0) {
      if (*q != ' ' || q[1] < '0' || q[1] > '9') {
        deco_cli_error("%s:%d: expected one space then an id at column %d", r->path, r->number, (int)(q - p) + 1);
        return -1;
      }
      q++;
    }
    if (*q < '0' || *q > '9') {
      deco_cli_error("%s:%d: expected a decimal id at column %d", r->path, r->number, (int)(q - p) + 1);
      return -1;
    }
    int32_t id;
    if (read_id(r, &q, &id) != 0 || deco_cli_ids_append(&r->ids, &id, 1, r->path) != 0) return -1;
  }
  return 0;
}

int deco_cli_read_id_lines(const char *path, char *text, size_t size, int vocab,
                           int (*line)(void *user, const int32_t *ids, int n, int line_number), void *user) {
  id_reader_t r = {.path = path, .vocab = vocab};
  int rc = 0;
  for (char *p = text, *stop = text + size; p < stop && rc == 0;) {
    char *end = memchr(p, '\n', (size_t)(stop - p));
    const char *nul = memchr(p, '\0', (size_t)((end ? end : stop) - p));
    r.number++;
    if (nul) {
      deco_cli_error("%s:%d: a NUL byte at column %d", path, r.number, (int)(nul - p) + 1);
      rc = -1;
      break;
    }
    if (end) *end = '\0';
    rc = read_id_line(&r, p);
    if (rc == 0 && r.ids.n > 0) rc = line(user, r.ids.v, (int)r.ids.n, r.number);
    if (!end) break;
    p = end + 1;
  }
  free(r.ids.v);
  return rc;
}

int deco_cli_is_gguf(const char *path) {
  struct stat st;
  const int fd = deco_cli_open_regular(path, 1, &st);
  if (fd < 0) return -1;
  char magic[4];
  ssize_t got;
  do got = read(fd, magic, sizeof magic);
  while (got < 0 && errno == EINTR);
  close(fd);
  return got == (ssize_t)sizeof magic && memcmp(magic, "GGUF", 4) == 0;
}

int deco_cli_launch_env(deco_comm_env_t *env) {
  const int found = deco_comm_env_read(env);
  if (found < 0) deco_cli_error("launcher environment: %s", deco_last_error(NULL));
  return found;
}

int deco_cli_launch_exit(int argc, char **argv) {
  if (deco_cli_asks_help(argc, argv)) return -1;
  deco_comm_env_t env;
  const int found = deco_cli_launch_env(&env);
  if (found < 0) return DECO_EXIT_USAGE;
  return found > 0 && env.size > 1 && env.rank > 0 ? DECO_EXIT_OK : -1;
}

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

uint64_t deco_cli_tokenizer_hash(const deco_tokenizer_t *tok) {
  uint64_t h = 0xcbf29ce484222325ull;
  const int n = deco_tokenizer_vocab_size(tok);
  for (int32_t id = 0; id < n; ++id) {
    size_t len = 0;
    const char *text = deco_tokenizer_token_text(tok, id, &len);
    const uint64_t len64 = text ? (uint64_t)len : UINT64_MAX;
    const int32_t type = deco_tokenizer_token_type(tok, id);
    h = fnv(h, &len64, sizeof len64);
    if (text) h = fnv(h, text, len);
    h = fnv(h, &type, sizeof type);
  }
  return h ? h : 1;
}
