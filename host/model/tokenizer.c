/* host/model/tokenizer.c — the tokenizer handle (include/deco/tokenizer.h):
 * llama2.c's tokenizer.bin, validated record by record on load, and what
 * every kind shares (dispatch through the table of operations in bpe.h, the
 * UTF-8 rules, detokenizing and the streaming decoder). llama2.c encode
 * reproduces run.c's encode() token for token (BOS, dummy-prefix " ", code
 * points with byte fallback id = byte + 3, repeated best-score pair merges,
 * here in O(n log n) with a heap); decode returns what its decode() +
 * safe_printf() print. File: int32 max_token_length, then vocab_size
 * records of (f32 score, int32 length, length bytes), little-endian.
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
#include "model/bpe.h"

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

struct tok_llama2c {
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
static int tok_lookup(const tok_llama2c_t *t, const char *bytes, int32_t len) {
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
static void l2_free(tok_llama2c_t *t) {
  if (!t) return;
  free(t->scores);
  free(t->piece);
  free(t->length);
  free(t->sorted);
  free(t->blob);
  free(t);
}

static deco_status_t tok_alloc(int vocab_size, size_t blob_bytes, const char *name, tok_llama2c_t **out) {
  tok_llama2c_t *t = calloc(1, sizeof *t);
  if (t) {
    t->vocab_size = vocab_size;
    t->scores = malloc(sizeof(float) * (size_t)vocab_size);
    t->piece = malloc(sizeof(char *) * (size_t)vocab_size);
    t->length = malloc(sizeof(int32_t) * (size_t)vocab_size);
    t->sorted = malloc(sizeof(tok_entry_t) * (size_t)vocab_size);
    t->blob = malloc(blob_bytes);
  }
  if (!t || !t->scores || !t->piece || !t->length || !t->sorted || !t->blob) {
    l2_free(t);
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

static void tok_build_index(tok_llama2c_t *t) {
  for (int i = 0; i < t->vocab_size; ++i) {
    t->sorted[i].bytes = t->piece[i];
    t->sorted[i].len = t->length[i];
    t->sorted[i].id = i;
  }
  qsort(t->sorted, (size_t)t->vocab_size, sizeof(tok_entry_t), entry_cmp);
}

static deco_status_t l2_wrap(tok_llama2c_t *l, const char *name, deco_tokenizer_t **out);

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
  tok_llama2c_t *t;
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
  return l2_wrap(t, name, out);
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
  tok_llama2c_t *t;
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
  return l2_wrap(t, "byte vocabulary", out);
}

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
static int add_pair(const tok_llama2c_t *t, tok_heap_t *h, int push, char *pair, int32_t left, int32_t a,
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
static int merge_pairs(const tok_llama2c_t *t, int32_t *tokens, int n, char *pair, int *n_out) {
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

/* run.c's encode() of text[0..text_len) (no NUL inside): the ids in a
 * malloc'd array *out (room for text_len + 3), their count in *n_out. */
static deco_status_t l2_encode(const tok_llama2c_t *t, const char *text, size_t text_len, int bos, int eos,
                               int32_t **out, int *n_out) {
  static const char op[] = "deco_tokenizer_encode";
  *out = NULL;
  *n_out = 0;
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
  if (text_len > 0) {
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
  *out = tokens;
  *n_out = n;
  return DECO_STATUS_SUCCESS;
}

/* isprint / isspace of the C locale (run.c never calls setlocale), so the
 * result does not depend on the caller's locale. */
static int c_isprint(unsigned char c) { return c >= 0x20 && c <= 0x7E; }
static int c_isspace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static const char *l2_decode(const tok_llama2c_t *t, int prev, int token, size_t *len) {
  if (len) *len = 0;
  if (token < 0 || token >= t->vocab_size) return "";
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

/* ---- the llama2.c kind behind the handle ----------------------------------- */

static void l2_destroy(deco_tokenizer_t *t) {
  l2_free(t->l2);
  free(t);
}

static deco_status_t l2_tokenize(const deco_tokenizer_t *t, const char *text, size_t len, unsigned flags,
                                 tok_vec_t *out) {
  const char *nul = len ? memchr(text, '\0', len) : NULL;
  if (nul)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "deco_tokenizer_tokenize: byte %zu of the text is NUL, which llama2.c's rules (C strings) "
                     "cannot encode",
                     (size_t)(nul - text));
  int32_t *ids;
  int n;
  DECO_TRY(l2_encode(t->l2, text, len, (flags & DECO_TOKENIZE_ADD_SPECIAL) != 0, 0, &ids, &n));
  int oom = 0;
  for (int i = 0; i < n && !oom; ++i) oom = tok_vec_push(out, ids[i]);
  free(ids);
  if (oom) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "deco_tokenizer_tokenize: out of memory");
  return DECO_STATUS_SUCCESS;
}

/* What `deco generate` prints: nothing for the first id, then run.c's
 * decode(prev, id). */
static const char *l2_piece(const deco_tokenizer_t *t, tok_piece_state_t *st, int32_t id, unsigned flags,
                            size_t *len) {
  const char *p = "";
  *len = 0;
  if (st->n > 0) p = l2_decode(t->l2, st->prev, id, len);
  st->prev = id;
  st->n++;
  return p;
}

static int32_t l2_special(const deco_tokenizer_t *t, deco_special_token_t which) {
  switch (which) {
    case DECO_TOKEN_BOS: return 1;
    case DECO_TOKEN_EOS: return 2;
    case DECO_TOKEN_UNK: return 0;
    default: return -1;
  }
}

static int l2_token_type(const deco_tokenizer_t *t, int32_t id) {
  if (id < 0 || id >= t->vocab_size) return -1;
  if (id == 0) return DECO_TOKEN_TYPE_UNKNOWN;
  return id <= 2 ? DECO_TOKEN_TYPE_CONTROL : DECO_TOKEN_TYPE_NORMAL;
}

static const char *l2_token_text(const deco_tokenizer_t *t, int32_t id, size_t *len) {
  if (id < 0 || id >= t->vocab_size) return NULL;
  if (len) *len = (size_t)t->l2->length[id];
  return t->l2->piece[id];
}

static int32_t l2_find(const deco_tokenizer_t *t, const char *text, size_t len) {
  if (len > (size_t)t->l2->max_token_length) return -1;
  return tok_lookup(t->l2, text, (int32_t)len);
}

static const tok_ops_t l2_ops = {
    .destroy = l2_destroy,
    .tokenize = l2_tokenize,
    .piece = l2_piece,
    .special = l2_special,
    .token_type = l2_token_type,
    .token_text = l2_token_text,
    .find = l2_find,
};

static deco_status_t l2_wrap(tok_llama2c_t *l, const char *name, deco_tokenizer_t **out) {
  deco_tokenizer_t *t = calloc(1, sizeof *t);
  if (!t) {
    l2_free(l);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cannot allocate the tokenizer", tok_name(name));
  }
  t->kind = DECO_TOKENIZER_LLAMA2C;
  t->ops = &l2_ops;
  t->vocab_size = l->vocab_size;
  t->l2 = l;
  *out = t;
  return DECO_STATUS_SUCCESS;
}

/* ---- every kind --------------------------------------------------------------- */

int tok_vec_push(tok_vec_t *v, int32_t id) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 64;
    int32_t *a = cap <= SIZE_MAX / sizeof *a ? realloc(v->a, cap * sizeof *a) : NULL;
    if (!a) return -1;
    v->a = a;
    v->cap = cap;
  }
  v->a[v->n++] = id;
  return 0;
}

deco_status_t tok_vec_deliver(const tok_vec_t *v, const char *op, const char *what, int32_t *ids, int max_ids,
                              int *n_ids) {
  if (v->n > (size_t)INT32_MAX)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: the %s encodes to %zu ids, more than an int holds", op,
                     what, v->n);
  const int n = (int)v->n;
  *n_ids = n;
  if (n > max_ids)
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: the %s encodes to %d ids but max_ids is %d", op, what, n,
                     max_ids);
  if (n > 0) memcpy(ids, v->a, sizeof(int32_t) * (size_t)n);
  return DECO_STATUS_SUCCESS;
}

void deco_tokenizer_destroy(deco_tokenizer_t *tok) {
  if (tok) tok->ops->destroy(tok);
}

int deco_tokenizer_vocab_size(const deco_tokenizer_t *tok) { return tok ? tok->vocab_size : 0; }

deco_tokenizer_kind_t deco_tokenizer_kind(const deco_tokenizer_t *tok) {
  return tok ? tok->kind : DECO_TOKENIZER_LLAMA2C;
}

const char *deco_tokenizer_pre(const deco_tokenizer_t *tok) {
  return tok && tok->kind == DECO_TOKENIZER_BPE ? deco_tok_gguf_pre(tok) : "";
}

int32_t deco_tokenizer_special(const deco_tokenizer_t *tok, deco_special_token_t which) {
  return tok ? tok->ops->special(tok, which) : -1;
}

int deco_tokenizer_add_bos(const deco_tokenizer_t *tok) {
  if (!tok) return 0;
  return tok->kind == DECO_TOKENIZER_LLAMA2C ? 1 : deco_tok_gguf_add_bos(tok);
}

int deco_tokenizer_add_eos(const deco_tokenizer_t *tok) {
  if (!tok) return 0;
  return tok->kind == DECO_TOKENIZER_LLAMA2C ? 0 : deco_tok_gguf_add_eos(tok);
}

int deco_tokenizer_token_type(const deco_tokenizer_t *tok, int32_t id) {
  return tok ? tok->ops->token_type(tok, id) : -1;
}

const char *deco_tokenizer_token_text(const deco_tokenizer_t *tok, int32_t id, size_t *len) {
  if (len) *len = 0;
  return tok ? tok->ops->token_text(tok, id, len) : NULL;
}

int32_t deco_tokenizer_find(const deco_tokenizer_t *tok, const char *text, size_t len) {
  if (!tok || (!text && len)) return -1;
  return tok->ops->find(tok, text ? text : "", len);
}

/* tok_vec_deliver, then v freed. */
static deco_status_t vec_deliver(const char *op, tok_vec_t *v, int32_t *ids, int max_ids, int *n_ids) {
  const deco_status_t s = tok_vec_deliver(v, op, "text", ids, max_ids, n_ids);
  free(v->a);
  return s;
}

deco_status_t deco_tokenizer_tokenize(const deco_tokenizer_t *tok, const char *text, size_t len, unsigned flags,
                                      int32_t *ids, int max_ids, int *n_ids) {
  static const char op[] = "deco_tokenizer_tokenize";
  if (!n_ids) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: n_ids is NULL", op);
  *n_ids = 0;
  if (!tok) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: tok is NULL", op);
  if (!text && len) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: text is NULL", op);
  if (!ids && max_ids > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ids is NULL", op);
  if (max_ids < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: max_ids = %d is negative", op, max_ids);
  if (flags & ~(DECO_TOKENIZE_ADD_SPECIAL | DECO_TOKENIZE_PARSE_SPECIAL))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
  tok_vec_t v = {0};
  deco_status_t s = tok->ops->tokenize(tok, text ? text : "", len, flags, &v);
  if (s != DECO_STATUS_SUCCESS) {
    free(v.a);
    return s;
  }
  return vec_deliver(op, &v, ids, max_ids, n_ids);
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
  if (t->kind == DECO_TOKENIZER_LLAMA2C) {
    int32_t *tokens;
    int n;
    DECO_TRY(l2_encode(t->l2, text, text_len, bos, eos, &tokens, &n));
    tok_vec_t v = {tokens, (size_t)n, (size_t)n};
    return vec_deliver(op, &v, ids, max_ids, n_ids);
  }
  tok_vec_t v = {0};
  int32_t bos_id = t->ops->special(t, DECO_TOKEN_BOS), eos_id = t->ops->special(t, DECO_TOKEN_EOS);
  deco_status_t s = DECO_STATUS_SUCCESS;
  if (bos && bos_id >= 0 && tok_vec_push(&v, bos_id) != 0) s = DECO_STATUS_OUT_OF_MEMORY;
  if (s == DECO_STATUS_SUCCESS) s = t->ops->tokenize(t, text, text_len, 0, &v);
  if (s == DECO_STATUS_SUCCESS && eos && eos_id >= 0 && tok_vec_push(&v, eos_id) != 0) s = DECO_STATUS_OUT_OF_MEMORY;
  if (s != DECO_STATUS_SUCCESS) {
    free(v.a);
    return s == DECO_STATUS_OUT_OF_MEMORY ? DECO_FAIL(NULL, s, "%s: out of memory", op) : s;
  }
  return vec_deliver(op, &v, ids, max_ids, n_ids);
}

const char *deco_tokenizer_decode(const deco_tokenizer_t *t, int prev, int token, size_t *len) {
  if (len) *len = 0;
  if (!t || token < 0 || token >= t->vocab_size) return "";
  if (t->kind == DECO_TOKENIZER_LLAMA2C) return l2_decode(t->l2, prev, token, len);
  tok_piece_state_t st = {.prev = prev, .n = 1, .stripped = 1};
  size_t n = 0;
  const char *p = t->ops->piece(t, &st, token, 0, &n);
  if (len) *len = n;
  return p;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

size_t deco_utf8_sequence(const unsigned char *s, size_t n, size_t *sub, int *incomplete) {
  *sub = 1;
  *incomplete = 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned lo = 0x80, hi = 0xBF; /* the second byte's range (Unicode table 3-7) */
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    return 0; /* a continuation byte, C0, C1, F5..FF */
  }
  for (size_t k = 1; k < need; ++k) {
    if (k >= n) {
      *sub = k;
      *incomplete = 1;
      return 0;
    }
    unsigned b = s[k];
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xBFu)) {
      *sub = k;
      return 0;
    }
  }
  return need;
}

/* A growable byte buffer. */
typedef struct tok_bytes {
  char *a;
  size_t n, cap;
} tok_bytes_t;

static int bytes_put(tok_bytes_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < n) {
      if (cap > SIZE_MAX / 2) return -1;
      cap *= 2;
    }
    char *a = realloc(b->a, cap);
    if (!a) return -1;
    b->a = a;
    b->cap = cap;
  }
  memcpy(b->a + b->n, p, n);
  b->n += n;
  return 0;
}

/* Appends s[0..n): as it stands, or with each ill-formed subsequence (an
 * unfinished one at the end included) replaced by U+FFFD. */
static int put_text(tok_bytes_t *out, const char *s, size_t n, int valid) {
  if (n == 0) return 0;
  if (!valid) return bytes_put(out, s, n);
  static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0; /* run: well-formed bytes not yet copied, ending at i */
  while (i < n) {
    size_t sub;
    int incomplete;
    size_t k = deco_utf8_sequence(u + i, n - i, &sub, &incomplete);
    if (k) {
      i += k;
      run += k;
      continue;
    }
    if (bytes_put(out, s + i - run, run) != 0 || bytes_put(out, fffd, 3) != 0) return -1;
    run = 0;
    i += sub;
  }
  return bytes_put(out, s + n - run, run);
}

/* Where the text of s[0..n) may be cut so that what follows could still be
 * the start of a character: n, or the position of a last, unfinished but
 * well-formed so far, sequence (at most 3 bytes from the end). */
static size_t complete_prefix(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t q = n - back, sub;
    int incomplete;
    if ((u[q] & 0xC0) == 0x80) continue; /* a continuation byte starts nothing */
    if (deco_utf8_sequence(u + q, back, &sub, &incomplete) == 0 && incomplete) return q;
    return n; /* the last lead byte starts a finished or an ill-formed sequence */
  }
  return n;
}

static const char *op_detok = "deco_tokenizer_detokenize";

/* n_ids >= 0 (checked by the caller). */
static deco_status_t check_ids(const char *op, const deco_tokenizer_t *tok, const int32_t *ids, int n_ids) {
  const size_t i = deco_first_id_outside(ids, (size_t)n_ids, tok->vocab_size);
  if (i < (size_t)n_ids)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: ids[%d] = %d is outside the vocabulary of %d", op, (int)i,
                     (int)ids[i], tok->vocab_size);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tokenizer_detokenize(const deco_tokenizer_t *tok, const int32_t *ids, int n_ids, unsigned flags,
                                        char *text, size_t max_bytes, size_t *n_bytes) {
  if (!n_bytes) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: n_bytes is NULL", op_detok);
  *n_bytes = 0;
  if (!tok) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: tok is NULL", op_detok);
  if (!ids && n_ids > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ids is NULL", op_detok);
  if (!text && max_bytes > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: text is NULL", op_detok);
  if (n_ids < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: n_ids = %d is negative", op_detok, n_ids);
  if (flags & ~(DECO_DETOKENIZE_SPECIAL | DECO_DETOKENIZE_VALID_UTF8 | DECO_DETOKENIZE_CONTINUATION))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op_detok, flags);
  DECO_TRY(check_ids(op_detok, tok, ids, n_ids));
  tok_bytes_t raw = {0}, out = {0};
  tok_piece_state_t st = {0};
  int oom = 0;
  for (int i = 0; i < n_ids && !oom; ++i) {
    size_t len;
    const char *p = tok->ops->piece(tok, &st, ids[i], flags, &len);
    oom = bytes_put(&raw, p, len);
  }
  if (!oom) oom = put_text(&out, raw.a, raw.n, (flags & DECO_DETOKENIZE_VALID_UTF8) != 0);
  free(raw.a);
  if (oom) {
    free(out.a);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory for %d ids", op_detok, n_ids);
  }
  *n_bytes = out.n;
  if (out.n > max_bytes) {
    free(out.a);
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: the text is %zu bytes but max_bytes is %zu", op_detok, *n_bytes,
                     max_bytes);
  }
  if (out.n) memcpy(text, out.a, out.n);
  free(out.a);
  return DECO_STATUS_SUCCESS;
}

/* ---- the streaming decoder --------------------------------------------------- */

struct deco_text_decoder {
  const deco_tokenizer_t *tok;
  unsigned flags;
  tok_piece_state_t st;
  tok_bytes_t pending; /* an unfinished character's first bytes, then the new piece */
  tok_bytes_t out;     /* what the last call returned */
};

deco_status_t deco_text_decoder_create(const deco_tokenizer_t *tok, unsigned flags, deco_text_decoder_t **out) {
  static const char op[] = "deco_text_decoder_create";
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  if (!tok) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: tok is NULL", op);
  if (flags & ~(DECO_DETOKENIZE_SPECIAL | DECO_DETOKENIZE_VALID_UTF8 | DECO_DETOKENIZE_CONTINUATION))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
  deco_text_decoder_t *d = calloc(1, sizeof *d);
  if (!d) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", op);
  d->tok = tok;
  d->flags = flags;
  *out = d;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_text_decoder_push(deco_text_decoder_t *d, int32_t id, const char **text, size_t *len) {
  static const char op[] = "deco_text_decoder_push";
  if (!d || !text || !len) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: a pointer argument is NULL", op);
  *text = "";
  *len = 0;
  if (id < 0 || id >= d->tok->vocab_size)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: id %d is outside the vocabulary of %d", op, (int)id,
                     d->tok->vocab_size);
  size_t plen;
  const char *p = d->tok->ops->piece(d->tok, &d->st, id, d->flags, &plen);
  d->out.n = 0;
  if (bytes_put(&d->pending, p, plen) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", op);
  size_t cut = complete_prefix(d->pending.a, d->pending.n);
  if (put_text(&d->out, d->pending.a, cut, (d->flags & DECO_DETOKENIZE_VALID_UTF8) != 0) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", op);
  if (cut > 0 && cut < d->pending.n) memmove(d->pending.a, d->pending.a + cut, d->pending.n - cut);
  d->pending.n -= cut;
  *text = d->out.n ? d->out.a : "";
  *len = d->out.n;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_text_decoder_flush(deco_text_decoder_t *d, const char **text, size_t *len) {
  static const char op[] = "deco_text_decoder_flush";
  if (!d || !text || !len) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: a pointer argument is NULL", op);
  *text = "";
  *len = 0;
  d->out.n = 0;
  int oom = put_text(&d->out, d->pending.a, d->pending.n, (d->flags & DECO_DETOKENIZE_VALID_UTF8) != 0);
  d->pending.n = 0;
  d->st = (tok_piece_state_t){0};
  if (oom) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", op);
  *text = d->out.n ? d->out.a : "";
  *len = d->out.n;
  return DECO_STATUS_SUCCESS;
}

void deco_text_decoder_destroy(deco_text_decoder_t *d) {
  if (!d) return;
  free(d->pending.a);
  free(d->out.a);
  free(d);
}
