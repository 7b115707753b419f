/* host/superpose/ngram_table.c — superposed decoding's n-gram tables
 * (deco/superpose.h): the file (96-byte header, hash slots, followers,
 * FNV-1a 64 checksum; little-endian), validated in full before use and
 * saved through a temporary file renamed over the target; the copy in a
 * context's memory that the ops read; and the host-side counts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/internal.h"
#include "deco/superpose.h"
#include "superpose/ngram_internal.h"
#include "util/bytes.h"

uint64_t deco_ngram_hash_bytes(const void *data, size_t n) {
  return deco_fnv1a64(data, n);
}

size_t deco_ngram_file_bytes(uint32_t n_slots, uint64_t n_followers) {
  return DECO_NGRAM_HEADER_BYTES + (size_t)n_slots * DECO_NGRAM_SLOT_BYTES +
         (size_t)n_followers * DECO_NGRAM_FOLLOWER_BYTES + 8;
}

void deco_ngram_table_destroy(deco_ngram_table_t *t) {
  if (!t) return;
  free(t->image);
  free(t->slots);
  free(t->followers);
  free(t);
}

/* ---- Encoding (the builder's output and save) ---- */

deco_status_t deco_ngram_encode(deco_ngram_table_t *t) {
  const size_t bytes = deco_ngram_file_bytes(t->n_slots, t->n_followers);
  unsigned char *p = calloc(1, bytes);
  if (!p) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "n-gram table: cannot allocate %zu bytes", bytes);
  memcpy(p, DECO_NGRAM_MAGIC, 8);
  deco_put_u32(p + 8, DECO_NGRAM_VERSION);
  deco_put_u32(p + 12, DECO_NGRAM_HEADER_BYTES);
  deco_put_u32(p + 16, (uint32_t)t->vocab_size);
  deco_put_u32(p + 20, DECO_NGRAM_MIN_ORDER);
  deco_put_u32(p + 24, DECO_NGRAM_MAX_ORDER);
  deco_put_u32(p + 28, t->n_slots);
  deco_put_u64(p + 32, t->seed);
  deco_put_u64(p + 40, t->tokenizer_hash);
  deco_put_u32(p + 48, t->n_contexts);
  deco_put_u32(p + 52, t->n_followers);
  deco_put_u64(p + 56, t->corpus_tokens);
  deco_put_u64(p + 64, t->pruned_contexts);
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i) deco_put_u32(p + 72 + 4 * i, t->per_order[i]);
  deco_put_u32(p + 92, 0);
  unsigned char *q = p + DECO_NGRAM_HEADER_BYTES;
  for (uint32_t s = 0; s < t->n_slots; ++s, q += DECO_NGRAM_SLOT_BYTES) {
    const deco_ngram_slot_t *e = &t->slots[s];
    deco_put_u64(q, e->fingerprint);
    deco_put_u32(q + 8, e->first);
    deco_put_u32(q + 12, e->count);
    deco_put_u32(q + 16, e->total);
    deco_put_u32(q + 20, e->order);
  }
  for (uint32_t f = 0; f < t->n_followers; ++f, q += DECO_NGRAM_FOLLOWER_BYTES) {
    deco_put_u32(q, t->followers[f].token);
    deco_put_u32(q + 4, t->followers[f].count);
  }
  deco_put_u64(p + bytes - 8, deco_ngram_hash_bytes(p, bytes - 8));
  free(t->image);
  t->image = p;
  t->image_bytes = bytes;
  return DECO_STATUS_SUCCESS;
}

/* ---- Validation ---- */

#define BAD(...) DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, __VA_ARGS__)

typedef struct run_span {
  uint32_t first, count, slot;
} run_span_t;

static int cmp_span(const void *a, const void *b) {
  const run_span_t *x = a, *y = b;
  return (x->first > y->first) - (x->first < y->first);
}

static int cmp_u64(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Every slot on its own (an empty one all zero; an occupied one of a valid
 * order with followers inside the table), and the header's context counts
 * against the slots; *occupied gets the occupied slots. */
static deco_status_t check_slots(const deco_ngram_table_t *t, const char *nm, uint32_t *occupied_out) {
  const uint32_t S = t->n_slots;
  uint32_t occupied = 0, per_order[DECO_NGRAM_N_ORDERS] = {0};
  for (uint32_t s = 0; s < S; ++s) {
    const deco_ngram_slot_t *e = &t->slots[s];
    if (e->fingerprint == 0) {
      if (e->first || e->count || e->total || e->order)
        return BAD("%s: slot %u: an empty slot (fingerprint 0) must be all zero", nm, (unsigned)s);
      continue;
    }
    occupied++;
    if (e->order < DECO_NGRAM_MIN_ORDER || e->order > DECO_NGRAM_MAX_ORDER)
      return BAD("%s: slot %u: order %u outside [%d, %d]", nm, (unsigned)s, (unsigned)e->order,
                 DECO_NGRAM_MIN_ORDER, DECO_NGRAM_MAX_ORDER);
    per_order[e->order - DECO_NGRAM_MIN_ORDER]++;
    if (e->count == 0) return BAD("%s: slot %u: a context with no followers (count 0)", nm, (unsigned)s);
    if ((uint64_t)e->first + e->count > t->n_followers)
      return BAD("%s: slot %u: followers [%u, %llu) outside n_followers = %u", nm, (unsigned)s, (unsigned)e->first,
                 (unsigned long long)e->first + e->count, (unsigned)t->n_followers);
  }
  if (occupied != t->n_contexts)
    return BAD("%s: n_contexts: the header says %u, the slots hold %u", nm, (unsigned)t->n_contexts,
               (unsigned)occupied);
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i)
    if (per_order[i] != t->per_order[i])
      return BAD("%s: contexts_per_order[%d] (order %d): the header says %u, the slots hold %u", nm, i,
                 i + DECO_NGRAM_MIN_ORDER, (unsigned)t->per_order[i], (unsigned)per_order[i]);
  *occupied_out = occupied;
  return DECO_STATUS_SUCCESS;
}

/* Reachability: linear probing finds a slot iff every slot from its home
 * to it is occupied. Walk from an empty slot (the table is at most half
 * full), counting the occupied run that ends at each slot. */
static deco_status_t check_reachable(const deco_ngram_table_t *t, const char *nm) {
  const uint32_t S = t->n_slots, mask = S - 1u;
  uint32_t start = 0;
  while (t->slots[start].fingerprint != 0) start++; /* exists: occupied <= S / 2 */
  uint32_t run = 0;
  for (uint32_t i = 1; i <= S; ++i) {
    const uint32_t s = (start + i) & mask;
    if (t->slots[s].fingerprint == 0) {
      run = 0;
      continue;
    }
    run++;
    const uint32_t home = (uint32_t)t->slots[s].fingerprint & mask, dist = (s - home) & mask;
    if (dist >= run)
      return BAD("%s: slot %u: fingerprint 0x%016llx is not reachable from its home slot %u", nm, (unsigned)s,
                 (unsigned long long)t->slots[s].fingerprint, (unsigned)home);
  }
  return DECO_STATUS_SUCCESS;
}

/* The n sorted fingerprints of the occupied slots are distinct. */
static deco_status_t check_distinct(const uint64_t *fps, uint32_t n, const char *nm) {
  for (uint32_t i = 1; i < n; ++i)
    if (fps[i] == fps[i - 1]) return BAD("%s: fingerprint 0x%016llx is stored twice", nm, (unsigned long long)fps[i]);
  return DECO_STATUS_SUCCESS;
}

/* The runs tile the followers exactly: each follower is read for one
 * context, so validation and lookups stay linear in the file. spans: the
 * n occupied slots' runs, sorted by their first follower. */
static deco_status_t check_tiling(const deco_ngram_table_t *t, const run_span_t *spans, uint32_t n, const char *nm) {
  uint64_t next = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (spans[i].first != next)
      return BAD("%s: slot %u: its followers start at %u, expected %llu (runs must follow each other)", nm,
                 (unsigned)spans[i].slot, (unsigned)spans[i].first, (unsigned long long)next);
    next += spans[i].count;
  }
  if (next != t->n_followers)
    return BAD("%s: n_followers: the header says %u, the contexts use %llu", nm, (unsigned)t->n_followers,
               (unsigned long long)next);
  return DECO_STATUS_SUCCESS;
}

/* Distinct fingerprints and follower runs that tile the followers, over
 * the occupied slots sorted (host scratch of `occupied` entries). */
static deco_status_t check_runs(const deco_ngram_table_t *t, const char *nm, uint32_t occupied) {
  const uint32_t S = t->n_slots;
  deco_status_t st = DECO_STATUS_SUCCESS;
  uint64_t *fps = malloc(sizeof(uint64_t) * (occupied ? occupied : 1));
  run_span_t *spans = malloc(sizeof(run_span_t) * (occupied ? occupied : 1));
  if (!fps || !spans) {
    st = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", nm);
  } else {
    uint32_t n = 0;
    for (uint32_t s = 0; s < S; ++s)
      if (t->slots[s].fingerprint != 0) {
        fps[n] = t->slots[s].fingerprint;
        spans[n] = (run_span_t){.first = t->slots[s].first, .count = t->slots[s].count, .slot = s};
        n++;
      }
    qsort(fps, n, sizeof *fps, cmp_u64);
    st = check_distinct(fps, n, nm);
    if (st == DECO_STATUS_SUCCESS) {
      qsort(spans, n, sizeof *spans, cmp_span);
      st = check_tiling(t, spans, n, nm);
    }
  }
  free(fps);
  free(spans);
  return st;
}

/* The followers of occupied slot s: ids in the vocabulary, strictly
 * increasing, counts > 0 that sum to the slot's total. */
static deco_status_t check_followers(const deco_ngram_table_t *t, uint32_t s, const char *nm) {
  const deco_ngram_slot_t *e = &t->slots[s];
  uint64_t sum = 0;
  for (uint32_t f = e->first; f < e->first + e->count; ++f) {
    const deco_ngram_follower_t *x = &t->followers[f];
    if (x->token >= (uint32_t)t->vocab_size)
      return BAD("%s: follower %u (slot %u): token %u >= vocab_size %d", nm, (unsigned)f, (unsigned)s,
                 (unsigned)x->token, t->vocab_size);
    if (x->count == 0) return BAD("%s: follower %u (slot %u): count 0", nm, (unsigned)f, (unsigned)s);
    if (f > e->first && x->token <= t->followers[f - 1].token)
      return BAD("%s: follower %u (slot %u): tokens of a context must increase strictly (%u after %u)", nm,
                 (unsigned)f, (unsigned)s, (unsigned)x->token, (unsigned)t->followers[f - 1].token);
    sum += x->count;
  }
  if (sum != e->total)
    return BAD("%s: slot %u: total %u, its followers' counts sum to %llu", nm, (unsigned)s, (unsigned)e->total,
               (unsigned long long)sum);
  return DECO_STATUS_SUCCESS;
}

/* Every slot and follower of a decoded table (the header already checked):
 * O(slots log slots + followers), whatever the file holds. */
static deco_status_t check_body(const deco_ngram_table_t *t, const char *nm) {
  uint32_t occupied = 0;
  DECO_TRY(check_slots(t, nm, &occupied));
  DECO_TRY(check_reachable(t, nm));
  DECO_TRY(check_runs(t, nm, occupied));
  for (uint32_t s = 0; s < t->n_slots; ++s)
    if (t->slots[s].fingerprint != 0) DECO_TRY(check_followers(t, s, nm));
  return DECO_STATUS_SUCCESS;
}

/* Validates the header at p (at least its H + 8 bytes there) of a file of
 * `total` bytes: every field, and the size it implies. */
static deco_status_t check_header(const unsigned char *p, size_t total, const char *nm, int vocab_size,
                                  uint64_t tokenizer_hash) {
  const size_t H = DECO_NGRAM_HEADER_BYTES;
  if (memcmp(p, DECO_NGRAM_MAGIC, 8) != 0)
    return BAD("%s: magic: not a deco n-gram table (expected \"%s\" in the first 8 bytes)", nm, DECO_NGRAM_MAGIC);
  const uint32_t version = deco_get_u32(p + 8), header = deco_get_u32(p + 12), vocab = deco_get_u32(p + 16);
  const uint32_t min_order = deco_get_u32(p + 20), max_order = deco_get_u32(p + 24), n_slots = deco_get_u32(p + 28);
  const uint64_t tok_hash = deco_get_u64(p + 40);
  const uint32_t n_contexts = deco_get_u32(p + 48), n_followers = deco_get_u32(p + 52);
  if (version != DECO_NGRAM_VERSION)
    return BAD("%s: version: %u, this library reads version %d", nm, (unsigned)version, DECO_NGRAM_VERSION);
  if (header != H) return BAD("%s: header_bytes: %u, expected %zu", nm, (unsigned)header, H);
  if (vocab != (uint32_t)vocab_size)
    return BAD("%s: vocab_size: the table has %u, the model %d (a table of another vocabulary)", nm, (unsigned)vocab,
               vocab_size);
  if (tokenizer_hash != 0 && tok_hash != 0 && tok_hash != tokenizer_hash)
    return BAD("%s: tokenizer_hash: the table was counted with tokenizer 0x%016llx, this tokenizer is 0x%016llx", nm,
               (unsigned long long)tok_hash, (unsigned long long)tokenizer_hash);
  if (min_order != DECO_NGRAM_MIN_ORDER || max_order != DECO_NGRAM_MAX_ORDER)
    return BAD("%s: orders: %u..%u, expected %d..%d", nm, (unsigned)min_order, (unsigned)max_order,
               DECO_NGRAM_MIN_ORDER, DECO_NGRAM_MAX_ORDER);
  if (n_slots == 0 || (n_slots & (n_slots - 1)) != 0 || n_slots > (1u << 30))
    return BAD("%s: n_slots: %u is not a power of two in [1, 2^30]", nm, (unsigned)n_slots);
  if ((uint64_t)n_contexts * 2 > n_slots)
    return BAD("%s: n_contexts: %u contexts in %u slots, more than half full", nm, (unsigned)n_contexts,
               (unsigned)n_slots);
  if (deco_get_u32(p + 92) != 0) return BAD("%s: reserved: 0x%x, expected 0", nm, (unsigned)deco_get_u32(p + 92));
  const size_t expected = deco_ngram_file_bytes(n_slots, n_followers);
  if (total != expected)
    return BAD("%s: size: %s: %zu bytes, expected %zu for n_slots=%u n_followers=%u", nm,
               total < expected ? "truncated" : "oversized", total, expected, (unsigned)n_slots, (unsigned)n_followers);
  return DECO_STATUS_SUCCESS;
}

/* Validates a file of `total` bytes whose first `have` bytes are at p
 * (have == total, or the header alone when the file's size already
 * disagrees with it) and decodes it. */
static deco_status_t parse(const unsigned char *p, size_t have, size_t total, const char *nm, int vocab_size,
                           uint64_t tokenizer_hash, deco_ngram_table_t **out) {
  const size_t H = DECO_NGRAM_HEADER_BYTES;
  if (total < H + 8)
    return BAD("%s: truncated: %zu bytes, shorter than the %zu-byte header and checksum", nm, total, H + 8);
  DECO_TRY(check_header(p, total, nm, vocab_size, tokenizer_hash));
  const uint32_t n_slots = deco_get_u32(p + 28), n_followers = deco_get_u32(p + 52);
  const uint32_t n_contexts = deco_get_u32(p + 48);
  const uint64_t seed = deco_get_u64(p + 32), tok_hash = deco_get_u64(p + 40);
  if (have != total) return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: %zu of %zu bytes read", nm, have, total);
  const uint64_t stored = deco_get_u64(p + total - 8), computed = deco_ngram_hash_bytes(p, total - 8);
  if (stored != computed)
    return BAD("%s: checksum: stored 0x%016llx, computed 0x%016llx (the file is corrupt)", nm,
               (unsigned long long)stored, (unsigned long long)computed);

  deco_ngram_table_t *t = calloc(1, sizeof *t);
  if (t) {
    t->slots = malloc(sizeof(deco_ngram_slot_t) * n_slots);
    t->followers = malloc(sizeof(deco_ngram_follower_t) * (n_followers ? n_followers : 1));
    t->image = malloc(total);
  }
  if (!t || !t->slots || !t->followers || !t->image) {
    deco_ngram_table_destroy(t);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate the table (%zu bytes)", nm, total);
  }
  memcpy(t->image, p, total);
  t->image_bytes = total;
  t->vocab_size = vocab_size;
  t->seed = seed;
  t->tokenizer_hash = tok_hash;
  t->n_slots = n_slots;
  t->n_contexts = n_contexts;
  t->n_followers = n_followers;
  t->corpus_tokens = deco_get_u64(p + 56);
  t->pruned_contexts = deco_get_u64(p + 64);
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i) t->per_order[i] = deco_get_u32(p + 72 + 4 * i);
  const unsigned char *q = p + H;
  for (uint32_t s = 0; s < n_slots; ++s, q += DECO_NGRAM_SLOT_BYTES)
    t->slots[s] = (deco_ngram_slot_t){
        .fingerprint = deco_get_u64(q), .first = deco_get_u32(q + 8), .count = deco_get_u32(q + 12), .total = deco_get_u32(q + 16),
        .order = deco_get_u32(q + 20)};
  for (uint32_t f = 0; f < n_followers; ++f, q += DECO_NGRAM_FOLLOWER_BYTES)
    t->followers[f] = (deco_ngram_follower_t){.token = deco_get_u32(q), .count = deco_get_u32(q + 4)};
  const deco_status_t st = check_body(t, nm);
  if (st != DECO_STATUS_SUCCESS) {
    deco_ngram_table_destroy(t);
    return st;
  }
  *out = t;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_load_args(const char *op, int vocab_size, deco_ngram_table_t **out) {
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  if (vocab_size < 1 || vocab_size > (1 << 24))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: vocab_size = %d outside [1, 2^24]", op, vocab_size);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_ngram_table_load_buffer(const void *data, size_t size, const char *name, int vocab_size,
                                           uint64_t tokenizer_hash, deco_ngram_table_t **out) {
  static const char op[] = "deco_ngram_table_load_buffer";
  DECO_TRY(check_load_args(op, vocab_size, out));
  if (!data && size > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: data is NULL", op);
  return parse(data, size, size, name ? name : "(buffer)", vocab_size, tokenizer_hash, out);
}

deco_status_t deco_ngram_table_load(const char *path, int vocab_size, uint64_t tokenizer_hash,
                                    deco_ngram_table_t **out) {
  static const char op[] = "deco_ngram_table_load";
  DECO_TRY(check_load_args(op, vocab_size, out));
  if (!path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: path is NULL", op);
  /* The header first: a file whose header is invalid, or whose size
   * disagrees with it, is refused without reading (or allocating) the rest. */
  void *head = NULL, *buf = NULL;
  size_t got = 0, total = 0, got2 = 0, total2 = 0;
  DECO_TRY(deco_file_read(NULL, path, DECO_NGRAM_HEADER_BYTES + 8, &head, &got, &total));
  if (total == got) {
    const deco_status_t st = parse(head, got, total, path, vocab_size, tokenizer_hash, out);
    free(head);
    return st;
  }
  const deco_status_t hs = check_header(head, total, path, vocab_size, tokenizer_hash);
  free(head);
  if (hs != DECO_STATUS_SUCCESS) return hs;
  DECO_TRY(deco_file_read(NULL, path, total, &buf, &got2, &total2));
  deco_status_t st = total2 == total && got2 == total
                         ? parse(buf, got2, total2, path, vocab_size, tokenizer_hash, out)
                         : DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "cannot read %s: its size changed while it was read",
                                     path);
  free(buf);
  return st;
}

deco_status_t deco_ngram_table_info(const deco_ngram_table_t *t, deco_ngram_info_t *info) {
  if (!t || !info) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ngram_table_info: NULL argument");
  memset(info, 0, sizeof *info);
  info->vocab_size = t->vocab_size;
  info->tokenizer_hash = t->tokenizer_hash;
  info->seed = t->seed;
  info->n_slots = t->n_slots;
  info->n_contexts = t->n_contexts;
  info->n_followers = t->n_followers;
  info->corpus_tokens = t->corpus_tokens;
  info->pruned_contexts = t->pruned_contexts;
  for (int i = 0; i < DECO_NGRAM_N_ORDERS; ++i) info->contexts_per_order[i] = t->per_order[i];
  info->file_bytes = t->image_bytes;
  return DECO_STATUS_SUCCESS;
}

const void *deco_ngram_table_bytes(const deco_ngram_table_t *t, size_t *size) {
  if (size) *size = t ? t->image_bytes : 0;
  return t ? t->image : NULL;
}

deco_ngram_view_t deco_ngram_table_host_view(const deco_ngram_table_t *t) {
  deco_ngram_view_t v = {.seed = 0, .n_slots = 0, .n_followers = 0, .slots = NULL, .followers = NULL};
  if (t) {
    v.seed = t->seed;
    v.n_slots = t->n_slots;
    v.n_followers = t->n_followers;
    v.slots = t->slots;
    v.followers = t->followers;
  }
  return v;
}

deco_status_t deco_ngram_table_counts(const deco_ngram_table_t *t, int order, const int32_t *context, int32_t token,
                                      uint32_t *count, uint32_t *total) {
  static const char op[] = "deco_ngram_table_counts";
  if (!t || (!context && order > 1) || !count || !total)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if (order < DECO_NGRAM_MIN_ORDER || order > DECO_NGRAM_MAX_ORDER)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: order = %d outside [%d, %d]", op, order,
                     DECO_NGRAM_MIN_ORDER, DECO_NGRAM_MAX_ORDER);
  *count = *total = 0;
  const deco_ngram_view_t v = deco_ngram_table_host_view(t);
  const int64_t s = deco_ngram_find(&v, deco_ngram_fingerprint(v.seed, order, context));
  if (s < 0) return DECO_STATUS_SUCCESS;
  *total = v.slots[s].total;
  *count = token < 0 ? 0 : deco_ngram_follower_count(&v, &v.slots[s], (uint32_t)token);
  return DECO_STATUS_SUCCESS;
}

/* ---- Save ---- */

deco_status_t deco_ngram_table_save(const deco_ngram_table_t *t, const char *path) {
  if (!t || !path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_ngram_table_save: NULL argument");
  struct stat sb;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
    return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "cannot save %s: not a regular file", path);
  return deco_file_save(NULL, path, t->image, t->image_bytes);
}

/* ---- The copy in a context's memory ---- */

struct deco_ngram_device {
  deco_ctx_t *ctx;
  void *block; /* slots, then followers */
  deco_ngram_view_t view;
};

deco_status_t deco_ngram_device_create(deco_ctx_t *ctx, const deco_ngram_table_t *t, deco_ngram_device_t **out) {
  static const char op[] = "deco_ngram_device_create";
  if (!ctx) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  if (!t || !out) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = NULL;
  deco_ngram_device_t *d = calloc(1, sizeof *d);
  if (!d) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  d->ctx = ctx;
  const size_t sb = sizeof(deco_ngram_slot_t) * t->n_slots, fb = sizeof(deco_ngram_follower_t) * t->n_followers;
  deco_status_t st = deco_malloc(ctx, &d->block, sb + fb);
  if (st == DECO_STATUS_SUCCESS) st = deco_memcpy(ctx, d->block, t->slots, sb, DECO_COPY_HOST_TO_CTX);
  if (st == DECO_STATUS_SUCCESS && fb)
    st = deco_memcpy(ctx, (char *)d->block + sb, t->followers, fb, DECO_COPY_HOST_TO_CTX);
  if (st != DECO_STATUS_SUCCESS) {
    deco_ngram_device_destroy(d);
    return st;
  }
  d->view = (deco_ngram_view_t){.seed = t->seed,
                                .n_slots = t->n_slots,
                                .n_followers = t->n_followers,
                                .slots = (const deco_ngram_slot_t *)d->block,
                                .followers = (const deco_ngram_follower_t *)((char *)d->block + sb)};
  *out = d;
  return DECO_STATUS_SUCCESS;
}

void deco_ngram_device_destroy(deco_ngram_device_t *d) {
  if (!d) return;
  deco_free(d->ctx, d->block);
  free(d);
}

deco_ngram_view_t deco_ngram_device_view(const deco_ngram_device_t *d) {
  if (d) return d->view;
  return (deco_ngram_view_t){.seed = 0, .n_slots = 0, .n_followers = 0, .slots = NULL, .followers = NULL};
}

deco_ctx_t *deco_ngram_device_ctx(const deco_ngram_device_t *d) { return d ? d->ctx : NULL; }
