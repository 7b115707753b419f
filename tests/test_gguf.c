/* tests/test_gguf.c — GGUF parsing (host/model/gguf.h): the tiny fixtures of
 * data/fixtures/gguf/ (each tensor type deco reads, versions 2 and 3, made
 * by scripts/gguf/make_fixtures.py with the gguf package) checked field by
 * field, dequantised values bitwise against the package's dequantisers,
 * the typed metadata getters, and bad files: cut at every byte (the message
 * must name the field scripts/gguf/make_fixtures.py's own walk of the bytes
 * found there), zero-filled, random, absurd counts, lengths and offsets, a
 * tensor past the end, misaligned data, unknown and unsupported types, a
 * non-llama architecture, shapes that contradict the metadata. Every
 * failure must be DECO_STATUS_BAD_FORMAT with a message that starts with
 * the file name and names the field.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/model/gguf.h"
#include "common/testutil.h"
#include "deco/deco.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct blob {
  unsigned char *p;
  size_t n;
} blob_t;

static blob_t load_fixture(const char *name) {
  char rel[128];
  snprintf(rel, sizeof rel, "fixtures/gguf/%s", name);
  const char *path = deco_test_data_file(rel);
  blob_t b;
  b.p = deco_test_read_file(path, &b.n);
  cr_assert_not_null(b.p, "cannot read %s", path);
  return b;
}

/* An exact-size copy of the first n bytes: a read past the end is a heap
 * overflow that the sanitizer build reports. */
static unsigned char *exact_copy(const unsigned char *p, size_t n) {
  unsigned char *c = malloc(n ? n : 1);
  cr_assert_not_null(c);
  if (n) memcpy(c, p, n);
  return c;
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Offset of the length-prefixed string s in the file (a key or a tensor
 * name; each occurs once), pointing at its uint64 length. */
static size_t find_str(const blob_t *b, const char *s) {
  size_t n = strlen(s);
  unsigned char pat[128];
  cr_assert(n + 8 <= sizeof pat);
  put_u64(pat, n);
  memcpy(pat + 8, s, n);
  const unsigned char *hit = memmem(b->p, b->n, pat, n + 8);
  cr_assert_not_null(hit, "'%s' not found in the fixture", s);
  return (size_t)(hit - b->p);
}
/* Offset of the value type of metadata key s (the value follows it). */
static size_t kv_type_at(const blob_t *b, const char *key) { return find_str(b, key) + 8 + strlen(key); }
/* Offset of tensor name's n_dims field; dims, type and offset follow. */
static size_t tensor_at(const blob_t *b, const char *name) { return find_str(b, name) + 8 + strlen(name); }
static size_t tensor_type_at(const blob_t *b, const char *name) {
  size_t p = tensor_at(b, name);
  return p + 4 + 8 * get_u32(b->p + p);
}

/* Parses data and asserts failure with status; the message must start with
 * name and contain each of the fragments (NULL-terminated). */
static void expect_fail_status(const void *data, size_t n, deco_status_t status, const char *const *frags) {
  static const char name[] = "bad.gguf";
  unsigned char *c = exact_copy(data, n);
  deco_gguf_t g;
  deco_status_t s = deco_gguf_parse(c, n, name, &g);
  if (s == DECO_STATUS_SUCCESS) {
    deco_model_hparams_t h;
    s = deco_gguf_llama_hparams(&g, &h);
    deco_gguf_free(&g);
  }
  deco_test_refused_naming(NULL, s, status, "bad.gguf:", frags);
  free(c);
}

#define EXPECT_FAIL(data, n, ...)                                   \
  do {                                                              \
    const char *const frags_[] = {__VA_ARGS__, NULL};               \
    expect_fail_status((data), (n), DECO_STATUS_BAD_FORMAT, frags_); \
  } while (0)

static deco_gguf_t parse_ok(const void *data, size_t n, const char *name) {
  deco_gguf_t g;
  deco_status_t s = deco_gguf_parse(data, n, name, &g);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "%s: %s", name, deco_last_error(NULL));
  return g;
}

/* ---- the fixtures -------------------------------------------------------- */

typedef struct fixture {
  const char *file;
  uint32_t version, alignment;
  uint32_t matrix_type; /* every matrix but token_embd */
  uint32_t embd_type;
  int separate_output;
  uint64_t n_kv;
} fixture_t;

static const fixture_t fixtures[] = {
    {"tiny_f32.gguf", 3, 32, DECO_GGUF_F32, DECO_GGUF_F32, 1, 17},
    {"tiny_f16.gguf", 3, 32, DECO_GGUF_F16, DECO_GGUF_F16, 0, 17},
    {"tiny_bf16.gguf", 3, 32, DECO_GGUF_BF16, DECO_GGUF_BF16, 0, 17},
    {"tiny_q8_0.gguf", 3, 32, DECO_GGUF_Q8_0, DECO_GGUF_Q8_0, 0, 17},
    {"tiny_q4_0.gguf", 3, 32, DECO_GGUF_Q4_0, DECO_GGUF_Q4_0, 0, 17},
    {"tiny_q4_1.gguf", 3, 64, DECO_GGUF_Q4_1, DECO_GGUF_Q4_1, 0, 37},
    {"tiny_v2.gguf", 2, 32, DECO_GGUF_Q4_1, DECO_GGUF_Q8_0, 0, 17},
};

/* The tiny model (scripts/gguf/make_fixtures.py). */
enum { DIM = 64, HIDDEN = 96, LAYERS = 2, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16, VOCAB = 72, CONTEXT = 128 };
#define EXPECT_PER_TENSOR 256

/* The tensors in the order llama.cpp's converter writes them, with shapes. */
typedef struct tinfo {
  char name[64];
  uint64_t d0, d1; /* d1 = 1 for norms */
  int norm, embd;
} tinfo_t;

static int tiny_tensors(int separate_output, tinfo_t *t) {
  int n = 0;
  t[n++] = (tinfo_t){"token_embd.weight", DIM, VOCAB, 0, 1};
  static const struct {
    const char *role;
    uint64_t d0, d1;
  } layer[] = {{"attn_norm", DIM, 1},          {"attn_q", DIM, HEADS * HEAD_DIM},
               {"attn_k", DIM, KV_HEADS * HEAD_DIM}, {"attn_v", DIM, KV_HEADS * HEAD_DIM},
               {"attn_output", HEADS * HEAD_DIM, DIM}, {"ffn_norm", DIM, 1},
               {"ffn_gate", DIM, HIDDEN},        {"ffn_up", DIM, HIDDEN},
               {"ffn_down", HIDDEN, DIM}};
  for (int l = 0; l < LAYERS; ++l)
    for (int r = 0; r < 9; ++r) {
      snprintf(t[n].name, sizeof t[n].name, "blk.%d.%s.weight", l, layer[r].role);
      t[n].d0 = layer[r].d0;
      t[n].d1 = layer[r].d1;
      t[n].norm = layer[r].d1 == 1;
      t[n].embd = 0;
      n++;
    }
  t[n++] = (tinfo_t){"output_norm.weight", DIM, 1, 1, 0};
  if (separate_output) t[n++] = (tinfo_t){"output.weight", DIM, VOCAB, 0, 0};
  return n;
}

static uint64_t type_bytes(uint32_t type, uint64_t n) {
  switch (type) {
    case DECO_GGUF_F32: return 4 * n;
    case DECO_GGUF_F16: case DECO_GGUF_BF16: return 2 * n;
    case DECO_GGUF_Q8_0: return n / 32 * 34;
    case DECO_GGUF_Q4_0: return n / 32 * 18;
    default: return n / 32 * 20; /* Q4_1 */
  }
}

Test(gguf, fixtures_parse_and_dequantise) {
  for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; ++f) {
    const fixture_t *fx = &fixtures[f];
    blob_t b = load_fixture(fx->file);
    deco_gguf_t g = parse_ok(b.p, b.n, fx->file);
    cr_assert_eq(g.version, fx->version, "%s", fx->file);
    cr_assert_eq(g.alignment, fx->alignment, "%s", fx->file);
    cr_assert_eq(g.n_kv, fx->n_kv, "%s: %llu metadata entries", fx->file, (unsigned long long)g.n_kv);
    cr_assert_eq(g.data_offset % g.alignment, 0);

    tinfo_t t[32];
    int n = tiny_tensors(fx->separate_output, t);
    cr_assert_eq(g.n_tensors, (uint64_t)n, "%s: %llu tensors", fx->file, (unsigned long long)g.n_tensors);
    char expect_rel[128];
    snprintf(expect_rel, sizeof expect_rel, "%.*s.expect.f32", (int)(strlen(fx->file) - 5), fx->file);
    blob_t expect = load_fixture(expect_rel);
    size_t e = 0;
    uint64_t offset = 0;
    for (int i = 0; i < n; ++i) {
      const deco_gguf_tensor_t *x = &g.tensors[i];
      uint32_t type = t[i].norm ? DECO_GGUF_F32 : t[i].embd ? fx->embd_type : fx->matrix_type;
      cr_assert_str_eq(x->name, t[i].name, "%s: tensor %d", fx->file, i);
      cr_assert_eq(deco_gguf_find_tensor(&g, t[i].name), x);
      cr_assert_eq(x->type, type, "%s: %s type %u", fx->file, x->name, x->type);
      cr_assert_eq(x->n_dims, t[i].norm ? 1u : 2u, "%s: %s", fx->file, x->name);
      cr_assert(x->dims[0] == t[i].d0 && x->dims[1] == t[i].d1 && x->dims[2] == 1 && x->dims[3] == 1,
                "%s: %s dims [%llu, %llu]", fx->file, x->name, (unsigned long long)x->dims[0],
                (unsigned long long)x->dims[1]);
      cr_assert_eq(x->n_elements, t[i].d0 * t[i].d1);
      cr_assert_eq(x->n_bytes, type_bytes(type, x->n_elements), "%s: %s", fx->file, x->name);
      cr_assert_eq(x->offset, offset, "%s: %s offset %llu, expected %llu", fx->file, x->name,
                   (unsigned long long)x->offset, (unsigned long long)offset);
      cr_assert_eq(x->data, b.p + g.data_offset + x->offset);
      offset += (x->n_bytes + g.alignment - 1) / g.alignment * g.alignment;
      cr_assert_eq(deco_gguf_check_finite(&g, x), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));

      /* The first values, bitwise as the gguf package dequantises them. */
      uint64_t m = x->n_elements < EXPECT_PER_TENSOR ? x->n_elements : EXPECT_PER_TENSOR;
      float got[EXPECT_PER_TENSOR];
      cr_assert_eq(deco_gguf_dequant(x->type, x->data, m, got), 0);
      cr_assert_leq((e + m) * 4, expect.n);
      for (uint64_t k = 0; k < m; ++k) {
        uint32_t gb, eb;
        memcpy(&gb, &got[k], 4);
        memcpy(&eb, expect.p + 4 * (e + k), 4);
        cr_assert_eq(gb, eb, "%s: %s element %llu: 0x%08x (%g), the gguf package gives 0x%08x", fx->file, x->name,
                     (unsigned long long)k, gb, (double)got[k], eb);
      }
      e += m;
    }
    cr_assert_eq(e * 4, expect.n, "%s: expected values left over", fx->file);
    cr_assert_eq(deco_gguf_find_tensor(&g, "output.weight") != NULL, fx->separate_output, "%s", fx->file);

    deco_model_hparams_t h;
    cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert(h.dim == DIM && h.hidden_dim == HIDDEN && h.n_layers == LAYERS && h.n_heads == HEADS &&
              h.n_kv_heads == KV_HEADS && h.head_dim == HEAD_DIM && h.vocab_size == VOCAB && h.seq_len == CONTEXT,
              "%s: hparams", fx->file);
    cr_assert_eq(h.rope_theta, 10000.0f);
    cr_assert_eq(h.norm_eps, 1e-5f);
    cr_assert_eq(h.rope_style, DECO_ROPE_INTERLEAVED);
    cr_assert_eq(h.shared_classifier, !fx->separate_output);
    cr_assert_eq(h.builtin_vocab, 0);
    cr_assert_eq(h.bos_id, 1);
    cr_assert(h.n_stop_ids == 1 && h.stop_ids[0] == 2);
    for (int r = 0; r < DECO_GGUF_N_ROLES; ++r)
      for (int l = 0; l < LAYERS; ++l) {
        const deco_gguf_tensor_t *x = deco_gguf_llama_tensor(&g, (deco_gguf_role_t)r, l);
        cr_assert(x != NULL || (r == DECO_GGUF_OUTPUT && !fx->separate_output), "%s: role %d layer %d", fx->file, r,
                  l);
      }
    cr_assert_null(deco_gguf_llama_tensor(&g, DECO_GGUF_ATTN_Q, LAYERS));
    deco_gguf_free(&g);
    free(expect.p);
    free(b.p);
  }
}

Test(gguf, getters) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  deco_gguf_t g = parse_ok(b.p, b.n, "tiny_q4_1.gguf");
  uint32_t u;
  int32_t i;
  int64_t l;
  float f;
  int bo;
  deco_gguf_str_t s;
  cr_assert_eq(deco_gguf_get_u32(&g, "llama.block_count", &u), 0);
  cr_assert_eq(u, 2);
  cr_assert_eq(deco_gguf_get_u32(&g, "deco.test.u8", &u), 0);
  cr_assert_eq(u, 200);
  cr_assert_eq(deco_gguf_get_i32(&g, "deco.test.i8", &i), 0);
  cr_assert_eq(i, -100);
  cr_assert_eq(deco_gguf_get_u32(&g, "deco.test.u16", &u), 0);
  cr_assert_eq(u, 60000);
  cr_assert_eq(deco_gguf_get_i32(&g, "deco.test.i16", &i), 0);
  cr_assert_eq(i, -30000);
  cr_assert_eq(deco_gguf_get_u32(&g, "deco.test.u32", &u), 0);
  cr_assert_eq(u, 4000000000u);
  cr_assert_eq(deco_gguf_get_i32(&g, "deco.test.i32", &i), 0);
  cr_assert_eq(i, -2000000000);
  cr_assert_eq(deco_gguf_get_i64(&g, "deco.test.i64", &l), 0);
  cr_assert_eq(l, -(1ll << 40));
  cr_assert_eq(deco_gguf_get_f32(&g, "deco.test.f32", &f), 0);
  cr_assert_eq(f, 1.5f);
  cr_assert_eq(deco_gguf_get_f32(&g, "deco.test.f64", &f), 0);
  cr_assert_eq(f, 2.25f);
  cr_assert_eq(deco_gguf_get_bool(&g, "deco.test.bool", &bo), 0);
  cr_assert_eq(bo, 1);
  cr_assert_eq(deco_gguf_get_string(&g, "deco.test.string", &s), 0);
  cr_assert(s.len == 6 && memcmp(s.s, "h\xc3\xa9llo", 6) == 0);
  cr_assert_eq(deco_gguf_get_string(&g, "general.architecture", &s), 0);
  cr_assert(s.len == 5 && memcmp(s.s, "llama", 5) == 0);

  /* Wrong types and values that do not fit: clean errors naming the key. */
  static const struct {
    int getter; /* 0 u32, 1 i32, 2 i64, 3 f32, 4 bool, 5 string */
    const char *key, *frag;
  } bad[] = {
      {0, "deco.test.i8", "does not fit uint32"},        {1, "deco.test.u32", "does not fit int32"},
      {2, "deco.test.u64", "does not fit int64"},        {1, "deco.test.i64", "does not fit int32"},
      {3, "deco.test.f64_big", "does not fit float32"},
      {0, "deco.test.string", "has type string, expected an integer"},
      {3, "deco.test.u8", "has type uint8, expected a float"}, {4, "deco.test.u8", "expected bool"},
      {5, "deco.test.ints", "is an array of int32, expected string"},
      {0, "deco.test.nope", "metadata deco.test.nope is missing"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
    deco_status_t st;
    switch (bad[k].getter) {
      case 0: st = deco_gguf_get_u32(&g, bad[k].key, &u); break;
      case 1: st = deco_gguf_get_i32(&g, bad[k].key, &i); break;
      case 2: st = deco_gguf_get_i64(&g, bad[k].key, &l); break;
      case 3: st = deco_gguf_get_f32(&g, bad[k].key, &f); break;
      case 4: st = deco_gguf_get_bool(&g, bad[k].key, &bo); break;
      default: st = deco_gguf_get_string(&g, bad[k].key, &s); break;
    }
    const char *msg = deco_last_error(NULL);
    cr_assert_eq(st, DECO_STATUS_BAD_FORMAT, "%s", bad[k].key);
    cr_assert(strncmp(msg, "tiny_q4_1.gguf: ", 16) == 0 && strstr(msg, bad[k].frag) && strstr(msg, bad[k].key),
              "%s: %s", bad[k].key, msg);
  }

  /* Arrays. */
  uint32_t et;
  uint64_t count;
  int64_t ints[4];
  float floats[4];
  deco_gguf_str_t strs[VOCAB];
  cr_assert_eq(deco_gguf_get_array(&g, "deco.test.bools", &et, &count), 0);
  cr_assert(et == DECO_GGUF_VAL_BOOL && count == 2);
  cr_assert_eq(deco_gguf_get_ints(&g, "deco.test.ints", ints, 4, &count), 0);
  cr_assert(count == 3 && ints[0] == 1 && ints[1] == -2 && ints[2] == 3);
  cr_assert_eq(deco_gguf_get_ints(&g, "deco.test.u8s", ints, 4, &count), 0);
  cr_assert(count == 3 && ints[0] == 0 && ints[1] == 255 && ints[2] == 7);
  cr_assert_eq(deco_gguf_get_floats(&g, "deco.test.floats", floats, 4, &count), 0);
  cr_assert(count == 2 && floats[0] == 0.5f && floats[1] == -1.25f);
  cr_assert_eq(deco_gguf_get_floats(&g, "deco.test.doubles", floats, 4, &count), 0);
  cr_assert(count == 3 && floats[0] == 0.125f && floats[1] == 3.0f && floats[2] == -8.5f);
  cr_assert_eq(deco_gguf_get_strings(&g, "deco.test.strings", strs, 4, &count), 0);
  cr_assert(count == 3 && strs[0].len == 1 && strs[0].s[0] == 'a' && strs[1].len == 0 && strs[2].len == 3 &&
            memcmp(strs[2].s, "ccc", 3) == 0);
  cr_assert_eq(deco_gguf_get_strings(&g, "tokenizer.ggml.tokens", strs, VOCAB, &count), 0);
  cr_assert(count == VOCAB && strs[1].len == 3 && memcmp(strs[1].s, "<s>", 3) == 0);
  cr_assert(strs[VOCAB - 1].len == 5 && memcmp(strs[VOCAB - 1].s, "tok71", 5) == 0);
  cr_assert_eq(deco_gguf_get_strings(&g, "deco.test.strings", strs, 2, &count), DECO_STATUS_CAPACITY);
  cr_assert_eq(deco_gguf_get_ints(&g, "deco.test.strings", ints, 4, &count), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "is an array of string, expected an array of integers"), "%s",
            deco_last_error(NULL));
  cr_assert_eq(deco_gguf_get_floats(&g, "deco.test.ints", floats, 4, &count), DECO_STATUS_BAD_FORMAT);
  cr_assert_eq(deco_gguf_get_array(&g, "deco.test.u8", &et, &count), DECO_STATUS_BAD_FORMAT);
  cr_assert_not_null(deco_gguf_find_kv(&g, "general.alignment"));
  cr_assert_null(deco_gguf_find_kv(&g, "general.alignmen"));
  deco_gguf_free(&g);
  free(b.p);
}

/* ---- block dequantisation ------------------------------------------------ */

Test(gguf, dequant_blocks) {
  unsigned char q40[18], q41[20], q80[34];
  float out[32];
  /* d = 0.5 (f16 0x3800): element j = low nibble j, element j+16 = high 15-j. */
  q40[0] = 0x00, q40[1] = 0x38;
  for (int j = 0; j < 16; ++j) q40[2 + j] = (unsigned char)(j | ((15 - j) << 4));
  deco_gguf_dequant_q4_0(q40, out);
  for (int j = 0; j < 16; ++j) {
    cr_assert_eq(out[j], 0.5f * (float)(j - 8), "q4_0[%d] = %g", j, (double)out[j]);
    cr_assert_eq(out[j + 16], 0.5f * (float)(7 - j), "q4_0[%d] = %g", j + 16, (double)out[j + 16]);
  }
  /* d = 0.25 (0x3400), m = -1 (0xbc00): x = 0.25 q - 1. */
  q41[0] = 0x00, q41[1] = 0x34, q41[2] = 0x00, q41[3] = 0xbc;
  for (int j = 0; j < 16; ++j) q41[4 + j] = (unsigned char)(j | ((15 - j) << 4));
  deco_gguf_dequant_q4_1(q41, out);
  for (int j = 0; j < 16; ++j) {
    cr_assert_eq(out[j], 0.25f * (float)j - 1.0f);
    cr_assert_eq(out[j + 16], 0.25f * (float)(15 - j) - 1.0f);
  }
  /* m nearly cancelling d*q: d = 1.0009765625 (0x3c01), m = -15.0078125
   * (0xcb81); d*15 + m = 0.0068359375, exact (d*q always is in fp32). */
  q41[0] = 0x01, q41[1] = 0x3c, q41[2] = 0x81, q41[3] = 0xcb;
  deco_gguf_dequant_q4_1(q41, out);
  cr_assert_eq(out[15], (float)(1.0009765625 * 15 - 15.0078125)); /* exact in float */
  /* d = 2^-3 (0x3000), q = -128..: x = q / 8. */
  q80[0] = 0x00, q80[1] = 0x30;
  for (int j = 0; j < 32; ++j) q80[2 + j] = (unsigned char)(int8_t)(j * 8 - 128);
  deco_gguf_dequant_q8_0(q80, out);
  for (int j = 0; j < 32; ++j) cr_assert_eq(out[j], (float)(j * 8 - 128) / 8.0f);

  /* The row helper: the same blocks, exact conversions, and refusals. */
  float row[64];
  unsigned char two[36];
  memcpy(two, q80, 34);
  cr_assert_eq(deco_gguf_dequant(DECO_GGUF_Q8_0, q80, 32, row), 0);
  cr_assert_eq(row[31], out[31]);
  uint16_t h[3] = {0x3c00, 0x0001, 0x8000}; /* 1, the smallest f16 subnormal, -0 */
  cr_assert_eq(deco_gguf_dequant(DECO_GGUF_F16, h, 3, row), 0);
  cr_assert(row[0] == 1.0f && row[1] == ldexpf(1.0f, -24) && row[2] == 0.0f && signbit(row[2]));
  uint16_t bf[2] = {0x3f80, 0xc040}; /* 1, -3 */
  cr_assert_eq(deco_gguf_dequant(DECO_GGUF_BF16, bf, 2, row), 0);
  cr_assert(row[0] == 1.0f && row[1] == -3.0f);
  cr_assert_eq(deco_gguf_dequant(DECO_GGUF_Q4_0, q40, 31, row), -1);
  cr_assert_eq(deco_gguf_dequant(12 /* Q4_K */, q40, 256, row), -1);
  cr_assert(deco_gguf_type_supported(DECO_GGUF_Q4_1) && !deco_gguf_type_supported(12));
  cr_assert_str_eq(deco_gguf_type_name(12), "Q4_K");
  cr_assert_null(deco_gguf_type_name(4));
  uint32_t be, bb;
  cr_assert(deco_gguf_type_block(DECO_GGUF_Q4_1, &be, &bb) && be == 32 && bb == 20);
  cr_assert(deco_gguf_type_block(14 /* Q6_K */, &be, &bb) && be == 256 && bb == 210);
  /* The newest types ggml defines: an f16 scale and 1 or 2 bits a weight. */
  cr_assert(deco_gguf_type_block(41 /* Q1_0 */, &be, &bb) && be == 128 && bb == 18);
  cr_assert(deco_gguf_type_block(42 /* Q2_0 */, &be, &bb) && be == 64 && bb == 18);
  cr_assert_str_eq(deco_gguf_type_name(42), "Q2_0");
  cr_assert(!deco_gguf_type_block(43, &be, &bb));
}

Test(gguf, check_finite) {
  blob_t b = load_fixture("tiny_f32.gguf");
  deco_gguf_t g = parse_ok(b.p, b.n, "tiny_f32.gguf");
  const deco_gguf_tensor_t *t = deco_gguf_find_tensor(&g, "blk.1.attn_v.weight");
  float nan = NAN;
  memcpy((unsigned char *)t->data + 4 * 37, &nan, 4);
  cr_assert_eq(deco_gguf_check_finite(&g, t), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "tiny_f32.gguf: tensor blk.1.attn_v.weight, element 37 (of 2048) is nan"),
            "%s", deco_last_error(NULL));
  deco_gguf_free(&g);
  free(b.p);

  b = load_fixture("tiny_q4_1.gguf");
  g = parse_ok(b.p, b.n, "tiny_q4_1.gguf");
  t = deco_gguf_find_tensor(&g, "blk.0.ffn_up.weight");
  unsigned char inf_f16[2] = {0x00, 0x7c};
  memcpy((unsigned char *)t->data + 20 * 5 + 2, inf_f16, 2); /* block 5's m */
  cr_assert_eq(deco_gguf_check_finite(&g, t), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "tensor blk.0.ffn_up.weight, block 5 (of 192) has a Q4_1 scale m = inf"),
            "%s", deco_last_error(NULL));
  deco_gguf_free(&g);
  free(b.p);
}

/* ---- bad files ------------------------------------------------------------ */

/* Cut tiny_q4_1.gguf at every length: the message names the field that
 * make_fixtures.py's walk found at that offset; from the end of the last
 * tensor on the file is whole again (trailing padding is optional). */
Test(gguf, truncated_at_every_byte) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  char *text = deco_test_read_file(deco_test_data_file("fixtures/gguf/tiny_q4_1.fields.txt"), NULL);
  cr_assert_not_null(text);
  size_t cap = 1024, n = 0;
  size_t *off = malloc(cap * sizeof *off);
  char **frag = malloc(cap * sizeof *frag);
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    char *tab = strchr(line, '\t');
    cr_assert_not_null(tab, "bad line in fields.txt: %s", line);
    *tab = '\0';
    cr_assert_lt(n, cap);
    off[n] = (size_t)strtoull(line, NULL, 10);
    frag[n++] = tab + 1;
  }
  cr_assert_gt(n, 100);
  cr_assert_str_eq(frag[n - 1], "END");
  size_t end = off[n - 1];
  cr_assert_leq(end, b.n);
  size_t k = 0;
  for (size_t len = 0; len < b.n; ++len) {
    while (k + 1 < n && off[k + 1] <= len) ++k;
    if (len >= end) {
      unsigned char *c = exact_copy(b.p, len);
      deco_gguf_t g = parse_ok(c, len, "cut.gguf");
      deco_gguf_free(&g);
      free(c);
      continue;
    }
    const char *const frags[] = {frag[k], NULL};
    expect_fail_status(b.p, len, DECO_STATUS_BAD_FORMAT, frags);
  }
  free(off);
  free(frag);
  free(text);
  free(b.p);
}

Test(gguf, zero_filled_and_random) {
  unsigned char *z = calloc(1, 65536);
  EXPECT_FAIL(z, 0, "header field magic", "truncated");
  EXPECT_FAIL(z, 3, "header field magic", "truncated");
  EXPECT_FAIL(z, 24, "header field magic", "not a GGUF file");
  EXPECT_FAIL(z, 65536, "header field magic", "not a GGUF file");
  /* A valid magic and version, then zeros: no tensors, no metadata, which
   * parses and then lacks an architecture. */
  memcpy(z, "GGUF", 4);
  put_u32(z + 4, 3);
  EXPECT_FAIL(z, 65536, "metadata general.architecture is missing");
  free(z);

  uint64_t state = 0x9E3779B97F4A7C15ull;
  unsigned char *r = malloc(4096);
  for (int trial = 0; trial < 2000; ++trial) {
    size_t len = (size_t)(trial * 37 % 4096);
    for (size_t i = 0; i < len; ++i) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      r[i] = (unsigned char)state;
    }
    /* Half the trials look like GGUF so the parse goes past the header. */
    if (trial % 2 && len >= 24) {
      memcpy(r, "GGUF", 4);
      put_u32(r + 4, 2 + (uint32_t)(trial / 2 % 2));
      put_u64(r + 8, (uint64_t)(trial % 5));
      put_u64(r + 16, (uint64_t)(trial % 7));
    }
    const char *const none[] = {NULL};
    expect_fail_status(r, len, DECO_STATUS_BAD_FORMAT, none);
  }
  free(r);
}

Test(gguf, header_fields) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  unsigned char *c = exact_copy(b.p, b.n);
  memcpy(c, "GGUG", 4);
  EXPECT_FAIL(c, b.n, "header field magic", "'GGUG'", "not a GGUF file");
  memcpy(c, b.p, b.n);
  put_u32(c + 4, 1);
  EXPECT_FAIL(c, b.n, "header field version", "1 is not supported");
  put_u32(c + 4, 0x03000000u);
  EXPECT_FAIL(c, b.n, "header field version", "big-endian");
  put_u32(c + 4, 4);
  EXPECT_FAIL(c, b.n, "header field version", "4 is not supported");
  memcpy(c, b.p, b.n);
  put_u64(c + 8, UINT64_MAX);
  EXPECT_FAIL(c, b.n, "header field tensor_count", "18446744073709551615 exceeds the limit 65536");
  put_u64(c + 8, 65536);
  EXPECT_FAIL(c, b.n, "header fields tensor_count=65536", "need at least");
  memcpy(c, b.p, b.n);
  put_u64(c + 16, 1ull << 40);
  EXPECT_FAIL(c, b.n, "header field metadata_kv_count", "exceeds the limit");
  put_u64(c + 16, 60000);
  EXPECT_FAIL(c, b.n, "metadata_kv_count=60000", "need at least");
  /* One tensor more than the file has: entry 20 is read from the padding
   * and the data. */
  memcpy(c, b.p, b.n);
  put_u64(c + 8, 21);
  EXPECT_FAIL(c, b.n, "tensor 20");
  free(c);
  free(b.p);
}

/* A copy of tiny_q4_1.gguf with one change, expected to fail. */
#define MUTATE(b, c, stmt, ...)            \
  do {                                     \
    memcpy((c), (b).p, (b).n);             \
    stmt;                                  \
    EXPECT_FAIL((c), (b).n, __VA_ARGS__);  \
  } while (0)

Test(gguf, metadata_fields) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  unsigned char *c = malloc(b.n);
  size_t first_key = 24; /* entry 0's key length */
  MUTATE(b, c, put_u64(c + first_key, 1ull << 63), "metadata entry 0 key length", "exceeds the limit 1024");
  MUTATE(b, c, put_u64(c + first_key, 1000), "metadata entry 0 key", "outside printable ASCII");
  MUTATE(b, c, put_u64(c + first_key, 0), "metadata entry 0 key", "empty");
  MUTATE(b, c, c[first_key + 9] = '\n', "metadata entry 0 key", "printable ASCII");
  size_t t = kv_type_at(&b, "deco.test.u8");
  MUTATE(b, c, put_u32(c + t, 13), "('deco.test.u8') value type", "13 is not a GGUF value type");
  t = kv_type_at(&b, "deco.test.bool");
  MUTATE(b, c, c[t + 4] = 2, "('deco.test.bool') value", "bool value 2 is not 0 or 1");
  t = kv_type_at(&b, "deco.test.string");
  MUTATE(b, c, put_u64(c + t + 4, 1ull << 62), "('deco.test.string') value", "exceeds the limit 16777216");
  MUTATE(b, c, put_u64(c + t + 4, 1u << 20), "('deco.test.string') value", "truncated");
  t = kv_type_at(&b, "deco.test.ints");
  MUTATE(b, c, put_u32(c + t + 4, 9), "('deco.test.ints') array element type", "arrays of arrays");
  MUTATE(b, c, put_u32(c + t + 4, 99), "('deco.test.ints') array element type", "99 is not a GGUF value type");
  MUTATE(b, c, put_u64(c + t + 8, 1ull << 40), "('deco.test.ints') array length", "exceeds the limit 16777216");
  MUTATE(b, c, put_u64(c + t + 8, 1u << 20), "('deco.test.ints') array length", "need at least 4194304 bytes");
  t = kv_type_at(&b, "tokenizer.ggml.tokens");
  MUTATE(b, c, put_u64(c + t + 16, 1ull << 50), "('tokenizer.ggml.tokens') array element 0",
         "exceeds the limit 16777216");
  t = kv_type_at(&b, "deco.test.bools");
  MUTATE(b, c, c[t + 16 + 1] = 7, "('deco.test.bools') array element 1", "bool value 7");
  /* Duplicate keys: deco.test.u8 renamed deco.test.i8. */
  t = find_str(&b, "deco.test.u8");
  MUTATE(b, c, c[t + 8 + 10] = 'i', "metadata key 'deco.test.i8' appears twice");
  /* general.alignment: a power of two in 8..65536, a uint32. */
  t = kv_type_at(&b, "general.alignment");
  MUTATE(b, c, put_u32(c + t + 4, 48), "general.alignment = 48 is not a power of two");
  MUTATE(b, c, put_u32(c + t + 4, 4), "general.alignment = 4");
  MUTATE(b, c, put_u32(c + t, DECO_GGUF_VAL_INT32), "general.alignment has type int32, expected uint32");
  free(c);
  free(b.p);
}

Test(gguf, tensor_fields) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  unsigned char *c = malloc(b.n);
  const char *q = "blk.0.attn_q.weight";
  size_t name = find_str(&b, q), nd = tensor_at(&b, q), ty = tensor_type_at(&b, q);
  size_t off = ty + 4;
  MUTATE(b, c, put_u64(c + name, 64), "name length", "64 exceeds the limit 63");
  MUTATE(b, c, put_u64(c + name, 0), "name", "empty");
  MUTATE(b, c, c[name + 8 + 3] = 0x01, "name", "printable ASCII");
  MUTATE(b, c, put_u32(c + nd, 0), "('blk.0.attn_q.weight') n_dims", "0 is outside 1..4");
  MUTATE(b, c, put_u32(c + nd, 5), "('blk.0.attn_q.weight') n_dims", "5 is outside 1..4");
  MUTATE(b, c, put_u64(c + nd + 4, 0), "('blk.0.attn_q.weight') dims[0]", "a dimension is 0");
  MUTATE(b, c, (put_u64(c + nd + 4, 1ull << 40), put_u64(c + nd + 12, 1ull << 40)), "dims[1]",
         "larger than 281474976710656 elements");
  MUTATE(b, c, put_u64(c + nd + 4, 48), "('blk.0.attn_q.weight') type", "Q4_1 packs blocks of 32 elements",
         "dims[0] = 48");
  MUTATE(b, c, put_u32(c + ty, 99), "('blk.0.attn_q.weight') type", "99 is not a ggml tensor type");
  MUTATE(b, c, put_u32(c + ty, 4), "('blk.0.attn_q.weight') type", "4 is not a ggml tensor type");
  /* Q4_K needs blocks of 256: dims[0] = 64 is refused by the parse. */
  MUTATE(b, c, put_u32(c + ty, 12), "Q4_K packs blocks of 256 elements");
  /* Offsets: misaligned, absurd, overlapping, past the end. */
  uint64_t o = get_u64(b.p + off);
  MUTATE(b, c, put_u64(c + off, o + 1), "('blk.0.attn_q.weight') offset", "not a multiple of the alignment 64",
         "misaligned");
  MUTATE(b, c, put_u64(c + off, 1ull << 62), "('blk.0.attn_q.weight') data", "past the end of the file");
  MUTATE(b, c, put_u64(c + off, UINT64_MAX - 63), "('blk.0.attn_q.weight') data", "past the end of the file");
  MUTATE(b, c, put_u64(c + off, o - 64), "('blk.0.attn_q.weight') offset", "overlaps tensor");
  const char *last = "output_norm.weight";
  size_t last_off = tensor_type_at(&b, last) + 4;
  MUTATE(b, c, put_u64(c + last_off, get_u64(b.p + last_off) + 64), "('output_norm.weight') data",
         "past the end of the file");
  /* Duplicate tensor names: blk.0.ffn_up renamed blk.1.ffn_up. */
  size_t up = find_str(&b, "blk.0.ffn_up.weight");
  MUTATE(b, c, c[up + 8 + 4] = '1', "tensor name 'blk.1.ffn_up.weight' appears twice");
  free(c);
  free(b.p);
}

Test(gguf, llama_checks) {
  blob_t b = load_fixture("tiny_q4_1.gguf");
  unsigned char *c = malloc(b.n);
  size_t arch = kv_type_at(&b, "general.architecture");
  MUTATE(b, c, memcpy(c + arch + 12, "qwen2", 5), "general.architecture is 'qwen2'", "'llama' architecture only");
  MUTATE(b, c, memcpy(c + arch + 12, "ll\nma", 5), "general.architecture is 'll\\x0ama'");
  size_t ctxlen = find_str(&b, "llama.context_length");
  MUTATE(b, c, c[ctxlen + 8 + 19] = 'X', "metadata llama.context_length is missing");
  /* An unsupported tensor type, refused by name: output_norm (F32) as I32. */
  MUTATE(b, c, put_u32(c + tensor_type_at(&b, "output_norm.weight"), 26),
         "tensor output_norm.weight has type I32, which deco does not read");
  MUTATE(b, c, put_u32(c + tensor_type_at(&b, "blk.1.ffn_norm.weight"), 28 /* F64: 8 bytes each */),
         "tensor 16 ('blk.1.ffn_gate.weight') offset", "overlaps tensor 15 ('blk.1.ffn_norm.weight')");
  /* Shapes that contradict the metadata. */
  struct {
    const char *key;
    uint32_t value;
    const char *f1, *f2;
  } meta[] = {
      {"llama.embedding_length", 32, "llama.rope.dimension_count = 16 differs from the head dim 8", NULL},
      {"llama.feed_forward_length", 128, "tensor blk.0.ffn_gate.weight has shape [64, 96]", "implies [64, 128]"},
      {"llama.attention.head_count_kv", 1, "tensor blk.0.attn_k.weight has shape [64, 32]", "implies [64, 16]"},
      {"llama.attention.head_count_kv", 3, "head_count = 4 is not a multiple of llama.attention.head_count_kv = 3",
       NULL},
      {"llama.attention.head_count", 16, "head dim = llama.embedding_length / llama.attention.head_count", "= 4"},
      {"llama.attention.head_count", 3, "embedding_length = 64 is not a multiple of", NULL},
      {"llama.block_count", 3, "tensor blk.2.attn_norm.weight is missing", NULL},
      {"llama.block_count", 1, "tensor 10 ('blk.1.attn_norm.weight') belongs to layer 1", "block_count = 1"},
      {"llama.block_count", 0, "llama.block_count = 0 is outside 1..1024", NULL},
      {"llama.rope.dimension_count", 8, "rope.dimension_count = 8 differs from the head dim 16", NULL},
      {"llama.vocab_size", 70, "tokenizer.ggml.tokens has 72 tokens but the vocabulary is 70", NULL},
      {"tokenizer.ggml.bos_token_id", 72, "tokenizer.ggml.bos_token_id = 72 is outside 0..71", NULL},
      {"llama.context_length", 0, "llama.context_length = 0 is outside", NULL},
  };
  for (size_t k = 0; k < sizeof meta / sizeof meta[0]; ++k) {
    size_t t = kv_type_at(&b, meta[k].key);
    cr_assert_eq(get_u32(b.p + t), DECO_GGUF_VAL_UINT32, "%s", meta[k].key);
    MUTATE(b, c, put_u32(c + t + 4, meta[k].value), meta[k].f1, meta[k].f2 ? meta[k].f2 : meta[k].f1);
  }
  size_t eps = kv_type_at(&b, "llama.attention.layer_norm_rms_epsilon");
  float bad_eps = -1.0f, nan = NAN;
  MUTATE(b, c, memcpy(c + eps + 4, &bad_eps, 4), "layer_norm_rms_epsilon = -1 is not within (0, 1)");
  MUTATE(b, c, memcpy(c + eps + 4, &nan, 4), "layer_norm_rms_epsilon = nan");
  size_t theta = kv_type_at(&b, "llama.rope.freq_base");
  MUTATE(b, c, memcpy(c + theta + 4, &nan, 4), "llama.rope.freq_base = nan is not a finite value > 1");
  MUTATE(b, c, put_u32(c + theta, DECO_GGUF_VAL_UINT32), "llama.rope.freq_base has type uint32, expected a float");
  /* A tensor that is no llama's: output_norm renamed outpux_norm. */
  size_t on = find_str(&b, "output_norm.weight");
  MUTATE(b, c, c[on + 8 + 5] = 'x', "tensor 19 ('outpux_norm.weight') is not a tensor of a llama model");
  MUTATE(b, c, memcpy(c + on + 8, "rope_freqs.weight\0", 18), "name", "printable ASCII");
  size_t l01 = find_str(&b, "blk.1.attn_q.weight");
  MUTATE(b, c, memcpy(c + l01 + 8, "blk.01", 6), "('blk.01attn_q.weight') is not a tensor of a llama model");
  free(c);
  free(b.p);
}

/* ---- models built here: keys and tensors the fixtures lack ------------- */

typedef struct gb {
  unsigned char *p;
  size_t n, cap;
} gb_t;

static void gb_put(gb_t *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 256;
    b->p = realloc(b->p, b->cap);
    cr_assert_not_null(b->p);
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}
static void gb_u32(gb_t *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gb_t *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gb_t *b, const char *s) {
  gb_u64(b, strlen(s));
  gb_put(b, s, strlen(s));
}
static void kv_u32(gb_t *b, const char *k, uint32_t v) {
  gb_str(b, k);
  gb_u32(b, DECO_GGUF_VAL_UINT32);
  gb_u32(b, v);
}
static void kv_f32(gb_t *b, const char *k, float v) {
  gb_str(b, k);
  gb_u32(b, DECO_GGUF_VAL_FLOAT32);
  gb_put(b, &v, 4);
}
static void kv_str(gb_t *b, const char *k, const char *v) {
  gb_str(b, k);
  gb_u32(b, DECO_GGUF_VAL_STRING);
  gb_str(b, v);
}

/* A whole F32 llama (dim 32, 2 heads of 16, 1 KV head, hidden 32, vocab 8,
 * 1 layer, tied) plus extra entries: n_extra_kv metadata entries written by
 * extra_kv and the named extra tensors, shaped [32] (F32). */
static int g_kv_heads_array; /* write llama.attention.head_count_kv as a per-layer array */

static gb_t build_llama(void (*extra_kv)(gb_t *), int n_extra_kv, const char *const *extra_tensors) {
  static const struct {
    const char *name;
    uint64_t d0, d1;
  } ts[] = {{"token_embd.weight", 32, 8},      {"blk.0.attn_norm.weight", 32, 1}, {"blk.0.attn_q.weight", 32, 32},
            {"blk.0.attn_k.weight", 32, 16},   {"blk.0.attn_v.weight", 32, 16},   {"blk.0.attn_output.weight", 32, 32},
            {"blk.0.ffn_norm.weight", 32, 1},  {"blk.0.ffn_gate.weight", 32, 32}, {"blk.0.ffn_up.weight", 32, 32},
            {"blk.0.ffn_down.weight", 32, 32}, {"output_norm.weight", 32, 1}};
  int n_base = sizeof ts / sizeof ts[0], n_extra = 0;
  while (extra_tensors && extra_tensors[n_extra]) n_extra++;
  gb_t b = {NULL, 0, 0};
  gb_put(&b, "GGUF", 4);
  gb_u32(&b, 3);
  gb_u64(&b, (uint64_t)(n_base + n_extra));
  gb_u64(&b, 9 + (uint64_t)n_extra_kv);
  kv_str(&b, "general.architecture", "llama");
  kv_u32(&b, "llama.block_count", 1);
  kv_u32(&b, "llama.context_length", 64);
  kv_u32(&b, "llama.embedding_length", 32);
  kv_u32(&b, "llama.feed_forward_length", 32);
  kv_u32(&b, "llama.attention.head_count", 2);
  if (g_kv_heads_array) {
    gb_str(&b, "llama.attention.head_count_kv");
    gb_u32(&b, DECO_GGUF_VAL_ARRAY);
    gb_u32(&b, DECO_GGUF_VAL_UINT32);
    gb_u64(&b, 1);
    gb_u32(&b, 1);
  } else {
    kv_u32(&b, "llama.attention.head_count_kv", 1);
  }
  kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
  kv_f32(&b, "llama.rope.freq_base", 500000.0f);
  if (extra_kv) extra_kv(&b);
  uint64_t off = 0, sizes[32];
  for (int i = 0; i < n_base + n_extra; ++i) {
    const char *nm = i < n_base ? ts[i].name : extra_tensors[i - n_base];
    uint64_t d0 = i < n_base ? ts[i].d0 : 32, d1 = i < n_base ? ts[i].d1 : 1;
    gb_str(&b, nm);
    gb_u32(&b, d1 == 1 ? 1 : 2);
    gb_u64(&b, d0);
    if (d1 != 1) gb_u64(&b, d1);
    gb_u32(&b, DECO_GGUF_F32);
    gb_u64(&b, off);
    sizes[i] = d0 * d1 * 4;
    off += (sizes[i] + 31) / 32 * 32;
  }
  while (b.n % 32) gb_put(&b, "", 1);
  for (int i = 0; i < n_base + n_extra; ++i) {
    size_t padded = (sizes[i] + 31) / 32 * 32;
    for (size_t k = 0; k < padded / 4; ++k) {
      float v = k < sizes[i] / 4 ? 0.01f * (float)(k % 17) : 0.0f;
      gb_put(&b, &v, 4);
    }
  }
  return b;
}

static void kv_none(gb_t *b) { (void)b; }
static void kv_experts(gb_t *b) { kv_u32(b, "llama.expert_count", 8); }
static void kv_yarn(gb_t *b) { kv_str(b, "llama.rope.scaling.type", "yarn"); }
static void kv_scaling_none(gb_t *b) { kv_str(b, "llama.rope.scaling.type", "none"); }
/* A factor alone scales linearly; with the type "none", or as 1 or 0, it does not. */
static void kv_factor(gb_t *b) { kv_f32(b, "llama.rope.scaling.factor", 4.0f); }
static void kv_scale_linear(gb_t *b) { kv_f32(b, "llama.rope.scale_linear", 2.0f); }
static void kv_factor_one(gb_t *b) { kv_f32(b, "llama.rope.scaling.factor", 1.0f); }
static void kv_factor_none(gb_t *b) {
  kv_str(b, "llama.rope.scaling.type", "none");
  kv_f32(b, "llama.rope.scaling.factor", 4.0f);
}
static void kv_key_length(gb_t *b) { kv_u32(b, "llama.attention.key_length", 32); }
static void kv_tokens_u32(gb_t *b) { kv_u32(b, "tokenizer.ggml.tokens", 8); }
static void kv_eot(gb_t *b) {
  kv_u32(b, "tokenizer.ggml.eos_token_id", 7);
  kv_u32(b, "tokenizer.ggml.eot_token_id", 6);
}

/* tokenizer.ggml.tokens: the vocabulary's 8 ids. */
static void kv_token_list(gb_t *b, const char *const toks[8]) {
  gb_str(b, "tokenizer.ggml.tokens");
  gb_u32(b, DECO_GGUF_VAL_ARRAY);
  gb_u32(b, DECO_GGUF_VAL_STRING);
  gb_u64(b, 8);
  for (int i = 0; i < 8; ++i) gb_str(b, toks[i]);
}
/* A token list with "<|endoftext|>" at id 5 (and a near miss at 3), EOS 7. */
static void kv_tokens(gb_t *b) {
  static const char *const toks[8] = {"a", "b", "c", "<|endoftext|", "d", "<|endoftext|>", "e", "</s>"};
  kv_token_list(b, toks);
  kv_u32(b, "tokenizer.ggml.eos_token_id", 7);
}
/* The same with EOS = <|endoftext|>: one stop id. */
static void kv_tokens_eos5(gb_t *b) {
  static const char *const toks[8] = {"a", "b", "c", "d", "e", "<|endoftext|>", "f", "g"};
  kv_token_list(b, toks);
  kv_u32(b, "tokenizer.ggml.eos_token_id", 5);
  kv_u32(b, "tokenizer.ggml.bos_token_id", 5);
}

Test(gguf, built_models) {
  gb_t m = build_llama(kv_none, 0, NULL);
  deco_gguf_t g = parse_ok(m.p, m.n, "built.gguf");
  deco_model_hparams_t h;
  cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(h.dim == 32 && h.n_heads == 2 && h.n_kv_heads == 1 && h.head_dim == 16 && h.vocab_size == 8 &&
            h.shared_classifier && h.rope_theta == 500000.0f && h.norm_eps == 1e-6f && h.bos_id == -1 &&
            h.n_stop_ids == 0);
  deco_gguf_free(&g);
  free(m.p);

  m = build_llama(kv_eot, 2, NULL);
  g = parse_ok(m.p, m.n, "built.gguf");
  cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(h.n_stop_ids == 2 && h.stop_ids[0] == 7 && h.stop_ids[1] == 6);
  deco_gguf_free(&g);
  free(m.p);

  /* <|endoftext|> stops a run too (SmolLM2: EOS is <|im_end|> 2, and
   * <|endoftext|> is 0); each stop id once; BOS is none of them. */
  m = build_llama(kv_tokens, 2, NULL);
  g = parse_ok(m.p, m.n, "built.gguf");
  cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(h.n_stop_ids == 2 && h.stop_ids[0] == 7 && h.stop_ids[1] == 5 && h.bos_id == -1, "%d stop ids",
            h.n_stop_ids);
  deco_gguf_free(&g);
  free(m.p);
  m = build_llama(kv_tokens_eos5, 3, NULL);
  g = parse_ok(m.p, m.n, "built.gguf");
  cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert(h.n_stop_ids == 1 && h.stop_ids[0] == 5 && h.bos_id == 5, "%d stop ids", h.n_stop_ids);
  deco_gguf_free(&g);
  free(m.p);

  static const struct {
    void (*kv)(gb_t *);
    int n_kv;
  } unscaled[] = {{kv_scaling_none, 1}, {kv_factor_one, 1}, {kv_factor_none, 2}};
  for (size_t k = 0; k < sizeof unscaled / sizeof unscaled[0]; ++k) {
    m = build_llama(unscaled[k].kv, unscaled[k].n_kv, NULL);
    g = parse_ok(m.p, m.n, "built.gguf");
    cr_assert_eq(deco_gguf_llama_hparams(&g, &h), DECO_STATUS_SUCCESS, "case %zu: %s", k, deco_last_error(NULL));
    deco_gguf_free(&g);
    free(m.p);
  }

  static const struct {
    void (*kv)(gb_t *);
    int n_kv;
    const char *tensor;
    const char *frag;
  } bad[] = {
      {kv_experts, 1, NULL, "llama.expert_count = 8: a mixture of experts"},
      {kv_yarn, 1, NULL, "llama.rope.scaling.type is 'yarn'; deco runs unscaled RoPE only"},
      {kv_factor, 1, NULL, "llama.rope.scaling.factor = 4 scales RoPE linearly (no llama.rope.scaling.type)"},
      {kv_scale_linear, 1, NULL, "llama.rope.scale_linear = 2 scales RoPE linearly (no llama.rope.scaling.type)"},
      {kv_key_length, 1, NULL, "key_length = 32 / value_length = 16 differ from the head dim 16"},
      {kv_tokens_u32, 1, NULL, "metadata tokenizer.ggml.tokens has type uint32, expected an array of strings"},
      {kv_none, 0, "blk.0.attn_q.bias", "tensor 11 ('blk.0.attn_q.bias') is not a tensor of a llama model"},
      {kv_none, 0, "rope_freqs.weight", "tensor rope_freqs.weight (Llama 3.1 RoPE frequency factors)"},
      {kv_none, 0, "output.weight", "tensor output.weight has shape [32] but the metadata implies [32, 8]"},
      {kv_none, 0, "blk.0.ffn_norm.weight", "tensor name 'blk.0.ffn_norm.weight' appears twice"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
    const char *extra[2] = {bad[k].tensor, NULL};
    m = build_llama(bad[k].kv, bad[k].n_kv, bad[k].tensor ? extra : NULL);
    EXPECT_FAIL(m.p, m.n, bad[k].frag);
    free(m.p);
  }
  g_kv_heads_array = 1;
  m = build_llama(kv_none, 0, NULL);
  g_kv_heads_array = 0;
  EXPECT_FAIL(m.p, m.n, "metadata llama.attention.head_count_kv is an array (a value per layer)");
  free(m.p);
}

/* The downloaded SmolLM2 files: tests/test_smollm2.c (label model). */

/* deco_gguf_check_finite on hand-made tensors of every type it reads (and
 * two it does not): the status and exact message of each refusal, and the
 * finite tensors it passes. */
static void expect_finite_refusal(const deco_gguf_t *g, const deco_gguf_tensor_t *t, deco_status_t status,
                                  const char *message) {
  deco_test_refused(NULL, deco_gguf_check_finite(g, t), status, message);
}

Test(gguf, check_finite_each_type) {
  char name[] = "hand.gguf";
  deco_gguf_t g;
  memset(&g, 0, sizeof g);
  g.name = name;
  deco_gguf_tensor_t t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "w");
  expect_finite_refusal(NULL, &t, DECO_STATUS_NULL_POINTER, "deco_gguf_check_finite: g or t is NULL");
  expect_finite_refusal(&g, NULL, DECO_STATUS_NULL_POINTER, "deco_gguf_check_finite: g or t is NULL");

  /* Element types: the first bad element is named, nan or inf. */
  float f32[4] = {1.0f, -0.0f, -INFINITY, NAN};
  uint16_t f16[3] = {0x3c00, 0x7bff, 0x7e00};  /* 1, the largest f16, nan */
  uint16_t bf16[3] = {0x3f80, 0x7f80, 0x7fc0}; /* 1, inf, nan */
  static const struct {
    uint32_t type;
    int data;          /* 0 f32, 1 f16, 2 bf16 */
    uint64_t n_finite; /* a prefix that passes */
    uint64_t n;
    const char *message;
  } elems[] = {{DECO_GGUF_F32, 0, 2, 4, "hand.gguf: tensor w, element 2 (of 4) is inf"},
               {DECO_GGUF_F16, 1, 2, 3, "hand.gguf: tensor w, element 2 (of 3) is nan"},
               {DECO_GGUF_BF16, 2, 1, 3, "hand.gguf: tensor w, element 1 (of 3) is inf"}};
  const void *data[3] = {f32, f16, bf16};
  for (size_t e = 0; e < sizeof elems / sizeof elems[0]; ++e) {
    t.type = elems[e].type;
    t.data = data[elems[e].data];
    t.n_elements = elems[e].n_finite;
    cr_assert_eq(deco_gguf_check_finite(&g, &t), DECO_STATUS_SUCCESS, "case %zu: %s", e, deco_last_error(NULL));
    t.n_elements = elems[e].n;
    expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT, elems[e].message);
  }
  f16[2] = 0xfc00; /* -inf */
  t.type = DECO_GGUF_F16;
  t.data = (const unsigned char *)f16;
  t.n_elements = 3;
  expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT, "hand.gguf: tensor w, element 2 (of 3) is inf");

  /* Block types: only the scales are read (the quants cannot be non-finite);
   * block 1 holds the bad one, d named before m. */
  unsigned char blocks[2 * 34];
  memset(blocks, 0x11, sizeof blocks);
  const unsigned char one[2] = {0x00, 0x3c}, inf[2] = {0x00, 0x7c}, nan[2] = {0x00, 0x7e};
  static const struct {
    uint32_t type, bytes;
  } quant[] = {{DECO_GGUF_Q4_0, DECO_GGUF_Q4_0_BYTES}, {DECO_GGUF_Q4_1, DECO_GGUF_Q4_1_BYTES},
               {DECO_GGUF_Q8_0, DECO_GGUF_Q8_0_BYTES}};
  for (size_t q = 0; q < sizeof quant / sizeof quant[0]; ++q) {
    const char *tn = deco_gguf_type_name(quant[q].type);
    char want[256];
    memcpy(blocks, one, 2);
    memcpy(blocks + 2, one, 2);
    memcpy(blocks + quant[q].bytes, one, 2);
    memcpy(blocks + quant[q].bytes + 2, one, 2);
    t.type = quant[q].type;
    t.data = blocks;
    t.n_elements = 2 * DECO_GGUF_QK;
    cr_assert_eq(deco_gguf_check_finite(&g, &t), DECO_STATUS_SUCCESS, "%s: %s", tn, deco_last_error(NULL));
    memcpy(blocks + quant[q].bytes, nan, 2);
    snprintf(want, sizeof want, "hand.gguf: tensor w, block 1 (of 2) has a %s scale d = nan", tn);
    expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT, want);
    memcpy(blocks + quant[q].bytes, inf, 2);
    snprintf(want, sizeof want, "hand.gguf: tensor w, block 1 (of 2) has a %s scale d = inf", tn);
    expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT, want);
    /* A bad second f16 in the block: Q4_1's m; the others' first quants. */
    memcpy(blocks + quant[q].bytes, one, 2);
    memcpy(blocks + quant[q].bytes + 2, nan, 2);
    if (quant[q].type == DECO_GGUF_Q4_1) {
      expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT,
                            "hand.gguf: tensor w, block 1 (of 2) has a Q4_1 scale m = nan");
      memcpy(blocks + quant[q].bytes, inf, 2);
      expect_finite_refusal(&g, &t, DECO_STATUS_BAD_FORMAT,
                            "hand.gguf: tensor w, block 1 (of 2) has a Q4_1 scale d = inf");
    } else {
      cr_assert_eq(deco_gguf_check_finite(&g, &t), DECO_STATUS_SUCCESS, "%s: %s", tn, deco_last_error(NULL));
    }
  }

  /* Types it does not read: named, or '?' for an id ggml does not have. */
  t.type = 12;
  expect_finite_refusal(&g, &t, DECO_STATUS_UNSUPPORTED, "hand.gguf: tensor w has type Q4_K, which deco does not read");
  t.type = 99;
  expect_finite_refusal(&g, &t, DECO_STATUS_UNSUPPORTED, "hand.gguf: tensor w has type ?, which deco does not read");
}
