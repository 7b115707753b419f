/* host/model/bpe_pretok.c — the pre-tokenizers of byte-level BPE
 * vocabularies (tokenizer.ggml.pre), run by PCRE2 (UTF mode, Unicode
 * properties; JIT-compiled where PCRE2 has a JIT). Each is llama.cpp's list
 * of regexes (llm_tokenizer_bpe in src/llama-vocab.cpp, llama.cpp vendored
 * in llama-cpp-python 0.3.36), applied in turn: a regex splits every piece
 * of the previous one into its matches and the text between them, each
 * piece matched as a whole subject (so a lookahead sees the piece's end).
 *
 * llama.cpp runs GPT-2's and Llama 3's regexes through hand-written
 * matchers (unicode.cpp) whose \s is Unicode's White_Space property
 * (U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000): exactly [\t-\r\x{85}\p{Z}], written out
 * here so the meaning does not hang on PCRE2's \s, and \S its complement.
 * Its \p{L} and \p{N} are Unicode's general categories, as PCRE2's are
 * (both follow their own Unicode version: code points assigned in between
 * may split differently).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/bpe.h"

/* Unicode White_Space, its complement, and what is neither space, letter nor
 * number (GPT-2's "[^\s\p{L}\p{N}]"). */
#define WS "[\\t-\\r\\x{85}\\p{Z}]"
#define NWS "[^\\t-\\r\\x{85}\\p{Z}]"
#define OTHER "[^\\t-\\r\\x{85}\\p{Z}\\p{L}\\p{N}]"

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (contractions in lower case only). */
static const char k_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?" OTHER "+|" WS "+(?!" NWS ")|" WS "+";
/* Llama 3 (tokenizer.json's (?i:...) contractions as llama.cpp adapted them:
 * ASCII letters in either case):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static const char k_llama3[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                               "\\p{N}{1,3}| ?" OTHER "+[\\r\\n]*|" WS "*[\\r\\n]+|" WS "+(?!" NWS ")|" WS "+";
/* Qwen2: Llama 3's with single digits. */
static const char k_qwen2[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                              "\\p{N}| ?" OTHER "+[\\r\\n]*|" WS "*[\\r\\n]+|" WS "+(?!" NWS ")|" WS "+";
/* Every digit alone (StarCoder's and SmolLM's first step). */
static const char k_digit[] = "\\p{N}";
/* llama.cpp's "default" list. */
static const char k_def_punct[] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
static const char k_def_num[] = "\\p{N}+";
static const char k_def_3dig[] = "[0-9][0-9][0-9]";

typedef struct pretok_def {
  const char *const *names; /* tokenizer.ggml.pre values, NULL-terminated */
  const char *regex[4];     /* NULL-terminated */
  int ignore_merges, add_bos;
} pretok_def_t;

static const char *const n_gpt2[] = {"gpt-2", "phi-2", "mpt", "olmo", NULL};
static const char *const n_star[] = {"starcoder", "smollm", "refact", "codeshell", NULL};
static const char *const n_llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", NULL};
static const char *const n_qwen2[] = {"qwen2", "stablelm2", NULL};
static const char *const n_default[] = {"default", NULL};

static const pretok_def_t k_defs[] = {
    {n_gpt2, {k_gpt2, NULL}, 0, 0},
    {n_star, {k_digit, k_gpt2, NULL}, 0, 0},
    {n_llama3, {k_llama3, NULL}, 1, 1},
    {n_qwen2, {k_qwen2, NULL}, 0, 0},
    {n_default, {k_def_punct, k_gpt2, k_def_num, k_def_3dig}, 0, 0},
};

static const pretok_def_t *find_def(const char *pre) {
  for (size_t d = 0; d < sizeof k_defs / sizeof k_defs[0]; ++d)
    for (const char *const *n = k_defs[d].names; *n; ++n)
      if (strcmp(*n, pre) == 0) return &k_defs[d];
  return NULL;
}

static int spans_push(tok_spans_t *s, size_t off, size_t len) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    tok_span_t *a = realloc(s->a, cap * sizeof *a);
    if (!a) return -1;
    s->a = a;
    s->cap = cap;
  }
  s->a[s->n++] = (tok_span_t){.off = off, .len = len};
  return 0;
}

#ifdef DECO_HAVE_PCRE2
#include <pcre2.h>

struct tok_pretok {
  pcre2_code *code[4];
  int n;
};

deco_status_t deco_tok_pretok_create(const char *pre, const char *name, tok_pretok_t **out, tok_pretok_info_t *info) {
  *out = NULL;
  const pretok_def_t *d = find_def(pre);
  if (!d)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                     "%s: metadata tokenizer.ggml.pre '%s' is no pre-tokenizer deco knows (gpt-2, phi-2, mpt, olmo, "
                     "starcoder, smollm, refact, codeshell, llama3, llama-v3, llama-bpe, falcon3, qwen2, stablelm2, "
                     "default)",
                     name, pre);
  tok_pretok_t *p = calloc(1, sizeof *p);
  if (!p) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
  for (int k = 0; k < 4 && d->regex[k]; ++k) {
    int err;
    PCRE2_SIZE at;
    p->code[k] = pcre2_compile((PCRE2_SPTR)d->regex[k], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &at, NULL);
    if (!p->code[k]) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      deco_tok_pretok_destroy(p);
      /* Only a PCRE2 built without Unicode support gets here. */
      return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: PCRE2 cannot compile pre-tokenizer '%s' (%s at %zu)", name,
                       pre, (const char *)msg, (size_t)at);
    }
    (void)pcre2_jit_compile(p->code[k], PCRE2_JIT_COMPLETE); /* the interpreter serves without a JIT */
    p->n = k + 1;
  }
  info->ignore_merges = d->ignore_merges;
  info->add_bos = d->add_bos;
  *out = p;
  return DECO_STATUS_SUCCESS;
}

void deco_tok_pretok_destroy(tok_pretok_t *p) {
  if (!p) return;
  for (int k = 0; k < p->n; ++k) pcre2_code_free(p->code[k]);
  free(p);
}

/* Splits subject[off..off+len) by code into out. */
static deco_status_t split_one(const pcre2_code *code, pcre2_match_data *md, const char *subject, size_t off,
                               size_t len, tok_spans_t *out) {
  PCRE2_SPTR s = (PCRE2_SPTR)subject + off;
  size_t at = 0;
  while (at < len) {
    int rc = pcre2_match(code, s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its frames on the heap */
      rc = pcre2_match(code, s, len, at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "pre-tokenizer: PCRE2 match failed: %s", (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t ms = ov[0], me = ov[1];
    if (me <= ms) { /* no pattern here matches empty; step over a character if one ever did */
      me = ms + 1;
      while (me < len && (s[me] & 0xC0) == 0x80) ++me;
      if (ms > at && spans_push(out, off + at, ms - at) != 0) goto oom;
      if (spans_push(out, off + ms, me - ms) != 0) goto oom;
      at = me;
      continue;
    }
    if (ms > at && spans_push(out, off + at, ms - at) != 0) goto oom;
    if (spans_push(out, off + ms, me - ms) != 0) goto oom;
    at = me;
  }
  if (at < len && spans_push(out, off + at, len - at) != 0) goto oom;
  return DECO_STATUS_SUCCESS;
oom:
  return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
}

deco_status_t deco_tok_pretok_split(const tok_pretok_t *p, const char *subject, size_t len, tok_spans_t *out) {
  out->n = 0;
  if (len == 0) return DECO_STATUS_SUCCESS;
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  if (!md) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
  tok_spans_t a = {0};
  deco_status_t s = DECO_STATUS_SUCCESS;
  if (spans_push(&a, 0, len) != 0) s = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
  for (int k = 0; k < p->n && s == DECO_STATUS_SUCCESS; ++k) {
    tok_spans_t b = {0};
    for (size_t i = 0; i < a.n && s == DECO_STATUS_SUCCESS; ++i)
      s = split_one(p->code[k], md, subject, a.a[i].off, a.a[i].len, &b);
    free(a.a);
    a = b;
  }
  pcre2_match_data_free(md);
  if (s == DECO_STATUS_SUCCESS) {
    free(out->a);
    *out = a;
  } else {
    free(a.a);
  }
  return s;
}

#else /* !DECO_HAVE_PCRE2 */

struct tok_pretok {
  int unused;
};

deco_status_t deco_tok_pretok_create(const char *pre, const char *name, tok_pretok_t **out, tok_pretok_info_t *info) {
  *out = NULL;
  (void)info;
  (void)find_def;
  (void)spans_push;
  return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                   "%s: a gpt2 (byte-level BPE) vocabulary needs PCRE2 for its pre-tokenizer '%s', and this deco was "
                   "built without it (install libpcre2-dev and reconfigure)",
                   name, pre);
}

void deco_tok_pretok_destroy(tok_pretok_t *p) { free(p); }

deco_status_t deco_tok_pretok_split(const tok_pretok_t *p, const char *subject, size_t len, tok_spans_t *out) {
  (void)p;
  (void)subject;
  (void)len;
  out->n = 0;
  return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "pre-tokenizer: built without PCRE2");
}

#endif
