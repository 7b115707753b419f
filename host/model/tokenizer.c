/* host/model/tokenizer.c — llama2.c's tokenizer.bin, validated record by
 * record on load. Encode reproduces run.c's encode() token for token (BOS,
 * dummy-prefix " ", code points with byte fallback id = byte + 3, repeated
 * best-score pair merges, here in O(n log n) with a heap); decode returns
 * what its decode() + safe_printf() print. File: int32 max_token_length,
 * then vocab_size records of (f32 score, int32 length, length bytes),
 * little-endian.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/internal.h"
#include "deco/tokenizer.h"

/* run.c's byte fallback needs ids 3..258; more than this is no tokenizer.bin
 * anyone exports (Llama 3's has 128256). */
#define TOK_MIN_VOCAB 259
#define TOK_MAX_VOCAB (1 << 20)
#define TOK_MAX_TOKEN_LENGTH (1 << 16)
/* run.c starts its best score at -1e10, so a merge scoring at or below it is
 * never taken. */
#define TOK_NO_SCORE -1e10f

typedef struct tok_entry {
  const char *bytes; /* NUL-terminated copy in pieces */
  int32_t len;
  int32_t id;
} tok_entry_t;

struct deco_tokenizer {
  int vocab_size;
  int max_token_length;
  float *scores;       /* [vocab_size] */
  const char **piece;  /* [vocab_size] -> NUL-terminated bytes in blob */
  int32_t *length;     /* [vocab_size] */
  char *blob;          /* every piece followed by a NUL */
  tok_entry_t *sorted; /* [vocab_size] by (bytes, id): the lookup table */
  char byte_pieces[512]; /* byte b at 2b, NUL at 2b + 1 (decode's "<0xXX>") */
};

static const char *tok_name(const char *name) { return name ? name : "(buffer)"; }

static int32_t read_i32(const unsigned char *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

static float read_f32(const unsigned char *p) {
  float v;
  memcpy(&v, p, sizeof v);
  return v;
}

static int entry_cmp_bytes(const char *a, int32_t la, const char *b, int32_t lb) {
  int32_t n = la < lb ? la : lb;
  int c = memcmp(a, b, (size_t)n);
  if (c != 0) return c;
  return (la > lb) - (la < lb);
}

static int entry_cmp(const void *pa, const void *pb) {
  const tok_entry_t *a = pa, *b = pb;
  int c = entry_cmp_bytes(a->bytes, a->len, b->bytes, b->len);
  if (c != 0) return c;
  return (a->id > b->id) - (a->id < b->id);
}

/* Id of the piece equal to bytes[0..len), -1 if none. Duplicated pieces give
 * the lowest id (run.c's bsearch over an unstable qsort leaves it open). */
static int tok_lookup(const deco_tokenizer_t *t, const char *bytes, int32_t len) {
  int lo = 0, hi = t->vocab_size; /* first entry >= bytes in [lo, hi) */
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    const tok_entry_t *e = &t->sorted[mid];
    if (entry_cmp_bytes(e->bytes, e->len, bytes, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < t->vocab_size && entry_cmp_bytes(t->sorted[lo].bytes, t->sorted[lo].len, bytes, len) == 0)
    return t->sorted[lo].id;
  return -1;
}

/* Allocates the tables for vocab_size pieces of blob_bytes in total (NULs
 * included) and fills the byte pieces. */
static deco_status_t tok_alloc(int vocab_size, size_t blob_bytes, const char *name, deco_tokenizer_t **out) {
  deco_tokenizer_t *t = calloc(1, sizeof *t);
  if (t) {
    t->vocab_size = vocab_size;
    t->scores = malloc(sizeof(float) * (size_t)vocab_size);
    t->piece = malloc(sizeof(char *) * (size_t)vocab_size);
    t->length = malloc(sizeof(int32_t) * (size_t)vocab_size);
    t->sorted = malloc(sizeof(tok_entry_t) * (size_t)vocab_size);
    t->blob = malloc(blob_bytes);
  }
  if (!t || !t->scores || !t->piece || !t->length || !t->sorted || !t->blob) {
    deco_tokenizer_destroy(t);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate the vocabulary (%d pieces, %zu bytes)",
                     tok_name(name), vocab_size, blob_bytes);
  }
  for (int b = 0; b < 256; ++b) {
    t->byte_pieces[2 * b] = (char)b;
    t->byte_pieces[2 * b + 1] = '\0';
  }
  *out = t;
  return DECO_STATUS_SUCCESS;
}

static void tok_build_index(deco_tokenizer_t *t) {
  for (int i = 0; i < t->vocab_size; ++i) {
    t->sorted[i].bytes = t->piece[i];
    t->sorted[i].len = t->length[i];
    t->sorted[i].id = i;
  }
  qsort(t->sorted, (size_t)t->vocab_size, sizeof(tok_entry_t), entry_cmp);
}

deco_status_t deco_tokenizer_load_buffer(const void *data, size_t size, const char *name, int vocab_size,
                                         deco_tokenizer_t **out) {
  const char *nm = tok_name(name);
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_buffer: out is NULL");
  *out = NULL;
  if (data == NULL && size > 0)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_buffer: data is NULL");
  if (vocab_size < TOK_MIN_VOCAB || vocab_size > TOK_MAX_VOCAB)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: the model's vocab_size %d is outside %d..%d (ids 0-2 special and 3-258 the byte "
                     "fallbacks need at least 259)",
                     nm, vocab_size, TOK_MIN_VOCAB, TOK_MAX_VOCAB);
  const unsigned char *p = data;
  if (size < 4)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: file is %zu bytes, too short for the int32 max_token_length",
                     nm, size);
  int32_t max_len = read_i32(p);
  if (max_len < 1 || max_len > TOK_MAX_TOKEN_LENGTH)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: max_token_length %d is outside 1..%d", nm, (int)max_len,
                     TOK_MAX_TOKEN_LENGTH);

  /* Pass 1: validate every record before anything is allocated. */
  size_t off = 4, blob_bytes = 0;
  for (int i = 0; i < vocab_size; ++i) {
    if (size - off < 8)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: record %d: file ends inside the score/length fields (file is %zu bytes, record %d of the "
                       "model's vocab_size %d starts at byte %zu)",
                       nm, i, size, i, vocab_size, off);
    float score = read_f32(p + off);
    int32_t len = read_i32(p + off + 4);
    if (!isfinite(score))
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: record %d: score is %s (must be finite)", nm, i,
                       isnan(score) ? "nan" : "inf");
    /* run.c's fread of 0 bytes fails, so an empty piece never loads there. */
    if (len < 1)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: record %d: length %d must be >= 1", nm, i, (int)len);
    if (len > max_len)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: record %d: length %d exceeds max_token_length %d", nm, i,
                       (int)len, (int)max_len);
    off += 8;
    if (size - off < (size_t)len)
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: record %d: length %d runs past the end of the file (%zu bytes left, file is %zu bytes)", nm,
                       i, (int)len, size - off, size);
    off += (size_t)len;
    blob_bytes += (size_t)len + 1;
  }
  if (off != size)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: %zu bytes follow the %d records of the model's vocab_size (file is %zu bytes, expected %zu): "
                     "the file has more records than the model's vocab",
                     nm, size - off, vocab_size, size, off);

  /* Pass 2: copy. */
  deco_tokenizer_t *t;
  DECO_TRY(tok_alloc(vocab_size, blob_bytes, name, &t));
  t->max_token_length = max_len;
  off = 4;
  char *dst = t->blob;
  for (int i = 0; i < vocab_size; ++i) {
    int32_t len = read_i32(p + off + 4);
    t->scores[i] = read_f32(p + off);
    t->length[i] = len;
    off += 8;
    memcpy(dst, p + off, (size_t)len);
    dst[len] = '\0';
    t->piece[i] = dst;
    dst += (size_t)len + 1;
    off += (size_t)len;
  }
  tok_build_index(t);
  *out = t;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tokenizer_load(const char *path, int vocab_size, deco_tokenizer_t **out) {
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load: out is NULL");
  *out = NULL;
  if (path == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load: path is NULL");
  void *data;
  size_t size;
  DECO_TRY(deco_file_read(NULL, path, SIZE_MAX, &data, &size, NULL));
  deco_status_t s = deco_tokenizer_load_buffer(data, size, path, vocab_size, out);
  free(data);
  return s;
}

deco_status_t deco_tokenizer_create_bytes(deco_tokenizer_t **out) {
  static const char *const special[3] = {"<unk>", "<s>", "</s>"};
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_create_bytes: out is NULL");
  *out = NULL;
  size_t blob_bytes = 256 * 2;
  for (int i = 0; i < 3; ++i) blob_bytes += strlen(special[i]) + 1;
  deco_tokenizer_t *t;
  DECO_TRY(tok_alloc(TOK_MIN_VOCAB, blob_bytes, "byte vocabulary", &t));
  char *dst = t->blob;
  int max_len = 1;
  for (int i = 0; i < TOK_MIN_VOCAB; ++i) {
    int32_t len;
    if (i < 3) {
      len = (int32_t)strlen(special[i]);
      memcpy(dst, special[i], (size_t)len);
    } else {
      len = 1;
      dst[0] = (char)(i - 3);
    }
    dst[len] = '\0';
    t->piece[i] = dst;
    t->length[i] = len;
    t->scores[i] = 0.0f;
    if (len > max_len) max_len = len;
    dst += (size_t)len + 1;
  }
  t->max_token_length = max_len;
  tok_build_index(t);
  *out = t;
  return DECO_STATUS_SUCCESS;
}

void deco_tokenizer_destroy(deco_tokenizer_t *tok) {
  if (!tok) return;
  free(tok->scores);
  free(tok->piece);
  free(tok->length);
  free(tok->sorted);
  free(tok->blob);
  free(tok);
}

int deco_tokenizer_vocab_size(const deco_tokenizer_t *tok) { return tok ? tok->vocab_size : 0; }

/* A candidate merge of the symbol at left with the one after it. It is stale
 * unless those two symbols still hold left_id and right_id: then id is
 * exactly what a fresh lookup of the pair would give. */
typedef struct tok_merge {
  uint64_t key;     /* merge_key(scores[id], left) */
  int32_t left_id;  /* the two symbols' ids when the entry was pushed */
  int32_t right_id;
  int32_t id;       /* the merged piece */
} tok_merge_t;

/* Binary min-heap of candidate merges by key. */
typedef struct tok_heap {
  tok_merge_t *a;
  size_t n, cap;
} tok_heap_t;

/* run.c's order as one integer, smallest first: the higher score, then the
 * leftmost pair. Merges only remove symbols, so the symbols left are in index
 * order and a lower left index is further left in the current list. The
 * score's bits become an unsigned integer that grows with the score (-0 is
 * taken as +0: they compare equal in run.c, so position decides). */
static uint64_t merge_key(float score, int32_t left) {
  if (score == 0.0f) score = 0.0f;
  uint32_t u;
  memcpy(&u, &score, sizeof u);
  /* Negative: flipping every bit puts larger magnitudes lower; positive:
   * the sign bit puts them above every negative. */
  u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
  return (uint64_t)~u << 32 | (uint32_t)left;
}

static int32_t merge_left(const tok_merge_t *m) { return (int32_t)(m->key & 0xFFFFFFFFu); }

/* Room for one more entry. */
static int heap_reserve(tok_heap_t *h) {
  if (h->n < h->cap) return 0;
  size_t cap = h->cap ? 2 * h->cap : 64;
  tok_merge_t *a = cap <= SIZE_MAX / sizeof *a ? realloc(h->a, cap * sizeof *a) : NULL;
  if (!a) return -1;
  h->a = a;
  h->cap = cap;
  return 0;
}

/* Puts m at slot i, or below it where the heap order needs it. */
static void heap_sift_down(tok_heap_t *h, size_t i, tok_merge_t m) {
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->a[c + 1].key < h->a[c].key) ++c;
    if (h->a[c].key >= m.key) break;
    h->a[i] = h->a[c];
    i = c;
  }
  h->a[i] = m;
}

static void heap_push(tok_heap_t *h, const tok_merge_t *m) {
  size_t i = h->n++;
  while (i > 0 && m->key < h->a[(i - 1) / 2].key) {
    h->a[i] = h->a[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->a[i] = *m;
}

static tok_merge_t heap_pop(tok_heap_t *h) {
  tok_merge_t top = h->a[0];
  if (--h->n > 0) heap_sift_down(h, 0, h->a[h->n]);
  return top;
}

/* Adds the merge of the symbol at left (id a) with the one after it (id b)
 * if their concatenation is a piece scoring above TOK_NO_SCORE: pushed, or
 * with push = 0 only appended, for a heap built afterwards. pair is scratch
 * of max_token_length bytes. Returns -1 when out of memory. */
static int add_pair(const deco_tokenizer_t *t, tok_heap_t *h, int push, char *pair, int32_t left, int32_t a,
                    int32_t b) {
  int32_t la = t->length[a], lb = t->length[b];
  if (la + lb > t->max_token_length) return 0; /* no piece is that long */
  memcpy(pair, t->piece[a], (size_t)la);
  memcpy(pair + la, t->piece[b], (size_t)lb);
  int id = tok_lookup(t, pair, la + lb);
  if (id < 0 || !(t->scores[id] > TOK_NO_SCORE)) return 0;
  if (heap_reserve(h) != 0) return -1;
  tok_merge_t m = {.key = merge_key(t->scores[id], left), .left_id = a, .right_id = b, .id = id};
  if (push)
    heap_push(h, &m);
  else
    h->a[h->n++] = m;
  return 0;
}

/* A symbol of the list being merged; its three fields sit together since
 * merges visit symbols all over the text. */
typedef struct tok_symbol {
  int32_t id;         /* -1 once merged into its left neighbour */
  int32_t prev, next; /* indices of the neighbours, -1 at the ends */
} tok_symbol_t;

/* run.c's merge loop in O(n log n) instead of its O(n^2): tokens[0..n) is
 * the unmerged list; on return its first *n_out ids are the merged list.
 * Each round pops the best candidate, skips it if stale, merges it and pushes
 * the pairs the merged symbol now forms with its neighbours. Every adjacent
 * pair that forms a piece keeps a live entry, so the best live entry is the
 * pair run.c would merge. pair is scratch of max_token_length bytes. Returns
 * -1 when out of memory. */
static int merge_pairs(const deco_tokenizer_t *t, int32_t *tokens, int n, char *pair, int *n_out) {
  *n_out = n;
  if (n < 2) return 0;
  tok_symbol_t *sym = malloc(sizeof(tok_symbol_t) * (size_t)n);
  if (!sym) return -1;
  for (int i = 0; i < n; ++i) sym[i] = (tok_symbol_t){.id = tokens[i], .prev = i - 1, .next = i + 1 < n ? i + 1 : -1};
  tok_heap_t h = {.a = NULL, .n = 0, .cap = 0};
  int status = 0;
  for (int i = 0; i + 1 < n && status == 0; ++i) status = add_pair(t, &h, 0, pair, i, tokens[i], tokens[i + 1]);
  for (size_t i = h.n / 2; i-- > 0;) heap_sift_down(&h, i, h.a[i]); /* Floyd's O(n) build */
  while (h.n > 0 && status == 0) {
    tok_merge_t m = heap_pop(&h);
    int32_t li = merge_left(&m);
    tok_symbol_t *l = &sym[li];
    if (l->id != m.left_id || l->next < 0 || sym[l->next].id != m.right_id) continue; /* stale */
    tok_symbol_t *r = &sym[l->next];
    l->id = m.id;
    r->id = -1; /* matches no entry's ids from now on */
    l->next = r->next;
    if (l->next >= 0) sym[l->next].prev = li;
    if (l->prev >= 0) status = add_pair(t, &h, 1, pair, l->prev, sym[l->prev].id, l->id);
    if (l->next >= 0 && status == 0) status = add_pair(t, &h, 1, pair, li, l->id, sym[l->next].id);
  }
  int kept = 0;
  for (int i = 0; i < n; ++i)
    if (sym[i].id >= 0) tokens[kept++] = sym[i].id;
  *n_out = kept;
  free(h.a);
  free(sym);
  return status;
}

deco_status_t deco_tokenizer_encode(const deco_tokenizer_t *t, const char *text, int bos, int eos, int32_t *ids,
                                    int max_ids, int *n_ids) {
  static const char op[] = "deco_tokenizer_encode";
  if (!t) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: tok is NULL", op);
  if (!text) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: text is NULL", op);
  if (!n_ids) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: n_ids is NULL", op);
  if (!ids && max_ids > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ids is NULL", op);
  if (max_ids < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: max_ids = %d is negative", op, max_ids);
  *n_ids = 0;
  size_t text_len = strlen(text);
  if (text_len > (size_t)INT32_MAX - 3)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: text of %zu bytes is too long", op, text_len);
  /* Before merging there are at most text_len + 3 ids; the result may be
   * much shorter, so work in scratch and copy only what fits. */
  int32_t *tokens = malloc(sizeof(int32_t) * (text_len + 3));
  char *pair = malloc((size_t)t->max_token_length);
  if (!tokens || !pair) {
    free(tokens);
    free(pair);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate scratch for %zu bytes of text", op, text_len);
  }
  int n = 0;
  if (bos) tokens[n++] = 1;
  if (text[0] != '\0') {
    /* run.c pushes str_lookup(" ") unconditionally, i.e. -1 for a vocabulary
     * without a " " piece (and then reads vocab[-1] while merging); no such
     * id can be emitted, so the prefix is left out instead. */
    int prefix = tok_lookup(t, " ", 1);
    if (prefix >= 0) tokens[n++] = prefix;
  }
  /* Code points: a byte plus the continuation bytes (10xxxxxx) that follow
   * it, at most 4 bytes in all; a stray continuation byte starts its own. */
  for (size_t i = 0; i < text_len;) {
    size_t len = 1;
    while (len < 4 && i + len < text_len && ((unsigned char)text[i + len] & 0xC0) == 0x80) ++len;
    int id = tok_lookup(t, text + i, (int32_t)len);
    if (id >= 0) {
      tokens[n++] = id;
    } else {
      for (size_t k = 0; k < len; ++k) tokens[n++] = (int32_t)(unsigned char)text[i + k] + 3;
    }
    i += len;
  }
  /* Merge the adjacent pair whose merged piece scores highest (the leftmost
   * among equals), until no adjacent pair forms a piece. */
  int merged = merge_pairs(t, tokens, n, pair, &n);
  free(pair);
  if (merged != 0) {
    free(tokens);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate the merge queue for %zu bytes of text", op,
                     text_len);
  }
  if (eos) tokens[n++] = 2;
  if (n > max_ids) {
    free(tokens);
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: the text encodes to %d ids but max_ids is %d", op, n, max_ids);
  }
  if (n > 0) memcpy(ids, tokens, sizeof(int32_t) * (size_t)n);
  free(tokens);
  *n_ids = n;
  return DECO_STATUS_SUCCESS;
}

/* isprint / isspace of the C locale (run.c never calls setlocale), so the
 * result does not depend on the caller's locale. */
static int c_isprint(unsigned char c) { return c >= 0x20 && c <= 0x7E; }
static int c_isspace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

const char *deco_tokenizer_decode(const deco_tokenizer_t *t, int prev, int token, size_t *len) {
  if (len) *len = 0;
  if (!t || token < 0 || token >= t->vocab_size) return "";
  /* run.c handles pieces as C strings: a piece holding a NUL ends there. */
  const char *piece = t->piece[token];
  if (prev == 1 && piece[0] == ' ') ++piece;
  unsigned char byte_val;
  /* run.c's format is "<0x%02hhX>"; in scanf the 0 is part of the width, so
   * this is the same conversion: sign, "0x" and leading space accepted, and
   * a missing closing '>' does not matter. */
  if (sscanf(piece, "<0x%2hhX>", &byte_val) == 1) piece = t->byte_pieces + 2 * byte_val;
  size_t n = strlen(piece);
  if (n == 0) return "";
  if (n == 1 && !(c_isprint((unsigned char)piece[0]) || c_isspace((unsigned char)piece[0]))) return "";
  if (len) *len = n;
  return piece;
}
