/* tests/common/testutil.c — see testutil.h. */
#define _GNU_SOURCE
#include "common/testutil.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <regex.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *deco_test_data_dir(void) {
  const char *env = getenv("DECO_DATA_DIR");
  return (env && *env) ? env : DECO_DATA_DIR_DEFAULT;
}

const char *deco_test_data_file(const char *rel) {
  static char bufs[8][PATH_MAX];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, PATH_MAX, "%s/%s", deco_test_data_dir(), rel);
  struct stat st;
  if (stat(b, &st) != 0)
    cr_assert_fail("missing data file %s: %s (data/ of the repository, or the folder DECO_DATA_DIR names)", b,
                   strerror(errno));
  return b;
}

const char *deco_test_models_dir(void) {
  const char *env = getenv("DECO_MODELS_DIR");
  return (env && *env) ? env : DECO_MODELS_DIR_DEFAULT;
}

const char *deco_test_model_file(const char *name) {
  static char bufs[8][PATH_MAX];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, PATH_MAX, "%s/%s", deco_test_models_dir(), name);
  struct stat st;
  if (stat(b, &st) != 0)
    cr_assert_fail("missing model %s: %s (scripts/install-deps.sh --models fetches SmolLM2-135M-Instruct.Q4_1.gguf, "
                   ".venv-gguf/bin/python scripts/gguf/make_mini.py writes SmolLM2-135M-mini.gguf; DECO_MODELS_DIR "
                   "names another folder)",
                   b, strerror(errno));
  return b;
}

void *deco_test_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0) {
    fclose(f);
    return NULL;
  }
  long len = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)len + 1);
  if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
    free(buf);
    fclose(f);
    return NULL;
  }
  buf[len] = '\0';
  fclose(f);
  if (size) *size = (size_t)len;
  return buf;
}

int deco_test_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(data, 1, size, f);
  return (fclose(f) == 0 && w == size) ? 0 : -1;
}

void deco_test_expect_same_file(const char *msg, const char *a, const char *b) {
  size_t na = 0, nb = 0;
  char *fa = deco_test_read_file(a, &na), *fb = deco_test_read_file(b, &nb);
  cr_assert(fa && fb && na == nb && memcmp(fa, fb, na) == 0, "%s", msg);
  free(fa);
  free(fb);
}

int32_t *deco_test_read_ids(const char *path, int *n) {
  size_t size;
  char *text = deco_test_read_file(path, &size);
  if (!text) return NULL;
  int cap = 64, count = 0;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
  char *p = text;
  while (*p) {
    while (*p && (*p == ' ' || *p == ',' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    if (!*p) break;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) {
      free(ids);
      free(text);
      return NULL;
    }
    if (count == cap) {
      cap *= 2;
      ids = realloc(ids, sizeof(int32_t) * (size_t)cap);
    }
    ids[count++] = (int32_t)v;
    p = end;
  }
  free(text);
  *n = count;
  return ids;
}

char *deco_test_fixture_line(const char *rel) {
  size_t size;
  char *text = deco_test_read_file(deco_test_data_file(rel), &size);
  if (!text) cr_assert_fail("cannot read fixture %s", rel);
  while (size && (text[size - 1] == '\n' || text[size - 1] == ' ')) text[--size] = '\0';
  char *line = malloc(size + 2);
  snprintf(line, size + 2, "%s\n", text);
  free(text);
  return line;
}

void deco_test_expect_fixture_out(const char *what, const deco_test_run_t *r, const char *rel) {
  cr_assert_eq(r->status, 0, "%s: exit %d; stderr: %s", what, r->status, r->err);
  char *expect = deco_test_fixture_line(rel);
  cr_assert_str_eq(r->out, expect, "%s: stdout is not %s", what, rel);
  free(expect);
}

static char tmpdir_path[PATH_MAX];
static pid_t tmpdir_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_tree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Criterion runs each test in a child process; only the process that made the
 * directory removes it, so a directory made before a fork outlives the fork. */
static void remove_tmpdir(void) {
  if (tmpdir_path[0] && getpid() == tmpdir_owner) remove_tree(tmpdir_path);
}

static const char *tmp_base(void) {
  const char *base = getenv("TMPDIR");
  return base && *base ? base : "/tmp";
}

/* The folders are named after the runner, the test process's parent, so that
 * the runner removes those of the tests that did not exit (a crash, a
 * timeout): deco-test-<runner pid>-XXXXXX. */
const char *deco_test_tmpdir(void) {
  if (!tmpdir_path[0]) {
    snprintf(tmpdir_path, sizeof tmpdir_path, "%s/deco-test-%ld-XXXXXX", tmp_base(), (long)getppid());
    if (!mkdtemp(tmpdir_path)) cr_assert_fail("mkdtemp failed: %s", strerror(errno));
    tmpdir_owner = getpid();
    atexit(remove_tmpdir);
  }
  return tmpdir_path;
}

/* In the runner, after every test: what its tests left behind. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
  (void)stats;
  char prefix[64];
  const int n = snprintf(prefix, sizeof prefix, "deco-test-%ld-", (long)getpid());
  DIR *d = opendir(tmp_base());
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, prefix, (size_t)n) != 0) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmp_base(), e->d_name);
    remove_tree(path);
  }
  closedir(d);
}

size_t deco_test_compare(const char *what, const float *a, const float *r, size_t n, float atol, float rtol) {
  size_t bad = 0, worst = 0;
  double max_err = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double diff = fabs((double)a[i] - (double)r[i]);
    double tol = (double)atol + (double)rtol * fabs((double)r[i]);
    if (!(diff <= tol)) {
      if (bad < 5) fprintf(stderr, "  %s[%zu]: got %.9g expected %.9g (|diff| %.3g > tol %.3g)\n", what, i, a[i], r[i], diff, tol);
      bad++;
    }
    if (!(diff <= max_err)) {
      max_err = diff;
      worst = i;
    }
  }
  if (bad)
    fprintf(stderr, "%s: %zu of %zu elements outside %.1e + %.1e|r| (max |diff| %.3g at %zu)\n", what, bad, n,
            (double)atol, (double)rtol, max_err, worst);
  return bad;
}

size_t deco_test_compare_i32(const char *what, const int32_t *a, const int32_t *r, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != r[i]) {
      if (bad < 5) fprintf(stderr, "  %s[%zu]: got %d expected %d\n", what, i, a[i], r[i]);
      bad++;
    }
  }
  if (bad) fprintf(stderr, "%s: %zu of %zu integers differ\n", what, bad, n);
  return bad;
}

void deco_test_fill_uniform(float *x, size_t n, uint64_t seed, uint32_t stream, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) {
    deco_philox_u32x4_t r = deco_philox4x32_10((uint32_t)i, (uint32_t)((uint64_t)i >> 32), stream, 0x7e57u,
                                               (uint32_t)seed, (uint32_t)(seed >> 32));
    x[i] = lo + (hi - lo) * deco_philox_to_unit(r.v[0]);
  }
}

void deco_test_round_to(float *x, size_t n, deco_dtype_t dtype) {
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DECO_DTYPE_BF16) x[i] = deco_bf16_to_f32(deco_f32_to_bf16(x[i]));
    else if (dtype == DECO_DTYPE_F16) x[i] = deco_f16_to_f32(deco_f32_to_f16(x[i]));
  }
}

void deco_test_pack(void *dst, const float *src, size_t n, deco_dtype_t dtype) {
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DECO_DTYPE_F32) ((float *)dst)[i] = src[i];
    else if (dtype == DECO_DTYPE_BF16) ((uint16_t *)dst)[i] = deco_f32_to_bf16(src[i]);
    else ((uint16_t *)dst)[i] = deco_f32_to_f16(src[i]);
  }
}

void deco_test_unpack(float *dst, const void *src, size_t n, deco_dtype_t dtype) {
  for (size_t i = 0; i < n; ++i) {
    if (dtype == DECO_DTYPE_F32) dst[i] = ((const float *)src)[i];
    else if (dtype == DECO_DTYPE_BF16) dst[i] = deco_bf16_to_f32(((const uint16_t *)src)[i]);
    else dst[i] = deco_f16_to_f32(((const uint16_t *)src)[i]);
  }
}

#define DECO_TEST_GUARD_BYTES 256
static const unsigned char guard_pattern[4] = {0xde, 0xc0, 0x5a, 0xfe};

deco_test_buf_t deco_test_buf_alloc(deco_ctx_t *ctx, size_t bytes) {
  deco_test_buf_t b = {ctx, NULL, bytes};
  deco_status_t st = deco_malloc(ctx, &b.ptr, bytes + DECO_TEST_GUARD_BYTES);
  cr_assert_eq(st, DECO_STATUS_SUCCESS, "deco_malloc(%zu): %s", bytes, deco_last_error(ctx));
  deco_test_buf_poison(&b);
  return b;
}

void deco_test_buf_free(deco_test_buf_t *b) {
  deco_free(b->ctx, b->ptr);
  b->ptr = NULL;
}

void deco_test_buf_upload(deco_test_buf_t *b, const void *host, size_t bytes) {
  cr_assert_leq(bytes, b->bytes);
  deco_status_t st = deco_memcpy(b->ctx, b->ptr, host, bytes, DECO_COPY_HOST_TO_CTX);
  cr_assert_eq(st, DECO_STATUS_SUCCESS, "upload: %s", deco_last_error(b->ctx));
}

void deco_test_buf_download(const deco_test_buf_t *b, void *host, size_t bytes) {
  cr_assert_leq(bytes, b->bytes);
  deco_status_t st = deco_memcpy(b->ctx, host, b->ptr, bytes, DECO_COPY_CTX_TO_HOST);
  cr_assert_eq(st, DECO_STATUS_SUCCESS, "download: %s", deco_last_error(b->ctx));
}

void deco_test_buf_poison(deco_test_buf_t *b) {
  unsigned char guard[DECO_TEST_GUARD_BYTES];
  for (int i = 0; i < DECO_TEST_GUARD_BYTES; ++i) guard[i] = guard_pattern[i % 4];
  cr_assert_eq(deco_memset(b->ctx, b->ptr, 0xFF, b->bytes), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(b->ctx, (char *)b->ptr + b->bytes, guard, sizeof guard, DECO_COPY_HOST_TO_CTX),
               DECO_STATUS_SUCCESS);
}

int deco_test_buf_guard_ok(const deco_test_buf_t *b) {
  unsigned char guard[DECO_TEST_GUARD_BYTES];
  cr_assert_eq(deco_memcpy(b->ctx, guard, (char *)b->ptr + b->bytes, sizeof guard, DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  for (int i = 0; i < DECO_TEST_GUARD_BYTES; ++i)
    if (guard[i] != guard_pattern[i % 4]) {
      fprintf(stderr, "guard word overwritten %d bytes past the end of a %zu-byte buffer\n", i, b->bytes);
      return 0;
    }
  return 1;
}

static const char *cli_path(void) {
  static char path[PATH_MAX];
  const char *env = getenv("DECO_CLI");
  if (env && *env) return env;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "deco";
  self[n] = '\0';
  snprintf(path, sizeof path, "%s/deco", dirname(self));
  return path;
}

static char *slurp_fd(int fd) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  lseek(fd, 0, SEEK_SET);
  for (;;) {
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r <= 0) break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  return buf;
}

/* Starts the CLI as a child whose descriptors 0..2 are /dev/null, stdout as
 * mode says (out_fd, /dev/full, closed, or pipe_w) and err_fd. The child dies
 * with this process (a test killed at its timeout takes its deco with it).
 * The child's pid, or -1 with errno when it could not start. */
static pid_t spawn_cli(const char *const *full, deco_test_stdout_t mode, int out_fd, int err_fd, int pipe_w) {
  int report[2]; /* the child's exec errno; closed by a successful exec */
  if (pipe2(report, O_CLOEXEC) != 0) return -1;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    errno = 0;
    int ok = prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() == parent;
    const int null_in = open("/dev/null", O_RDONLY);
    ok = ok && null_in >= 0 && dup2(null_in, 0) == 0;
    if (null_in > 0) close(null_in); /* only the copies on 0..2 go to deco */
    switch (mode) {
    case DECO_TEST_STDOUT_CAPTURE: ok = ok && dup2(out_fd, 1) == 1; break;
    case DECO_TEST_STDOUT_FULL: {
      const int full_fd = open("/dev/full", O_WRONLY);
      ok = ok && full_fd >= 0 && dup2(full_fd, 1) == 1;
      if (full_fd > 1) close(full_fd);
      break;
    }
    case DECO_TEST_STDOUT_CLOSED: close(1); break;
    case DECO_TEST_STDOUT_BROKEN_PIPE: ok = ok && dup2(pipe_w, 1) == 1; break;
    }
    ok = ok && dup2(err_fd, 2) == 2;
    if (ok) execve(full[0], (char *const *)full, environ);
    const int e = errno ? errno : EIO; /* the failed step's */
    (void)!write(report[1], &e, sizeof e);
    _exit(127);
  }
  close(report[1]);
  int e = 0;
  ssize_t got = 0;
  if (pid > 0)
    do got = read(report[0], &e, sizeof e);
    while (got < 0 && errno == EINTR);
  close(report[0]);
  if (pid < 0) return -1;
  if (got == (ssize_t)sizeof e) { /* exec failed: reap the child */
    waitpid(pid, NULL, 0);
    errno = e;
    return -1;
  }
  return pid;
}

/* The CLI's path, then argv (NULL-terminated); malloc'd. */
static const char **cli_argv(const char *const *argv) {
  int argc = 0;
  while (argv[argc]) argc++;
  const char **full = calloc((size_t)argc + 2, sizeof *full);
  if (!full) cr_assert_fail("out of memory");
  full[0] = cli_path();
  for (int i = 0; i < argc; ++i) full[i + 1] = argv[i];
  return full;
}

pid_t deco_test_start_cli(const char *const *argv, const char *err_path) {
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  const int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const char **full = cli_argv(argv);
  const pid_t pid = null_fd >= 0 && err_fd >= 0 ? spawn_cli(full, DECO_TEST_STDOUT_CAPTURE, null_fd, err_fd, -1) : -1;
  const int e = errno;
  free(full);
  if (null_fd >= 0) close(null_fd);
  if (err_fd >= 0) close(err_fd);
  errno = e;
  return pid;
}

int deco_test_run_cli(const char *const *argv, deco_test_run_t *r) {
  return deco_test_run_cli_stdout(argv, DECO_TEST_STDOUT_CAPTURE, r);
}

int deco_test_run_cli_stdout(const char *const *argv, deco_test_stdout_t mode, deco_test_run_t *r) {
  memset(r, 0, sizeof *r);
  char out_path[PATH_MAX + 32], err_path[PATH_MAX + 32];
  snprintf(out_path, sizeof out_path, "%s/cli-out-XXXXXX", deco_test_tmpdir());
  snprintf(err_path, sizeof err_path, "%s/cli-err-XXXXXX", deco_test_tmpdir());
  int out_fd = mkostemp(out_path, O_CLOEXEC), err_fd = mkostemp(err_path, O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0) return -1;
  int pipe_fd[2] = {-1, -1};
  if (mode == DECO_TEST_STDOUT_BROKEN_PIPE) {
    /* The reader is gone before the program starts: every write gets EPIPE. */
    if (pipe2(pipe_fd, O_CLOEXEC) != 0) return -1;
    close(pipe_fd[0]);
  }
  const char **full = cli_argv(argv);
  const pid_t pid = spawn_cli(full, mode, out_fd, err_fd, pipe_fd[1]);
  free(full);
  if (pipe_fd[1] >= 0) close(pipe_fd[1]);
  if (pid < 0) {
    close(out_fd);
    close(err_fd);
    return -1;
  }
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  r->out = slurp_fd(out_fd);
  r->err = slurp_fd(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return 0;
}

void deco_test_run_free(deco_test_run_t *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

const char *deco_test_last_line(const char *text) {
  static char line[4096];
  size_t len = strlen(text);
  while (len > 0 && text[len - 1] == '\n') len--;
  size_t start = len;
  while (start > 0 && text[start - 1] != '\n') start--;
  size_t n = len - start < sizeof line - 1 ? len - start : sizeof line - 1;
  memcpy(line, text + start, n);
  line[n] = '\0';
  return line;
}

double deco_test_stat(const char *err, const char *key) {
  const char *m = strstr(deco_test_last_line(err), key);
  return m ? atof(m + strlen(key)) : NAN;
}

/* Slots [0, n) of one sequence's K and V in the listed layers of a CPU
 * cache of 16-slot pages, layer by layer, slot by slot, K then V. */
static void read_kv(deco_kv_cache_t *kc, int seq, const int *layers, int n_layers, int n, int kvd, float *out) {
  void *k, *v;
  size_t bytes;
  cr_assert_eq(deco_kv_cache_pools(kc, &k, &v, &bytes), DECO_STATUS_SUCCESS);
  const int P = deco_kv_cache_max_pages(kc), page = 16; /* the model drafter's and the reference's pages */
  int32_t *table = malloc(sizeof(int32_t) * (size_t)P);
  cr_assert_not_null(table);
  cr_assert_eq(deco_kv_cache_block_table(kc, &seq, 1, table), DECO_STATUS_SUCCESS); /* CPU: host memory */
  const int L_all = deco_model_get_hparams(deco_kv_cache_model(kc))->n_layers;
  const size_t layer_elems = bytes / sizeof(float) / (size_t)L_all;
  size_t o = 0;
  for (int li = 0; li < n_layers; ++li)
    for (int t = 0; t < n; ++t)
      for (int w = 0; w < 2; ++w) {
        const float *pool = (const float *)(w ? v : k) + (size_t)layers[li] * layer_elems;
        memcpy(out + o, pool + ((size_t)table[t / page] * page + t % page) * kvd, sizeof(float) * (size_t)kvd);
        o += (size_t)kvd;
      }
  free(table);
}

size_t deco_test_draft_kv_diff(deco_model_t *m, const int *layers, int n_layers, deco_kv_cache_t *kc, int dseq,
                               const int32_t *ids, int n, size_t *elems) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  int *ones = malloc(sizeof(int) * (size_t)n_layers);
  cr_assert_not_null(ones);
  for (int i = 0; i < n_layers; ++i) ones[i] = 1;
  const deco_layer_schedule_t s = {.n_groups = n_layers, .first = layers, .count = ones};
  deco_model_t *view;
  cr_assert_eq(deco_model_create_view(m, &s, &view), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const deco_model_hparams_t *hp = deco_model_get_hparams(m);
  deco_kv_cache_t *ref;
  cr_assert_eq(deco_kv_cache_create(view, 16, (n + 15) / 16 + 1, 1, &ref), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  int rseq;
  cr_assert_eq(deco_kv_cache_admit(ref, n, &rseq), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  float *logits = malloc(sizeof(float) * (size_t)hp->vocab_size);
  cr_assert_not_null(logits);
  const deco_forward_args_t fa = {.n_seqs = 1, .seqs = &rseq, .n_new = &n, .tokens = ids, .embeds = NULL,
                                  .parents = NULL, .logits_mode = DECO_LOGITS_LAST, .logits = logits};
  cr_assert_eq(deco_forward(view, ref, &fa), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  const int kvd = hp->n_kv_heads * hp->head_dim;
  *elems = (size_t)n_layers * (size_t)n * 2 * (size_t)kvd;
  float *a = malloc(sizeof(float) * *elems), *b = malloc(sizeof(float) * *elems);
  cr_assert(a && b);
  read_kv(kc, dseq, layers, n_layers, n, kvd, a);
  read_kv(ref, rseq, layers, n_layers, n, kvd, b);
  size_t diff = 0;
  for (size_t i = 0; i < *elems; ++i) diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
  free(a);
  free(b);
  free(logits);
  free(ones);
  deco_kv_cache_destroy(ref);
  deco_model_destroy(view);
  return diff;
}

deco_test_stories_weights_t deco_test_stories_weights(const void *file) {
  enum { DIM = DECO_STORIES_DIM, HID = DECO_STORIES_HIDDEN, NL = DECO_STORIES_LAYERS, V = DECO_STORIES_VOCAB,
         KVD = DECO_STORIES_KV_HEADS * DECO_STORIES_HEAD_DIM };
  const float *p = (const float *)((const char *)file + 28);
  deco_test_stories_weights_t w;
  w.emb = p, p += V * DIM;
  w.rms_att = p, p += NL * DIM;
  w.wq = p, p += NL * DIM * DIM;
  w.wk = p, p += NL * KVD * DIM;
  w.wv = p, p += NL * KVD * DIM;
  w.wo = p, p += NL * DIM * DIM;
  w.rms_ffn = p, p += NL * DIM;
  w.w1 = p, p += NL * HID * DIM;
  w.w2 = p, p += NL * DIM * HID;
  w.w3 = p, p += NL * HID * DIM;
  w.rms_final = p;
  return w;
}

void *deco_test_stories_overflow(size_t *size) {
  float *w = deco_test_read_file(deco_test_data_file("models/stories260K.bin"), size);
  cr_assert_not_null(w);
  /* Float offsets after the 28-byte header (test_loader checks them):
   * rms_att [5][64] at 32768, rms_ffn [5][64] at 94528, rms_final [64] at 259968. */
  float *base = (float *)((char *)w + 28);
  const size_t at[3] = {32768, 94528, 259968}, n[3] = {320, 320, 64};
  for (int t = 0; t < 3; ++t)
    for (size_t i = 0; i < n[t]; ++i) base[at[t] + i] = 3e38f;
  return w;
}

deco_model_t *deco_test_load_stories(deco_ctx_t *ctx, deco_dtype_t dtype) {
  deco_model_t *m = NULL;
  deco_model_config_t config = DECO_MODEL_CONFIG_INIT;
  config.dtype = dtype;
  cr_assert_eq(deco_model_load_llama2c(ctx, deco_test_data_file("models/stories260K.bin"), &config, &m),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  return m;
}

void deco_test_held_plan(deco_ctx_t *ctx) {
  const int cpu = deco_ctx_backend(ctx) == DECO_BACKEND_CPU;
  deco_model_t *m = deco_test_load_stories(ctx, cpu ? DECO_DTYPE_F32 : DECO_DTYPE_BF16);
  deco_kv_cache_t *kc;
  int seq;
  cr_assert_eq(deco_kv_cache_create(m, 16, 4, 1, &kc), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_cache_admit(kc, 64, &seq), DECO_STATUS_SUCCESS);
  deco_forward_plan_t p = DECO_FORWARD_PLAN_INIT;
  p.max_tokens = 4; /* rounded up to 16 */
  p.workspace_bytes = 1024;
  cr_assert_eq(deco_model_plan(m, kc, &p, NULL), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_hold_plan(m, 1), DECO_STATUS_SUCCESS);

  enum { N = 24, V = 512 };
  int32_t ids[N];
  for (int i = 0; i < N; ++i) ids[i] = 1 + 13 * i;
  static float host[N * V];
  float *logits;
  cr_assert_eq(deco_malloc(ctx, (void **)&logits, sizeof host), DECO_STATUS_SUCCESS);
  int n = 4;
  const deco_forward_args_t a = {
      .n_seqs = 1, .seqs = &seq, .n_new = &n, .tokens = ids, .logits_mode = DECO_LOGITS_ALL, .logits = logits};
  cr_assert_eq(deco_forward(m, kc, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 4);

  for (int i = 0; i < N * V; ++i) host[i] = -7.0f;
  cr_assert_eq(deco_memcpy(ctx, logits, host, sizeof host, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  n = 17;
  deco_test_refused(ctx, deco_forward(m, kc, &a), DECO_STATUS_CAPACITY,
                    "held plan (deco_model_hold_plan): a batch of 17 tokens over 1 sequences, 48 pages per row and "
                    "groups of 1 layers exceeds the plan's 16, 1, 48 and 1");
  cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 4);
  cr_assert_eq(deco_memcpy(ctx, host, logits, sizeof host, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  for (int i = 0; i < N * V; ++i) cr_assert_eq(host[i], -7.0f, "logit %d written", i);

  p.workspace_bytes = (size_t)1 << 30;
  DECO_TEST_REFUSED_NAMING(ctx, deco_model_plan(m, kc, &p, NULL), DECO_STATUS_CAPACITY,
                           "held plan (deco_model_hold_plan): ", "bytes of workspace needed, the plan has");
  p.max_tokens = 32;
  p.workspace_bytes = 0;
  DECO_TEST_REFUSED_NAMING(ctx, deco_model_plan(m, kc, &p, NULL), DECO_STATUS_CAPACITY,
                           "held plan (deco_model_hold_plan): a batch of 32 tokens", "exceeds the plan's 16");

  cr_assert_eq(deco_model_hold_plan(m, 0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_forward(m, kc, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_kv_cache_seq_len(kc, seq), 21);
  deco_test_refused(NULL, deco_model_hold_plan(NULL, 1), DECO_STATUS_NULL_POINTER,
                    "deco_model_hold_plan: model is NULL");
  deco_free(ctx, logits);
  deco_kv_cache_destroy(kc);
  deco_model_destroy(m);
}

deco_drafter_t *deco_test_drafter(deco_test_source_t source, deco_recycler_t *rec, const deco_tree_template_t *tmpl) {
  deco_drafter_t *d = NULL;
  if (source == DECO_TEST_LOOKUP) {
    const deco_lookup_config_t lc = DECO_LOOKUP_CONFIG_INIT;
    cr_assert_eq(deco_drafter_create_lookup(&lc, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  } else if (source == DECO_TEST_RECYCLE) {
    cr_assert_eq(deco_drafter_create_recycle(rec, tmpl, &d), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  }
  return d;
}

void deco_test_outcome_run(deco_model_t *m, deco_test_source_t source, deco_generate_config_t cfg,
                           deco_test_outcome_t *o) {
  deco_ctx_t *ctx = deco_model_ctx(m);
  deco_tree_template_t tmpl;
  cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
  deco_recycler_t *rec;
  cr_assert_eq(deco_recycler_create(ctx, 512, 8, &rec), DECO_STATUS_SUCCESS);
  deco_kv_cache_t *kc;
  cr_assert_eq(deco_kv_cache_create(m, 16, 32, 1, &kc), DECO_STATUS_SUCCESS);
  int seq;
  cr_assert_eq(deco_kv_cache_admit(kc, 400, &seq), DECO_STATUS_SUCCESS);
  void *k, *v;
  cr_assert_eq(deco_kv_cache_pools(kc, &k, &v, &o->kv_bytes), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memset(ctx, k, 0x7f, o->kv_bytes), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memset(ctx, v, 0x7f, o->kv_bytes), DECO_STATUS_SUCCESS);
  deco_drafter_t *drafter = deco_test_drafter(source, rec, &tmpl);
  cfg.drafter = drafter;
  cfg.emit = deco_test_capture_id;
  cfg.user = &o->ids;
  cfg.cache = kc;
  cfg.seq = seq;
  int32_t bos = 1;
  o->ids.n = 0;
  cr_assert_eq(deco_generate(m, &bos, 1, &cfg, &o->stats), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  o->k = malloc(o->kv_bytes);
  o->v = malloc(o->kv_bytes);
  o->table = malloc(512 * 8 * sizeof(int32_t));
  cr_assert_eq(deco_memcpy(ctx, o->k, k, o->kv_bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, o->v, v, o->kv_bytes, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, o->table, deco_recycler_table(rec), 512 * 8 * sizeof(int32_t), DECO_COPY_CTX_TO_HOST),
               DECO_STATUS_SUCCESS);
  deco_kv_cache_destroy(kc);
  deco_drafter_destroy(drafter);
  deco_recycler_destroy(rec);
}

void deco_test_outcome_same(const deco_test_outcome_t *a, const deco_test_outcome_t *b) {
  cr_assert_eq(a->ids.n, b->ids.n);
  cr_assert_eq(deco_test_compare_i32("ids", a->ids.ids, b->ids.ids, (size_t)a->ids.n), 0);
  cr_assert_eq(memcmp(a->k, b->k, a->kv_bytes), 0, "K cache differs");
  cr_assert_eq(memcmp(a->v, b->v, a->kv_bytes), 0, "V cache differs");
  cr_assert_eq(memcmp(a->table, b->table, 512 * 8 * sizeof(int32_t)), 0, "tables differ");
}

void deco_test_outcome_free(deco_test_outcome_t *o) {
  free(o->k);
  free(o->v);
  free(o->table);
  o->k = o->v = o->table = NULL;
}

void deco_test_capture_id(void *user, int32_t id) {
  deco_test_capture_t *c = user;
  if (c->n < (int)(sizeof c->ids / sizeof c->ids[0])) c->ids[c->n++] = id;
}

void deco_test_generate(deco_model_t *m, const int32_t *prompt, int n_prompt, deco_generate_config_t cfg,
                        deco_test_capture_t *cap, deco_generate_stats_t *st) {
  cfg.emit = deco_test_capture_id;
  cfg.user = cap;
  cap->n = 0;
  cr_assert_eq(deco_generate(m, prompt, n_prompt, &cfg, st), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(deco_model_ctx(m)));
  cr_assert_eq(st->step_allocations, 0, "the plan sized every buffer, yet %d allocations followed it",
               st->step_allocations);
}

void deco_test_greedy(deco_model_t *m, deco_drafter_t *d, const int32_t *prompt, int n_prompt, int steps,
                      deco_test_capture_t *cap, deco_generate_stats_t *st) {
  deco_generate_config_t cfg = DECO_GENERATE_CONFIG_INIT;
  cfg.steps = steps;
  cfg.temperature = 0.0f;
  cfg.ignore_eos = 1;
  cfg.drafter = d;
  deco_test_generate(m, prompt, n_prompt, cfg, cap, st);
}

void deco_test_same_run(const char *what, const deco_test_capture_t *a, const deco_generate_stats_t *sa,
                        const deco_test_capture_t *b, const deco_generate_stats_t *sb) {
  cr_assert_eq(a->n, b->n, "%s: %d ids vs %d", what, a->n, b->n);
  cr_assert_eq(deco_test_compare_i32(what, b->ids, a->ids, (size_t)a->n), 0, "%s: the ids differ", what);
  cr_assert_eq(sa->tokens, sb->tokens, "%s: tokens %d vs %d", what, sa->tokens, sb->tokens);
  cr_assert_eq(sa->forwards, sb->forwards, "%s: forwards %d vs %d", what, sa->forwards, sb->forwards);
}

char *deco_test_unhex(const char *hex) {
  const size_t n = strlen(hex) / 2;
  char *s = malloc(n + 1);
  cr_assert_not_null(s);
  for (size_t i = 0; i < n; ++i) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    s[i] = (char)v;
  }
  s[n] = '\0';
  return s;
}

void deco_test_cli_error(const deco_test_run_t *r, int status, const char *needle) {
  cr_assert_eq(r->status, status, "exit %d, expected %d; stderr: %s", r->status, status, r->err);
  cr_assert(strncmp(deco_test_last_line(r->err), "deco: error: ", 13) == 0, "stderr: %s", r->err);
  if (needle) cr_assert(strstr(r->err, needle) != NULL, "'%s' not in: %s", needle, r->err);
  cr_assert_str_eq(r->out, "", "nothing on stdout on error");
}

int deco_test_matches(const char *re, const char *text) {
  regex_t rx;
  cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0, "bad regular expression: %s", re);
  const int ok = regexec(&rx, text, 0, NULL, 0) == 0;
  regfree(&rx);
  return ok;
}

deco_model_draft_config_t deco_test_draft_config(const int *layers, int n_layers, int K, int W, int max_nodes,
                                                 int max_len) {
  deco_model_draft_config_t c = DECO_MODEL_DRAFT_CONFIG_INIT;
  c.layers = layers, c.n_layers = n_layers, c.draft_len = K;
  c.width = W, c.max_nodes = max_nodes, c.max_len = max_len;
  return c;
}

deco_drafter_t *deco_test_model_drafter(deco_model_t *m, deco_model_t *draft, const deco_model_draft_config_t *c) {
  deco_drafter_t *d = NULL;
  cr_assert_eq(deco_drafter_create_model(m, draft, c, &d), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(deco_model_ctx(m)));
  return d;
}

deco_ctx_t *deco_test_cpu_ctx(void) {
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT; /* the CPU backend */
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  return ctx;
}

deco_ctx_t *deco_test_cuda_ctx(void) {
  if (deco_cuda_device_count() == 0) return NULL;
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  return ctx;
}

void deco_test_refused(deco_ctx_t *ctx, deco_status_t got, deco_status_t want, const char *message) {
  cr_assert_eq(got, want, "status %s, expected %s: %s", deco_status_string(got), deco_status_string(want),
               deco_last_error(ctx));
  cr_assert_str_eq(deco_last_error(ctx), message);
}

void deco_test_refused_naming(deco_ctx_t *ctx, deco_status_t got, deco_status_t want, const char *prefix,
                              const char *const *parts) {
  const char *msg = deco_last_error(ctx);
  cr_assert_eq(got, want, "status %s, expected %s: %s", deco_status_string(got), deco_status_string(want), msg);
  if (prefix) cr_assert(strncmp(msg, prefix, strlen(prefix)) == 0, "message does not begin with '%s': %s", prefix, msg);
  for (const char *const *p = parts; p && *p; ++p)
    cr_assert(strstr(msg, *p) != NULL, "message lacks '%s': %s", *p, msg);
}
