/* fuzz/fuzz_checkpoint.c — libFuzzer target for the llama2.c checkpoint
 * parser: the input is the whole file. A parse either fails with a message
 * naming the file, or succeeds with every tensor inside the buffer and
 * finite. Seeds: fuzz/make_corpus.py (tiny valid checkpoints).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"
#include "model/llama2c.h"

static const char kName[] = "fuzz.bin";

/* A tensor of n floats at p must lie inside [base, base + size). */
static void check_inside(const float *p, uint64_t n, const unsigned char *base, size_t size) {
  const unsigned char *b = (const unsigned char *)p;
  if (b < base + DECO_LLAMA2C_HEADER_BYTES || (uint64_t)(base + size - b) < n * sizeof(float)) abort();
  /* Every element is read: ASan checks the bounds, the parser promised finite. */
  for (uint64_t i = 0; i < n; ++i)
    if (!isfinite(p[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  deco_model_hparams_t c;
  deco_llama2c_weights_t w;
  deco_status_t s = deco_llama2c_parse(buf, size, kName, &c, &w);
  deco_model_hparams_t h;
  deco_status_t sh = deco_llama2c_parse_header(buf, size, size, kName, &h);
  if (s == DECO_STATUS_SUCCESS) {
    /* The header check alone must agree with the full parse. */
    if (sh != DECO_STATUS_SUCCESS || memcmp(&c, &h, sizeof c) != 0) abort();
    if (c.head_dim * c.n_heads != c.dim || c.n_heads % c.n_kv_heads != 0) abort();
    uint64_t dim = (uint64_t)c.dim, hid = (uint64_t)c.hidden_dim, L = (uint64_t)c.n_layers;
    uint64_t q = (uint64_t)c.n_heads * (uint64_t)c.head_dim, kv = (uint64_t)c.n_kv_heads * (uint64_t)c.head_dim;
    uint64_t V = (uint64_t)c.vocab_size;
    check_inside(w.token_embedding, V * dim, buf, size);
    check_inside(w.rms_att, L * dim, buf, size);
    check_inside(w.wq, L * dim * q, buf, size);
    check_inside(w.wk, L * dim * kv, buf, size);
    check_inside(w.wv, L * dim * kv, buf, size);
    check_inside(w.wo, L * q * dim, buf, size);
    check_inside(w.rms_ffn, L * dim, buf, size);
    check_inside(w.w1, L * dim * hid, buf, size);
    check_inside(w.w2, L * hid * dim, buf, size);
    check_inside(w.w3, L * dim * hid, buf, size);
    check_inside(w.rms_final, dim, buf, size);
    check_inside(w.wcls, V * dim, buf, size);
    if (c.shared_classifier != (w.wcls == w.token_embedding)) abort();
  } else {
    const char *msg = deco_last_error(NULL);
    /* Unaligned buffers cannot come from malloc; every other failure is
     * about the content and names the file. */
    if (s != DECO_STATUS_BAD_FORMAT || strncmp(msg, kName, sizeof kName - 1) != 0) abort();
  }
  free(buf);
  return 0;
}
