/* fuzz/fuzz_ngram.c — libFuzzer target for superposed decoding's n-gram
 * table file (include/deco/superpose.h). Byte 0 steers: bit 0 set rewrites
 * the checksum of the rest first (so the structural checks behind it are
 * reached, not only the checksum), bit 1 set loads for the vocabulary the
 * header names (when it is small), else for 7. The rest is the file. A load
 * must either fail with BAD_FORMAT and a message naming the file, or give a
 * table whose bytes are the file's and whose every lookup terminates with a
 * probability in [0, sum of the weights]. Seeds: make_corpus.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"

static const char kName[] = "fuzz.ngram";

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const uint8_t steer = data[0];
  size -= 1;
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  uint8_t *file = malloc(size ? size : 1);
  if (!file) abort();
  if (size) memcpy(file, data + 1, size);
  if ((steer & 1) && size >= 8) {
    const uint64_t h = deco_ngram_hash_bytes(file, size - 8);
    for (int i = 0; i < 8; ++i) file[size - 8 + i] = (uint8_t)(h >> (8 * i));
  }
  int vocab = 7;
  if ((steer & 2) && size >= 20) {
    const uint32_t v = le32(file + 16);
    if (v >= 1 && v <= 4096) vocab = (int)v;
  }
  deco_ngram_table_t *t = NULL;
  const deco_status_t s = deco_ngram_table_load_buffer(file, size, kName, vocab, 0, &t);
  if (s == DECO_STATUS_SUCCESS) {
    size_t n;
    const void *bytes = deco_ngram_table_bytes(t, &n);
    if (n != size || memcmp(bytes, file, n) != 0) abort();
    const deco_ngram_view_t v = deco_ngram_table_host_view(t);
    const float lambda[DECO_NGRAM_N_ORDERS] = {0.01f, 0.04f, 0.15f, 0.18f, 0.12f};
    /* Contexts and tokens taken from the file's own bytes, and random-ish ones. */
    for (size_t i = 0; i + 24 <= size && i < 4096; i += 24) {
      int32_t ctx[DECO_NGRAM_CONTEXT];
      for (int j = 0; j < DECO_NGRAM_CONTEXT; ++j) ctx[j] = (int32_t)(le32(file + i + 4 * (size_t)j) % (uint32_t)vocab);
      const int32_t token = (int32_t)(le32(file + i + 20) % (uint32_t)vocab);
      const double p = deco_ngram_prob(&v, ctx, (int)(i / 24 % 6), token, lambda);
      if (!(p >= 0.0 && p <= 0.51)) abort();
    }
    for (uint32_t sl = 0; sl < v.n_slots; ++sl) {
      if (v.slots[sl].fingerprint == 0) continue;
      /* Every stored context is found where it is. */
      if (deco_ngram_find(&v, v.slots[sl].fingerprint) != (int64_t)sl) abort();
    }
    deco_ngram_table_destroy(t);
  } else {
    if (t != NULL) abort();
    if (s != DECO_STATUS_BAD_FORMAT && s != DECO_STATUS_OUT_OF_MEMORY) abort();
    if (strncmp(deco_last_error(NULL), kName, sizeof kName - 1) != 0) abort();
  }
  free(file);
  return 0;
}
