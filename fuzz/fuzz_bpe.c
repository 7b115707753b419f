/* fuzz/fuzz_bpe.c — libFuzzer target for the GGUF tokenizers' encoders
 * (byte-level BPE with each pre-tokenizer, SentencePiece): a vocabulary is
 * built from the input and written as a GGUF buffer, then the rest of the
 * input is tokenized, decoded, streamed and rendered as a chat.
 * Input: byte 0 options (bit 0 parse special, bit 1 add special, bits 2-4
 * the pre-tokenizer, bit 5 SentencePiece), byte 1 the number m of extra
 * tokens (mod 48), 2m bytes naming two existing tokens each (their
 * concatenation becomes a token and, for BPE, a merge), then the text.
 * Checks: ids inside the vocabulary; decode(encode(text)) == text for
 * well-formed text; the streaming decoder equals decoding at once; an
 * exact-size buffer works and one id fewer reports the count. Seeds:
 * fuzz/make_corpus.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "deco/deco.h"

typedef struct buf {
  unsigned char *p;
  size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 256;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}
static void put_u32(buf_t *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf_t *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf_t *b, const char *s, size_t n) {
  put_u64(b, n);
  put(b, s, n);
}
static void put_key(buf_t *b, const char *k, uint32_t type) {
  put_str(b, k, strlen(k));
  put_u32(b, type);
}

#define MAXT 400
static char tok[MAXT][64];
static size_t tlen[MAXT];
static int32_t ttype[MAXT];
static int ntok;
static char merge[64][130];
static size_t mlen[64];
static int nmerge;

static int find(const char *s, size_t n) {
  for (int i = 0; i < ntok; ++i)
    if (tlen[i] == n && memcmp(tok[i], s, n) == 0) return i;
  return -1;
}

static int add(const char *s, size_t n, int32_t type) {
  if (n == 0 || n >= sizeof tok[0] || ntok >= MAXT || find(s, n) >= 0) return -1;
  memcpy(tok[ntok], s, n);
  tlen[ntok] = n;
  ttype[ntok] = type;
  return ntok++;
}



static const char *const k_pre[] = {"gpt-2", "smollm", "llama-bpe", "qwen2", "default", "starcoder", "mpt", "llama3"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  unsigned opt = data[0];
  int spm = (opt >> 5) & 1;
  size_t m = data[1] % 48;
  if (size < 2 + 2 * m) return 0;
  const uint8_t *pairs = data + 2;
  const char *text = (const char *)data + 2 + 2 * m;
  size_t len = size - 2 - 2 * m;

  ntok = 0;
  nmerge = 0;
  if (spm) {
    add("<unk>", 5, 2);
    add("<s>", 3, 3);
    add("</s>", 4, 3);
    for (int b = 0; b < 256; ++b) {
      char hx[8];
      snprintf(hx, sizeof hx, "<0x%02X>", b);
      add(hx, 6, 6);
    }
    add("\xe2\x96\x81", 3, 1);
    add("a", 1, 1);
    add("b", 1, 1);
  } else {
    for (int b = 0; b < 256; ++b) {
      char o[2];
      add(o, deco_test_byte_char(b, o), 1);
    }
    add("<|im_start|>", 12, 3);
    add("<|im_end|>", 10, 3);
    add("<u>", 3, 4);
  }
  int first = ntok;
  for (size_t i = 0; i < m; ++i) {
    int a = pairs[2 * i] % ntok, b = pairs[2 * i + 1] % ntok;
    if (spm ? (ttype[a] != 1 || ttype[b] != 1) : (a >= 256 && a < first) || (b >= 256 && b < first)) continue;
    char cat[128];
    if (tlen[a] + tlen[b] >= sizeof tok[0]) continue;
    memcpy(cat, tok[a], tlen[a]);
    memcpy(cat + tlen[a], tok[b], tlen[b]);
    if (add(cat, tlen[a] + tlen[b], 1) < 0) continue;
    if (!spm) {
      memcpy(merge[nmerge], tok[a], tlen[a]);
      merge[nmerge][tlen[a]] = ' ';
      memcpy(merge[nmerge] + tlen[a] + 1, tok[b], tlen[b]);
      mlen[nmerge++] = tlen[a] + 1 + tlen[b];
    }
  }

  buf_t g = {0};
  put(&g, "GGUF", 4);
  put_u32(&g, 3);
  put_u64(&g, 0);
  put_u64(&g, spm ? 4 : 6);
  put_key(&g, "tokenizer.ggml.model", 8);
  put_str(&g, spm ? "llama" : "gpt2", spm ? 5 : 4);
  put_key(&g, "tokenizer.ggml.tokens", 9);
  put_u32(&g, 8);
  put_u64(&g, (uint64_t)ntok);
  for (int i = 0; i < ntok; ++i) put_str(&g, tok[i], tlen[i]);
  put_key(&g, "tokenizer.ggml.token_type", 9);
  put_u32(&g, 5);
  put_u64(&g, (uint64_t)ntok);
  put(&g, ttype, 4 * (size_t)ntok);
  if (spm) {
    put_key(&g, "tokenizer.ggml.scores", 9);
    put_u32(&g, 6);
    put_u64(&g, (uint64_t)ntok);
    for (int i = 0; i < ntok; ++i) {
      float s = i >= first ? (float)((pairs[0] * 31 + i * 7) % 13) - 6.0f : 0.0f;
      put(&g, &s, 4);
    }
  } else {
    put_key(&g, "tokenizer.ggml.merges", 9);
    put_u32(&g, 8);
    put_u64(&g, (uint64_t)nmerge);
    for (int i = 0; i < nmerge; ++i) put_str(&g, merge[i], mlen[i]);
    put_key(&g, "tokenizer.ggml.pre", 8);
    const char *pre = k_pre[(opt >> 2) & 7];
    put_str(&g, pre, strlen(pre));
    put_key(&g, "tokenizer.ggml.eos_token_id", 4);
    put_u32(&g, (uint32_t)find("<|im_end|>", 10));
  }

  deco_tokenizer_t *t = NULL;
  if (deco_tokenizer_load_gguf_buffer(g.p, g.n, "fuzz.gguf", &t) != DECO_STATUS_SUCCESS) {
    /* Without PCRE2 a BPE vocabulary is refused; nothing else may fail. */
    if (spm || !strstr(deco_last_error(NULL), "PCRE2")) abort();
    free(g.p);
    return 0;
  }
  free(g.p);
  if (deco_tokenizer_vocab_size(t) != ntok) abort();

  unsigned flags = (opt & 1 ? DECO_TOKENIZE_PARSE_SPECIAL : 0) | (opt & 2 ? DECO_TOKENIZE_ADD_SPECIAL : 0);
  int n = -1;
  deco_status_t s0 = deco_tokenizer_tokenize(t, text, len, flags, NULL, 0, &n);
  if (n < 0 || s0 != (n == 0 ? DECO_STATUS_SUCCESS : DECO_STATUS_CAPACITY)) abort();
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
  int n2 = -1;
  if (deco_tokenizer_tokenize(t, text, len, flags, ids, n, &n2) != DECO_STATUS_SUCCESS || n2 != n) abort();
  if (n > 0 && deco_tokenizer_tokenize(t, text, len, flags, ids, n - 1, &n2) != DECO_STATUS_CAPACITY) abort();
  if (deco_tokenizer_tokenize(t, text, len, flags, ids, n, &n2) != DECO_STATUS_SUCCESS) abort();
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= ntok) abort();
  if ((size_t)n > 4 * len + 8) abort(); /* the documented bound */

  for (unsigned df = 0; df < 4; ++df) {
    size_t need = 0;
    deco_status_t s = deco_tokenizer_detokenize(t, ids, n, df, NULL, 0, &need);
    if (s != DECO_STATUS_SUCCESS && s != DECO_STATUS_CAPACITY) abort();
    char *whole = malloc(need + 1);
    size_t wn;
    if (deco_tokenizer_detokenize(t, ids, n, df, whole, need, &wn) != DECO_STATUS_SUCCESS || wn != need) abort();
    /* Round trip: control tokens print with SPECIAL; SentencePiece turns
     * a typed "▁" into a space. */
    int same = wn == len && memcmp(whole, text, len) == 0;
    int expect = deco_test_valid_utf8(text, len) && (df & DECO_DETOKENIZE_SPECIAL);
    if (spm) {
      for (size_t i = 0; i + 2 < len && expect; ++i)
        if (memcmp(text + i, "\xe2\x96\x81", 3) == 0) expect = 0;
      if (flags & DECO_TOKENIZE_PARSE_SPECIAL) expect = 0; /* a prefix space after <s> */
      if (flags & DECO_TOKENIZE_ADD_SPECIAL) expect = 0;
    }
    if (expect && !same) abort();
    if ((df & DECO_DETOKENIZE_VALID_UTF8) && !deco_test_valid_utf8(whole, wn)) abort();
    deco_text_decoder_t *d;
    if (deco_text_decoder_create(t, df, &d) != DECO_STATUS_SUCCESS) abort();
    size_t at = 0;
    for (int i = 0; i <= n; ++i) {
      const char *p;
      size_t k;
      if ((i < n ? deco_text_decoder_push(d, ids[i], &p, &k) : deco_text_decoder_flush(d, &p, &k)) !=
          DECO_STATUS_SUCCESS)
        abort();
      if (at + k > wn || memcmp(whole + at, p, k) != 0) abort();
      at += k;
    }
    if (at != wn) abort();
    deco_text_decoder_destroy(d);
    free(whole);
  }
  free(ids);

  /* A chat around the text (NUL-terminated copy). */
  char *prompt = malloc(len + 1);
  memcpy(prompt, text, len);
  prompt[len] = '\0';
  int32_t chat[4096];
  int nc;
  deco_status_t s = deco_chat_render(t, spm ? DECO_CHAT_TEMPLATE_LLAMA3 : DECO_CHAT_TEMPLATE_CHATML,
                                     opt & 0x40 ? prompt : NULL, prompt, 1, chat, 4096, &nc);
  if (s != DECO_STATUS_SUCCESS && s != DECO_STATUS_CAPACITY) abort();
  free(prompt);
  deco_tokenizer_destroy(t);
  return 0;
}
