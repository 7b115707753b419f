/* host/core/file.h — library-private: reading the files the library loads
 * (checkpoints, tokenizers, tree templates, recycling states). Every one is
 * opened without blocking, so a FIFO or a device named as a model cannot
 * hang the caller, and anything but a regular file is refused by name; and
 * saving the library's own files all or nothing.
 */
#ifndef DECO_HOST_FILE_H
#define DECO_HOST_FILE_H

#include <stddef.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens path read-only (close-on-exec) and returns the descriptor, in
 * blocking mode, and the file's size. Refuses what is not a regular file
 * ("cannot read PATH: not a regular file") without waiting for a writer.
 * Errors are recorded on ctx (NULL: the thread's slot). */
deco_status_t deco_file_open_regular(deco_ctx_t *ctx, const char *path, int *fd, size_t *size);

/* Reads want bytes from an fd of deco_file_open_regular (size: the file's
 * size, for the message) into a malloc'd buffer, and closes the fd. */
deco_status_t deco_file_read_fd(deco_ctx_t *ctx, const char *path, int fd, size_t want, size_t size, void **data);

/* Reads the first min(file size, max_bytes) bytes of path into a malloc'd
 * buffer (*data, *got); *file_size is the whole file's size. A file that
 * shrinks while it is read is an error. */
deco_status_t deco_file_read(deco_ctx_t *ctx, const char *path, size_t max_bytes, void **data, size_t *got,
                             size_t *file_size);

/* Writes n bytes of data as the whole of path, all or nothing: a temporary
 * file beside path (so the rename cannot cross file systems), mode 0644,
 * flushed to disk, then renamed over path; on any error the temporary file
 * is removed and path is as it was. Errors are recorded on ctx (NULL: the thread's slot). */
deco_status_t deco_file_save(deco_ctx_t *ctx, const char *path, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DECO_HOST_FILE_H */
