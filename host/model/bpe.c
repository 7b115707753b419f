/* host/model/bpe.c — GGUF vocabularies behind deco_tokenizer_t, encoded as
 * llama.cpp's llama_tokenize does (src/llama-vocab.cpp of the llama.cpp
 * vendored in llama-cpp-python 0.3.36): special-token text split off first
 * (tokenizer_st_partition: the longest tokens first, leftmost matches),
 * then each text fragment by
 *  - byte-level BPE ("gpt2"): the pre-tokenizer's regexes (bpe_pretok.c)
 *    cut the fragment into words, each word's bytes become GPT-2's
 *    byte-level characters, and adjacent symbols merge lowest merge rank
 *    first (leftmost among equals) through a priority queue;
 *  - SentencePiece ("llama"): spaces become "▁" (one prefixed where the
 *    vocabulary says so), adjacent symbols merge highest score first while
 *    the pair is a token, and what is left unknown falls back to <0xXX>.
 * Merges and pieces are looked up by id and by hash, never by scanning.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/file.h"
#include "core/internal.h"
#include "util/bytes.h"
#include "model/bpe.h"
#include "model/gguf.h"

#define GV_MAX_VOCAB (1 << 24) /* ids stay far inside int32 */
#define GV_DEAD INT32_MIN      /* a BPE symbol merged into its left neighbour */

struct tok_gguf {
  char *name;
  int spm; /* SentencePiece ("llama"), else byte-level BPE ("gpt2") */
  int n;
  char *text;          /* every token's text followed by a NUL */
  size_t *text_off;    /* [n + 1] */
  uint8_t *type;       /* [n] deco_token_type_t as the rules treat it */
  float *score;        /* [n] SentencePiece only */
  char *piece;         /* decoded bytes of every token */
  size_t *piece_off;   /* [n + 1] */
  int32_t *hash;       /* text -> id, open addressing; -1 empty */
  size_t hash_mask;
  uint64_t *merge_key; /* (left id << 32 | right id) -> rank, result; UINT64_MAX empty */
  int32_t *merge_rank, *merge_res;
  size_t merge_mask;
  int32_t byte_id[256]; /* BPE: the byte-level character of byte b; SPM: <0xXX>, else the byte itself */
  uint8_t byte_char_len[256];
  char byte_char[256][2]; /* BPE: UTF-8 of byte b's byte-level character */
  size_t max_text_len;
  int32_t special[6]; /* deco_special_token_t order */
  int add_bos, add_eos, add_space_prefix, ignore_merges;
  char pre[64];
  tok_pretok_t *pretok;
  int32_t *special_all; /* control, unknown and user-defined ids, longest text first */
  int n_special_all;
  int32_t *special_user; /* user-defined only */
  int n_special_user;
  char *chat_template;
  size_t chat_template_len;
  tok_chat_info_t chat;
};

/* ---- small helpers ---------------------------------------------------------- */


static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

static size_t table_size(size_t n) {
  size_t s = 16;
  while (s < 2 * n) s *= 2;
  return s;
}

static const char *tok_txt(const tok_gguf_t *g, int32_t id, size_t *len) {
  *len = g->text_off[id + 1] - g->text_off[id] - 1;
  return g->text + g->text_off[id];
}

static int32_t gv_find(const tok_gguf_t *g, const char *s, size_t n) {
  if (n > g->max_text_len) return -1;
  size_t i = (size_t)deco_fnv1a64(s, n) & g->hash_mask;
  for (;; i = (i + 1) & g->hash_mask) {
    int32_t id = g->hash[i];
    if (id < 0) return -1;
    size_t len;
    const char *t = tok_txt(g, id, &len);
    if (len == n && memcmp(t, s, n) == 0) return id;
  }
}

/* At most 40 bytes of s, printable, for messages. */
static const char *quote(char buf[200], const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && i < 40; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      buf[k++] = (char)c;
    } else {
      k += (size_t)snprintf(buf + k, 200 - k, "\\x%02x", c);
    }
  }
  if (n > 40) {
    memcpy(buf + k, "...", 3);
    k += 3;
  }
  buf[k] = '\0';
  return buf;
}

/* GPT-2's byte-level alphabet (bytes_to_unicode): the printable bytes
 * ! .. ~, ¡ .. ¬, ® .. ÿ stand for themselves, the other 68 bytes
 * (0x00-0x20, 0x7F-0xA0, 0xAD), in order, for U+0100..U+0143. */
static int byte_printable(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_to_cp(int b) {
  if (byte_printable(b)) return (uint32_t)b;
  int k = 0;
  for (int c = 0; c < b; ++c)
    if (!byte_printable(c)) ++k;
  return 256u + (uint32_t)k;
}

/* The byte a byte-level character stands for, -1 for other code points:
 * byte_to_cp's inverse in closed form (no table, so no state to share
 * between threads loading tokenizers at once). */
static int cp_to_byte(uint32_t cp) {
  enum { LOW = 0x21, MID = 0xA1 - 0x7F }; /* 0x00-0x20, then 0x7F-0xA0 */
  if (cp < 256) return byte_printable((int)cp) ? (int)cp : -1;
  if (cp < 256 + LOW) return (int)(cp - 256);
  if (cp < 256 + LOW + MID) return 0x7F + (int)(cp - 256 - LOW);
  return cp == 256 + LOW + MID ? 0xAD : -1;
}

static size_t put_cp(unsigned char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* A code point of well-formed UTF-8 at s (length k). */
static uint32_t get_cp(const unsigned char *s, size_t k) {
  if (k == 1) return s[0];
  if (k == 2) return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
  if (k == 3) return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* llama.cpp's unicode_cpt_from_utf8, lenient: a lead byte and the
 * continuation bytes its high bits ask for, overlong forms and surrogates
 * included; anything else (and, where llama.cpp aborts, a value above
 * U+10FFFF) is U+FFFD for one byte. */
static uint32_t lenient_cp(const unsigned char *s, size_t n, size_t *adv) {
  unsigned c = s[0];
  *adv = 1;
  if (c < 0x80) return c;
  size_t need = !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
  if (need == 0 || n < need) return 0xFFFD;
  for (size_t k = 1; k < need; ++k)
    if ((s[k] & 0xC0) != 0x80) return 0xFFFD;
  uint32_t cp = get_cp(s, need);
  if (cp > 0x10FFFF) return 0xFFFD;
  *adv = need;
  return cp;
}

/* ---- loading -------------------------------------------------------------- */

static void gv_free(tok_gguf_t *g) {
  if (!g) return;
  free(g->name);
  free(g->text);
  free(g->text_off);
  free(g->type);
  free(g->score);
  free(g->piece);
  free(g->piece_off);
  free(g->hash);
  free(g->merge_key);
  free(g->merge_rank);
  free(g->merge_res);
  deco_tok_pretok_destroy(g->pretok);
  free(g->special_all);
  free(g->special_user);
  free(g->chat_template);
  deco_tok_chat_info_free(&g->chat);
  free(g);
}

static deco_status_t gv_oom(const char *nm) {
  return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory reading the vocabulary", nm);
}

#define GV_TYPE(t) (1u << (t))

/* An array key's element type, which must be one of `types` (a GV_TYPE bit
 * per DECO_GGUF_VAL_*, `expected` in words), and its length. */
static deco_status_t gv_array(const deco_gguf_t *gg, const char *key, const char *nm, unsigned types,
                              const char *expected, uint32_t *et, uint64_t *count) {
  DECO_TRY(deco_gguf_get_array(gg, key, et, count));
  if (*et >= 32 || !(types & GV_TYPE(*et)))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s is an array of %s, expected %s", nm, key,
                     deco_gguf_value_type_name(*et), expected);
  return DECO_STATUS_SUCCESS;
}

/* An optional array of one entry (`what`) per token: *count is 0 when the
 * key is absent, else g->n. */
static deco_status_t gv_per_token(const tok_gguf_t *g, const deco_gguf_t *gg, const char *key, const char *nm,
                                  unsigned types, const char *expected, const char *what, uint32_t *et,
                                  uint64_t *count) {
  *count = 0;
  if (!deco_gguf_find_kv(gg, key)) return DECO_STATUS_SUCCESS;
  DECO_TRY(gv_array(gg, key, nm, types, expected, et, count));
  if (*count != (uint64_t)g->n)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata %s has %llu entries but tokenizer.ggml.tokens has %d (one %s per token)", nm, key,
                     (unsigned long long)*count, g->n, what);
  return DECO_STATUS_SUCCESS;
}

static const char k_tokens_key[] = "tokenizer.ggml.tokens";

/* Fails unless token i's text t[0..len) is well-formed UTF-8. */
static deco_status_t gv_check_utf8(const char *t, size_t len, uint64_t i, const char *nm) {
  for (size_t k = 0; k < len;) {
    size_t sub;
    int inc;
    size_t q = deco_utf8_sequence((const unsigned char *)t + k, len - k, &sub, &inc);
    if (!q) {
      char qb[200];
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s[%llu] ('%s') is not valid UTF-8 at byte %zu", nm,
                       k_tokens_key, (unsigned long long)i, quote(qb, t, len), k);
    }
    k += q;
  }
  return DECO_STATUS_SUCCESS;
}

/* Enters token i, text t[0..len), into the text -> id table; fails if an
 * earlier token has the same text. */
static deco_status_t gv_hash_token(tok_gguf_t *g, int32_t i, const char *t, size_t len, const char *nm) {
  for (size_t h = (size_t)deco_fnv1a64(t, len) & g->hash_mask;; h = (h + 1) & g->hash_mask) {
    int32_t other = g->hash[h];
    if (other < 0) {
      g->hash[h] = i;
      return DECO_STATUS_SUCCESS;
    }
    size_t olen;
    const char *ot = tok_txt(g, other, &olen);
    if (olen == len && memcmp(ot, t, len) == 0) {
      char qb[200];
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s[%llu] ('%s') repeats token %d", nm,
                       k_tokens_key, (unsigned long long)i, quote(qb, t, len), (int)other);
    }
  }
}

/* The token texts strs[0..count) into g->text and the table. */
static deco_status_t gv_token_table(tok_gguf_t *g, const deco_gguf_str_t *strs, uint64_t count, const char *nm) {
  g->n = (int)count;
  size_t total = 0;
  for (uint64_t i = 0; i < count; ++i) total += (strs[i].len ? strs[i].len : 24) + 1;
  g->text = malloc(total);
  g->text_off = malloc(sizeof(size_t) * ((size_t)count + 1));
  g->hash_mask = table_size((size_t)count) - 1;
  g->hash = malloc(sizeof(int32_t) * (g->hash_mask + 1));
  if (!g->text || !g->text_off || !g->hash) return gv_oom(nm);
  memset(g->hash, 0xFF, sizeof(int32_t) * (g->hash_mask + 1));
  size_t off = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const char *t = strs[i].s;
    size_t len = (size_t)strs[i].len;
    char empty[32];
    if (len == 0) { /* llama.cpp's name for an empty token */
      len = (size_t)snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
      t = empty;
    }
    DECO_TRY(gv_check_utf8(t, len, i, nm));
    g->text_off[i] = off;
    memcpy(g->text + off, t, len);
    g->text[off + len] = '\0';
    off += len + 1;
    if (len > g->max_text_len) g->max_text_len = len;
    DECO_TRY(gv_hash_token(g, (int32_t)i, t, len, nm));
  }
  g->text_off[count] = off;
  return DECO_STATUS_SUCCESS;
}

/* The text of every token, unique, well-formed UTF-8; empty ones renamed. */
static deco_status_t gv_tokens(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  uint32_t et;
  uint64_t count;
  DECO_TRY(gv_array(gg, k_tokens_key, nm, GV_TYPE(DECO_GGUF_VAL_STRING), "strings", &et, &count));
  if (count < 1 || count > GV_MAX_VOCAB)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s has %llu tokens, expected 1..%d", nm,
                     k_tokens_key, (unsigned long long)count, GV_MAX_VOCAB);
  deco_gguf_str_t *strs = malloc(sizeof *strs * (size_t)count);
  if (!strs) return gv_oom(nm);
  deco_status_t s = deco_gguf_get_strings(gg, k_tokens_key, strs, count, &count);
  if (s == DECO_STATUS_SUCCESS) s = gv_token_table(g, strs, count, nm);
  free(strs);
  return s;
}

/* token_type: absent, all normal; present, one int32 per token. */
static deco_status_t gv_types(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  static const char key[] = "tokenizer.ggml.token_type";
  g->type = malloc((size_t)g->n);
  if (!g->type) return gv_oom(nm);
  memset(g->type, DECO_TOKEN_TYPE_NORMAL, (size_t)g->n);
  uint32_t et;
  uint64_t count;
  DECO_TRY(gv_per_token(g, gg, key, nm, GV_TYPE(DECO_GGUF_VAL_INT32), "int32", "type", &et, &count));
  if (count == 0) return DECO_STATUS_SUCCESS;
  int64_t *v = malloc(sizeof *v * (size_t)count);
  if (!v) return gv_oom(nm);
  deco_status_t s = deco_gguf_get_ints(gg, key, v, count, &count);
  /* Types outside 1..6 are llama.cpp's "undefined": never printed, never split off. */
  for (int i = 0; s == DECO_STATUS_SUCCESS && i < g->n; ++i)
    g->type[i] = (uint8_t)(v[i] >= 1 && v[i] <= 6 ? v[i] : DECO_TOKEN_TYPE_UNDEFINED);
  free(v);
  return s;
}

/* SentencePiece scores: absent, all 0; present, one finite value per token. */
static deco_status_t gv_scores(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  static const char key[] = "tokenizer.ggml.scores";
  g->score = calloc((size_t)g->n, sizeof(float));
  if (!g->score) return gv_oom(nm);
  uint32_t et;
  uint64_t count;
  DECO_TRY(gv_per_token(g, gg, key, nm, GV_TYPE(DECO_GGUF_VAL_FLOAT32) | GV_TYPE(DECO_GGUF_VAL_INT32),
                        "float32 or int32", "score", &et, &count));
  if (count == 0) return DECO_STATUS_SUCCESS;
  if (et == DECO_GGUF_VAL_FLOAT32) {
    DECO_TRY(deco_gguf_get_floats(gg, key, g->score, count, &count));
  } else {
    int64_t *v = malloc(sizeof *v * (size_t)count);
    if (!v) return gv_oom(nm);
    deco_status_t s = deco_gguf_get_ints(gg, key, v, count, &count);
    for (int i = 0; i < g->n; ++i) g->score[i] = (float)v[i];
    free(v);
    DECO_TRY(s);
  }
  for (int i = 0; i < g->n; ++i)
    if (!isfinite(g->score[i]))
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s[%d] is %s (must be finite)", nm, key, i,
                       isnan(g->score[i]) ? "nan" : "inf");
  return DECO_STATUS_SUCCESS;
}

static const char k_merges_key[] = "tokenizer.ggml.merges";

/* The token whose text is x[0..lx) followed by y[0..ly) into *id (-1 when
 * there is none); fails only when out of memory. */
static deco_status_t gv_find_joined(const tok_gguf_t *g, const char *x, size_t lx, const char *y, size_t ly,
                                    const char *nm, int32_t *id) {
  *id = -1;
  if (lx + ly > g->max_text_len) return DECO_STATUS_SUCCESS;
  char *xy = malloc(lx + ly + 1);
  if (!xy) return gv_oom(nm);
  memcpy(xy, x, lx);
  memcpy(xy + lx, y, ly);
  *id = gv_find(g, xy, lx + ly);
  free(xy);
  return DECO_STATUS_SUCCESS;
}

/* Merge i, text w[0..len): its pair and result into the table, unless the
 * pair is there already. */
static deco_status_t gv_merge_add(tok_gguf_t *g, uint64_t i, const char *w, size_t len, const char *nm) {
  char qb[200];
  const char *sp = len > 1 ? memchr(w + 1, ' ', len - 1) : NULL;
  if (!sp)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s[%llu] ('%s') has no space between two parts", nm,
                     k_merges_key, (unsigned long long)i, quote(qb, w, len));
  size_t la = (size_t)(sp - w), lb = len - la - 1;
  int32_t a = gv_find(g, w, la), b = gv_find(g, sp + 1, lb), r = -1;
  if (a >= 0 && b >= 0) DECO_TRY(gv_find_joined(g, w, la, sp + 1, lb, nm, &r));
  if (a < 0 || b < 0 || r < 0)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata %s[%llu] ('%s') names %s, which is not in tokenizer.ggml.tokens", nm, k_merges_key,
                     (unsigned long long)i, quote(qb, w, len),
                     a < 0 ? "its first part" : b < 0 ? "its second part" : "a merged token");
  uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  size_t h = (size_t)mix64(k) & g->merge_mask;
  while (g->merge_key[h] != UINT64_MAX && g->merge_key[h] != k) h = (h + 1) & g->merge_mask;
  if (g->merge_key[h] == UINT64_MAX) {
    g->merge_key[h] = k;
    g->merge_rank[h] = (int32_t)i;
    g->merge_res[h] = r;
  }
  return DECO_STATUS_SUCCESS;
}

/* Merges "A B" (split at the first space after the first byte, as
 * llama.cpp does): A, B and AB must be tokens; a repeated pair keeps its
 * first rank. */
static deco_status_t gv_merges(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  if (!deco_gguf_find_kv(gg, k_merges_key))
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                     "%s: metadata %s is missing (a gpt2 vocabulary needs its merges)", nm, k_merges_key);
  uint32_t et;
  uint64_t count;
  DECO_TRY(gv_array(gg, k_merges_key, nm, GV_TYPE(DECO_GGUF_VAL_STRING), "strings", &et, &count));
  if (count > (uint64_t)INT32_MAX)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s has %llu merges", nm, k_merges_key,
                     (unsigned long long)count);
  deco_gguf_str_t *strs = malloc(sizeof *strs * (size_t)(count ? count : 1));
  g->merge_mask = table_size((size_t)count) - 1;
  g->merge_key = malloc(sizeof(uint64_t) * (g->merge_mask + 1));
  g->merge_rank = malloc(sizeof(int32_t) * (g->merge_mask + 1));
  g->merge_res = malloc(sizeof(int32_t) * (g->merge_mask + 1));
  deco_status_t s = DECO_STATUS_SUCCESS;
  if (!strs || !g->merge_key || !g->merge_rank || !g->merge_res) {
    s = gv_oom(nm);
  } else {
    memset(g->merge_key, 0xFF, sizeof(uint64_t) * (g->merge_mask + 1));
    s = deco_gguf_get_strings(gg, k_merges_key, strs, count, &count);
  }
  for (uint64_t i = 0; i < count && s == DECO_STATUS_SUCCESS; ++i)
    s = gv_merge_add(g, i, strs[i].s, (size_t)strs[i].len, nm);
  free(strs);
  return s;
}

static int gv_merge(const tok_gguf_t *g, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
  uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  for (size_t h = (size_t)mix64(k) & g->merge_mask;; h = (h + 1) & g->merge_mask) {
    if (g->merge_key[h] == UINT64_MAX) return 0;
    if (g->merge_key[h] == k) {
      *rank = g->merge_rank[h];
      *res = g->merge_res[h];
      return 1;
    }
  }
}

/* An optional uint32 id key inside the vocabulary (absent: keep *id). An id
 * outside it is refused, or with lenient kept at *id as llama.cpp does
 * ("bad special token ... using default id"). */
static deco_status_t gv_id(const deco_gguf_t *gg, const char *key, int n, const char *nm, int lenient, int32_t *id) {
  if (!deco_gguf_find_kv(gg, key)) return DECO_STATUS_SUCCESS;
  uint32_t v;
  DECO_TRY(deco_gguf_get_u32(gg, key, &v));
  if (v >= (uint32_t)n && lenient) return DECO_STATUS_SUCCESS;
  if (v >= (uint32_t)n)
    return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT, "%s: metadata %s = %u is outside the vocabulary of %d tokens", nm,
                     key, v, n);
  *id = (int32_t)v;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t gv_bool(const deco_gguf_t *gg, const char *key, int *v) {
  if (!deco_gguf_find_kv(gg, key)) return DECO_STATUS_SUCCESS;
  return deco_gguf_get_bool(gg, key, v);
}

/* llama.cpp's end-of-generation texts: such tokens are control tokens
 * whatever the file says. The first seven, in this order, also name the
 * end of turn when the file has no eot_token_id. */
static const char *const k_eog[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "</s>", "<|eom_id|>", "[EOS]",
    "<eos>", "<turn|>", "<|tool_response>", "[e~["};
#define GV_N_EOT 7

static deco_status_t gv_specials(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  static const char *const keys[6] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
                                      "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
  for (int k = 0; k < 6; ++k) g->special[k] = -1;
  if (g->spm) { /* llama.cpp's defaults for "llama" */
    g->special[DECO_TOKEN_BOS] = g->n > 1 ? 1 : -1;
    g->special[DECO_TOKEN_EOS] = g->n > 2 ? 2 : -1;
    g->special[DECO_TOKEN_UNK] = 0;
  }
  /* An unknown or padding id past the vocabulary (a padding id equal to the
   * vocabulary size is common) keeps its default: generation uses neither.
   * BOS, EOS, EOT and EOM start and stop runs, so such an id fails. */
  for (int k = 0; k < 6; ++k)
    DECO_TRY(gv_id(gg, keys[k], g->n, nm, k == DECO_TOKEN_UNK || k == DECO_TOKEN_PAD, &g->special[k]));
  /* Control tokens by their text (llama.cpp does the same). */
  for (size_t k = 0; k < sizeof k_eog / sizeof k_eog[0]; ++k) {
    int32_t id = gv_find(g, k_eog[k], strlen(k_eog[k]));
    if (id >= 0) g->type[id] = DECO_TOKEN_TYPE_CONTROL;
  }
  for (int k = 0; k < GV_N_EOT && g->special[DECO_TOKEN_EOT] < 0; ++k)
    g->special[DECO_TOKEN_EOT] = gv_find(g, k_eog[k], strlen(k_eog[k]));
  if (g->special[DECO_TOKEN_EOM] < 0) g->special[DECO_TOKEN_EOM] = gv_find(g, "<|eom_id|>", 10);
  return DECO_STATUS_SUCCESS;
}

/* The byte a <0xHH> token stands for; -1 if the text is not that form. */
static int hex_byte(const char *t, size_t len) {
  if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    char c = t[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

typedef struct len_id {
  size_t len;
  int32_t id;
} len_id_t;

static int cmp_len_id(const void *pa, const void *pb) {
  const len_id_t *a = pa, *b = pb;
  if (a->len != b->len) return a->len > b->len ? -1 : 1;
  return (a->id > b->id) - (a->id < b->id);
}

/* ids[0..n) by text length, longest first, then by id (llama.cpp sorts by
 * length alone; equal lengths are in an unspecified order there). */
static int sort_by_length(const tok_gguf_t *g, int32_t *ids, int n) {
  len_id_t *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  if (!v) return -1;
  for (int i = 0; i < n; ++i) {
    tok_txt(g, ids[i], &v[i].len);
    v[i].id = ids[i];
  }
  qsort(v, (size_t)n, sizeof *v, cmp_len_id);
  for (int i = 0; i < n; ++i) ids[i] = v[i].id;
  free(v);
  return 0;
}

/* A normal token's text t[0..len) decoded into o: SentencePiece's "▁" is a
 * space, a byte-level character its byte, anything else stays as it is.
 * Returns the bytes written. */
static size_t normal_piece(const tok_gguf_t *g, const unsigned char *t, size_t len, unsigned char *o) {
  size_t n = 0;
  for (size_t k = 0; k < len;) {
    size_t sub;
    int inc;
    size_t q = deco_utf8_sequence(t + k, len - k, &sub, &inc); /* checked on load */
    uint32_t cp = get_cp(t + k, q);
    int byte = g->spm ? -1 : cp_to_byte(cp);
    if (g->spm && cp == 0x2581) {
      o[n++] = ' ';
    } else if (byte >= 0) {
      o[n++] = (unsigned char)byte;
    } else { /* outside GPT-2's alphabet: the character as it stands */
      memcpy(o + n, t + k, q);
      n += q;
    }
    k += q;
  }
  return n;
}

/* The token of each byte: SentencePiece's <0xXX>, else the one-byte token;
 * byte-level BPE's character of the byte. */
static void gv_byte_ids(tok_gguf_t *g) {
  for (int b = 0; b < 256; ++b) {
    if (g->spm) {
      char hx[7];
      snprintf(hx, sizeof hx, "<0x%02X>", b);
      int32_t id = gv_find(g, hx, 6);
      if (id < 0) {
        char one = (char)b;
        id = gv_find(g, &one, 1);
      }
      g->byte_id[b] = id;
    } else {
      unsigned char u[4];
      size_t k = put_cp(u, byte_to_cp(b));
      g->byte_char_len[b] = (uint8_t)k;
      memcpy(g->byte_char[b], u, k);
      g->byte_id[b] = gv_find(g, (const char *)u, k);
    }
  }
}

/* Token i's decoded bytes at g->piece + *off (advanced past them); control,
 * unknown and user-defined tokens join the special-token lists. */
static deco_status_t gv_piece(tok_gguf_t *g, int32_t i, size_t *off, const char *nm) {
  size_t len;
  const char *t = tok_txt(g, i, &len);
  unsigned char *o = (unsigned char *)g->piece + *off;
  int type = g->type[i];
  if (type == DECO_TOKEN_TYPE_CONTROL || type == DECO_TOKEN_TYPE_UNKNOWN || type == DECO_TOKEN_TYPE_USER_DEFINED) {
    g->special_all[g->n_special_all++] = i;
    if (type == DECO_TOKEN_TYPE_USER_DEFINED) g->special_user[g->n_special_user++] = i;
    memcpy(o, t, len);
    *off += len;
  } else if (type == DECO_TOKEN_TYPE_BYTE) {
    int b = hex_byte(t, len);
    if (b < 0) {
      char qb[200];
      return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                       "%s: metadata tokenizer.ggml.tokens[%d] ('%s') has token_type 6 (byte) but is not <0xHH>", nm,
                       i, quote(qb, t, len));
    }
    o[0] = (unsigned char)b;
    *off += 1;
  } else if (type == DECO_TOKEN_TYPE_NORMAL) {
    *off += normal_piece(g, (const unsigned char *)t, len, o);
  } /* unused and undefined tokens print nothing */
  return DECO_STATUS_SUCCESS;
}

/* Every token's decoded bytes (llama.cpp's token_to_piece), the byte
 * tokens, and the special-token lists. */
static deco_status_t gv_pieces(tok_gguf_t *g, const char *nm) {
  g->piece = malloc(g->text_off[g->n] + 1); /* a piece is never longer than its text */
  g->piece_off = malloc(sizeof(size_t) * ((size_t)g->n + 1));
  g->special_all = malloc(sizeof(int32_t) * (size_t)g->n);
  g->special_user = malloc(sizeof(int32_t) * (size_t)g->n);
  if (!g->piece || !g->piece_off || !g->special_all || !g->special_user)
    return gv_oom(nm);
  size_t off = 0;
  for (int i = 0; i < g->n; ++i) {
    g->piece_off[i] = off;
    DECO_TRY(gv_piece(g, i, &off, nm));
    g->piece[off++] = '\0'; /* pieces are C strings too (they may hold NUL) */
  }
  g->piece_off[g->n] = off;
  if (sort_by_length(g, g->special_all, g->n_special_all) != 0 ||
      sort_by_length(g, g->special_user, g->n_special_user) != 0)
    return gv_oom(nm);
  gv_byte_ids(g);
  return DECO_STATUS_SUCCESS;
}

/* tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece). */
static deco_status_t gv_model(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  deco_gguf_str_t model;
  DECO_TRY(deco_gguf_get_string(gg, "tokenizer.ggml.model", &model));
  if (model.len == 4 && memcmp(model.s, "gpt2", 4) == 0) {
    g->spm = 0;
  } else if (model.len == 5 && memcmp(model.s, "llama", 5) == 0) {
    g->spm = 1;
  } else {
    char qb[200];
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                     "%s: metadata tokenizer.ggml.model is '%s'; deco reads gpt2 (byte-level BPE) and llama "
                     "(SentencePiece)",
                     nm, quote(qb, model.s, (size_t)model.len));
  }
  return DECO_STATUS_SUCCESS;
}

/* A byte-level BPE vocabulary's pre-tokenizer (tokenizer.ggml.pre, else
 * "default") and the defaults it brings. */
static deco_status_t gv_pretok(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm, tok_pretok_info_t *info) {
  strcpy(g->pre, "default");
  if (deco_gguf_find_kv(gg, "tokenizer.ggml.pre")) {
    deco_gguf_str_t pre;
    DECO_TRY(deco_gguf_get_string(gg, "tokenizer.ggml.pre", &pre));
    if (pre.len >= sizeof g->pre || memchr(pre.s, '\0', (size_t)pre.len)) {
      char qb[200];
      return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                       "%s: metadata tokenizer.ggml.pre '%s' is no pre-tokenizer deco knows", nm,
                       quote(qb, pre.s, (size_t)pre.len));
    }
    memcpy(g->pre, pre.s, (size_t)pre.len);
    g->pre[pre.len] = '\0';
  }
  return deco_tok_pretok_create(g->pre, nm, &g->pretok, info);
}

/* Whether to add BOS, EOS and SentencePiece's leading space: the
 * pre-tokenizer's defaults unless the file says otherwise. */
static deco_status_t gv_flags(tok_gguf_t *g, const deco_gguf_t *gg, const tok_pretok_info_t *info) {
  g->ignore_merges = info->ignore_merges;
  g->add_bos = info->add_bos;
  g->add_eos = 0;
  g->add_space_prefix = g->spm;
  DECO_TRY(gv_bool(gg, "tokenizer.ggml.add_bos_token", &g->add_bos));
  DECO_TRY(gv_bool(gg, "tokenizer.ggml.add_eos_token", &g->add_eos));
  return gv_bool(gg, "tokenizer.ggml.add_space_prefix", &g->add_space_prefix);
}

/* The chat template, if any, and what deco recognises in it. */
static deco_status_t gv_chat(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  if (deco_gguf_find_kv(gg, "tokenizer.chat_template")) {
    deco_gguf_str_t ct;
    DECO_TRY(deco_gguf_get_string(gg, "tokenizer.chat_template", &ct));
    g->chat_template = malloc((size_t)ct.len + 1);
    if (!g->chat_template) return gv_oom(nm);
    memcpy(g->chat_template, ct.s, (size_t)ct.len);
    g->chat_template[ct.len] = '\0';
    g->chat_template_len = (size_t)ct.len;
  }
  if (deco_tok_chat_recognise(g->chat_template, g->chat_template_len, &g->chat) != 0) return gv_oom(nm);
  return DECO_STATUS_SUCCESS;
}

/* Everything the vocabulary's metadata says, in the order it is checked. */
static deco_status_t gv_read(tok_gguf_t *g, const deco_gguf_t *gg, const char *nm) {
  DECO_TRY(gv_model(g, gg, nm));
  DECO_TRY(gv_tokens(g, gg, nm));
  DECO_TRY(gv_types(g, gg, nm));
  DECO_TRY(g->spm ? gv_scores(g, gg, nm) : gv_merges(g, gg, nm));
  DECO_TRY(gv_specials(g, gg, nm));
  DECO_TRY(gv_pieces(g, nm));
  tok_pretok_info_t info = {.ignore_merges = 0, .add_bos = 1};
  if (!g->spm) DECO_TRY(gv_pretok(g, gg, nm, &info));
  DECO_TRY(gv_flags(g, gg, &info));
  return gv_chat(g, gg, nm);
}

static deco_status_t gv_load(const void *data, size_t size, const char *name, deco_tokenizer_t **out) {
  const char *nm = name ? name : "(buffer)";
  deco_gguf_t gg;
  DECO_TRY(deco_gguf_parse(data, size, nm, &gg));
  deco_status_t s = DECO_STATUS_SUCCESS;
  deco_tokenizer_t *t = calloc(1, sizeof *t);
  tok_gguf_t *g = calloc(1, sizeof *g);
  if (!t || !g || !(g->name = strdup(nm)))
    s = gv_oom(nm);
  else
    s = gv_read(g, &gg, nm);
  deco_gguf_free(&gg);
  if (s != DECO_STATUS_SUCCESS) {
    gv_free(g);
    free(t);
    return s;
  }
  t->kind = g->spm ? DECO_TOKENIZER_SPM : DECO_TOKENIZER_BPE;
  t->ops = &deco_tok_gguf_ops;
  t->vocab_size = g->n;
  t->g = g;
  *out = t;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tokenizer_load_gguf_buffer(const void *data, size_t size, const char *name,
                                              deco_tokenizer_t **out) {
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_gguf_buffer: out is NULL");
  *out = NULL;
  if (!data && size > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_gguf_buffer: data is NULL");
  return gv_load(data, size, name, out);
}

deco_status_t deco_tokenizer_load_gguf(const char *path, deco_tokenizer_t **out) {
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_gguf: out is NULL");
  *out = NULL;
  if (!path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_tokenizer_load_gguf: path is NULL");
  int fd;
  size_t size;
  DECO_TRY(deco_file_open_regular(NULL, path, &fd, &size));
  /* Mapped, not read: a model file is large and only its metadata counts. */
  void *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (size && p == MAP_FAILED) return DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "cannot map %s (%zu bytes)", path, size);
  deco_status_t s = gv_load(p, size, path, out);
  if (p) munmap(p, size);
  return s;
}

/* ---- special-token text ---------------------------------------------------- */

/* A fragment of text (id < 0: buf[off..off+len)) or a token. */
typedef struct frag {
  size_t off, len;
  int32_t id;
} frag_t;
typedef struct frags {
  frag_t *a;
  size_t n, cap;
} frags_t;

/* The first occurrence of t[0..tl) (tl >= 1) in s[0..n), or NULL. */
static const char *find_bytes(const char *s, size_t n, const char *t, size_t tl) {
  while (n >= tl) {
    const char *p = memchr(s, t[0], n - tl + 1);
    if (!p) return NULL;
    if (memcmp(p, t, tl) == 0) return p;
    n -= (size_t)(p - s) + 1;
    s = p + 1;
  }
  return NULL;
}

static int frag_push(frags_t *f, size_t off, size_t len, int32_t id) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 16;
    frag_t *a = realloc(f->a, cap * sizeof *a);
    if (!a) return -1;
    f->a = a;
    f->cap = cap;
  }
  f->a[f->n++] = (frag_t){.off = off, .len = len, .id = id};
  return 0;
}

/* Fragment f of the text (f.len >= tl) cut at the leftmost non-overlapping
 * occurrences of token id, text t[0..tl), into out. */
static int cut_fragment(const char *buf, frag_t f, const char *t, size_t tl, int32_t id, frags_t *out) {
  int rc = 0;
  size_t at = f.off, end = f.off + f.len;
  while (rc == 0 && end - at >= tl) {
    const char *m = find_bytes(buf + at, end - at, t, tl);
    if (!m) break;
    size_t mo = (size_t)(m - buf);
    if (mo > at) rc = frag_push(out, at, mo - at, -1);
    if (rc == 0) rc = frag_push(out, 0, 0, id);
    at = mo + tl;
  }
  if (rc == 0 && at < end) rc = frag_push(out, at, end - at, -1);
  return rc;
}

/* llama.cpp's tokenizer_st_partition over buf[off..off+len): for each
 * special token, longest first, every text fragment is cut at the token's
 * leftmost non-overlapping occurrences. Without parse_special only
 * user-defined tokens are looked for. Appends to out; -1 when out of
 * memory. */
static int partition(const tok_gguf_t *g, const char *buf, size_t off, size_t len, int parse_special, frags_t *out) {
  if (len == 0) return 0;
  frags_t cur = {0}, nxt = {0};
  int rc = frag_push(&cur, off, len, -1);
  const int32_t *list = parse_special ? g->special_all : g->special_user;
  int n_list = parse_special ? g->n_special_all : g->n_special_user;
  for (int k = 0; k < n_list && rc == 0; ++k) {
    size_t tl;
    const char *t = tok_txt(g, list[k], &tl);
    nxt.n = 0;
    for (size_t i = 0; i < cur.n && rc == 0; ++i) {
      frag_t f = cur.a[i];
      if (f.id >= 0 || f.len < tl)
        rc = frag_push(&nxt, f.off, f.len, f.id);
      else
        rc = cut_fragment(buf, f, t, tl, list[k], &nxt);
    }
    frags_t tmp = cur;
    cur = nxt;
    nxt = tmp;
  }
  for (size_t i = 0; i < cur.n && rc == 0; ++i) rc = frag_push(out, cur.a[i].off, cur.a[i].len, cur.a[i].id);
  free(cur.a);
  free(nxt.a);
  return rc;
}

/* ---- the merge queue --------------------------------------------------------- */

/* A candidate merge of the symbol at l with the one at r (its right
 * neighbour when pushed). a, b: what the two held then (BPE: ids; SPM: byte
 * lengths); res: the merged token. */
typedef struct cand {
  uint64_t key; /* smallest first: BPE rank << 32 | l; SPM ~score << 32 | l */
  int32_t l, r, a, b, res;
} cand_t;
typedef struct heap {
  cand_t *a;
  size_t n, cap;
} heap_t;

static int heap_push(heap_t *h, cand_t c) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 64;
    cand_t *a = realloc(h->a, cap * sizeof *a);
    if (!a) return -1;
    h->a = a;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0 && c.key < h->a[(i - 1) / 2].key) {
    h->a[i] = h->a[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->a[i] = c;
  return 0;
}

static cand_t heap_pop(heap_t *h) {
  cand_t top = h->a[0], m = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->a[c + 1].key < h->a[c].key) ++c;
    if (h->a[c].key >= m.key) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n > 0) h->a[i] = m;
  return top;
}

/* Scratch of one tokenize call. */
typedef struct scratch {
  int32_t *id, *prev, *next; /* BPE symbols; SPM: id holds the length */
  size_t *start;             /* SPM symbols */
  size_t cap;
  heap_t heap;
  unsigned char *buf; /* BPE: sanitised text twice; SPM: the escaped text */
  size_t buf_cap;
  char *word; /* BPE: a word's byte-level characters */
  size_t word_cap;
  tok_spans_t spans;
} scratch_t;

static int scratch_syms(scratch_t *sc, size_t n) {
  if (n <= sc->cap) return 0;
  size_t cap = n < 64 ? 64 : n;
  int32_t *id = realloc(sc->id, cap * sizeof *id);
  if (id) sc->id = id;
  int32_t *prev = realloc(sc->prev, cap * sizeof *prev);
  if (prev) sc->prev = prev;
  int32_t *next = realloc(sc->next, cap * sizeof *next);
  if (next) sc->next = next;
  size_t *start = realloc(sc->start, cap * sizeof *start);
  if (start) sc->start = start;
  if (!id || !prev || !next || !start) return -1;
  sc->cap = cap;
  return 0;
}

static int scratch_buf(unsigned char **p, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  unsigned char *q = realloc(*p, n);
  if (!q) return -1;
  *p = q;
  *cap = n;
  return 0;
}

static void scratch_free(scratch_t *sc) {
  free(sc->id);
  free(sc->prev);
  free(sc->next);
  free(sc->start);
  free(sc->heap.a);
  free(sc->buf);
  free(sc->word);
  free(sc->spans.a);
}

/* How one kind of vocabulary merges symbols: queue_pair queues the merge
 * of symbol l with its right neighbour r when the pair makes a token (-1
 * when out of memory); join gives symbol c->l what the merge makes and marks
 * c->r, which then leaves the list. */
typedef struct merge_rule {
  int (*queue_pair)(const tok_gguf_t *g, scratch_t *sc, int32_t l, int32_t r);
  void (*join)(scratch_t *sc, const cand_t *c);
} merge_rule_t;

/* Merges the linked symbols 0..ns by rule, best candidate first, until none
 * is left. -1 when out of memory. */
static int merge_symbols(const tok_gguf_t *g, const merge_rule_t *rule, scratch_t *sc, int32_t ns) {
  sc->heap.n = 0;
  for (int32_t i = 0; i + 1 < ns; ++i)
    if (rule->queue_pair(g, sc, i, i + 1) != 0) return -1;
  while (sc->heap.n > 0) {
    cand_t c = heap_pop(&sc->heap);
    if (sc->id[c.l] != c.a || sc->next[c.l] != c.r || sc->id[c.r] != c.b) continue; /* stale */
    rule->join(sc, &c);
    int32_t nx = sc->next[c.r];
    sc->next[c.l] = nx;
    if (nx >= 0) sc->prev[nx] = c.l;
    if (sc->prev[c.l] >= 0 && rule->queue_pair(g, sc, sc->prev[c.l], c.l) != 0) return -1;
    if (nx >= 0 && rule->queue_pair(g, sc, c.l, nx) != 0) return -1;
  }
  return 0;
}

/* ---- byte-level BPE ------------------------------------------------------------ */

/* A pair merges when the merges list holds it: the lower rank first. */
static int bpe_queue_pair(const tok_gguf_t *g, scratch_t *sc, int32_t l, int32_t r) {
  int32_t a = sc->id[l], b = sc->id[r], rank, res;
  if (a < 0 || b < 0 || !gv_merge(g, a, b, &rank, &res)) return 0;
  cand_t c = {.key = (uint64_t)(uint32_t)rank << 32 | (uint32_t)l, .l = l, .r = r, .a = a, .b = b, .res = res};
  return heap_push(&sc->heap, c);
}

/* Symbol l takes the merged token's id. */
static void bpe_join(scratch_t *sc, const cand_t *c) {
  sc->id[c->l] = c->res;
  sc->id[c->r] = GV_DEAD;
}

static const merge_rule_t bpe_merges = {bpe_queue_pair, bpe_join};

/* With ignore_merges, a word that is a token as a whole: its id into *id,
 * else -1. -1 returned when out of memory. */
static int bpe_whole_word(const tok_gguf_t *g, scratch_t *sc, const unsigned char *w, size_t n, int32_t *id) {
  *id = -1;
  size_t el = 0;
  for (size_t i = 0; i < n; ++i) el += g->byte_char_len[w[i]];
  if (el > g->max_text_len) return 0;
  if (scratch_buf((unsigned char **)&sc->word, &sc->word_cap, el) != 0) return -1;
  char *o = sc->word;
  for (size_t i = 0; i < n; ++i) {
    memcpy(o, g->byte_char[w[i]], g->byte_char_len[w[i]]);
    o += g->byte_char_len[w[i]];
  }
  *id = gv_find(g, sc->word, el);
  return 0;
}

/* One word (bytes w[0..n), n >= 1) to ids. A byte whose byte-level
 * character is not a token is dropped, as llama.cpp's fallback does. */
static int bpe_word(const tok_gguf_t *g, scratch_t *sc, const unsigned char *w, size_t n, tok_vec_t *out) {
  if (g->ignore_merges) {
    int32_t id;
    if (bpe_whole_word(g, sc, w, n, &id) != 0) return -1;
    if (id >= 0) return tok_vec_push(out, id);
  }
  if (n == 1) return g->byte_id[w[0]] >= 0 ? tok_vec_push(out, g->byte_id[w[0]]) : 0;
  if (n > (size_t)INT32_MAX || scratch_syms(sc, n) != 0) return -1;
  for (size_t i = 0; i < n; ++i) {
    sc->id[i] = g->byte_id[w[i]];
    sc->prev[i] = (int32_t)i - 1;
    sc->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  if (merge_symbols(g, &bpe_merges, sc, (int32_t)n) != 0) return -1;
  for (int32_t i = 0; i >= 0; i = sc->next[i])
    if (sc->id[i] >= 0 && tok_vec_push(out, sc->id[i]) != 0) return -1;
  return 0;
}

/* Is s[0..n) well-formed UTF-8? */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t sub;
    int inc;
    size_t k = deco_utf8_sequence(s + i, n - i, &sub, &inc);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

static const char k_text_oom[] = "%s: out of memory for %zu bytes of text";

static deco_status_t bpe_text(const tok_gguf_t *g, scratch_t *sc, const char *text, size_t len, tok_vec_t *out) {
  const unsigned char *bytes = (const unsigned char *)text, *subject = bytes;
  size_t n = len;
  if (!utf8_valid(bytes, len)) {
    /* Read as llama.cpp reads it; the regexes see U+FFFD where a surrogate
     * stands (PCRE2 matches well-formed UTF-8 only), the merges see the
     * bytes llama.cpp would re-encode. Both have the same length. */
    if (len > SIZE_MAX / 8 || scratch_buf(&sc->buf, &sc->buf_cap, 6 * len) != 0)
      return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
    unsigned char *b = sc->buf, *s = sc->buf + 3 * len;
    n = 0;
    for (size_t i = 0; i < len;) {
      size_t adv;
      uint32_t cp = lenient_cp(bytes + i, len - i, &adv);
      size_t k = put_cp(b + n, cp);
      if (cp >= 0xD800 && cp <= 0xDFFF)
        put_cp(s + n, 0xFFFD);
      else
        memcpy(s + n, b + n, k);
      n += k;
      i += adv;
    }
    bytes = b;
    subject = s;
  }
  sc->spans.n = 0;
  DECO_TRY(deco_tok_pretok_split(g->pretok, (const char *)subject, n, &sc->spans));
  for (size_t i = 0; i < sc->spans.n; ++i)
    if (bpe_word(g, sc, bytes + sc->spans.a[i].off, sc->spans.a[i].len, out) != 0)
      return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
  return DECO_STATUS_SUCCESS;
}

/* ---- SentencePiece --------------------------------------------------------------- */

static uint32_t score_order(float f) {
  if (f == 0.0f) f = 0.0f; /* -0 ties with +0 */
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* A pair merges when the joined text is a token: the higher score first. */
static int spm_queue_pair(const tok_gguf_t *g, scratch_t *sc, int32_t l, int32_t r) {
  size_t la = (size_t)sc->id[l], lb = (size_t)sc->id[r];
  int32_t id = gv_find(g, (const char *)sc->buf + sc->start[l], la + lb);
  if (id < 0) return 0;
  cand_t c = {.key = (uint64_t)~score_order(g->score[id]) << 32 | (uint32_t)l,
              .l = l, .r = r, .a = (int32_t)la, .b = (int32_t)lb, .res = id};
  return heap_push(&sc->heap, c);
}

/* Symbol l takes the joined length. */
static void spm_join(scratch_t *sc, const cand_t *c) {
  sc->id[c->l] += sc->id[c->r];
  sc->id[c->r] = 0;
}

static const merge_rule_t spm_merges = {spm_queue_pair, spm_join};

/* text[0..len) with spaces as "▁" (and one before it with prefix) into e
 * (room for 3 * (len + 1) bytes); returns the length. */
static size_t spm_escape(const char *text, size_t len, int prefix, unsigned char *e) {
  static const unsigned char space[3] = {0xE2, 0x96, 0x81};
  size_t n = 0;
  if (prefix) {
    memcpy(e, space, 3);
    n = 3;
  }
  for (size_t i = 0; i < len; ++i) {
    if (text[i] == ' ') {
      memcpy(e + n, space, 3);
      n += 3;
    } else {
      e[n++] = (unsigned char)text[i];
    }
  }
  return n;
}

/* Symbols of e[0..n): llama.cpp's unicode_len_utf8 of each lead byte, cut
 * at the end; returns their count. */
static int32_t spm_symbols(scratch_t *sc, const unsigned char *e, size_t n) {
  static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  int32_t ns = 0;
  for (size_t i = 0; i < n;) {
    size_t k = lead_len[e[i] >> 4];
    if (k > n - i) k = n - i;
    sc->start[ns] = i;
    sc->id[ns] = (int32_t)k;
    sc->prev[ns] = ns - 1;
    sc->next[ns] = i + k < n ? ns + 1 : -1;
    ++ns;
    i += k;
  }
  return ns;
}

/* The merged symbols of e to ids: a symbol that is a token, else each of
 * its bytes' tokens. len: the fragment's length, for messages. */
static deco_status_t spm_emit(const tok_gguf_t *g, const scratch_t *sc, const unsigned char *e, size_t len,
                              tok_vec_t *out) {
  for (int32_t i = 0; i >= 0; i = sc->next[i]) {
    const char *s = (const char *)e + sc->start[i];
    size_t k = (size_t)sc->id[i];
    int32_t id = gv_find(g, s, k);
    if (id >= 0) {
      if (tok_vec_push(out, id) != 0) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
      continue;
    }
    for (size_t j = 0; j < k; ++j) {
      int32_t b = g->byte_id[(unsigned char)s[j]];
      if (b < 0)
        return DECO_FAIL(NULL, DECO_STATUS_BAD_FORMAT,
                         "%s: the text holds byte 0x%02x, which has no token (no <0x%02X> and no token of that byte)",
                         g->name, (unsigned char)s[j], (unsigned char)s[j]);
      if (tok_vec_push(out, b) != 0) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
    }
  }
  return DECO_STATUS_SUCCESS;
}

/* One text fragment; prefix: llama.cpp's space before a fragment that
 * follows a special token (or starts the text). */
static deco_status_t spm_text(const tok_gguf_t *g, scratch_t *sc, const char *text, size_t len, int prefix,
                              tok_vec_t *out) {
  if (len > SIZE_MAX / 4 - 4 || scratch_buf(&sc->buf, &sc->buf_cap, 3 * (len + 1)) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
  unsigned char *e = sc->buf;
  size_t n = spm_escape(text, len, prefix, e);
  if (n == 0) return DECO_STATUS_SUCCESS;
  if (n > (size_t)INT32_MAX || scratch_syms(sc, n) != 0 ||
      merge_symbols(g, &spm_merges, sc, spm_symbols(sc, e, n)) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_text_oom, g->name, len);
  return spm_emit(g, sc, e, len, out);
}

/* ---- the operations -------------------------------------------------------------- */

/* Every text segment's bytes, back to back, in a new buffer; NULL when
 * out of memory. */
static char *join_segments(const tok_segment_t *segs, int n_segs) {
  size_t total = 0;
  for (int i = 0; i < n_segs; ++i) total += segs[i].id >= 0 ? 0 : segs[i].len;
  char *own = malloc(total ? total : 1);
  if (!own) return NULL;
  size_t o = 0;
  for (int i = 0; i < n_segs; ++i)
    if (segs[i].id < 0 && segs[i].len) {
      memcpy(own + o, segs[i].text, segs[i].len);
      o += segs[i].len;
    }
  return own;
}

/* The segments as fragments of buf: given tokens as they are, text cut at
 * special tokens, then text that touches text joined into one fragment.
 * -1 when out of memory. */
static int segment_fragments(const tok_gguf_t *g, const tok_segment_t *segs, int n_segs, const char *buf,
                             frags_t *f) {
  int rc = 0;
  size_t o = 0;
  for (int i = 0; i < n_segs && rc == 0; ++i) {
    if (segs[i].id >= 0) {
      rc = frag_push(f, 0, 0, segs[i].id);
    } else {
      rc = partition(g, buf, o, segs[i].len, segs[i].parse_special, f);
      o += segs[i].len;
    }
  }
  size_t m = 0;
  for (size_t i = 0; i < f->n && rc == 0; ++i) {
    if (m > 0 && f->a[i].id < 0 && f->a[m - 1].id < 0 && f->a[m - 1].off + f->a[m - 1].len == f->a[i].off)
      f->a[m - 1].len += f->a[i].len;
    else
      f->a[m++] = f->a[i];
  }
  f->n = m;
  return rc;
}

static const char k_tokenize_oom[] = "%s: out of memory tokenizing";

/* Each fragment to ids: a token as it is, text through SentencePiece or
 * byte-level BPE. */
static deco_status_t encode_fragments(const tok_gguf_t *g, const char *buf, const frags_t *f, tok_vec_t *out) {
  deco_status_t s = DECO_STATUS_SUCCESS;
  scratch_t sc = {0};
  int prev_special = 1;
  for (size_t i = 0; i < f->n && s == DECO_STATUS_SUCCESS; ++i) {
    const frag_t *fr = &f->a[i];
    if (fr->id >= 0) {
      if (tok_vec_push(out, fr->id) != 0) s = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_tokenize_oom, g->name);
      prev_special = 1;
    } else if (g->spm) {
      s = spm_text(g, &sc, buf + fr->off, fr->len, g->add_space_prefix && prev_special, out);
      prev_special = 0;
    } else {
      s = bpe_text(g, &sc, buf + fr->off, fr->len, out);
      prev_special = 0;
    }
  }
  scratch_free(&sc);
  return s;
}

/* Pushes special token `which` when `add` says so and the vocabulary has it. */
static deco_status_t push_special(const tok_gguf_t *g, int add, deco_special_token_t which, tok_vec_t *out) {
  if (add && g->special[which] >= 0 && tok_vec_push(out, g->special[which]) != 0)
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_tokenize_oom, g->name);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_tok_gguf_encode_segments(const deco_tokenizer_t *t, const tok_segment_t *segs, int n_segs,
                                            int add_special, tok_vec_t *out) {
  const tok_gguf_t *g = t->g;
  /* One buffer holds every segment's text, so adjacent text is contiguous. */
  const char *buf = NULL;
  char *own = NULL;
  if (n_segs == 1) {
    buf = segs[0].text;
  } else {
    own = join_segments(segs, n_segs);
    if (!own) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_tokenize_oom, g->name);
    buf = own;
  }
  frags_t f = {0};
  deco_status_t s = DECO_STATUS_SUCCESS;
  if (segment_fragments(g, segs, n_segs, buf, &f) != 0)
    s = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, k_tokenize_oom, g->name);
  if (s == DECO_STATUS_SUCCESS) s = push_special(g, add_special && g->add_bos, DECO_TOKEN_BOS, out);
  if (s == DECO_STATUS_SUCCESS) s = encode_fragments(g, buf, &f, out);
  if (s == DECO_STATUS_SUCCESS) s = push_special(g, add_special && g->add_eos, DECO_TOKEN_EOS, out);
  free(f.a);
  free(own);
  return s;
}

static deco_status_t gguf_tokenize(const deco_tokenizer_t *t, const char *text, size_t len, unsigned flags,
                                   tok_vec_t *out) {
  tok_segment_t seg = {.text = text, .len = len, .id = -1, .parse_special = (flags & DECO_TOKENIZE_PARSE_SPECIAL) != 0};
  return deco_tok_gguf_encode_segments(t, &seg, 1, (flags & DECO_TOKENIZE_ADD_SPECIAL) != 0, out);
}

static const char *gguf_piece(const deco_tokenizer_t *t, tok_piece_state_t *st, int32_t id, unsigned flags,
                              size_t *len) {
  const tok_gguf_t *g = t->g;
  *len = 0;
  st->prev = id;
  st->n++;
  if (id < 0 || id >= g->n) return "";
  int type = g->type[id];
  int special = type == DECO_TOKEN_TYPE_CONTROL || type == DECO_TOKEN_TYPE_UNKNOWN;
  const char *p = g->piece + g->piece_off[id];
  size_t n = g->piece_off[id + 1] - g->piece_off[id] - 1;
  if (special && !(flags & DECO_DETOKENIZE_SPECIAL)) n = 0;
  if (g->spm && g->add_space_prefix && !st->stripped && type != DECO_TOKEN_TYPE_CONTROL) {
    st->stripped = 1;
    if (n > 0 && p[0] == ' ' && !(flags & DECO_DETOKENIZE_CONTINUATION)) {
      ++p;
      --n;
    }
  }
  *len = n;
  return n ? p : "";
}

static int32_t gguf_special(const deco_tokenizer_t *t, deco_special_token_t which) {
  return (unsigned)which < 6 ? t->g->special[which] : -1;
}

static int gguf_token_type(const deco_tokenizer_t *t, int32_t id) {
  return id >= 0 && id < t->g->n ? t->g->type[id] : -1;
}

static const char *gguf_token_text(const deco_tokenizer_t *t, int32_t id, size_t *len) {
  if (id < 0 || id >= t->g->n) return NULL;
  size_t n;
  const char *p = tok_txt(t->g, id, &n);
  if (len) *len = n;
  return p;
}

static int32_t gguf_find(const deco_tokenizer_t *t, const char *text, size_t len) { return gv_find(t->g, text, len); }

static void gguf_destroy(deco_tokenizer_t *t) {
  gv_free(t->g);
  free(t);
}

const tok_ops_t deco_tok_gguf_ops = {
    .destroy = gguf_destroy,
    .tokenize = gguf_tokenize,
    .piece = gguf_piece,
    .special = gguf_special,
    .token_type = gguf_token_type,
    .token_text = gguf_token_text,
    .find = gguf_find,
};

int deco_tok_gguf_add_bos(const deco_tokenizer_t *t) { return t->g->add_bos && t->g->special[DECO_TOKEN_BOS] >= 0; }
int deco_tok_gguf_add_eos(const deco_tokenizer_t *t) { return t->g->add_eos && t->g->special[DECO_TOKEN_EOS] >= 0; }
const char *deco_tok_gguf_pre(const deco_tokenizer_t *t) { return t->g->pre; }
const char *deco_tok_gguf_name(const deco_tokenizer_t *t) { return t->g->name; }

const char *deco_tok_gguf_chat_template(const deco_tokenizer_t *t, size_t *len) {
  if (len) *len = t->g->chat_template_len;
  return t->g->chat_template;
}

const tok_chat_info_t *deco_tok_gguf_chat_info(const deco_tokenizer_t *t) { return &t->g->chat; }
