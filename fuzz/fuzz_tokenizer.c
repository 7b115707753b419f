/* fuzz/fuzz_tokenizer.c — libFuzzer target for llama2.c's tokenizer.bin:
 * load, encode a short text, decode every id. Input layout: uint16 LE
 * (vocab_size - 259) mod 1024, uint8 text length n (mod 65), n text bytes,
 * then the tokenizer file. Seeds: fuzz/make_corpus.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"

static const char kName[] = "fuzz-tok.bin";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  int vocab = 259 + (int)((data[0] | (data[1] << 8)) % 1024);
  size_t n = data[2] % 65;
  if (size - 3 < n) return 0;
  char text[65];
  memcpy(text, data + 3, n);
  text[n] = '\0';
  size_t file_size = size - 3 - n;
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  unsigned char *file = malloc(file_size ? file_size : 1);
  if (!file) return 0;
  if (file_size) memcpy(file, data + 3 + n, file_size);

  deco_tokenizer_t *tok = NULL;
  deco_status_t s = deco_tokenizer_load_buffer(file, file_size, kName, vocab, &tok);
  free(file); /* the tokenizer must not keep pointers into the buffer */
  if (s != DECO_STATUS_SUCCESS) {
    if (tok != NULL || s != DECO_STATUS_BAD_FORMAT) abort();
    if (strncmp(deco_last_error(NULL), kName, sizeof kName - 1) != 0) abort();
    return 0;
  }
  if (deco_tokenizer_vocab_size(tok) != vocab) abort();

  /* strlen(text) + 3 ids always suffice. */
  int32_t ids[68];
  int n_ids = -1;
  size_t len = strlen(text);
  if (deco_tokenizer_encode(tok, text, 1, 1, ids, (int)len + 3, &n_ids) != DECO_STATUS_SUCCESS) abort();
  /* BOS itself may merge with what follows (as in run.c); EOS comes after
   * the merges. */
  if (n_ids < 2 || n_ids > (int)len + 3 || ids[n_ids - 1] != 2) abort();
  for (int i = 0; i < n_ids; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) abort();
  /* Exactly n_ids fit; one fewer is a capacity error. */
  int32_t again[68];
  int n_again = -1;
  if (deco_tokenizer_encode(tok, text, 1, 1, again, n_ids, &n_again) != DECO_STATUS_SUCCESS || n_again != n_ids ||
      memcmp(again, ids, sizeof(int32_t) * (size_t)n_ids) != 0)
    abort();
  if (deco_tokenizer_encode(tok, text, 1, 1, again, n_ids - 1, &n_again) != DECO_STATUS_CAPACITY) abort();

  /* Decode the encoded ids in sequence, then every id after BOS and after
   * an ordinary id; the result is a C string of the reported length. */
  for (int i = 1; i < n_ids; ++i) {
    size_t k = 0;
    const char *p = deco_tokenizer_decode(tok, ids[i - 1], ids[i], &k);
    if (!p || strlen(p) != k) abort();
  }
  for (int id = -1; id <= vocab; ++id) {
    for (int prev = 0; prev < 2; ++prev) {
      size_t k = 0;
      const char *p = deco_tokenizer_decode(tok, prev, id, &k);
      if (!p || strlen(p) != k) abort();
      if ((id < 0 || id >= vocab) && k != 0) abort();
    }
  }
  deco_tokenizer_destroy(tok);
  return 0;
}
