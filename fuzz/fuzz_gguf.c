/* fuzz/fuzz_gguf.c — libFuzzer target for the GGUF parser (host/model/
 * gguf.h): the input is the whole file. A parse either fails with
 * BAD_FORMAT and a message naming the file, or succeeds with every tensor
 * inside the buffer; then every metadata entry is read back through its
 * typed getter, the Llama check runs, and when it passes every tensor is
 * dequantised (the first blocks) and checked finite. Seeds: make_corpus.py
 * (tiny Llama GGUF files of each tensor type, versions 2 and 3).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"
#include "model/gguf.h"

static const char kName[] = "fuzz.gguf";

static void check_error(deco_status_t s) {
  const char *msg = deco_last_error(NULL);
  if (s != DECO_STATUS_BAD_FORMAT || strncmp(msg, kName, sizeof kName - 1) != 0) abort();
}

/* Reads entry kv back with the getter of its type; a getter may refuse a
 * value that does not fit its result, never crash. */
static void read_back(const deco_gguf_t *g, const deco_gguf_kv_t *kv) {
  char key[DECO_GGUF_MAX_KEY + 1];
  memcpy(key, kv->key, kv->key_len);
  key[kv->key_len] = '\0';
  if (deco_gguf_find_kv(g, key) != kv) abort();
  uint32_t u;
  int32_t i;
  int64_t l;
  float f;
  int b;
  deco_gguf_str_t s;
  switch (kv->type) {
    case DECO_GGUF_VAL_STRING:
      if (deco_gguf_get_string(g, key, &s) != DECO_STATUS_SUCCESS) abort();
      if ((const unsigned char *)s.s < g->base || s.len > g->size ||
          (size_t)((const unsigned char *)s.s - g->base) > g->size - s.len)
        abort();
      break;
    case DECO_GGUF_VAL_BOOL:
      if (deco_gguf_get_bool(g, key, &b) != DECO_STATUS_SUCCESS || (b != 0 && b != 1)) abort();
      break;
    case DECO_GGUF_VAL_FLOAT32: case DECO_GGUF_VAL_FLOAT64: {
      deco_status_t st = deco_gguf_get_f32(g, key, &f);
      if (st != DECO_STATUS_SUCCESS) check_error(st);
      break;
    }
    case DECO_GGUF_VAL_ARRAY: {
      uint32_t et;
      uint64_t n;
      if (deco_gguf_get_array(g, key, &et, &n) != DECO_STATUS_SUCCESS || n != kv->count) abort();
      /* Each element takes at least a byte of the file. */
      if (n > g->size) abort();
      void *out = malloc((size_t)(n ? n : 1) * sizeof(deco_gguf_str_t));
      if (!out) return;
      deco_status_t st = DECO_STATUS_SUCCESS;
      uint64_t got = 0;
      if (et == DECO_GGUF_VAL_STRING) {
        st = deco_gguf_get_strings(g, key, out, n, &got);
        deco_gguf_str_t *ss = out;
        for (uint64_t k = 0; st == DECO_STATUS_SUCCESS && k < got; ++k)
          if ((const unsigned char *)ss[k].s < g->base ||
              (size_t)((const unsigned char *)ss[k].s - g->base) + ss[k].len > g->size)
            abort();
      } else if (et == DECO_GGUF_VAL_FLOAT32 || et == DECO_GGUF_VAL_FLOAT64) {
        st = deco_gguf_get_floats(g, key, out, n, &got);
      } else if (et != DECO_GGUF_VAL_BOOL) {
        st = deco_gguf_get_ints(g, key, out, n, &got);
      } else {
        got = n;
      }
      if (st != DECO_STATUS_SUCCESS) check_error(st);
      else if (got != n) abort();
      free(out);
      break;
    }
    default: { /* integers */
      deco_status_t s1 = deco_gguf_get_u32(g, key, &u), s2 = deco_gguf_get_i32(g, key, &i),
                    s3 = deco_gguf_get_i64(g, key, &l);
      if (s1 != DECO_STATUS_SUCCESS) check_error(s1);
      if (s2 != DECO_STATUS_SUCCESS) check_error(s2);
      if (s3 != DECO_STATUS_SUCCESS) check_error(s3);
      if (s1 == DECO_STATUS_SUCCESS && s3 == DECO_STATUS_SUCCESS && (int64_t)u != l) abort();
      break;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  deco_gguf_t g;
  deco_status_t s = deco_gguf_parse(buf, size, kName, &g);
  if (s != DECO_STATUS_SUCCESS) {
    check_error(s);
    free(buf);
    return 0;
  }
  if (g.version != 2 && g.version != 3) abort();
  if (g.alignment < 8 || (g.alignment & (g.alignment - 1)) != 0 || g.data_offset % g.alignment != 0) abort();
  for (uint64_t k = 0; k < g.n_tensors; ++k) {
    const deco_gguf_tensor_t *t = &g.tensors[k];
    if (t->data < buf + g.data_offset || (size_t)(t->data - buf) > size || t->n_bytes > size - (size_t)(t->data - buf))
      abort();
    if (t->offset % g.alignment != 0 || deco_gguf_find_tensor(&g, t->name) != t) abort();
    if (t->n_bytes) (void)*(volatile const unsigned char *)(t->data + t->n_bytes - 1);
  }
  for (uint64_t k = 0; k < g.n_kv; ++k) read_back(&g, &g.kv[k]);

  deco_model_hparams_t h;
  s = deco_gguf_llama_hparams(&g, &h);
  if (s != DECO_STATUS_SUCCESS) {
    check_error(s);
  } else {
    if (h.head_dim * h.n_heads != h.dim || h.n_heads % h.n_kv_heads != 0 || h.vocab_size < 1) abort();
    for (int r = 0; r < DECO_GGUF_N_ROLES; ++r)
      for (int l = 0; l < h.n_layers; ++l) {
        const deco_gguf_tensor_t *t = deco_gguf_llama_tensor(&g, (deco_gguf_role_t)r, l);
        if (!t) {
          if (r != DECO_GGUF_OUTPUT || !h.shared_classifier) abort();
          continue;
        }
        if (!deco_gguf_type_supported(t->type)) abort();
        float out[64];
        uint32_t be;
        deco_gguf_type_block(t->type, &be, NULL);
        uint64_t n = t->n_elements < 64 ? t->n_elements : 64;
        n -= n % be;
        if (n && deco_gguf_dequant(t->type, t->data, n, out) != 0) abort();
        deco_status_t sf = deco_gguf_check_finite(&g, t);
        if (sf != DECO_STATUS_SUCCESS) check_error(sf);
        if (!(r >= DECO_GGUF_ATTN_NORM)) break; /* global roles: once */
      }
  }
  deco_gguf_free(&g);
  free(buf);
  return 0;
}
