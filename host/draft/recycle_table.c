/* host/draft/recycle_table.c — Token Recycling's state (Luo et al. 2024): the
 * adjacency matrix M[vocab][k] of token ids in a context's memory, and its
 * state file (include/deco/recycle.h: a 24-byte header, the int32 table and
 * an FNV-1a 64 checksum, little-endian), validated in full before the table
 * is touched and saved through a temporary file renamed over the target.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/internal.h"
#include "deco/recycle.h"
#include "draft/recycle_table.h"
#include "util/bytes.h"

#define STATE_MAX_VOCAB (1 << 24)

struct deco_recycler {
  deco_ctx_t *ctx;
  int vocab, k;
  int32_t *table; /* [vocab][k] context memory */
};

static size_t table_bytes(const deco_recycler_t *r) { return sizeof(int32_t) * (size_t)r->vocab * (size_t)r->k; }
static size_t state_bytes(const deco_recycler_t *r) { return DECO_RECYCLE_STATE_HEADER_BYTES + table_bytes(r) + 8; }

deco_status_t deco_recycler_create(deco_ctx_t *ctx, int vocab, int k, deco_recycler_t **out) {
  static const char op[] = "deco_recycler_create";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  DECO_CHECK_RANGE(ctx, vocab, 1, STATE_MAX_VOCAB, op);
  DECO_CHECK_RANGE(ctx, k, 1, DECO_RECYCLE_MAX_K, op);
  deco_recycler_t *r = calloc(1, sizeof *r);
  if (r == NULL) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  r->ctx = ctx;
  r->vocab = vocab;
  r->k = k;
  deco_status_t s = deco_malloc(ctx, (void **)&r->table, table_bytes(r));
  if (s == DECO_STATUS_SUCCESS) s = deco_recycler_reset(r);
  if (s != DECO_STATUS_SUCCESS) {
    deco_recycler_destroy(r);
    return s;
  }
  *out = r;
  return DECO_STATUS_SUCCESS;
}

void deco_recycler_destroy(deco_recycler_t *r) {
  if (r == NULL) return;
  deco_free(r->ctx, r->table);
  free(r);
}

int32_t *deco_recycler_table(deco_recycler_t *r) { return r ? r->table : NULL; }
int deco_recycler_vocab(const deco_recycler_t *r) { return r ? r->vocab : 0; }
int deco_recycler_k(const deco_recycler_t *r) { return r ? r->k : 0; }
deco_ctx_t *deco_recycler_ctx(const deco_recycler_t *r) { return r ? r->ctx : NULL; }

deco_status_t deco_recycler_reset(deco_recycler_t *r) {
  if (r == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_recycler_reset: r is NULL");
  return deco_memset(r->ctx, r->table, 0, table_bytes(r));
}

/* ---- Load ---- */

/* Validates a state file of `total` bytes whose first `have` bytes are in p
 * (have == total, or just the header when the size is already known to be
 * wrong) and decodes its table into ids [vocab][k]. Messages on r->ctx. */
static deco_status_t parse_state(deco_recycler_t *r, const unsigned char *p, size_t have, size_t total,
                                 const char *nm, int32_t *ids) {
  deco_ctx_t *ctx = r->ctx;
  const size_t H = DECO_RECYCLE_STATE_HEADER_BYTES, expected = state_bytes(r);
  if (total < H)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: truncated: %zu bytes, shorter than the %zu-byte header", nm,
                     total, H);
  if (memcmp(p, DECO_RECYCLE_STATE_MAGIC, 8) != 0)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT,
                     "%s: magic: not a Token Recycling state file (expected \"%s\" in the first 8 bytes)", nm,
                     DECO_RECYCLE_STATE_MAGIC);
  const uint32_t version = deco_get_u32(p + 8), vocab = deco_get_u32(p + 12), k = deco_get_u32(p + 16), flags = deco_get_u32(p + 20);
  if (version != DECO_RECYCLE_STATE_VERSION)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: version: %u, this library reads version %d", nm, version,
                     DECO_RECYCLE_STATE_VERSION);
  if (flags != 0)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: flags: 0x%x, expected 0", nm, flags);
  if (vocab != (uint32_t)r->vocab)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: vocab: the file has %u, the table expects %d", nm, vocab,
                     r->vocab);
  if (k != (uint32_t)r->k)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: k: the file has %u candidates per token, the table expects %d",
                     nm, k, r->k);
  if (total != expected)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: size: %s: %zu bytes, expected %zu for vocab=%d k=%d", nm,
                     total < expected ? "truncated" : "oversized", total, expected, r->vocab, r->k);
  if (have != total)
    return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "%s: %zu of %zu bytes read", nm, have, total);
  const size_t body = expected - 8;
  const uint64_t stored = deco_get_u64(p + body), computed = deco_fnv1a64(p, body);
  if (stored != computed)
    return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT,
                     "%s: checksum: stored 0x%016llx, computed 0x%016llx (the file is corrupt)", nm,
                     (unsigned long long)stored, (unsigned long long)computed);
  const size_t n = (size_t)r->vocab * (size_t)r->k;
  for (size_t i = 0; i < n; ++i) {
    const int32_t v = (int32_t)deco_get_u32(p + H + 4 * i);
    if (v < 0 || v >= r->vocab)
      return DECO_FAIL(ctx, DECO_STATUS_BAD_FORMAT, "%s: table[%zu][%zu] = %d is outside [0, vocab = %d)", nm,
                       i / (size_t)r->k, i % (size_t)r->k, (int)v, r->vocab);
    ids[i] = v;
  }
  return DECO_STATUS_SUCCESS;
}

/* Validates the whole file, then replaces the table. */
static deco_status_t load_into(deco_recycler_t *r, const unsigned char *p, size_t have, size_t total,
                               const char *nm) {
  /* A file of the wrong size fails on its header: no table copy needed. */
  int32_t *ids = NULL;
  if (have == total && total == state_bytes(r) && (ids = malloc(table_bytes(r))) == NULL)
    return DECO_FAIL(r->ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for the table", nm,
                     table_bytes(r));
  deco_status_t s = parse_state(r, p, have, total, nm, ids);
  if (s == DECO_STATUS_SUCCESS) s = deco_memcpy(r->ctx, r->table, ids, table_bytes(r), DECO_COPY_HOST_TO_CTX);
  free(ids);
  return s;
}

deco_status_t deco_recycler_load_buffer(deco_recycler_t *r, const void *data, size_t size, const char *name) {
  static const char op[] = "deco_recycler_load_buffer";
  if (r == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: r is NULL", op);
  if (data == NULL && size > 0) return DECO_FAIL(r->ctx, DECO_STATUS_NULL_POINTER, "%s: data is NULL", op);
  return load_into(r, data, size, size, name ? name : "(buffer)");
}

deco_status_t deco_recycler_load(deco_recycler_t *r, const char *path) {
  static const char op[] = "deco_recycler_load";
  if (r == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: r is NULL", op);
  deco_ctx_t *ctx = r->ctx;
  DECO_CHECK_PTR(ctx, path, op);
  int fd = -1;
  size_t total = 0;
  DECO_TRY(deco_file_open_regular(ctx, path, &fd, &total));
  const size_t expected = state_bytes(r);
  /* A file of the wrong size is refused from its header alone. */
  const size_t want = total == expected ? total
                      : total < DECO_RECYCLE_STATE_HEADER_BYTES ? total
                                                                 : DECO_RECYCLE_STATE_HEADER_BYTES;
  void *buf;
  DECO_TRY(deco_file_read_fd(ctx, path, fd, want, total, &buf));
  deco_status_t s = load_into(r, buf, want, total, path);
  free(buf);
  return s;
}

/* ---- Save ---- */

deco_status_t deco_recycler_save(deco_recycler_t *r, const char *path) {
  static const char op[] = "deco_recycler_save";
  if (r == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: r is NULL", op);
  deco_ctx_t *ctx = r->ctx;
  DECO_CHECK_PTR(ctx, path, op);
  const size_t H = DECO_RECYCLE_STATE_HEADER_BYTES, n = (size_t)r->vocab * (size_t)r->k, total = state_bytes(r);
  unsigned char *buf = malloc(total);
  int32_t *ids = malloc(table_bytes(r));
  deco_status_t s = DECO_STATUS_SUCCESS;
  if (!buf || !ids) {
    s = DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes to save %s", op, total, path);
    goto out;
  }
  s = deco_memcpy(ctx, ids, r->table, table_bytes(r), DECO_COPY_CTX_TO_HOST);
  if (s != DECO_STATUS_SUCCESS) goto out;
  memcpy(buf, DECO_RECYCLE_STATE_MAGIC, 8);
  deco_put_u32(buf + 8, DECO_RECYCLE_STATE_VERSION);
  deco_put_u32(buf + 12, (uint32_t)r->vocab);
  deco_put_u32(buf + 16, (uint32_t)r->k);
  deco_put_u32(buf + 20, 0);
  for (size_t i = 0; i < n; ++i) deco_put_u32(buf + H + 4 * i, (uint32_t)ids[i]);
  deco_put_u64(buf + total - 8, deco_fnv1a64(buf, total - 8));

  s = deco_file_save(ctx, path, buf, total);
out:
  free(buf);
  free(ids);
  return s;
}
