/* tests/test_tokenizer.c — llama2.c tokenizer: encode against the llama2.c
 * fixture, hand-built vocabularies (merge order, ties, BOS merging, byte
 * fallback) and a quadratic oracle of run.c's merge loop on random and
 * adversarial texts, encode time growing as n log n, decode as run.c prints,
 * the built-in byte vocabulary, and every kind of bad tokenizer.bin
 * (truncated, zero-filled, random, oversized, bad lengths and scores,
 * missing file).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/testutil.h"
#include "deco/deco.h"

/* ---- helpers -------------------------------------------------------------- */

/* A tokenizer.bin being written in memory. */
typedef struct tokbuf {
  unsigned char *data;
  size_t size, cap;
  int records;
} tokbuf_t;

static void tb_put(tokbuf_t *b, const void *p, size_t n) {
  if (b->size + n > b->cap) {
    b->cap = (b->size + n) * 2 + 64;
    b->data = realloc(b->data, b->cap);
    cr_assert(b->data);
  }
  memcpy(b->data + b->size, p, n);
  b->size += n;
}

static void tb_begin(tokbuf_t *b, int32_t max_token_length) {
  memset(b, 0, sizeof *b);
  tb_put(b, &max_token_length, 4);
}

static void tb_piece(tokbuf_t *b, float score, const void *bytes, int32_t len) {
  tb_put(b, &score, 4);
  tb_put(b, &len, 4);
  tb_put(b, bytes, (size_t)len);
  b->records++;
}

static void tb_str(tokbuf_t *b, float score, const char *s) { tb_piece(b, score, s, (int32_t)strlen(s)); }

/* The 259 ids every llama2.c vocabulary starts with: <unk>, <s>, </s>, then
 * the byte pieces "<0x00>".."<0xFF>". */
static void tb_base(tokbuf_t *b, int32_t max_token_length) {
  tb_begin(b, max_token_length);
  tb_str(b, 0.0f, "<unk>");
  tb_str(b, 0.0f, "<s>");
  tb_str(b, 0.0f, "</s>");
  for (int i = 0; i < 256; ++i) {
    char s[8];
    snprintf(s, sizeof s, "<0x%02X>", i);
    tb_str(b, 0.0f, s);
  }
}

static deco_tokenizer_t *tb_load(const tokbuf_t *b) {
  deco_tokenizer_t *t = NULL;
  deco_status_t s = deco_tokenizer_load_buffer(b->data, b->size, "synthetic.bin", b->records, &t);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "load failed: %s", deco_last_error(NULL));
  cr_assert_not_null(t);
  return t;
}

static int encode(const deco_tokenizer_t *t, const char *text, int bos, int eos, int32_t *ids, int max_ids) {
  int n = -1;
  deco_status_t s = deco_tokenizer_encode(t, text, bos, eos, ids, max_ids, &n);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "encode(\"%s\") failed: %s", text, deco_last_error(NULL));
  return n;
}

static void expect_ids(const deco_tokenizer_t *t, const char *text, int bos, int eos, const int32_t *want, int n_want) {
  int32_t ids[512];
  int n = encode(t, text, bos, eos, ids, 512);
  cr_assert_eq(n, n_want, "encode(\"%s\"): %d ids, expected %d", text, n, n_want);
  cr_assert_eq(deco_test_compare_i32("ids", ids, want, (size_t)n), 0, "encode(\"%s\"): ids differ", text);
}

/* What run.c prints for ids[1..n-1] (each decoded after its predecessor). */
static char *decode_all(const deco_tokenizer_t *t, const int32_t *ids, int n) {
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  for (int i = 1; i < n; ++i) {
    size_t k;
    const char *p = deco_tokenizer_decode(t, ids[i - 1], ids[i], &k);
    cr_assert_not_null(p);
    cr_assert_eq(strlen(p), k, "decode(%d, %d): length %zu but strlen %zu", ids[i - 1], ids[i], k, strlen(p));
    if (len + k + 1 > cap) {
      cap = (len + k + 1) * 2;
      out = realloc(out, cap);
    }
    memcpy(out + len, p, k);
    len += k;
  }
  out[len] = '\0';
  return out;
}

static void expect_decode(const deco_tokenizer_t *t, int prev, int token, const char *want) {
  size_t len = 12345;
  const char *got = deco_tokenizer_decode(t, prev, token, &len);
  cr_assert_not_null(got);
  cr_assert_eq(len, strlen(want), "decode(%d, %d): %zu bytes, expected %zu", prev, token, len, strlen(want));
  cr_assert(memcmp(got, want, len) == 0, "decode(%d, %d) = \"%s\", expected \"%s\"", prev, token, got, want);
}

static deco_tokenizer_t *load_tok512(void) {
  deco_tokenizer_t *t = NULL;
  deco_status_t s = deco_tokenizer_load(deco_test_data_file("models/tok512.bin"), 512, &t);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "tok512.bin: %s", deco_last_error(NULL));
  return t;
}

/* Asserts a load of data fails with status, and that the message starts
 * with name and contains each of the NULL-terminated fragments. */
static void expect_load_error(const void *data, size_t size, int vocab, deco_status_t status, const char *name,
                              const char *const *fragments) {
  deco_tokenizer_t *t = (deco_tokenizer_t *)&t; /* must be reset to NULL */
  deco_test_refused_naming(NULL, deco_tokenizer_load_buffer(data, size, name, vocab, &t), status, name, fragments);
  cr_assert_null(t);
}

/* ---- the llama2.c fixture ----------------------------------------------- */

Test(tokenizer, prompt_dog_fixture) {
  deco_tokenizer_t *t = load_tok512();
  cr_assert_eq(deco_tokenizer_vocab_size(t), 512);
  int n_want;
  int32_t *want = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_want);
  cr_assert_not_null(want);
  const char *text = "Once upon a time, there was a little dog named Max.";
  expect_ids(t, text, 1, 0, want, n_want);
  /* With EOS the same ids and a 2; without BOS the same ids less the 1. */
  int32_t ids[128];
  int n = encode(t, text, 1, 1, ids, 128);
  cr_assert_eq(n, n_want + 1);
  cr_assert_eq(ids[n - 1], 2);
  n = encode(t, text, 0, 0, ids, 128);
  cr_assert_eq(n, n_want - 1);
  cr_assert_eq(deco_test_compare_i32("ids without bos", ids, want + 1, (size_t)n), 0);
  /* Decoding gives the text back (the space after BOS dropped). */
  char *back = decode_all(t, want, n_want);
  cr_assert_str_eq(back, text);
  free(back);
  free(want);
  deco_tokenizer_destroy(t);
}

Test(tokenizer, greedy_fixture_decodes_to_story) {
  deco_tokenizer_t *t = load_tok512();
  int n;
  int32_t *ids = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  cr_assert_not_null(ids);
  cr_assert_eq(n, 257);
  char *text = decode_all(t, ids, n);
  cr_assert(strncmp(text, "Once upon a time, there was a little girl named Lily.", 53) == 0, "decoded: %.120s", text);
  /* run.c prints printable ASCII and whitespace only for this model. */
  for (const char *p = text; *p; ++p)
    cr_assert((*p >= 0x20 && *p < 0x7F) || *p == '\n', "unexpected byte 0x%02x", (unsigned char)*p);
  free(text);
  free(ids);
  deco_tokenizer_destroy(t);
}

Test(tokenizer, tok512_details) {
  deco_tokenizer_t *t = load_tok512();
  /* Empty text: no dummy prefix. */
  expect_ids(t, "", 1, 0, (const int32_t[]){1}, 1);
  expect_ids(t, "", 1, 1, (const int32_t[]){1, 2}, 2);
  expect_ids(t, "", 0, 0, NULL, 0);
  /* "é" is piece 485; "ü" is none: byte fallbacks 0xC3 + 3, 0xBC + 3 after
   * " " (410). */
  expect_ids(t, "\xc3\xa9", 1, 0, (const int32_t[]){1, 410, 485}, 3);
  expect_ids(t, "\xc3\xbc", 1, 0, (const int32_t[]){1, 410, 0xC3 + 3, 0xBC + 3}, 4);
  /* The hair space U+200A is piece 511, a three-byte code point. */
  expect_ids(t, "\xe2\x80\x8a", 1, 0, (const int32_t[]){1, 410, 511}, 3);
  /* A four-byte code point (U+1F600) falls back byte by byte. */
  expect_ids(t, "\xf0\x9f\x98\x80", 0, 0, (const int32_t[]){410, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}, 5);
  /* Stray continuation bytes: groups of at most 4, all fallbacks. */
  expect_ids(t, "\x80\x80\x80\x80\x80", 0, 0, (const int32_t[]){410, 131, 131, 131, 131, 131}, 6);
  /* Control byte and DEL: fallbacks. */
  expect_ids(t, "\x01\x7f", 0, 0, (const int32_t[]){410, 4, 0x7F + 3}, 3);

  /* Decode: the space after BOS is dropped, elsewhere kept. */
  expect_decode(t, 1, 403, "Once");
  expect_decode(t, 2, 403, " Once");
  expect_decode(t, 261, 403, " Once");
  expect_decode(t, 1, 410, ""); /* " " after BOS: nothing left */
  expect_decode(t, 5, 410, " ");
  /* Byte pieces "<0xXX>" become the byte; unprintable single bytes print nothing. */
  expect_decode(t, 5, 3 + 'A', "A");
  expect_decode(t, 5, 3 + '\n', "\n");
  expect_decode(t, 5, 3 + '\t', "\t");
  expect_decode(t, 5, 3 + 0x07, "");
  expect_decode(t, 5, 3 + 0x00, "");
  expect_decode(t, 5, 3 + 0xC3, ""); /* a lone UTF-8 lead byte is not printable */
  expect_decode(t, 5, 3 + 0x7F, "");
  expect_decode(t, 5, 511, "\xe2\x80\x8a");
  expect_decode(t, 5, 0, "<unk>");
  expect_decode(t, 5, 1, "\n<s>\n");
  /* Out of range. */
  expect_decode(t, 5, 512, "");
  expect_decode(t, 5, -1, "");
  expect_decode(t, 5, 1 << 30, "");
  cr_assert_str_eq(deco_tokenizer_decode(NULL, 1, 5, NULL), "");
  deco_tokenizer_destroy(t);
}

/* ---- hand-built vocabularies: the merge rules ------------------------------ */

enum { SP = 259, A, B, AB, BA, BAB, C, D, CD, DC, X, Y, XY, YX, A2, S_SP, N_SYN };

static void tb_synthetic(tokbuf_t *b, int with_bos_merge) {
  tb_base(b, 7);
  tb_str(b, -10.0f, " ");    /* SP */
  tb_str(b, -10.0f, "a");    /* A */
  tb_str(b, -10.0f, "b");    /* B */
  tb_str(b, -1.0f, "ab");    /* AB  same score as BA: leftmost wins */
  tb_str(b, -1.0f, "ba");    /* BA */
  tb_str(b, 0.0f, "bab");    /* BAB built on BA */
  tb_str(b, -10.0f, "c");    /* C */
  tb_str(b, -10.0f, "d");    /* D */
  tb_str(b, -5.0f, "cd");    /* CD  lower score ... */
  tb_str(b, -2.0f, "dc");    /* DC  ... than this: DC wins though it is to the right */
  tb_str(b, -10.0f, "x");    /* X */
  tb_str(b, -10.0f, "y");    /* Y */
  tb_str(b, -1e10f, "xy");   /* XY  at run.c's starting best score: never merged */
  tb_str(b, -2e10f, "yx");   /* YX  below it: never merged */
  tb_str(b, 5.0f, "a");      /* A2  a duplicate piece: lookups give the lowest id */
  /* S_SP: "<s>" + " " — BOS takes part in merges, as in run.c. */
  tb_str(b, with_bos_merge ? 3.0f : -1e10f, "<s> ");
}

Test(tokenizer, merge_rules) {
  tokbuf_t b;
  tb_synthetic(&b, 0);
  cr_assert_eq(b.records, N_SYN);
  deco_tokenizer_t *t = tb_load(&b);
  /* Equal scores: the leftmost pair. */
  expect_ids(t, "aba", 0, 0, (const int32_t[]){SP, AB, A}, 3);
  /* Merges repeat: "ba" first (leftmost of two -1 scores), then "bab". */
  expect_ids(t, "bab", 0, 0, (const int32_t[]){SP, BAB}, 2);
  /* The best score wins wherever it is. */
  expect_ids(t, "cdc", 0, 0, (const int32_t[]){SP, C, DC}, 3);
  expect_ids(t, "cdcd", 0, 0, (const int32_t[]){SP, C, DC, D}, 4);
  /* Scores at or below -1e10 never merge. */
  expect_ids(t, "xyx", 0, 0, (const int32_t[]){SP, X, Y, X}, 4);
  /* Duplicate piece: the lowest id. */
  expect_ids(t, "a", 0, 0, (const int32_t[]){SP, A}, 2);
  /* Code points that are not pieces fall back to their bytes (the byte
   * pieces are "<0xXX>", never looked up as text). */
  expect_ids(t, "q\xff", 0, 0, (const int32_t[]){SP, 'q' + 3, 0xFF + 3}, 3);
  /* A space in the text is its own piece here, and EOS comes last. */
  expect_ids(t, "a b", 1, 1, (const int32_t[]){1, SP, A, SP, B, 2}, 6);
  deco_tokenizer_destroy(t);
  free(b.data);

  tb_synthetic(&b, 1);
  t = tb_load(&b);
  /* BOS and the dummy prefix merge into "<s> " when that piece exists. */
  expect_ids(t, "a", 1, 0, (const int32_t[]){S_SP, A}, 2);
  expect_ids(t, "", 1, 0, (const int32_t[]){1}, 1);
  expect_ids(t, "a", 0, 0, (const int32_t[]){SP, A}, 2);
  deco_tokenizer_destroy(t);
  free(b.data);
}

Test(tokenizer, no_space_piece_no_prefix) {
  tokbuf_t b;
  tb_base(&b, 6);
  tb_str(&b, -1.0f, "a");
  tb_str(&b, -1.0f, "ab");
  tb_str(&b, -1.0f, "b");
  deco_tokenizer_t *t = tb_load(&b);
  /* No " " piece: run.c would push -1; nothing is pushed here. */
  expect_ids(t, "ab", 1, 0, (const int32_t[]){1, 260}, 2);
  /* A space in the text falls back to its byte. */
  expect_ids(t, "a b", 0, 0, (const int32_t[]){259, ' ' + 3, 261}, 3);
  deco_tokenizer_destroy(t);
  free(b.data);
}

Test(tokenizer, code_points) {
  tokbuf_t b;
  tb_base(&b, 8);
  tb_str(&b, -1.0f, "\xf0\x9f\x98\x80"); /* 259: U+1F600, four bytes */
  tb_str(&b, -1.0f, "\x80\x80\x80\x80"); /* 260: four stray continuation bytes */
  tb_str(&b, -1.0f, "\xc3\xa9");         /* 261: U+00E9 */
  tb_str(&b, -1.0f, "\x80");             /* 262 */
  deco_tokenizer_t *t = tb_load(&b);
  expect_ids(t, "\xf0\x9f\x98\x80", 0, 0, (const int32_t[]){259}, 1);
  /* A code point ends after 4 bytes even if continuation bytes follow. */
  expect_ids(t, "\xf0\x9f\x98\x80\x80", 0, 0, (const int32_t[]){259, 262}, 2);
  expect_ids(t, "\x80\x80\x80\x80\x80", 0, 0, (const int32_t[]){260, 262}, 2);
  expect_ids(t, "\xc3\xa9\xc3\xa9", 0, 0, (const int32_t[]){261, 261}, 2);
  /* A lead byte followed by too many continuation bytes is one unknown
   * code point: every byte falls back. */
  expect_ids(t, "\xc3\xa9\x80", 0, 0, (const int32_t[]){0xC3 + 3, 0xA9 + 3, 0x80 + 3}, 3);
  expect_ids(t, "a\x80", 0, 0, (const int32_t[]){'a' + 3, 0x80 + 3}, 2);
  deco_tokenizer_destroy(t);
  free(b.data);
}

Test(tokenizer, decode_byte_pieces) {
  tokbuf_t b;
  tb_base(&b, 8);
  tb_str(&b, 0.0f, "<0x4>");   /* 259: one hex digit still parses: byte 4, unprintable */
  tb_str(&b, 0.0f, "<0x7e>");  /* 260: lower case: '~' */
  tb_str(&b, 0.0f, "<0xZZ>");  /* 261: not a byte piece: printed as is */
  tb_str(&b, 0.0f, "<0x41");   /* 262: no closing '>': still 'A' */
  tb_str(&b, 0.0f, " <0x41>"); /* 263: the space is dropped after BOS first */
  tb_str(&b, 0.0f, "z");       /* 264 */
  tb_piece(&b, 0.0f, "q\0r", 3); /* 265: a NUL inside: run.c prints up to it */
  tb_str(&b, 0.0f, "\x05");    /* 266: a raw unprintable byte */
  deco_tokenizer_t *t = tb_load(&b);
  expect_decode(t, 0, 259, "");
  expect_decode(t, 0, 260, "~");
  expect_decode(t, 0, 261, "<0xZZ>");
  expect_decode(t, 0, 262, "A");
  expect_decode(t, 1, 263, "A");
  expect_decode(t, 0, 263, " <0x41>");
  expect_decode(t, 0, 264, "z");
  expect_decode(t, 1, 264, "z");
  expect_decode(t, 0, 265, "q");
  expect_decode(t, 0, 266, "");
  expect_decode(t, 0, 3 + 0x20, " ");
  expect_decode(t, 1, 3 + 0x20, " "); /* the piece is "<0x20>", not " " */
  deco_tokenizer_destroy(t);
  free(b.data);
}

/* ---- the built-in byte vocabulary ---------------------------------------- */

Test(tokenizer, byte_vocabulary) {
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_create_bytes(&t), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_tokenizer_vocab_size(t), 259);
  /* Every byte maps to byte + 3, after BOS and the space (id 35). */
  const char *text = "h\xc3\xa9llo \x01\xff!";
  int32_t want[32];
  int n_want = 0;
  want[n_want++] = 1;
  want[n_want++] = ' ' + 3;
  for (const unsigned char *p = (const unsigned char *)text; *p; ++p) want[n_want++] = *p + 3;
  want[n_want++] = 2;
  expect_ids(t, text, 1, 1, want, n_want);
  expect_ids(t, "", 0, 0, NULL, 0);
  expect_decode(t, 0, 0, "<unk>");
  expect_decode(t, 0, 1, "<s>");
  expect_decode(t, 0, 2, "</s>");
  expect_decode(t, 0, 3 + 'A', "A");
  expect_decode(t, 0, 3 + 0, "");
  expect_decode(t, 0, 3 + 0x05, "");
  expect_decode(t, 0, 3 + 0xA9, "");
  expect_decode(t, 1, 35, "");
  expect_decode(t, 0, 35, " ");
  expect_decode(t, 0, 259, "");
  deco_tokenizer_destroy(t);
}

Test(tokenizer, byte_vocabulary_round_trip) {
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_create_bytes(&t), DECO_STATUS_SUCCESS);
  float r[200];
  char text[201];
  int32_t ids[210];
  for (uint32_t trial = 0; trial < 20; ++trial) {
    /* Printable ASCII and newlines: every byte prints. */
    deco_test_fill_uniform(r, 200, 7, trial, 0.0f, 96.0f);
    int len = 1 + (int)(trial * 9);
    for (int i = 0; i < len; ++i) text[i] = r[i] >= 95.0f ? '\n' : (char)(0x20 + (int)r[i]);
    text[len] = '\0';
    int n = encode(t, text, 1, 0, ids, 210);
    cr_assert_eq(n, len + 2);
    for (int i = 0; i < len; ++i) cr_assert_eq(ids[i + 2], (unsigned char)text[i] + 3);
    char *back = decode_all(t, ids, n);
    cr_assert_str_eq(back, text);
    free(back);
  }
  deco_tokenizer_destroy(t);
}

Test(tokenizer, tok512_round_trip) {
  deco_tokenizer_t *t = load_tok512();
  const char *texts[] = {"Lily and Ben went to the park. They saw a big, red ball!",
                         "\"Why?\" asked Tom; 3 + 4 = 7 (yes) [ok] {no} ~end~",
                         "  two spaces, a\ttab and\na newline  ", "x"};
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; ++k) {
    int32_t ids[256];
    int n = encode(t, texts[k], 1, 0, ids, 256);
    cr_assert(n >= 2 && n <= (int)strlen(texts[k]) + 2);
    for (int i = 0; i < n; ++i) cr_assert(ids[i] >= 0 && ids[i] < 512);
    char *back = decode_all(t, ids, n);
    cr_assert_str_eq(back, texts[k]);
    free(back);
  }
  deco_tokenizer_destroy(t);
}

/* ---- arguments and capacity --------------------------------------------- */

Test(tokenizer, capacity_and_arguments) {
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_create_bytes(&t), DECO_STATUS_SUCCESS);
  int32_t ids[16];
  int n = -1;
  /* "hello" with BOS and EOS is 8 ids: 7 is too few (n says 8), 8 is enough. */
  cr_assert_eq(deco_tokenizer_encode(t, "hello", 1, 1, ids, 7, &n), DECO_STATUS_CAPACITY);
  cr_assert(strstr(deco_last_error(NULL), "max_ids") != NULL, "%s", deco_last_error(NULL));
  cr_assert_eq(n, 8);
  cr_assert_eq(deco_tokenizer_encode(t, "hello", 1, 1, ids, 8, &n), DECO_STATUS_SUCCESS);
  cr_assert_eq(n, 8);
  cr_assert_eq(deco_tokenizer_encode(t, "", 0, 0, NULL, 0, &n), DECO_STATUS_SUCCESS);
  cr_assert_eq(n, 0);
  cr_assert_eq(deco_tokenizer_encode(t, "", 1, 0, ids, 0, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(n, 1);
  cr_assert_eq(deco_tokenizer_encode(NULL, "a", 1, 0, ids, 16, &n), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tokenizer_encode(t, NULL, 1, 0, ids, 16, &n), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tokenizer_encode(t, "a", 1, 0, NULL, 16, &n), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tokenizer_encode(t, "a", 1, 0, ids, 16, NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tokenizer_encode(t, "a", 1, 0, ids, -1, &n), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_tokenizer_vocab_size(NULL), 0);
  deco_tokenizer_destroy(t);
  deco_tokenizer_destroy(NULL);
  cr_assert_eq(deco_tokenizer_create_bytes(NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_tokenizer_load("x", 512, NULL), DECO_STATUS_NULL_POINTER);
}

Test(tokenizer, capacity_after_merges) {
  deco_tokenizer_t *t = load_tok512();
  /* The merged result fits even though the unmerged bytes would not. */
  const char *text = "Once upon a time";
  int32_t ids[8];
  int n;
  cr_assert_eq(deco_tokenizer_encode(t, text, 1, 0, ids, 5, &n), DECO_STATUS_SUCCESS);
  cr_assert_eq(n, 5);
  cr_assert_eq(deco_test_compare_i32("ids", ids, (const int32_t[]){1, 403, 407, 261, 378}, 5), 0);
  n = -1;
  cr_assert_eq(deco_tokenizer_encode(t, text, 1, 0, ids, 4, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(n, 5); /* the merged count, as with room */
  deco_tokenizer_destroy(t);
}

/* ---- bad files ------------------------------------------------------------- */

Test(tokenizer, bad_every_truncation) {
  tokbuf_t b;
  tb_synthetic(&b, 0);
  /* Every proper prefix is rejected with a message naming the file. */
  for (size_t cut = 0; cut < b.size; ++cut) {
    const char *frag[] = {cut < 4 ? "max_token_length" : "record", NULL};
    expect_load_error(b.data, cut, b.records, DECO_STATUS_BAD_FORMAT, "synthetic.bin", frag);
  }
  /* The whole file loads. */
  deco_tokenizer_destroy(tb_load(&b));
  /* Specific points: inside the first score, inside the length of record 17,
   * inside the bytes of record 17. */
  size_t rec17 = 4;
  for (int i = 0; i < 17; ++i) {
    int32_t len;
    memcpy(&len, b.data + rec17 + 4, 4);
    rec17 += 8 + (size_t)len;
  }
  expect_load_error(b.data, 6, b.records, DECO_STATUS_BAD_FORMAT, "synthetic.bin",
                    (const char *[]){"record 0:", "ends inside", NULL});
  expect_load_error(b.data, rec17 + 6, b.records, DECO_STATUS_BAD_FORMAT, "synthetic.bin",
                    (const char *[]){"record 17:", "ends inside", NULL});
  expect_load_error(b.data, rec17 + 10, b.records, DECO_STATUS_BAD_FORMAT, "synthetic.bin",
                    (const char *[]){"record 17:", "length 6 runs past the end", NULL});
  free(b.data);
}

Test(tokenizer, bad_tok512_truncations) {
  size_t size;
  unsigned char *data = deco_test_read_file(deco_test_data_file("models/tok512.bin"), &size);
  cr_assert_not_null(data);
  for (size_t cut = 0; cut < size; ++cut)
    expect_load_error(data, cut, 512, DECO_STATUS_BAD_FORMAT, "tok512.bin", NULL);
  /* Written to disk and loaded by path: the message starts with the path. */
  char path[4096];
  snprintf(path, sizeof path, "%s/tok512-cut.bin", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(path, data, size / 2), 0);
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_load(path, 512, &t), DECO_STATUS_BAD_FORMAT);
  cr_assert_null(t);
  cr_assert(strncmp(deco_last_error(NULL), path, strlen(path)) == 0, "%s", deco_last_error(NULL));
  /* The model's vocab larger than the file's records: truncated. */
  expect_load_error(data, size, 513, DECO_STATUS_BAD_FORMAT, "tok512.bin",
                    (const char *[]){"record 512:", "vocab_size 513", NULL});
  /* Smaller: more records than the model's vocab. */
  expect_load_error(data, size, 511, DECO_STATUS_BAD_FORMAT, "tok512.bin",
                    (const char *[]){"more records than the model's vocab", NULL});
  free(data);
}

Test(tokenizer, bad_oversized) {
  tokbuf_t b;
  tb_synthetic(&b, 0);
  int vocab = b.records;
  tb_str(&b, 0.0f, "extra"); /* one record more than the model's vocab */
  expect_load_error(b.data, b.size, vocab, DECO_STATUS_BAD_FORMAT, "synthetic.bin",
                    (const char *[]){"more records than the model's vocab", "vocab_size", NULL});
  free(b.data);
  /* A single trailing byte. */
  tb_synthetic(&b, 0);
  unsigned char zero = 0;
  tb_put(&b, &zero, 1);
  expect_load_error(b.data, b.size, vocab, DECO_STATUS_BAD_FORMAT, "synthetic.bin",
                    (const char *[]){"1 bytes follow", NULL});
  free(b.data);
}

Test(tokenizer, bad_header_and_records) {
  tokbuf_t b;
  int32_t v;
  float f;
  /* max_token_length out of range. */
  const int32_t bad_max[] = {0, -1, (1 << 16) + 1, INT32_MIN};
  for (size_t k = 0; k < 4; ++k) {
    tb_base(&b, bad_max[k]);
    char want[64];
    snprintf(want, sizeof want, "max_token_length %d", (int)bad_max[k]);
    expect_load_error(b.data, b.size, b.records, DECO_STATUS_BAD_FORMAT, "t.bin", (const char *[]){want, NULL});
    free(b.data);
  }
  /* Record 17's length: too long for max_token_length, zero, negative, huge. */
  const int32_t bad_len[] = {9999, 0, -1, INT32_MAX, 7};
  for (size_t k = 0; k < 5; ++k) {
    tb_base(&b, 6);
    /* ids 0-2 are 5, 3 and 4 bytes long; ids 3.. ("<0xXX>") are 6 */
    size_t at = 4 + (8 + 5) + (8 + 3) + (8 + 4) + 14 * (8 + 6);
    memcpy(&v, b.data + at + 4, 4);
    cr_assert_eq(v, 6, "record 17 layout");
    memcpy(b.data + at + 4, &bad_len[k], 4);
    char want[96];
    if (bad_len[k] > 6)
      snprintf(want, sizeof want, "record 17: length %d exceeds max_token_length 6", (int)bad_len[k]);
    else
      snprintf(want, sizeof want, "record 17: length %d must be >= 1", (int)bad_len[k]);
    expect_load_error(b.data, b.size, b.records, DECO_STATUS_BAD_FORMAT, "tok.bin", (const char *[]){want, NULL});
    free(b.data);
  }
  /* A length within max_token_length that runs past the end. */
  tb_base(&b, 100);
  v = 50;
  memcpy(b.data + b.size - 6 - 4, &v, 4); /* the last record claims 50 bytes */
  expect_load_error(b.data, b.size, b.records, DECO_STATUS_BAD_FORMAT, "tok.bin",
                    (const char *[]){"record 258: length 50 runs past the end", NULL});
  free(b.data);
  /* Non-finite scores. */
  const float bad_score[] = {NAN, INFINITY, -INFINITY};
  for (size_t k = 0; k < 3; ++k) {
    tb_base(&b, 6);
    f = bad_score[k];
    memcpy(b.data + 4 + (8 + 5) + (8 + 3), &f, 4); /* record 2's score */
    expect_load_error(b.data, b.size, b.records, DECO_STATUS_BAD_FORMAT, "tok.bin",
                      (const char *[]){"record 2: score is", NULL});
    free(b.data);
  }
  /* The model's vocab_size out of range (an argument, not the file). */
  tb_base(&b, 6);
  const int bad_vocab[] = {0, -5, 258, (1 << 20) + 1};
  for (size_t k = 0; k < 4; ++k)
    expect_load_error(b.data, b.size, bad_vocab[k], DECO_STATUS_INVALID_ARGUMENT, "tok.bin",
                      (const char *[]){"vocab_size", NULL});
  free(b.data);
}

Test(tokenizer, bad_zero_filled_and_random) {
  static unsigned char buf[8192];
  memset(buf, 0, sizeof buf);
  const size_t sizes[] = {0, 1, 4, 8, 12, 100, 6227, 8192};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; ++k)
    expect_load_error(buf, sizes[k], 512, DECO_STATUS_BAD_FORMAT, "zeros.bin", NULL);
  /* Random bytes, seeded: never a crash, always rejected (and if a random
   * file were ever valid, it would load; the odds are nil for these). */
  float r[8192];
  for (uint32_t trial = 0; trial < 200; ++trial) {
    deco_test_fill_uniform(r, 8192, 12345, trial, 0.0f, 256.0f);
    for (size_t i = 0; i < sizeof buf; ++i) buf[i] = (unsigned char)(int)r[i];
    size_t size = 1 + (trial * 97) % sizeof buf;
    /* Half the trials get a plausible max_token_length so records are parsed. */
    if (trial % 2 && size >= 4) {
      int32_t m = 1 + (int32_t)(trial % 200);
      memcpy(buf, &m, 4);
    }
    expect_load_error(buf, size, 259 + (int)trial, DECO_STATUS_BAD_FORMAT, "random.bin", NULL);
  }
}

Test(tokenizer, bad_missing_file) {
  char path[4096];
  snprintf(path, sizeof path, "%s/no-such-tokenizer.bin", deco_test_tmpdir());
  deco_tokenizer_t *t = (deco_tokenizer_t *)&t;
  cr_assert_eq(deco_tokenizer_load(path, 512, &t), DECO_STATUS_IO_ERROR);
  cr_assert_null(t);
  const char *msg = deco_last_error(NULL);
  cr_assert(strstr(msg, path) != NULL && strstr(msg, "cannot open") != NULL, "%s", msg);
  cr_assert(strstr(msg, "No such file") != NULL, "%s", msg);
  /* A directory is not a tokenizer. */
  cr_assert_eq(deco_tokenizer_load(deco_test_tmpdir(), 512, &t), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), deco_test_tmpdir()) != NULL, "%s", deco_last_error(NULL));
  /* A good file written to disk loads by path. */
  tokbuf_t b;
  tb_synthetic(&b, 0);
  snprintf(path, sizeof path, "%s/synthetic.bin", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(path, b.data, b.size), 0);
  cr_assert_eq(deco_tokenizer_load(path, b.records, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  expect_ids(t, "bab", 0, 0, (const int32_t[]){SP, BAB}, 2);
  deco_tokenizer_destroy(t);
  free(b.data);
}

/* ---- the merge loop against a quadratic oracle ---------------------------- */

/* run.c's encode() written again as plainly as possible, sharing nothing with
 * the library: its own reader of tokenizer.bin, a linear search for pieces
 * (the lowest id among duplicates), and run.c's rounds, each a full scan for
 * the best-scoring pair (strictly greater, so the leftmost among equals).
 * Merged ids are memoised per (left id, right id), on which alone they
 * depend. */
typedef struct oracle {
  int vocab;
  float *score;
  int32_t *len;
  const unsigned char **piece; /* into the buffer passed to oracle_load */
  int32_t *pair_id;            /* [vocab * vocab]: -2 until looked up */
} oracle_t;

static oracle_t oracle_load(const unsigned char *data, size_t size, int vocab) {
  oracle_t o = {.vocab = vocab,
                .score = malloc(sizeof(float) * vocab),
                .len = malloc(sizeof(int32_t) * vocab),
                .piece = malloc(sizeof(unsigned char *) * vocab),
                .pair_id = malloc(sizeof(int32_t) * vocab * vocab)};
  cr_assert(o.score && o.len && o.piece && o.pair_id);
  size_t off = 4; /* max_token_length: not needed here */
  for (int i = 0; i < vocab; ++i) {
    cr_assert(off + 8 <= size);
    memcpy(&o.score[i], data + off, 4);
    memcpy(&o.len[i], data + off + 4, 4);
    o.piece[i] = data + off + 8;
    off += 8 + (size_t)o.len[i];
    cr_assert(o.len[i] >= 1 && off <= size);
  }
  cr_assert_eq(off, size);
  for (int i = 0; i < vocab * vocab; ++i) o.pair_id[i] = -2;
  return o;
}

static void oracle_free(oracle_t *o) {
  free(o->score);
  free(o->len);
  free(o->piece);
  free(o->pair_id);
}

static int oracle_find(const oracle_t *o, const void *bytes, size_t n) {
  for (int i = 0; i < o->vocab; ++i)
    if ((size_t)o->len[i] == n && memcmp(o->piece[i], bytes, n) == 0) return i;
  return -1;
}

static int oracle_pair(oracle_t *o, int32_t a, int32_t b) {
  int32_t *slot = &o->pair_id[a * o->vocab + b];
  if (*slot == -2) {
    size_t la = (size_t)o->len[a], lb = (size_t)o->len[b];
    unsigned char *s = malloc(la + lb);
    memcpy(s, o->piece[a], la);
    memcpy(s + la, o->piece[b], lb);
    *slot = oracle_find(o, s, la + lb);
    free(s);
  }
  return *slot;
}

/* ids has room for strlen(text) + 3. */
static int oracle_encode(oracle_t *o, const char *text, int bos, int eos, int32_t *ids) {
  int n = 0;
  if (bos) ids[n++] = 1;
  int space = oracle_find(o, " ", 1);
  if (text[0] != '\0' && space >= 0) ids[n++] = space;
  for (size_t i = 0; text[i] != '\0';) {
    size_t len = 1; /* a byte and at most 3 continuation bytes (NUL is none) */
    while (len < 4 && ((unsigned char)text[i + len] & 0xC0) == 0x80) ++len;
    int id = oracle_find(o, text + i, len);
    if (id >= 0)
      ids[n++] = id;
    else
      for (size_t k = 0; k < len; ++k) ids[n++] = (unsigned char)text[i + k] + 3;
    i += len;
  }
  for (;;) {
    float best_score = -1e10f;
    int best = -1, best_id = -1;
    for (int i = 0; i + 1 < n; ++i) {
      int id = oracle_pair(o, ids[i], ids[i + 1]);
      if (id >= 0 && o->score[id] > best_score) {
        best_score = o->score[id];
        best_id = id;
        best = i;
      }
    }
    if (best < 0) break;
    ids[best] = best_id;
    for (int i = best + 1; i + 1 < n; ++i) ids[i] = ids[i + 1];
    --n;
  }
  if (eos) ids[n++] = 2;
  return n;
}

static void expect_oracle(const deco_tokenizer_t *t, oracle_t *o, const char *text, int bos, int eos,
                          const char *what) {
  size_t len = strlen(text);
  int32_t *want = malloc(sizeof(int32_t) * (len + 3)), *got = malloc(sizeof(int32_t) * (len + 3));
  cr_assert(want && got);
  int n_want = oracle_encode(o, text, bos, eos, want), n = -1;
  deco_status_t s = deco_tokenizer_encode(t, text, bos, eos, got, (int)len + 3, &n);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s (%zu bytes): %s", what, len, deco_last_error(NULL));
  cr_assert_eq(n, n_want, "%s (%zu bytes, bos %d eos %d): %d ids, the oracle %d", what, len, bos, eos, n, n_want);
  cr_assert_eq(deco_test_compare_i32(what, got, want, (size_t)n), 0, "%s (%zu bytes, bos %d eos %d): ids differ",
               what, len, bos, eos);
  free(want);
  free(got);
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *state, size_t n) { return (size_t)(rng_next(state) % n); }

/* A text being built up to a fixed length; what does not fit is cut, even
 * inside a code point. */
typedef struct textbuf {
  char *s;
  size_t n, len;
} textbuf_t;

static void text_put(textbuf_t *b, const char *src, size_t k) {
  if (k > b->len - b->n) k = b->len - b->n;
  memcpy(b->s + b->n, src, k);
  b->n += k;
}

static const char *const story_words[] = {
    "Once", "upon", "a", "time", "there", "was", "little", "girl", "named", "Lily", "She", "liked", "to", "play",
    "with", "her", "big", "red", "ball", "in", "the", "park", "One", "day", "Ben", "saw", "dog", "and", "said",
    "happy", "tree", "flew", "away", "Tom", "mom", "very", "sad", "because"};
enum { N_WORDS = sizeof story_words / sizeof story_words[0] };

enum { TEXT_RANDOM_BYTES, TEXT_UTF8_MIX, TEXT_RUN, TEXT_REPEATED_WORD, TEXT_LONG_WORD, TEXT_PIECES, TEXT_STORY,
       N_TEXT_KINDS };
static const char *const text_kind_name[] = {"random bytes", "UTF-8 mix", "run",  "repeated word",
                                             "long word",    "pieces",    "story"};

/* A malloc'd text of len bytes (no NUL inside) of the given kind; pieces
 * come from o's vocabulary. */
static char *make_text(const oracle_t *o, int kind, size_t len, uint64_t *rng) {
  static const char *const units[] = {"a", "b", "e", " ", "\n", "\x80", "\xc3", "\xa9", "\xc3\xa9", "\xe2\x80\x8a",
                                      "\xf0\x9f\x98\x80", "\xff", "\xfe", "ab", "the", " t", "he"};
  static const char *const runs[] = {"a", " ", "e", "\n", "\x80", "\xc3\xa9", "\xe2\x80\x8a", "ab", "\xff"};
  textbuf_t b = {.s = malloc(len + 1), .n = 0, .len = len};
  cr_assert(b.s);
  const char *run = runs[rng_below(rng, sizeof runs / sizeof runs[0])];
  const char *word = story_words[rng_below(rng, N_WORDS)];
  const char *sep = rng_below(rng, 2) ? " " : "";
  while (b.n < len) {
    switch (kind) {
    case TEXT_RANDOM_BYTES: {
      char c = (char)(1 + rng_below(rng, 255));
      text_put(&b, &c, 1);
      break;
    }
    case TEXT_UTF8_MIX: {
      const char *u = units[rng_below(rng, sizeof units / sizeof units[0])];
      text_put(&b, u, strlen(u));
      break;
    }
    case TEXT_RUN:
      text_put(&b, run, strlen(run));
      break;
    case TEXT_REPEATED_WORD:
      text_put(&b, word, strlen(word));
      text_put(&b, sep, strlen(sep));
      break;
    case TEXT_LONG_WORD: {
      char c = (char)('a' + rng_below(rng, 26));
      text_put(&b, &c, 1);
      break;
    }
    case TEXT_PIECES: {
      int id = (int)rng_below(rng, (size_t)o->vocab);
      if (memchr(o->piece[id], '\0', (size_t)o->len[id]) == NULL)
        text_put(&b, (const char *)o->piece[id], (size_t)o->len[id]);
      break;
    }
    default: {
      const char *w = story_words[rng_below(rng, N_WORDS)];
      text_put(&b, w, strlen(w));
      static const char *const after[] = {" ", " ", " ", ", ", ". ", "!\n", "\n\n", "ed ", "s "};
      const char *p = after[rng_below(rng, sizeof after / sizeof after[0])];
      text_put(&b, p, strlen(p));
      break;
    }
    }
  }
  b.s[len] = '\0';
  return b.s;
}

/* Short texts one by one, then texts of every kind up to 4 KB. */
static void sweep_oracle(const deco_tokenizer_t *t, oracle_t *o, uint64_t seed, int texts_per_kind) {
  for (int flags = 0; flags < 4; ++flags) expect_oracle(t, o, "", flags & 1, flags >> 1, "empty text");
  char one[2] = {0, 0};
  for (int c = 1; c < 256; ++c) {
    one[0] = (char)c;
    expect_oracle(t, o, one, 1, c & 1, "1-byte text");
  }
  static const char alphabet[] = "ab et\n\x80\xc3\xa9\xe2\xf0\xff";
  char two[3] = {0, 0, 0};
  for (size_t i = 0; i + 1 < sizeof alphabet; ++i)
    for (size_t j = 0; j + 1 < sizeof alphabet; ++j) {
      two[0] = alphabet[i];
      two[1] = alphabet[j];
      expect_oracle(t, o, two, (int)(i & 1), (int)(j & 1), "2-byte text");
    }
  uint64_t rng = seed;
  for (int kind = 0; kind < N_TEXT_KINDS; ++kind)
    for (int k = 0; k < texts_per_kind; ++k) {
      /* Mostly short, a few at the top of the range. */
      size_t len = k % 4 == 3 ? 4096 - rng_below(&rng, 64) : 1 + rng_below(&rng, k % 2 ? 300 : 2048);
      char *text = make_text(o, kind, len, &rng);
      expect_oracle(t, o, text, (int)rng_below(&rng, 2), (int)rng_below(&rng, 2), text_kind_name[kind]);
      free(text);
    }
}

Test(tokenizer, encode_matches_quadratic_oracle_tok512) {
  size_t size;
  unsigned char *data = deco_test_read_file(deco_test_data_file("models/tok512.bin"), &size);
  cr_assert_not_null(data);
  oracle_t o = oracle_load(data, size, 512);
  deco_tokenizer_t *t = load_tok512();
  sweep_oracle(t, &o, 20240601, 12);
  deco_tokenizer_destroy(t);
  oracle_free(&o);
  free(data);
}

/* Variant 0: all scores zero, -0 or +0, so that every merge ties and only
 * positions decide. */
static float tie_score(uint64_t variant, uint64_t *rng) {
  static const float scores[] = {-3.0f, -1.0f, -0.0f, 0.0f, 1e-40f, 2.0f, 1e30f, -1e10f, -9.9e9f, -2e10f};
  if (variant == 0) return rng_below(rng, 2) ? -0.0f : 0.0f;
  return scores[rng_below(rng, sizeof scores / sizeof scores[0])];
}

/* Vocabularies of few distinct scores, so that most candidate merges tie:
 * every string of 2..4 characters over {a, b, ' '}, pieces built on byte
 * fallbacks and on BOS, a duplicate, scores of both signs, -0 next to +0, a
 * denormal, and scores at and just above run.c's starting best -1e10. */
Test(tokenizer, encode_matches_quadratic_oracle_ties) {
  for (uint64_t variant = 0; variant < 4; ++variant) {
    uint64_t rng = 777 + variant;
    tokbuf_t b;
    tb_base(&b, 16);
    tb_str(&b, -10.0f, " ");
    tb_str(&b, -10.0f, "a");
    tb_str(&b, -10.0f, "b");
    tb_str(&b, -10.0f, "\xc3\xa9");
    static const char abc[] = "ab ";
    for (int len = 2; len <= 4; ++len) {
      int count = len == 2 ? 9 : len == 3 ? 27 : 81;
      for (int k = 0; k < count; ++k) {
        char s[5];
        for (int i = 0, v = k; i < len; ++i, v /= 3) s[i] = abc[v % 3];
        s[len] = '\0';
        tb_str(&b, tie_score(variant, &rng), s);
      }
    }
    /* "ab" again: a duplicate, lookups give the lower id. */
    static const char *const extra[] = {"ab",   "<0xFF><0xFE>", "<0xFF><0xFE>a", "<0x80><0x80>",
                                        "<s> ", "<s> a",        "\xc3\xa9" "a", "a\xc3\xa9"};
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; ++k) tb_str(&b, tie_score(variant, &rng), extra[k]);
    deco_tokenizer_t *t = tb_load(&b);
    oracle_t o = oracle_load(b.data, b.size, b.records);
    sweep_oracle(t, &o, 99 + variant, 8);
    /* Texts over the vocabulary's own alphabet, where merges chain. */
    static const char *const units[] = {"a", "b", " ", "ab", "ba", "\xc3\xa9", "\xff\xfe", "\x80"};
    for (int k = 0; k < 24; ++k) {
      size_t len = 1 + rng_below(&rng, k % 3 == 2 ? 4096 : 512);
      textbuf_t tb = {.s = malloc(len + 1), .n = 0, .len = len};
      cr_assert(tb.s);
      const char *only = units[rng_below(&rng, sizeof units / sizeof units[0])];
      while (tb.n < len) {
        const char *u = k % 4 == 0 ? only : units[rng_below(&rng, sizeof units / sizeof units[0])];
        text_put(&tb, u, strlen(u));
      }
      tb.s[len] = '\0';
      expect_oracle(t, &o, tb.s, k & 1, (k >> 1) & 1, "tie vocabulary text");
      free(tb.s);
    }
    oracle_free(&o);
    deco_tokenizer_destroy(t);
    free(b.data);
  }
}

/* ---- encode time ------------------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
#define TOK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TOK_TEST_ASAN 1
#endif
#endif

/* The least CPU time of this thread over 3 encodes of text, in seconds: CPU
 * time, so that other suites running beside this one do not count. */
static double encode_seconds(const deco_tokenizer_t *t, const char *text, int32_t *ids, int max_ids, int *n) {
  double best = INFINITY;
  for (int run = 0; run < 3; ++run) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    deco_status_t s = deco_tokenizer_encode(t, text, 1, 0, ids, max_ids, n);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (sec < best) best = sec;
  }
  return best;
}

/* run.c's loop is quadratic: 10 times the text took 100 times as long
 * (10 KB 2 s, 100 KB 200 s on a 2-core machine). n log n gives 10 * 1.2,
 * and 12 to 16 measured once the larger heap outgrows the caches. */
Test(tokenizer, encode_time_grows_as_n_log_n, .timeout = 120) {
  deco_tokenizer_t *t = load_tok512();
  enum { SMALL = 100 * 1000, LARGE = 1000 * 1000 };
  uint64_t rng = 4242;
  char *large = make_text(NULL, TEXT_STORY, LARGE, &rng);
  char *small = malloc(SMALL + 1);
  cr_assert(small);
  memcpy(small, large, SMALL);
  small[SMALL] = '\0';
  int32_t *ids = malloc(sizeof(int32_t) * (LARGE + 3));
  cr_assert(ids);
  int n_small, n_large;
  double t_small = encode_seconds(t, small, ids, LARGE + 3, &n_small);
  double t_large = encode_seconds(t, large, ids, LARGE + 3, &n_large);
  cr_log_info("encode: %d bytes %.4f s (%d ids), %d bytes %.4f s (%d ids), ratio %.1f", SMALL, t_small, n_small, LARGE,
              t_large, n_large, t_large / t_small);
  cr_assert(n_large > LARGE / 5 && n_large < LARGE / 2, "%d ids for %d bytes of story", n_large, LARGE);
  cr_assert(t_large < 25.0 * t_small, "1 MB took %.3f s, %.1f times the %.4f s of 100 KB: quadratic?", t_large,
            t_large / t_small, t_small);
#ifndef TOK_TEST_ASAN
  cr_assert(t_large < 1.0, "1 MB took %.3f s", t_large);
#endif
  /* The ids decode to the text. */
  char *back = decode_all(t, ids, n_large);
  cr_assert(strcmp(back, large) == 0, "1 MB of story does not decode back");
  free(back);
  free(ids);
  free(small);
  free(large);
  deco_tokenizer_destroy(t);
}

/* Detokenizing names the first id outside the vocabulary, below or above it. */
Test(tokenizer, detokenize_names_the_first_id_outside_the_vocabulary) {
  deco_tokenizer_t *t = load_tok512();
  char text[64];
  size_t n = 0;
  const int32_t high[] = {1, 300, 512, 7};
  deco_test_refused(NULL, deco_tokenizer_detokenize(t, high, 4, 0, text, sizeof text, &n),
                    DECO_STATUS_INVALID_ARGUMENT,
                    "deco_tokenizer_detokenize: ids[2] = 512 is outside the vocabulary of 512");
  const int32_t low[] = {-1, 600};
  deco_test_refused(NULL, deco_tokenizer_detokenize(t, low, 2, 0, text, sizeof text, &n),
                    DECO_STATUS_INVALID_ARGUMENT,
                    "deco_tokenizer_detokenize: ids[0] = -1 is outside the vocabulary of 512");
  const int32_t fine[] = {1, 300, 511};
  cr_assert_eq(deco_tokenizer_detokenize(t, fine, 3, 0, text, sizeof text, &n), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  deco_tokenizer_destroy(t);
}
