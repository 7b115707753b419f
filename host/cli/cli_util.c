/* host/cli/cli_util.c — file reading, the GGUF check and the launcher rank
 * shared by the `deco` commands (cli_util.h).
 */
#define _GNU_SOURCE
#include "cli/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "deco/comm.h"
#include "deco/tokenizer.h"

/* A regular file opened without blocking; -1 after the message. */
static int open_regular(const char *path, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    deco_cli_error("cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    deco_cli_error("cannot read %s: not a regular file", path);
    close(fd);
    return -1;
  }
  return fd;
}

char *deco_cli_read_file(const char *path, size_t *size) {
  struct stat st;
  const int fd = open_regular(path, &st);
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

int deco_cli_is_gguf(const char *path) {
  struct stat st;
  const int fd = open_regular(path, &st);
  if (fd < 0) return -1;
  char magic[4];
  ssize_t got;
  do got = read(fd, magic, sizeof magic);
  while (got < 0 && errno == EINTR);
  close(fd);
  return got == (ssize_t)sizeof magic && memcmp(magic, "GGUF", 4) == 0;
}

int deco_cli_launch_follower(void) {
  deco_comm_env_t env;
  return deco_comm_env_read(&env) > 0 && env.size > 1 && env.rank > 0;
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
