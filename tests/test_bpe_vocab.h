/* tests/test_bpe_vocab.h — helpers of tests/test_bpe.c and tests/test_chat.c
 * (header-only): a GGUF writer for small vocabularies built in memory
 * (version 3, metadata only, no tensors), a tiny byte-level BPE vocabulary
 * with control and user-defined tokens, and the llama.cpp test-file readers
 * (.inp cases separated by "\n__ggml_vocab_test__\n", .out one line of
 * ids per case).
 */
#ifndef DECO_TEST_BPE_VOCAB_H
#define DECO_TEST_BPE_VOCAB_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* ---- a GGUF buffer ---------------------------------------------------------- */

typedef struct gbuf {
  unsigned char *p;
  size_t n, cap;
  uint64_t n_kv;
} gbuf_t;

static inline void gb_put(gbuf_t *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 256;
    b->p = realloc(b->p, b->cap);
    cr_assert(b->p);
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}
static inline void gb_u32(gbuf_t *b, uint32_t v) { gb_put(b, &v, 4); }
static inline void gb_u64(gbuf_t *b, uint64_t v) { gb_put(b, &v, 8); }
static inline void gb_str(gbuf_t *b, const char *s, size_t n) {
  gb_u64(b, n);
  gb_put(b, s, n);
}
static inline void gb_begin(gbuf_t *b) {
  memset(b, 0, sizeof *b);
  gb_put(b, "GGUF", 4);
  gb_u32(b, 3);
  gb_u64(b, 0); /* tensors */
  gb_u64(b, 0); /* metadata entries, patched by gb_end */
}
static inline void gb_key(gbuf_t *b, const char *key, uint32_t type) {
  gb_str(b, key, strlen(key));
  gb_u32(b, type);
  b->n_kv++;
}
static inline void gb_kv_str(gbuf_t *b, const char *key, const char *v) {
  gb_key(b, key, 8);
  gb_str(b, v, strlen(v));
}
static inline void gb_kv_u32(gbuf_t *b, const char *key, uint32_t v) {
  gb_key(b, key, 4);
  gb_u32(b, v);
}
static inline void gb_kv_bool(gbuf_t *b, const char *key, int v) {
  gb_key(b, key, 7);
  unsigned char c = (unsigned char)(v != 0);
  gb_put(b, &c, 1);
}
/* An array of n strings (lengths in lens, or strlen when lens is NULL). */
static inline void gb_kv_strs(gbuf_t *b, const char *key, const char *const *v, const size_t *lens, size_t n) {
  gb_key(b, key, 9);
  gb_u32(b, 8);
  gb_u64(b, n);
  for (size_t i = 0; i < n; ++i) gb_str(b, v[i], lens ? lens[i] : strlen(v[i]));
}
static inline void gb_kv_i32s(gbuf_t *b, const char *key, const int32_t *v, size_t n) {
  gb_key(b, key, 9);
  gb_u32(b, 5);
  gb_u64(b, n);
  gb_put(b, v, 4 * n);
}
static inline void gb_kv_f32s(gbuf_t *b, const char *key, const float *v, size_t n) {
  gb_key(b, key, 9);
  gb_u32(b, 6);
  gb_u64(b, n);
  gb_put(b, v, 4 * n);
}
static inline void gb_end(gbuf_t *b) { memcpy(b->p + 16, &b->n_kv, 8); }

/* ---- a tiny byte-level BPE vocabulary --------------------------------------- */


/* What a test vocabulary holds; fields may be changed before tv_write. */
typedef struct tvocab {
  const char *model, *pre;
  char *tok[400];
  size_t tok_len[400];
  int32_t type[400];
  int n_tok;
  const char *merge[64];
  size_t merge_len[64];
  int n_merge;
  int n_type; /* entries of token_type written (-1: none) */
  int bos, eos;       /* -1: key absent */
  const char *chat_template;
} tvocab_t;

static inline int tv_add(tvocab_t *v, const char *s, size_t n, int32_t type) {
  v->tok[v->n_tok] = malloc(n + 1);
  memcpy(v->tok[v->n_tok], s, n);
  v->tok[v->n_tok][n] = '\0';
  v->tok_len[v->n_tok] = n;
  v->type[v->n_tok] = type;
  return v->n_tok++;
}

/* 256 byte characters (ids 0..255, in byte order), then merges of "a b",
 * "ab c", "Ġ ab" (so "abc", " ab" exist), control tokens <|im_start|>,
 * <|im_end|>, <|endoftext|>, Llama 3's four, and one user-defined token
 * "<user>". pre = "gpt-2". */
static inline void tv_tiny(tvocab_t *v) {
  memset(v, 0, sizeof *v);
  v->model = "gpt2";
  v->pre = "gpt-2";
  v->bos = -1;
  v->eos = -1;
  for (int c = 0; c < 256; ++c) {
    char o[2];
    size_t k = deco_test_byte_char(c, o);
    tv_add(v, o, k, 1);
  }
  static const char *const merges[] = {"a b", "ab c", "\xc4\xa0 ab"};
  for (int i = 0; i < 3; ++i) {
    v->merge[v->n_merge] = merges[i];
    v->merge_len[v->n_merge++] = strlen(merges[i]);
  }
  tv_add(v, "ab", 2, 1);
  tv_add(v, "abc", 3, 1);
  tv_add(v, "\xc4\xa0" "ab", 4, 1);
  static const char *const ctl[] = {"<|im_start|>",      "<|im_end|>",       "<|endoftext|>", "<|begin_of_text|>",
                                    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  for (int i = 0; i < 7; ++i) tv_add(v, ctl[i], strlen(ctl[i]), 3);
  tv_add(v, "<user>", 6, 4);
  v->n_type = v->n_tok;
}

static inline int tv_id(const tvocab_t *v, const char *s) {
  for (int i = 0; i < v->n_tok; ++i)
    if (v->tok_len[i] == strlen(s) && memcmp(v->tok[i], s, v->tok_len[i]) == 0) return i;
  return -1;
}

static inline gbuf_t tv_write(const tvocab_t *v) {
  gbuf_t b;
  gb_begin(&b);
  gb_kv_str(&b, "general.architecture", "llama");
  if (v->model) gb_kv_str(&b, "tokenizer.ggml.model", v->model);
  if (v->pre) gb_kv_str(&b, "tokenizer.ggml.pre", v->pre);
  gb_kv_strs(&b, "tokenizer.ggml.tokens", (const char *const *)v->tok, v->tok_len, (size_t)v->n_tok);
  if (v->n_type >= 0) gb_kv_i32s(&b, "tokenizer.ggml.token_type", v->type, (size_t)v->n_type);
  if (v->n_merge >= 0) gb_kv_strs(&b, "tokenizer.ggml.merges", v->merge, v->merge_len, (size_t)v->n_merge);
  if (v->bos >= 0) gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
  if (v->eos >= 0) gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
  if (v->chat_template) gb_kv_str(&b, "tokenizer.chat_template", v->chat_template);
  gb_end(&b);
  return b;
}

static inline void tv_free(tvocab_t *v) {
  for (int i = 0; i < v->n_tok; ++i) free(v->tok[i]);
  v->n_tok = 0;
}

/* ---- llama.cpp's test files ---------------------------------------------------- */

typedef struct tcases {
  char *data;    /* the .inp file */
  size_t n_data;
  const char *text[128];
  size_t len[128];
  int32_t *ids[128];
  int n_ids[128];
  int n;
} tcases_t;

/* Reads inp (cases) and out (ids); both must hold the same count. */
static inline void tc_read(tcases_t *c, const char *inp, const char *out) {
  memset(c, 0, sizeof *c);
  c->data = deco_test_read_file(inp, &c->n_data);
  cr_assert_not_null(c->data, "cannot read %s", inp);
  static const char sep[] = "\n__ggml_vocab_test__\n";
  size_t sl = sizeof sep - 1, at = 0;
  while (at < c->n_data) {
    const char *e = NULL;
    for (size_t k = at; k + sl <= c->n_data; ++k)
      if (memcmp(c->data + k, sep, sl) == 0) {
        e = c->data + k;
        break;
      }
    size_t end = e ? (size_t)(e - c->data) : c->n_data;
    cr_assert(c->n < 128);
    c->text[c->n] = c->data + at;
    c->len[c->n] = end - at;
    c->n++;
    if (!e) break;
    at = end + sl;
  }
  size_t on;
  char *o = deco_test_read_file(out, &on);
  cr_assert_not_null(o, "cannot read %s", out);
  int line = 0;
  for (char *p = o; p < o + on && line < 128;) {
    char *nl = memchr(p, '\n', (size_t)(o + on - p));
    cr_assert_not_null(nl, "%s: last line without a newline", out);
    c->ids[line] = malloc(sizeof(int32_t) * ((size_t)(nl - p) / 2 + 1));
    int k = 0;
    for (char *q = p; q < nl;) {
      while (q < nl && *q == ' ') ++q;
      if (q >= nl) break;
      c->ids[line][k++] = (int32_t)strtol(q, &q, 10);
    }
    c->n_ids[line++] = k;
    p = nl + 1;
  }
  free(o);
  cr_assert_eq(line, c->n, "%s has %d lines for %d cases of %s", out, line, c->n, inp);
}

static inline void tc_free(tcases_t *c) {
  for (int i = 0; i < c->n; ++i) free(c->ids[i]);
  free(c->data);
}

#endif
