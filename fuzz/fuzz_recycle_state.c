/* fuzz/fuzz_recycle_state.c — libFuzzer target for Token Recycling's state
 * file (include/deco/recycle.h): the input is the file. The table it is
 * loaded into takes vocab and k from the header when they are small
 * (vocab <= 4096, k <= 16), else vocab 7, k 3, so both matching and
 * mismatching files are tried. A load must either succeed with every id in
 * range and the table equal to the file's, or fail with BAD_FORMAT, a
 * message naming the file, and the table untouched. Seeds: make_corpus.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"

static const char kName[] = "fuzz-state.bin";

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static deco_ctx_t *ctx;
  if (ctx == NULL) {
    deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT; /* the CPU backend */
    if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS) abort();
  }
  int vocab = 7, k = 3;
  if (size >= DECO_RECYCLE_STATE_HEADER_BYTES) {
    const uint32_t v = le32(data + 12), kk = le32(data + 16);
    if (v >= 1 && v <= 4096 && kk >= 1 && kk <= DECO_RECYCLE_MAX_K) vocab = (int)v, k = (int)kk;
  }
  deco_recycler_t *r = NULL;
  if (deco_recycler_create(ctx, vocab, k, &r) != DECO_STATUS_SUCCESS) abort();
  /* A recognisable table: a failed load must leave it as it is. */
  int32_t *t = deco_recycler_table(r); /* host memory on the CPU backend */
  const size_t n = (size_t)vocab * k;
  for (size_t i = 0; i < n; ++i) t[i] = (int32_t)(i % (size_t)vocab);
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  uint8_t *file = malloc(size ? size : 1);
  if (!file) abort();
  if (size) memcpy(file, data, size);
  deco_status_t s = deco_recycler_load_buffer(r, file, size, kName);
  if (s == DECO_STATUS_SUCCESS) {
    if (size != DECO_RECYCLE_STATE_HEADER_BYTES + 4 * n + 8) abort();
    for (size_t i = 0; i < n; ++i)
      if (t[i] < 0 || t[i] >= vocab || (uint32_t)t[i] != le32(file + DECO_RECYCLE_STATE_HEADER_BYTES + 4 * i)) abort();
  } else {
    if (s != DECO_STATUS_BAD_FORMAT) abort();
    if (strncmp(deco_last_error(ctx), kName, sizeof kName - 1) != 0) abort();
    for (size_t i = 0; i < n; ++i)
      if (t[i] != (int32_t)(i % (size_t)vocab)) abort();
  }
  free(file);
  deco_recycler_destroy(r);
  return 0;
}
