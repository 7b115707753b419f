/* host/core/file.c — see file.h. O_NONBLOCK makes open() return at once on
 * a FIFO with no writer; fstat then tells it is not a regular file. For a
 * regular file the flag means nothing, and it is cleared anyway so reads
 * behave as the callers expect.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

deco_status_t deco_file_open_regular(deco_ctx_t *ctx, const char *path, int *fd, size_t *size) {
  if (path == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_file_open_regular: path is NULL");
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (f < 0) return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(f, &st) != 0) {
    int e = errno;
    close(f);
    return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(f);
    return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot read %s: not a regular file", path);
  }
  int flags = fcntl(f, F_GETFL);
  if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(f);
    return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot read %s: %s", path, strerror(e));
  }
  *fd = f;
  *size = (size_t)st.st_size;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_file_read_fd(deco_ctx_t *ctx, const char *path, int fd, size_t want, size_t size, void **data) {
  *data = NULL;
  unsigned char *buf = malloc(want ? want : 1);
  if (!buf) {
    close(fd);
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes to read it", path, want);
  }
  size_t done = 0;
  while (done < want) {
    ssize_t r = read(fd, buf + done, want - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      free(buf);
      return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot read %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  close(fd);
  if (done != want) {
    free(buf);
    return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot read %s: file shrank to %zu of %zu bytes while reading", path,
                     done, size);
  }
  *data = buf;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_file_read(deco_ctx_t *ctx, const char *path, size_t max_bytes, void **data, size_t *got,
                             size_t *file_size) {
  *data = NULL;
  *got = 0;
  int fd = -1;
  size_t size = 0;
  DECO_TRY(deco_file_open_regular(ctx, path, &fd, &size));
  const size_t want = size < max_bytes ? size : max_bytes;
  DECO_TRY(deco_file_read_fd(ctx, path, fd, want, size, data));
  *got = want;
  if (file_size) *file_size = size;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t write_all(deco_ctx_t *ctx, int fd, const unsigned char *p, size_t n, const char *tmp) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot write %s: %s", tmp, strerror(w < 0 ? errno : EIO));
    p += w;
    n -= (size_t)w;
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_file_save(deco_ctx_t *ctx, const char *path, const void *data, size_t n) {
  if (path == NULL || (data == NULL && n > 0))
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "deco_file_save: NULL argument");
  char *tmp = malloc(strlen(path) + 16);
  if (!tmp) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "cannot save %s: out of host memory", path);
  sprintf(tmp, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    deco_status_t s = DECO_FAIL(ctx, DECO_STATUS_IO_ERROR,
                                "cannot save %s: cannot create a temporary file beside it: %s", path, strerror(errno));
    free(tmp);
    return s;
  }
  (void)fchmod(fd, 0644); /* mkstemp's 0600 would make the file private */
  deco_status_t s = write_all(ctx, fd, data, n, tmp);
  if (s == DECO_STATUS_SUCCESS && fsync(fd) != 0)
    s = DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot save %s: flushing %s: %s", path, tmp, strerror(errno));
  if (close(fd) != 0 && s == DECO_STATUS_SUCCESS)
    s = DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot save %s: closing %s: %s", path, tmp, strerror(errno));
  if (s == DECO_STATUS_SUCCESS && rename(tmp, path) != 0)
    s = DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "cannot save %s: renaming %s over it: %s", path, tmp, strerror(errno));
  if (s != DECO_STATUS_SUCCESS) unlink(tmp);
  free(tmp);
  return s;
}
