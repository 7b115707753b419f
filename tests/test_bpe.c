/* tests/test_bpe.c — GGUF vocabularies (byte-level BPE and SentencePiece)
 * against references no one here wrote: llama.cpp's own tokenizer tests
 * (data/fixtures/tokenizer/ggml-vocab-{gpt-2,starcoder,llama-bpe,llama-spm}
 * .gguf with .inp/.out), and the stress set tokenized by llama.cpp for
 * SmolLM2-135M (models-cache/; missing is a failure) and those four
 * (scripts/text/make_fixtures.py), with and without special parsing. Then
 * round trips, the streaming decoder against decoding at once, special
 * tokens, the llama2.c kind through the same API, time growing as n log n,
 * and bad vocabularies and text: missing merges, merges naming unknown
 * tokens, a token-type array of the wrong length, invalid UTF-8, every
 * truncation of a valid file.
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
#include "test_bpe_vocab.h"

static const char *const k_vocabs[] = {"gpt-2", "starcoder", "llama-bpe", "llama-spm"};

static deco_tokenizer_t *load_fixture_vocab(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "fixtures/tokenizer/ggml-vocab-%s.gguf", name);
  deco_tokenizer_t *t = NULL;
  deco_status_t s = deco_tokenizer_load_gguf(deco_test_data_file(rel), &t);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s: %s", rel, deco_last_error(NULL));
  return t;
}

static deco_tokenizer_t *load_smollm2(void) {
  deco_tokenizer_t *t = NULL;
  const char *path = deco_test_model_file("SmolLM2-135M-Instruct.Q4_1.gguf");
  deco_status_t s = deco_tokenizer_load_gguf(path, &t);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s: %s", path, deco_last_error(NULL));
  return t;
}

static int32_t *tokenize(const deco_tokenizer_t *t, const char *text, size_t len, unsigned flags, int *n) {
  int cap = (int)(4 * len + 8); /* the documented bound */
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
  cr_assert(ids);
  deco_status_t s = deco_tokenizer_tokenize(t, text, len, flags, ids, cap, n);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "tokenize '%.*s': %s", (int)(len > 60 ? 60 : len), text, deco_last_error(NULL));
  return ids;
}

/* The whole text of ids (malloc'd, NUL added), *n its length. */
static char *detok(const deco_tokenizer_t *t, const int32_t *ids, int n_ids, unsigned flags, size_t *n) {
  size_t need = 0;
  deco_status_t s = deco_tokenizer_detokenize(t, ids, n_ids, flags, NULL, 0, &need);
  cr_assert(s == DECO_STATUS_SUCCESS || s == DECO_STATUS_CAPACITY, "%s", deco_last_error(NULL));
  char *out = malloc(need + 1);
  cr_assert_eq(deco_tokenizer_detokenize(t, ids, n_ids, flags, out, need, n), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(*n, need);
  out[*n] = '\0';
  return out;
}

/* Streams ids through a decoder and checks it against detokenize. */
static void check_stream(const deco_tokenizer_t *t, const int32_t *ids, int n_ids, unsigned flags, const char *what) {
  size_t wn;
  char *whole = detok(t, ids, n_ids, flags, &wn);
  deco_text_decoder_t *d;
  cr_assert_eq(deco_text_decoder_create(t, flags, &d), DECO_STATUS_SUCCESS);
  char *acc = malloc(wn + 64);
  size_t an = 0;
  for (int i = 0; i <= n_ids; ++i) {
    const char *p;
    size_t k;
    if (i < n_ids)
      cr_assert_eq(deco_text_decoder_push(d, ids[i], &p, &k), DECO_STATUS_SUCCESS);
    else
      cr_assert_eq(deco_text_decoder_flush(d, &p, &k), DECO_STATUS_SUCCESS);
    cr_assert(an + k <= wn, "%s: the stream outgrew the whole text", what);
    memcpy(acc + an, p, k);
    an += k;
    if (i < n_ids && (flags & DECO_DETOKENIZE_VALID_UTF8)) {
      /* What came out so far never ends inside a character. */
      size_t back = 0;
      while (back < an && back < 4 && ((unsigned char)acc[an - 1 - back] & 0xC0) == 0x80) ++back;
      if (back < an && an > 0) {
        unsigned char lead = (unsigned char)acc[an - 1 - back];
        size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        cr_assert_eq(back + 1, want, "%s: output after id %d ends inside a character", what, i);
      }
    }
  }
  cr_assert_eq(an, wn, "%s: stream %zu bytes, whole %zu", what, an, wn);
  cr_assert(memcmp(acc, whole, wn) == 0, "%s: the stream differs from decoding at once", what);
  free(acc);
  free(whole);
  deco_text_decoder_destroy(d);
}


/* Compares tokenize(case) with the expected ids of every case. */
static int run_cases(const deco_tokenizer_t *t, const tcases_t *c, unsigned flags, const char *what) {
  int matched = 0;
  for (int i = 0; i < c->n; ++i) {
    int n;
    int32_t *ids = tokenize(t, c->text[i], c->len[i], flags, &n);
    int same = n == c->n_ids[i] && memcmp(ids, c->ids[i], sizeof(int32_t) * (size_t)n) == 0;
    if (!same) {
      fprintf(stderr, "%s case %d '%.*s': %d ids, expected %d\n  got:     ", what, i,
              (int)(c->len[i] > 60 ? 60 : c->len[i]), c->text[i], n, c->n_ids[i]);
      for (int k = 0; k < n && k < 40; ++k) fprintf(stderr, " %d", ids[k]);
      fprintf(stderr, "\n  expected:");
      for (int k = 0; k < c->n_ids[i] && k < 40; ++k) fprintf(stderr, " %d", c->ids[i][k]);
      fprintf(stderr, "\n");
    }
    matched += same;
    free(ids);
  }
  return matched;
}

/* ---- llama.cpp's tokenizer tests ------------------------------------------ */

Test(bpe, llama_cpp_vocab_tests) {
  for (size_t v = 0; v < sizeof k_vocabs / sizeof k_vocabs[0]; ++v) {
    deco_tokenizer_t *t = load_fixture_vocab(k_vocabs[v]);
    char inp[256], out[256];
    snprintf(inp, sizeof inp, "fixtures/tokenizer/ggml-vocab-%s.gguf.inp", k_vocabs[v]);
    snprintf(out, sizeof out, "fixtures/tokenizer/ggml-vocab-%s.gguf.out", k_vocabs[v]);
    tcases_t c;
    tc_read(&c, deco_test_data_file(inp), deco_test_data_file(out));
    /* test-tokenizer-0: add_special false, parse_special false. */
    int matched = run_cases(t, &c, 0, k_vocabs[v]);
    printf("llama.cpp %s: %d of %d cases matched\n", k_vocabs[v], matched, c.n);
    cr_assert_eq(matched, c.n, "%s: %d of %d cases matched", k_vocabs[v], matched, c.n);
    cr_assert_eq(c.n, 46);
    tc_free(&c);
    deco_tokenizer_destroy(t);
  }
}

/* ---- the stress set ----------------------------------------------------------- */

static void stress(const char *label, deco_tokenizer_t *t) {
  char out[256];
  for (int special = 0; special < 2; ++special) {
    snprintf(out, sizeof out, "fixtures/tokenizer/stress.%s%s", label, special ? ".special.out" : ".out");
    tcases_t c;
    tc_read(&c, deco_test_data_file("fixtures/tokenizer/stress.inp"), deco_test_data_file(out));
    unsigned flags = DECO_TOKENIZE_ADD_SPECIAL | (special ? DECO_TOKENIZE_PARSE_SPECIAL : 0);
    int matched = run_cases(t, &c, flags, out);
    printf("stress %s%s: %d of %d cases matched\n", label, special ? " (special)" : "", matched, c.n);
    cr_assert_eq(matched, c.n, "%s: %d of %d cases matched", out, matched, c.n);
    tc_free(&c);
  }
}

Test(bpe, stress_smollm2) {
  deco_tokenizer_t *t = load_smollm2();
  stress("smollm2", t);
  deco_tokenizer_destroy(t);
}

Test(bpe, stress_fixture_vocabs) {
  for (size_t v = 0; v < sizeof k_vocabs / sizeof k_vocabs[0]; ++v) {
    deco_tokenizer_t *t = load_fixture_vocab(k_vocabs[v]);
    stress(k_vocabs[v], t);
    deco_tokenizer_destroy(t);
  }
}

/* decode(encode(s)) == s for every well-formed case (control tokens print
 * nothing, so BOS does not show); ill-formed text decodes to well-formed
 * text under VALID_UTF8. The decoder streams the same bytes. */
static void round_trips(deco_tokenizer_t *t, const char *label) {
  tcases_t c;
  char out[256];
  snprintf(out, sizeof out, "fixtures/tokenizer/stress.%s.out", label);
  tc_read(&c, deco_test_data_file("fixtures/tokenizer/stress.inp"), deco_test_data_file(out));
  int checked = 0;
  int32_t *all = NULL;
  int n_all = 0;
  for (int i = 0; i < c.n; ++i) {
    int n;
    int32_t *ids = tokenize(t, c.text[i], c.len[i], DECO_TOKENIZE_ADD_SPECIAL, &n);
    size_t tn;
    char *text = detok(t, ids, n, 0, &tn);
    if (deco_test_valid_utf8(c.text[i], c.len[i])) {
      cr_assert(tn == c.len[i] && memcmp(text, c.text[i], tn) == 0, "%s case %d: decode(encode(s)) = '%s' != '%.*s'",
                label, i, text, (int)c.len[i], c.text[i]);
      ++checked;
    }
    free(text);
    text = detok(t, ids, n, DECO_DETOKENIZE_VALID_UTF8, &tn);
    cr_assert(deco_test_valid_utf8(text, tn), "%s case %d: VALID_UTF8 gave ill-formed text", label, i);
    free(text);
    for (unsigned f = 0; f < 4; ++f) check_stream(t, ids, n, f, label);
    all = realloc(all, sizeof(int32_t) * (size_t)(n_all + n));
    memcpy(all + n_all, ids, sizeof(int32_t) * (size_t)n);
    n_all += n;
    free(ids);
  }
  /* One long run of every case's ids, cut anywhere by the tokens. */
  for (unsigned f = 0; f < 4; ++f) check_stream(t, all, n_all, f, label);
  printf("round trip %s: %d well-formed cases of %d\n", label, checked, c.n);
  cr_assert_geq(checked, 60);
  free(all);
  tc_free(&c);
}

Test(bpe, round_trip_and_stream_smollm2) {
  deco_tokenizer_t *t = load_smollm2();
  round_trips(t, "smollm2");
  deco_tokenizer_destroy(t);
}

Test(bpe, round_trip_and_stream_fixture_vocabs) {
  for (size_t v = 0; v < sizeof k_vocabs / sizeof k_vocabs[0]; ++v) {
    deco_tokenizer_t *t = load_fixture_vocab(k_vocabs[v]);
    round_trips(t, k_vocabs[v]);
    deco_tokenizer_destroy(t);
  }
}

/* Byte tokens split characters: the decoder holds the first bytes back. */
Test(bpe, stream_holds_split_characters) {
  deco_tokenizer_t *t = load_fixture_vocab("llama-spm");
  /* "é" = C3 A9 and "🦙" = F0 9F A6 99 as <0xXX> tokens (ids byte + 3). */
  int32_t ids[] = {0xC3 + 3, 0xA9 + 3, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3, 0xF0 + 3};
  deco_text_decoder_t *d;
  cr_assert_eq(deco_text_decoder_create(t, DECO_DETOKENIZE_VALID_UTF8, &d), DECO_STATUS_SUCCESS);
  size_t expect_len[] = {0, 2, 0, 0, 0, 4, 0};
  for (int i = 0; i < 7; ++i) {
    const char *p;
    size_t k;
    cr_assert_eq(deco_text_decoder_push(d, ids[i], &p, &k), DECO_STATUS_SUCCESS);
    cr_assert_eq(k, expect_len[i], "after id %d: %zu bytes", i, k);
  }
  const char *p;
  size_t k;
  cr_assert_eq(deco_text_decoder_flush(d, &p, &k), DECO_STATUS_SUCCESS);
  cr_assert(k == 3 && memcmp(p, "\xef\xbf\xbd", 3) == 0, "an unfinished character flushes as U+FFFD");
  cr_assert_eq(deco_text_decoder_push(d, 1 << 20, &p, &k), DECO_STATUS_INVALID_ARGUMENT);
  deco_text_decoder_destroy(d);
  deco_tokenizer_destroy(t);
}

/* ---- special tokens and settings --------------------------------------------- */

Test(bpe, special_tokens) {
  deco_tokenizer_t *t = load_smollm2();
  cr_assert_eq(deco_tokenizer_kind(t), DECO_TOKENIZER_BPE);
  cr_assert_str_eq(deco_tokenizer_pre(t), "smollm");
  cr_assert_eq(deco_tokenizer_vocab_size(t), 49152);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_BOS), 1);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOS), 2);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOT), 2); /* <|im_end|> comes before <|endoftext|> */
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_UNK), 0);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_PAD), 2);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOM), -1);
  cr_assert_eq(deco_tokenizer_add_bos(t), 0);
  cr_assert_eq(deco_tokenizer_add_eos(t), 0);
  cr_assert_eq(deco_tokenizer_find(t, "<|im_start|>", 12), 1);
  cr_assert_eq(deco_tokenizer_token_type(t, 0), DECO_TOKEN_TYPE_CONTROL);
  cr_assert_eq(deco_tokenizer_token_type(t, 49151), DECO_TOKEN_TYPE_NORMAL);
  cr_assert_eq(deco_tokenizer_token_type(t, 49152), -1);
  size_t len;
  cr_assert_str_eq(deco_tokenizer_token_text(t, 2, &len), "<|im_end|>");
  cr_assert_null(deco_tokenizer_token_text(t, -1, &len));
  /* The prompt rule: special-token text is text; control tokens print
   * nothing unless asked. */
  int n;
  int32_t *ids = tokenize(t, "<|im_end|>", 10, DECO_TOKENIZE_ADD_SPECIAL, &n);
  cr_assert_gt(n, 1);
  free(ids);
  ids = tokenize(t, "<|im_end|>", 10, DECO_TOKENIZE_PARSE_SPECIAL, &n);
  cr_assert(n == 1 && ids[0] == 2);
  char *s = detok(t, ids, n, 0, &len);
  cr_assert_eq(len, 0);
  free(s);
  s = detok(t, ids, n, DECO_DETOKENIZE_SPECIAL, &len);
  cr_assert_str_eq(s, "<|im_end|>");
  free(s);
  free(ids);
  /* An empty text: no ids (no BOS on this model). */
  ids = tokenize(t, "", 0, DECO_TOKENIZE_ADD_SPECIAL, &n);
  cr_assert_eq(n, 0);
  free(ids);
  deco_tokenizer_destroy(t);

  t = load_fixture_vocab("llama-bpe");
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_BOS), 128000);
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOT), 128009);
  cr_assert_eq(deco_tokenizer_add_bos(t), 1);
  ids = tokenize(t, "", 0, DECO_TOKENIZE_ADD_SPECIAL, &n);
  cr_assert(n == 1 && ids[0] == 128000);
  free(ids);
  deco_tokenizer_destroy(t);

  t = load_fixture_vocab("llama-spm");
  cr_assert_eq(deco_tokenizer_kind(t), DECO_TOKENIZER_SPM);
  cr_assert_str_eq(deco_tokenizer_pre(t), "");
  cr_assert(deco_tokenizer_special(t, DECO_TOKEN_BOS) == 1 && deco_tokenizer_special(t, DECO_TOKEN_EOS) == 2 &&
            deco_tokenizer_add_bos(t) == 1);
  cr_assert_eq(deco_tokenizer_token_type(t, 3), DECO_TOKEN_TYPE_BYTE);
  deco_tokenizer_destroy(t);
}

Test(bpe, capacity_reports_the_count) {
  deco_tokenizer_t *t = load_fixture_vocab("gpt-2");
  int n = -1;
  cr_assert_eq(deco_tokenizer_tokenize(t, "Hello world", 11, 0, NULL, 0, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(n, 2);
  int32_t ids[2];
  cr_assert_eq(deco_tokenizer_tokenize(t, "Hello world", 11, 0, ids, 1, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(deco_tokenizer_tokenize(t, "Hello world", 11, 0, ids, 2, &n), DECO_STATUS_SUCCESS);
  cr_assert(n == 2 && ids[0] == 15496 && ids[1] == 995);
  /* deco_tokenizer_encode on a GGUF vocabulary: BOS/EOS where asked. */
  int32_t e[8];
  cr_assert_eq(deco_tokenizer_encode(t, "Hello world", 1, 1, e, 8, &n), DECO_STATUS_SUCCESS);
  cr_assert(n == 4 && e[0] == 50256 && e[1] == 15496 && e[2] == 995 && e[3] == 50256);
  n = -1;
  cr_assert_eq(deco_tokenizer_encode(t, "Hello world", 1, 1, e, 3, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(n, 4); /* the count needed, as deco_tokenizer_tokenize reports it */
  size_t k;
  cr_assert_str_eq(deco_tokenizer_decode(t, 0, 995, &k), " world");
  cr_assert_eq(k, 6);
  cr_assert_str_eq(deco_tokenizer_decode(t, 0, 50256, &k), ""); /* control */
  cr_assert_eq(deco_tokenizer_tokenize(t, "x", 1, 0x80, e, 8, &n), DECO_STATUS_INVALID_ARGUMENT);
  size_t bytes = 7;
  cr_assert_eq(deco_tokenizer_detokenize(t, e, 4, 0, NULL, 0, &bytes), DECO_STATUS_CAPACITY);
  cr_assert_eq(bytes, 11);
  int32_t bad = 50257;
  cr_assert_eq(deco_tokenizer_detokenize(t, &bad, 1, 0, NULL, 0, &bytes), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "outside the vocabulary"));
  deco_tokenizer_destroy(t);
}

/* Above U+10FFFF llama.cpp aborts; deco reads each byte as U+FFFD. */
Test(bpe, ill_formed_text_fallback) {
  deco_tokenizer_t *t = load_smollm2();
  int n1, n2;
  int32_t *a = tokenize(t, "x\xf7\xbf\xbf\xbfy", 6, 0, &n1);
  int32_t *b = tokenize(t, "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy", 14, 0, &n2);
  cr_assert(n1 == n2 && memcmp(a, b, sizeof(int32_t) * (size_t)n1) == 0);
  free(a);
  free(b);
  deco_tokenizer_destroy(t);
}

/* ---- the llama2.c kind through the same API ---------------------------------- */

Test(bpe, llama2c_through_the_new_api) {
  size_t size;
  void *data = deco_test_read_file(deco_test_data_file("models/tok512.bin"), &size);
  deco_tokenizer_t *t;
  cr_assert_eq(deco_tokenizer_load_buffer(data, size, "tok512.bin", 512, &t), DECO_STATUS_SUCCESS);
  free(data);
  cr_assert_eq(deco_tokenizer_kind(t), DECO_TOKENIZER_LLAMA2C);
  cr_assert(deco_tokenizer_special(t, DECO_TOKEN_BOS) == 1 && deco_tokenizer_add_bos(t) == 1 &&
            deco_tokenizer_special(t, DECO_TOKEN_EOT) == -1);
  static const char prompt[] = "Once upon a time, there was a little dog named Max.";
  int n_fix;
  int32_t *fix = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/prompt_dog.ids"), &n_fix);
  int n;
  int32_t *ids = tokenize(t, prompt, strlen(prompt), DECO_TOKENIZE_ADD_SPECIAL, &n);
  cr_assert(n == n_fix && memcmp(ids, fix, sizeof(int32_t) * (size_t)n) == 0, "tokenize = run.c's encode");
  size_t len;
  char *text = detok(t, ids, n, 0, &len);
  cr_assert_str_eq(text, prompt);
  free(text);
  check_stream(t, ids, n, 0, "tok512");
  free(ids);
  free(fix);
  /* The greedy fixture streams as `deco generate` prints it. */
  int32_t *g = deco_test_read_ids(deco_test_data_file("fixtures/stories260K/greedy_bos_256.ids"), &n);
  check_stream(t, g, n, 0, "tok512 greedy");
  check_stream(t, g, n, DECO_DETOKENIZE_VALID_UTF8, "tok512 greedy");
  free(g);
  int32_t out[4];
  cr_assert_eq(deco_tokenizer_tokenize(t, "a\0b", 3, 0, out, 4, &n), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "NUL"));
  deco_tokenizer_destroy(t);
}

/* ---- time ----------------------------------------------------------------------- */

static double seconds_for(const deco_tokenizer_t *t, const char *text, size_t len) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int n;
  int32_t *ids = tokenize(t, text, len, 0, &n);
  clock_gettime(CLOCK_MONOTONIC, &b);
  free(ids);
  return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

/* One long word, one long run of spaces, one long number, one of newlines:
 * a quadratic merge loop or regex would take 16 times longer on 4 times
 * the text (n log n with cache misses measures 4.5 to 9 times here). */
Test(bpe, time_grows_n_log_n, .timeout = 120) {
  deco_tokenizer_t *t = load_fixture_vocab("gpt-2");
  static const char fill[] = {'a', ' ', '7', '\n'};
  for (int f = 0; f < 4; ++f) {
    size_t n1 = 1 << 16, n2 = 1 << 18;
    char *s = malloc(n2);
    memset(s, fill[f], n2);
    double t1 = 1e9, t2 = 1e9;
    for (int r = 0; r < 3; ++r) {
      double x = seconds_for(t, s, n1), y = seconds_for(t, s, n2);
      t1 = x < t1 ? x : t1;
      t2 = y < t2 ? y : t2;
    }
    printf("time '%c' x %zu: %.4f s, x %zu: %.4f s\n", fill[f] == '\n' ? 'n' : fill[f], n1, t1, n2, t2);
    cr_assert_lt(t2, 12.0 * t1 + 0.02, "fill %d: %.4f s for %zu bytes vs %.4f s for %zu", f, t2, n2, t1, n1);
    free(s);
  }
  deco_tokenizer_destroy(t);
}

/* ---- bad vocabularies ------------------------------------------------------------ */

static deco_status_t load_tv(const tvocab_t *v, deco_tokenizer_t **t) {
  gbuf_t b = tv_write(v);
  deco_status_t s = deco_tokenizer_load_gguf_buffer(b.p, b.n, "tv.gguf", t);
  free(b.p);
  return s;
}

/* A SentencePiece ("llama") vocabulary of n tokens (lens: NULL for C
 * strings; types: NULL for none) begun in a GGUF buffer; the caller may
 * add keys before spm_load ends it, loads it as "spm.gguf" and frees it. */
static gbuf_t spm_begin(const char *const *tok, const size_t *lens, const int32_t *types, int n) {
  gbuf_t b;
  gb_begin(&b);
  gb_kv_str(&b, "tokenizer.ggml.model", "llama");
  gb_kv_strs(&b, "tokenizer.ggml.tokens", tok, lens, (size_t)n);
  if (types) gb_kv_i32s(&b, "tokenizer.ggml.token_type", types, (size_t)n);
  return b;
}

static deco_status_t spm_load(gbuf_t *b, deco_tokenizer_t **t) {
  gb_end(b);
  *t = NULL;
  const deco_status_t s = deco_tokenizer_load_gguf_buffer(b->p, b->n, "spm.gguf", t);
  free(b->p);
  return s;
}

static void expect_bad(tvocab_t *v, deco_status_t status, const char *fragment) {
  deco_tokenizer_t *t = (deco_tokenizer_t *)1;
  DECO_TEST_REFUSED_NAMING(NULL, load_tv(v, &t), status, NULL, "tv.gguf", fragment);
  cr_assert_null(t);
  tv_free(v);
}

Test(bpe, tiny_vocabulary) {
  tvocab_t v;
  tv_tiny(&v);
  deco_tokenizer_t *t;
  cr_assert_eq(load_tv(&v, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  int n;
  /* "abc ab": merges a+b, ab+c; " ab" via Ġ+ab. */
  int32_t *ids = tokenize(t, "abc ab", 6, 0, &n);
  cr_assert(n == 2 && ids[0] == tv_id(&v, "abc") && ids[1] == tv_id(&v, "\xc4\xa0" "ab"));
  free(ids);
  /* A user-defined token is split off even without special parsing; a
   * control token only with it. */
  ids = tokenize(t, "x<user>y<|im_end|>", 18, 0, &n);
  cr_assert_eq(n, 13);
  cr_assert_eq(ids[1], tv_id(&v, "<user>"));
  free(ids);
  ids = tokenize(t, "x<user>y<|im_end|>", 18, DECO_TOKENIZE_PARSE_SPECIAL, &n);
  cr_assert(n == 4 && ids[3] == tv_id(&v, "<|im_end|>"));
  free(ids);
  size_t len;
  cr_assert_str_eq(deco_tokenizer_decode(t, 0, tv_id(&v, "<user>"), &len), "<user>"); /* user-defined prints */
  cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOT), tv_id(&v, "<|eot_id|>"));
  deco_tokenizer_destroy(t);
  tv_free(&v);
}

Test(bpe, bad_vocabularies) {
  tvocab_t v;
  tv_tiny(&v);
  v.n_merge = -1;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "tokenizer.ggml.merges is missing");
  tv_tiny(&v);
  v.merge[1] = "ab d";
  v.merge_len[1] = 4;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "names a merged token");
  tv_tiny(&v);
  v.merge[0] = "q\xc3\xa9x b";
  v.merge_len[0] = strlen(v.merge[0]);
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "names its first part");
  tv_tiny(&v);
  v.merge[2] = "abc";
  v.merge_len[2] = 3;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "no space between two parts");
  tv_tiny(&v);
  v.n_type = v.n_tok - 1;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "one type per token");
  tv_tiny(&v);
  free(v.tok[v.n_tok - 1]);
  v.tok[v.n_tok - 1] = strdup("a\xff");
  v.tok_len[v.n_tok - 1] = 2;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "not valid UTF-8");
  tv_tiny(&v);
  free(v.tok[v.n_tok - 1]);
  v.tok[v.n_tok - 1] = strdup("ab");
  v.tok_len[v.n_tok - 1] = 2;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "repeats token");
  tv_tiny(&v);
  v.model = "bert";
  expect_bad(&v, DECO_STATUS_UNSUPPORTED, "tokenizer.ggml.model is 'bert'");
  tv_tiny(&v);
  v.model = NULL;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "tokenizer.ggml.model");
  tv_tiny(&v);
  v.pre = "deepseek-coder";
  expect_bad(&v, DECO_STATUS_UNSUPPORTED, "'deepseek-coder'");
  tv_tiny(&v);
  v.bos = v.n_tok;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "bos_token_id");
  tv_tiny(&v);
  v.type[5] = 6;
  expect_bad(&v, DECO_STATUS_BAD_FORMAT, "not <0xHH>");
}

static void set_last_token(tvocab_t *v, const char *text) {
  free(v->tok[v->n_tok - 1]);
  v->tok[v->n_tok - 1] = strdup(text);
  v->tok_len[v->n_tok - 1] = strlen(text);
}

/* Spoils the tiny vocabulary as case c of k_bad_vocab says. */
static void spoil_vocab(tvocab_t *v, int c) {
  switch (c) {
  case 0: v->n_merge = -1; break;
  case 1: v->merge[1] = "ab d"; break;
  case 2: v->merge[0] = "a zz"; break;
  case 3: v->merge[2] = " abc"; break;
  case 4: v->n_type = v->n_tok - 1; break;
  case 5: set_last_token(v, "a\xff"); break;
  case 6: set_last_token(v, "ab"); break;
  case 7: v->model = "bert"; break;
  case 8: v->pre = "a-pre-tokenizer-name-longer-than-sixty-three-bytes-is-never-one-deco-knows"; break;
  case 9: v->bos = v->n_tok; break;
  case 10: v->type[5] = 6; break;
  case 11: tv_free(v); break; /* no tokens at all */
  }
  for (int i = 0; i < v->n_merge; ++i) v->merge_len[i] = strlen(v->merge[i]);
}

/* The load errors of bad_vocabularies (and an empty token list), word for
 * word. */
static const struct {
  deco_status_t status;
  const char *message;
} k_bad_vocab[] = {
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.merges is missing (a gpt2 vocabulary needs its merges)"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.merges[1] ('ab d') names a merged token, which is not "
                             "in tokenizer.ggml.tokens"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.merges[0] ('a zz') names its second part, which is "
                             "not in tokenizer.ggml.tokens"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.merges[2] (' abc') has no space between two parts"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.token_type has 266 entries but tokenizer.ggml.tokens "
                             "has 267 (one type per token)"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.tokens[266] ('a\\xff') is not valid UTF-8 at byte 1"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.tokens[266] ('ab') repeats token 256"},
    {DECO_STATUS_UNSUPPORTED, "tv.gguf: metadata tokenizer.ggml.model is 'bert'; deco reads gpt2 (byte-level BPE) "
                              "and llama (SentencePiece)"},
    {DECO_STATUS_UNSUPPORTED, "tv.gguf: metadata tokenizer.ggml.pre 'a-pre-tokenizer-name-longer-than-sixty-t...' is "
                              "no pre-tokenizer deco knows"},
    {DECO_STATUS_BAD_FORMAT,
     "tv.gguf: metadata tokenizer.ggml.bos_token_id = 267 is outside the vocabulary of 267 tokens"},
    {DECO_STATUS_BAD_FORMAT,
     "tv.gguf: metadata tokenizer.ggml.tokens[5] ('\\xc4\\x85') has token_type 6 (byte) but is not <0xHH>"},
    {DECO_STATUS_BAD_FORMAT, "tv.gguf: metadata tokenizer.ggml.tokens has 0 tokens, expected 1..16777216"},
};

Test(bpe, bad_vocabulary_messages) {
  for (int c = 0; c < (int)(sizeof k_bad_vocab / sizeof k_bad_vocab[0]); ++c) {
    tvocab_t v;
    tv_tiny(&v);
    spoil_vocab(&v, c);
    expect_bad(&v, k_bad_vocab[c].status, k_bad_vocab[c].message);
    cr_assert_str_eq(deco_last_error(NULL), k_bad_vocab[c].message); /* word for word */
  }
}

/* An unknown or padding id outside the vocabulary (a padding id equal to
 * the vocabulary size is common in converted files) keeps its default, as
 * llama.cpp does; an EOS there is refused: it would stop nothing. */
Test(bpe, unknown_and_padding_ids_outside_keep_their_defaults) {
  const char *tok[4] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a"};
  for (int pass = 0; pass < 2; ++pass) {
    gbuf_t b = spm_begin(tok, NULL, NULL, 4);
    gb_kv_u32(&b, "tokenizer.ggml.padding_token_id", 4);
    gb_kv_u32(&b, "tokenizer.ggml.unknown_token_id", 9);
    if (pass) gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", 4);
    deco_tokenizer_t *t;
    const deco_status_t s = spm_load(&b, &t);
    if (pass) {
      deco_test_refused(NULL, s, DECO_STATUS_BAD_FORMAT,
                        "spm.gguf: metadata tokenizer.ggml.eos_token_id = 4 is outside the vocabulary of 4 tokens");
      continue;
    }
    cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_PAD), -1);
    cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_UNK), 0);
    cr_assert_eq(deco_tokenizer_special(t, DECO_TOKEN_EOS), 2);
    deco_tokenizer_destroy(t);
  }
}

/* SentencePiece's leading space: the first token that is not a control
 * token drops it, unless the ids continue earlier text
 * (DECO_DETOKENIZE_CONTINUATION), whole and streamed alike. */
Test(bpe, spm_continuation_keeps_the_leading_space) {
  const char *tok[4] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a"};
  const int32_t type[4] = {2, 3, 3, 1};
  gbuf_t b = spm_begin(tok, NULL, type, 4);
  deco_tokenizer_t *t;
  cr_assert_eq(spm_load(&b, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  const int32_t ids[3] = {1, 3, 3};
  for (int cont = 0; cont < 2; ++cont) {
    const unsigned flags = cont ? DECO_DETOKENIZE_CONTINUATION : 0;
    const char *want = cont ? " a a" : "a a";
    char text[16];
    size_t n = 0;
    cr_assert_eq(deco_tokenizer_detokenize(t, ids, 3, flags, text, sizeof text, &n), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    cr_assert(n == strlen(want) && memcmp(text, want, n) == 0, "flags %u: '%.*s'", flags, (int)n, text);
    deco_text_decoder_t *d;
    cr_assert_eq(deco_text_decoder_create(t, flags, &d), DECO_STATUS_SUCCESS);
    size_t got = 0;
    for (int i = 0; i < 3; ++i) {
      const char *p;
      size_t len;
      cr_assert_eq(deco_text_decoder_push(d, ids[i], &p, &len), DECO_STATUS_SUCCESS);
      cr_assert(got + len <= sizeof text);
      memcpy(text + got, p, len);
      got += len;
    }
    cr_assert(got == n && memcmp(text, want, n) == 0, "streamed, flags %u: '%.*s'", flags, (int)got, text);
    deco_text_decoder_destroy(d);
  }
  deco_tokenizer_destroy(t);
}

/* A SentencePiece byte with neither a <0xHH> token nor a token of its own. */
Test(bpe, spm_byte_without_token_message) {
  const char *tok[4] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a"};
  gbuf_t b = spm_begin(tok, NULL, NULL, 4);
  deco_tokenizer_t *t;
  cr_assert_eq(spm_load(&b, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  int32_t ids[8];
  int n = -1;
  cr_assert_eq(deco_tokenizer_tokenize(t, "a a", 3, 0, ids, 8, &n), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(n == 2 && ids[0] == 3 && ids[1] == 3);
  deco_test_refused(NULL, deco_tokenizer_tokenize(t, "ab", 2, 0, ids, 8, &n), DECO_STATUS_BAD_FORMAT,
                    "spm.gguf: the text holds byte 0x62, which has no token (no <0x62> and no token of that byte)");
  deco_tokenizer_destroy(t);
}

/* The id bound of deco_tokenizer_tokenize, 4 * len + 8, at its worst: a
 * SentencePiece vocabulary of byte tokens only (every escaped byte one id)
 * and a one-byte user-defined token "x", after which each piece of text
 * gets its own space prefix ("x " is 1 + 6 ids; "x\xff" 1 + 3 + 3, U+FFFD
 * being 3 bytes). 3 * len + 8 falls short there. */
Test(bpe, id_bound_holds_at_its_worst) {
  const char *tok[260];
  size_t len[260];
  int32_t type[260];
  char hx[256][7];
  tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>", tok[259] = "x";
  type[0] = 2, type[1] = 3, type[2] = 3, type[259] = 4; /* unknown, control, control, user-defined */
  for (int b = 0; b < 256; ++b) {
    snprintf(hx[b], sizeof hx[b], "<0x%02X>", b);
    tok[3 + b] = hx[b];
    type[3 + b] = 6; /* byte */
  }
  for (int i = 0; i < 260; ++i) len[i] = strlen(tok[i]);
  gbuf_t b = spm_begin(tok, len, type, 260);
  deco_tokenizer_t *t;
  cr_assert_eq(spm_load(&b, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  static const char *const units[] = {"x ", "x\xff", " ", "\xff", "x", "xx ", " x"};
  int worst = 0;
  for (size_t u = 0; u < sizeof units / sizeof units[0]; ++u) {
    char text[400];
    const size_t ul = strlen(units[u]);
    size_t n_text = 0;
    while (n_text + ul <= sizeof text) {
      memcpy(text + n_text, units[u], ul);
      n_text += ul;
    }
    int n = -1;
    cr_assert_eq(deco_tokenizer_tokenize(t, text, n_text, DECO_TOKENIZE_ADD_SPECIAL, NULL, 0, &n),
                 DECO_STATUS_CAPACITY);
    cr_assert(n >= 1 && n <= 4 * (int)n_text + 8, "unit '%s': %d ids for %zu bytes", units[u], n, n_text);
    if (n > 3 * (int)n_text + 8) ++worst;
  }
  cr_assert_geq(worst, 1, "no text needed more than 3 * len + 8 ids");
  deco_tokenizer_destroy(t);
}

Test(bpe, empty_tokens_are_renamed) {
  tvocab_t v;
  tv_tiny(&v);
  tv_add(&v, "", 0, 1);
  v.n_type = v.n_tok;
  deco_tokenizer_t *t;
  cr_assert_eq(load_tv(&v, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  char name[32];
  snprintf(name, sizeof name, "[EMPTY_%d]", v.n_tok - 1);
  cr_assert_str_eq(deco_tokenizer_token_text(t, v.n_tok - 1, NULL), name);
  deco_tokenizer_destroy(t);
  tv_free(&v);
}

Test(bpe, spm_bad_scores) {
  /* A SentencePiece vocabulary: <unk>, <s>, </s>, bytes, "▁a". */
  const char *tok[260];
  size_t len[260];
  char hx[256][7];
  tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
  for (int b = 0; b < 256; ++b) {
    snprintf(hx[b], sizeof hx[b], "<0x%02X>", b);
    tok[3 + b] = hx[b];
  }
  tok[259] = "\xe2\x96\x81" "a";
  for (int i = 0; i < 260; ++i) len[i] = strlen(tok[i]);
  float sc[260] = {0};
  for (int pass = 0; pass < 3; ++pass) {
    gbuf_t b = spm_begin(tok, len, NULL, 260);
    if (pass == 1) sc[7] = (float)NAN;
    gb_kv_f32s(&b, "tokenizer.ggml.scores", sc, pass == 2 ? 259 : 260);
    deco_tokenizer_t *t;
    const deco_status_t s = spm_load(&b, &t);
    if (pass == 0) {
      cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
      int n;
      int32_t *ids = tokenize(t, "a\xc3", 2, 0, &n); /* "▁a", then a byte with no token but <0xC3> */
      cr_assert(n == 2 && ids[0] == 259 && ids[1] == 3 + 0xC3);
      free(ids);
      size_t k;
      char *text = detok(t, (int32_t[]){259, 259}, 2, 0, &k);
      cr_assert_str_eq(text, "a a"); /* the prefix space dropped once */
      free(text);
      deco_tokenizer_destroy(t);
    } else {
      cr_assert_eq(s, DECO_STATUS_BAD_FORMAT);
      cr_assert(strstr(deco_last_error(NULL), pass == 1 ? "is nan" : "one score per token"), "%s",
                deco_last_error(NULL));
      sc[7] = 0.0f;
    }
  }
}

/* Every prefix of a valid vocabulary file is refused cleanly. */
Test(bpe, every_truncation, .timeout = 300) {
  tvocab_t v;
  tv_tiny(&v);
  gbuf_t b = tv_write(&v);
  for (size_t cut = 0; cut < b.n; ++cut) {
    unsigned char *p = malloc(cut ? cut : 1);
    memcpy(p, b.p, cut);
    deco_tokenizer_t *t = (deco_tokenizer_t *)1;
    deco_status_t s = deco_tokenizer_load_gguf_buffer(p, cut, "cut.gguf", &t);
    free(p);
    cr_assert_neq(s, DECO_STATUS_SUCCESS, "a file cut at %zu of %zu bytes loaded", cut, b.n);
    cr_assert_null(t);
  }
  free(b.p);
  tv_free(&v);
}

Test(bpe, missing_and_odd_files) {
  deco_tokenizer_t *t = (deco_tokenizer_t *)1;
  char path[4096];
  snprintf(path, sizeof path, "%s/no-such.gguf", deco_test_tmpdir());
  cr_assert_neq(deco_tokenizer_load_gguf(path, &t), DECO_STATUS_SUCCESS);
  cr_assert_null(t);
  cr_assert(strstr(deco_last_error(NULL), "no-such.gguf"));
  cr_assert_neq(deco_tokenizer_load_gguf(deco_test_tmpdir(), &t), DECO_STATUS_SUCCESS);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"), "%s", deco_last_error(NULL));
  /* A llama2.c tokenizer is not a GGUF file. */
  cr_assert_eq(deco_tokenizer_load_gguf(deco_test_data_file("models/tok512.bin"), &t), DECO_STATUS_BAD_FORMAT);
}
