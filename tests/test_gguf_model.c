/* tests/test_gguf_model.c — GGUF models end to end on the CPU, on the tiny
 * fixtures of data/fixtures/gguf/ (one per tensor type deco reads, made by
 * scripts/gguf/make_fixtures.py): the deco_dequant op bitwise against the
 * gguf package's values (every type into f32, f16 and bf16, inputs at odd
 * addresses) and its argument checks; the loader's forward, teacher-forced,
 * against the float64 reference's top-16 logits (tolerances.h:
 * DECO_TOL_GGUF_REF*); the path, buffer and magic-dispatch loaders agreeing
 * bit for bit; bad input for the loader (a config that contradicts the
 * file, a missing file, a FIFO, a non-llama architecture, a NaN weight);
 * and the CLI on GGUF files: ids, the file's stop ids, the default prompt
 * rule, errors naming the file and field. SmolLM2 itself: test_smollm2.c.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../host/model/gguf.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"
#include "deco/deco.h"

static const char *const tiny_files[] = {"tiny_f32", "tiny_f16", "tiny_bf16", "tiny_q8_0",
                                         "tiny_q4_0", "tiny_q4_1", "tiny_v2"};
#define N_TINY (sizeof tiny_files / sizeof tiny_files[0])

static const char *fixture(const char *name, const char *ext) {
  char rel[128];
  snprintf(rel, sizeof rel, "fixtures/gguf/%s%s", name, ext);
  return deco_test_data_file(rel);
}

typedef struct blob {
  unsigned char *p;
  size_t n;
} blob_t;

static blob_t read_blob(const char *path) {
  blob_t b;
  b.p = deco_test_read_file(path, &b.n);
  cr_assert_not_null(b.p, "cannot read %s", path);
  return b;
}

/* Offset of the value of metadata key (after its uint32 type). */
static size_t kv_value_at(const blob_t *b, const char *key) {
  const size_t n = strlen(key);
  unsigned char pat[128];
  const uint64_t len = n;
  memcpy(pat, &len, 8);
  memcpy(pat + 8, key, n);
  const unsigned char *hit = memmem(b->p, b->n, pat, n + 8);
  cr_assert_not_null(hit, "'%s' not in the file", key);
  return (size_t)(hit - b->p) + 8 + n + 4;
}

/* A fixture's comma-separated ids as --print-ids prints them. */
static char *ids_line(const char *rel) {
  char *line = deco_test_fixture_line(rel);
  for (char *c = line; *c; ++c)
    if (*c == ',') *c = ' ';
  return line;
}

static const char *tmp_file(const char *name, const blob_t *b) {
  static char bufs[4][4200];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, sizeof bufs[0], "%s/%s", deco_test_tmpdir(), name);
  cr_assert_eq(deco_test_write_file(p, b->p, b->n), 0, "cannot write %s", p);
  return p;
}

/* ---- the dequantisation op ----------------------------------------------- */

/* Every tensor of every tiny file (the first 256 values, which the gguf
 * package's dequantisers wrote to .expect.f32): deco_dequant on the CPU
 * gives the package's bits in f32 and their round-to-nearest-even in f16 and
 * bf16, from an input at an odd address. */
Test(gguf_model, dequant_op_bitwise_against_the_gguf_package) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const deco_dtype_t dtypes[3] = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};
  int seen[64] = {0};
  for (size_t f = 0; f < N_TINY; ++f) {
    blob_t b = read_blob(fixture(tiny_files[f], ".gguf"));
    blob_t expect = read_blob(fixture(tiny_files[f], ".expect.f32"));
    deco_gguf_t g;
    cr_assert_eq(deco_gguf_parse(b.p, b.n, tiny_files[f], &g), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    size_t e = 0;
    for (uint64_t i = 0; i < g.n_tensors; ++i) {
      const deco_gguf_tensor_t *t = &g.tensors[i];
      const size_t n = t->n_elements < 256 ? (size_t)t->n_elements : 256;
      const size_t bytes = deco_quant_bytes((deco_quant_type_t)t->type, n);
      cr_assert(bytes > 0, "%s: %s: type %u n %zu", tiny_files[f], t->name, t->type, n);
      cr_assert_str_eq(deco_quant_type_name((deco_quant_type_t)t->type), deco_gguf_type_name(t->type));
      seen[t->type] = 1;
      unsigned char *odd = malloc(bytes + 1);
      memcpy(odd + 1, t->data, bytes);
      for (int d = 0; d < 3; ++d) {
        const size_t es = deco_dtype_size(dtypes[d]);
        unsigned char *out = malloc(n * es + 16);
        memset(out, 0xFF, n * es + 16);
        deco_dequant_args_t a = DECO_DEQUANT_ARGS_INIT;
        a.type = (deco_quant_type_t)t->type;
        a.out_dtype = dtypes[d];
        a.n = n;
        a.in = odd + 1;
        a.out = out;
        cr_assert_eq(deco_dequant(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
        for (size_t k = 0; k < n; ++k) {
          float want;
          memcpy(&want, expect.p + 4 * (e + k), 4);
          uint32_t got_bits = 0, want_bits;
          if (dtypes[d] == DECO_DTYPE_F32) {
            memcpy(&got_bits, out + 4 * k, 4);
            memcpy(&want_bits, &want, 4);
          } else {
            uint16_t h;
            memcpy(&h, out + 2 * k, 2);
            got_bits = h;
            want_bits = dtypes[d] == DECO_DTYPE_F16 ? deco_f32_to_f16(want) : deco_f32_to_bf16(want);
          }
          cr_assert_eq(got_bits, want_bits, "%s: %s element %zu as %s: 0x%x, the gguf package gives 0x%x",
                       tiny_files[f], t->name, k, deco_dtype_name(dtypes[d]), got_bits, want_bits);
        }
        for (size_t k = n * es; k < n * es + 16; ++k) cr_assert_eq(out[k], 0xFF, "written past the end");
        free(out);
      }
      free(odd);
      e += n;
    }
    cr_assert_eq(e * 4, expect.n);
    deco_gguf_free(&g);
    free(expect.p);
    free(b.p);
  }
  const int types[6] = {DECO_QUANT_F32, DECO_QUANT_F16, DECO_QUANT_BF16, DECO_QUANT_Q8_0, DECO_QUANT_Q4_0,
                        DECO_QUANT_Q4_1};
  for (int i = 0; i < 6; ++i) cr_assert(seen[types[i]], "no tensor of type %d among the fixtures", types[i]);
  deco_ctx_destroy(ctx);
}

Test(gguf_model, dequant_op_arguments) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  unsigned char in[40] = {0};
  float out[64];
  deco_dequant_args_t a = {.type = DECO_QUANT_Q4_1, .out_dtype = DECO_DTYPE_F32, .n = 32, .in = in, .out = out};
  cr_assert_eq(deco_dequant(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_quant_bytes(DECO_QUANT_Q4_1, 64), 40);
  cr_assert_eq(deco_quant_bytes(DECO_QUANT_Q8_0, 31), 0);
  cr_assert_eq(deco_quant_bytes((deco_quant_type_t)12, 256), 0);
  cr_assert_str_eq(deco_quant_type_name((deco_quant_type_t)12), "?");
  static const struct {
    int type, dtype;
    size_t n;
    int in_null, out_null, overlap;
    deco_status_t status;
    const char *frag;
  } bad[] = {
      {12, DECO_DTYPE_F32, 256, 0, 0, 0, DECO_STATUS_UNSUPPORTED, "type = 12 is not a stored type deco reads"},
      {DECO_QUANT_Q4_0, 7, 32, 0, 0, 0, DECO_STATUS_INVALID_ARGUMENT, "out_dtype = 7 is not a dtype"},
      {DECO_QUANT_Q8_0, DECO_DTYPE_F32, 33, 0, 0, 0, DECO_STATUS_INVALID_ARGUMENT,
       "n = 33 is not a multiple of the Q8_0 block (32 elements)"},
      {DECO_QUANT_F32, DECO_DTYPE_F32, 4, 1, 0, 0, DECO_STATUS_NULL_POINTER, "in is NULL"},
      {DECO_QUANT_F32, DECO_DTYPE_F32, 4, 0, 1, 0, DECO_STATUS_NULL_POINTER, "out is NULL"},
      {DECO_QUANT_F16, DECO_DTYPE_F32, 8, 0, 0, 1, DECO_STATUS_INVALID_ARGUMENT, "out overlaps in"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
    deco_dequant_args_t b = {.type = (deco_quant_type_t)bad[k].type, .out_dtype = (deco_dtype_t)bad[k].dtype,
                             .n = bad[k].n, .in = bad[k].in_null ? NULL : in, .out = bad[k].out_null ? NULL : out};
    if (bad[k].overlap) b.out = in + 2;
    cr_assert_eq(deco_dequant(ctx, &b), bad[k].status, "case %zu: %s", k, deco_last_error(ctx));
    cr_assert(strstr(deco_last_error(ctx), bad[k].frag), "case %zu: %s", k, deco_last_error(ctx));
  }
  a.n = 0;
  cr_assert_eq(deco_dequant(ctx, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_dequant(NULL, &a), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_dequant(ctx, NULL), DECO_STATUS_NULL_POINTER);
  deco_ctx_destroy(ctx);
}

/* ---- the forward against the float64 reference --------------------------- */

/* Each tiny model, loaded from its path, teacher-forced on its fixture
 * sequence: the stored top-16 logits within DECO_TOL_GGUF_REF, the argmax
 * the reference's (or its runner-up at a near tie). The buffer loader and
 * deco_model_load give the same logits bit for bit. */
Test(gguf_model, tiny_forward_against_float64_reference) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  double worst = 0.0;
  int excused = 0;
  for (size_t f = 0; f < N_TINY; ++f) {
    const char *path = fixture(tiny_files[f], ".gguf");
    deco_test_topk_t t = deco_test_topk_read(fixture(tiny_files[f], ".topk"));
    deco_model_t *m = NULL;
    cr_assert_eq(deco_model_load_gguf(ctx, path, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    const deco_model_hparams_t *hp = deco_model_get_hparams(m);
    deco_model_hparams_t rh, mh;
    cr_assert_eq(deco_gguf_read_hparams(path, &rh), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert_eq(deco_model_read_hparams(path, &mh), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert(memcmp(&rh, hp, sizeof rh) == 0 && memcmp(&mh, hp, sizeof mh) == 0, "%s: hparams differ", path);
    cr_assert(hp->bos_id == 1 && hp->n_stop_ids == 1 && hp->stop_ids[0] == 2, "%s: special ids", path);
    cr_assert_eq(hp->rope_style, DECO_ROPE_INTERLEAVED);
    float *logits = deco_test_forward_all(m, t.input, t.T);
    deco_test_topk_report_t r = deco_test_topk_check(tiny_files[f], &t, logits, hp->vocab_size);
    cr_assert(r.bad_values == 0 && r.argmax_bad == 0, "%s: %d values outside the tolerance, %d argmax mismatches",
              tiny_files[f], r.bad_values, r.argmax_bad);
    if (r.max_ratio > worst) worst = r.max_ratio;
    excused += r.argmax_excused;

    /* The same file from memory (at an odd address) and through the magic. */
    blob_t b = read_blob(path);
    unsigned char *odd = malloc(b.n + 1);
    memcpy(odd + 1, b.p, b.n);
    deco_model_t *mb = NULL, *ml = NULL;
    cr_assert_eq(deco_model_load_gguf_buffer(ctx, odd + 1, b.n, "mem.gguf", NULL, &mb), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(ctx));
    cr_assert_eq(deco_model_load(ctx, path, NULL, &ml), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
    float *lb = deco_test_forward_all(mb, t.input, t.T), *ll = deco_test_forward_all(ml, t.input, t.T);
    const size_t bytes = sizeof(float) * (size_t)t.T * hp->vocab_size;
    cr_assert(memcmp(lb, logits, bytes) == 0 && memcmp(ll, logits, bytes) == 0, "%s: loaders differ", path);
    cr_assert_eq(deco_model_weight_bytes(mb), deco_model_weight_bytes(m));
    free(lb);
    free(ll);
    deco_model_destroy(mb);
    deco_model_destroy(ml);
    free(odd);
    free(b.p);
    free(logits);
    deco_model_destroy(m);
    deco_test_topk_free(&t);
  }
  fprintf(stderr, "tiny GGUF models: worst logit error %.3g of the tolerance, %d near ties excused\n", worst, excused);
  deco_ctx_destroy(ctx);
}

/* deco_model_load and deco_model_read_hparams take llama2.c checkpoints as
 * before. */
Test(gguf_model, magic_dispatch_reads_llama2c_too) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *path = deco_test_data_file("models/stories260K.bin");
  deco_model_hparams_t a, b;
  cr_assert_eq(deco_model_read_hparams(path, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_llama2c_read_hparams(path, &b), DECO_STATUS_SUCCESS);
  cr_assert(memcmp(&a, &b, sizeof a) == 0);
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(ctx, path, NULL, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_get_hparams(m)->vocab_size, 512);
  deco_model_destroy(m);
  /* A file too short for either magic is judged as a llama2.c header. */
  blob_t s = {(unsigned char *)"GG", 2};
  const char *p = tmp_file("short.bin", &s);
  cr_assert_eq(deco_model_read_hparams(p, &a), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "shorter than the 28-byte header"), "%s", deco_last_error(NULL));
  deco_ctx_destroy(ctx);
}

/* The header readers of a file held in memory read what the path readers
 * read, bit for bit, for both formats; their messages start with the name
 * given. */
Test(gguf_model, buffer_header_readers_equal_the_path_readers) {
  deco_model_hparams_t a, b;
  const char *stories = deco_test_data_file("models/stories260K.bin");
  blob_t s = read_blob(stories);
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  cr_assert_eq(deco_llama2c_read_hparams(stories, &a), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_llama2c_read_hparams_buffer(s.p, s.n, "stories260K.bin", &b), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert(memcmp(&a, &b, sizeof a) == 0, "llama2.c: the buffer's header differs");
  cr_assert_eq(deco_llama2c_read_hparams_buffer(s.p, s.n - 1, "held.bin", &b), DECO_STATUS_BAD_FORMAT);
  cr_assert(strncmp(deco_last_error(NULL), "held.bin", 8) == 0, "%s", deco_last_error(NULL));
  for (size_t k = 0; k < N_TINY; ++k) {
    const char *path = fixture(tiny_files[k], ".gguf");
    blob_t g = read_blob(path);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    cr_assert_eq(deco_gguf_read_hparams(path, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
    cr_assert_eq(deco_gguf_read_hparams_buffer(g.p, g.n, tiny_files[k], &b), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s: the buffer's header differs", tiny_files[k]);
    cr_assert_eq(deco_gguf_read_hparams_buffer(g.p, 16, "held.gguf", &b), DECO_STATUS_BAD_FORMAT);
    cr_assert(strncmp(deco_last_error(NULL), "held.gguf", 9) == 0, "%s", deco_last_error(NULL));
    free(g.p);
  }
  free(s.p);
}

/* ---- bad input for the loader -------------------------------------------- */

static void expect_load_fail(deco_ctx_t *ctx, const char *path, const deco_model_config_t *mc, deco_status_t status,
                             const char *f1, const char *f2) {
  deco_model_t *m = (deco_model_t *)&m; /* must be reset to NULL */
  DECO_TEST_REFUSED_NAMING(ctx, deco_model_load_gguf(ctx, path, mc, &m), status, NULL, f1, f2); /* f2 may be NULL */
  cr_assert_null(m);
  deco_model_t *m2 = NULL;
  cr_assert_eq(deco_model_load(ctx, path, mc, &m2), status, "deco_model_load: %s", deco_last_error(ctx));
  cr_assert_null(m2);
}

Test(gguf_model, config_that_contradicts_the_file) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  const char *path = fixture("tiny_q4_1", ".gguf"); /* 4 query heads, 2 KV heads, 2 layers */
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.n_kv_heads = 1; /* a valid compression: left to deco compress, unsupported at load */
  expect_load_fail(ctx, path, &mc, DECO_STATUS_UNSUPPORTED, "n_kv_heads = 1 differs from the checkpoint's 2",
                   "tiny_q4_1.gguf");
  mc.n_kv_heads = 3;
  expect_load_fail(ctx, path, &mc, DECO_STATUS_INVALID_ARGUMENT, "n_kv_heads = 3: a compressed model needs 1..2",
                   NULL);
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  const int first[1] = {1}, count[1] = {2};
  mc.schedule = (deco_layer_schedule_t){.n_groups = 1, .first = first, .count = count};
  expect_load_fail(ctx, path, &mc, DECO_STATUS_INVALID_ARGUMENT, "group 0 (layers 1..2)", "end before layer 2");
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.tp_size = 2;
  expect_load_fail(ctx, path, &mc, DECO_STATUS_NULL_POINTER, "tensor parallelism 2 needs a communicator", NULL);
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.dtype = DECO_DTYPE_BF16;
  expect_load_fail(ctx, path, &mc, DECO_STATUS_UNSUPPORTED, "bf16 is not supported on the CPU backend", NULL);
  mc = (deco_model_config_t)DECO_MODEL_CONFIG_INIT;
  mc.n_kv_heads = 2; /* the file's own count is fine */
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load_gguf(ctx, path, &mc, &m), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(gguf_model, missing_fifo_and_bad_files, .timeout = 60) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  char missing[4200], fifo[4200];
  snprintf(missing, sizeof missing, "%s/none.gguf", deco_test_tmpdir());
  expect_load_fail(ctx, missing, NULL, DECO_STATUS_IO_ERROR, missing, NULL);
  deco_model_hparams_t h;
  cr_assert_eq(deco_model_read_hparams(missing, &h), DECO_STATUS_IO_ERROR);
  cr_assert_eq(deco_gguf_read_hparams(missing, &h), DECO_STATUS_IO_ERROR);
  /* A FIFO is refused at once (the timeout turns a hang into a failure). */
  snprintf(fifo, sizeof fifo, "%s/fifo.gguf", deco_test_tmpdir());
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  expect_load_fail(ctx, fifo, NULL, DECO_STATUS_IO_ERROR, "not a regular file", NULL);
  cr_assert_eq(deco_model_read_hparams(fifo, &h), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"), "%s", deco_last_error(NULL));
  cr_assert_eq(deco_gguf_read_hparams(fifo, &h), DECO_STATUS_IO_ERROR);

  blob_t b = read_blob(fixture("tiny_q4_1", ".gguf"));
  blob_t c = {malloc(b.n), b.n};
  /* Another architecture. */
  memcpy(c.p, b.p, b.n);
  memcpy(c.p + kv_value_at(&c, "general.architecture") + 8, "qwen2", 5);
  const char *p = tmp_file("qwen2.gguf", &c);
  expect_load_fail(ctx, p, NULL, DECO_STATUS_BAD_FORMAT, "qwen2.gguf: metadata general.architecture is 'qwen2'",
                   "'llama' architecture only");
  cr_assert_eq(deco_model_read_hparams(p, &h), DECO_STATUS_BAD_FORMAT);
  /* Cut inside the tensor data. */
  c.n = b.n - 100;
  p = tmp_file("cut.gguf", &c);
  expect_load_fail(ctx, p, NULL, DECO_STATUS_BAD_FORMAT, "cut.gguf: tensor", "past the end of the file");
  /* A block scale that is not finite: refused before anything is allocated. */
  c.n = b.n;
  memcpy(c.p, b.p, b.n);
  deco_gguf_t g;
  cr_assert_eq(deco_gguf_parse(c.p, c.n, "x", &g), DECO_STATUS_SUCCESS);
  const deco_gguf_tensor_t *t = deco_gguf_find_tensor(&g, "blk.1.ffn_down.weight");
  const unsigned char inf_f16[2] = {0x00, 0x7c};
  memcpy((unsigned char *)t->data + 20 * 3, inf_f16, 2);
  deco_gguf_free(&g);
  p = tmp_file("inf.gguf", &c);
  expect_load_fail(ctx, p, NULL, DECO_STATUS_BAD_FORMAT, "inf.gguf: tensor blk.1.ffn_down.weight, block 3",
                   "scale d = inf");
  /* The buffer loader names the buffer. */
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load_gguf_buffer(ctx, c.p, c.n, NULL, NULL, &m), DECO_STATUS_BAD_FORMAT);
  cr_assert(strncmp(deco_last_error(ctx), "(buffer): ", 10) == 0, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_load_gguf_buffer(ctx, NULL, 10, "x", NULL, &m), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_model_load_gguf(NULL, p, NULL, &m), DECO_STATUS_NULL_POINTER);
  free(c.p);
  free(b.p);
  deco_ctx_destroy(ctx);
}

/* ---- the CLI ------------------------------------------------------------- */

/* --prompt-ids with --print-ids gives the float64 reference's greedy ids
 * (tiny_q4_1: no near tie on the way); the stop ids come from the file. */
Test(gguf_model, cli_generates_from_gguf) {
  deco_test_run_t r;
  const char *path = fixture("tiny_q4_1", ".gguf");
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--prompt-ids", "5", "--steps", "15", "--temperature", "0",
                    "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *want = ids_line("fixtures/gguf/tiny_q4_1.ids");
  cr_assert_str_eq(r.out, want);
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=15 ") && strstr(r.err, " model=tiny_q4_1.gguf"), "%s", r.err);
  free(want);
  deco_test_run_free(&r);

  /* tiny_f32's greedy run reaches EOS (2, tokenizer.ggml.eos_token_id) at
   * position 16: the run stops there, the stop id unprinted; with
   * --ignore-eos it goes on. */
  path = fixture("tiny_f32", ".gguf");
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--prompt-ids", "5", "--steps", "40", "--temperature", "0",
                    "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  want = ids_line("fixtures/gguf/tiny_f32.ids");
  cr_assert_str_eq(r.out, want);
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=15 "), "%s", r.err);
  free(want);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--prompt-ids", "5", "--steps", "40", "--temperature", "0",
                    "--print-ids", "--backend", "cpu", "--ignore-eos");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, " 2 ") || strstr(r.out, " 2\n"), "%s", r.out);
  cr_assert(strstr(deco_test_last_line(r.err), "tokens=40 "), "%s", r.err);
  deco_test_run_free(&r);

  /* No prompt: the file's BOS (1) starts the run. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", path, "--steps", "3", "--temperature", "0", "--print-ids", "--backend",
                    "cpu", "--ignore-eos");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "1 ", 2) == 0, "%s", r.out);
  deco_test_run_free(&r);
}

/* A SentencePiece model's text continues its prompt's: tiny_f32 with every
 * "tok<N>" token renamed "\u2581<N>" (same length, nothing moves) decodes
 * id N to " N". After a prompt of text the reply keeps its leading space,
 * as a byte-level BPE reply does; after a BOS alone the text starts
 * without it (docs/CLI.md, "Text out"). */
Test(gguf_model, a_sentencepiece_reply_continues_the_prompt) {
  blob_t b = read_blob(fixture("tiny_f32", ".gguf"));
  int renamed = 0;
  for (size_t i = 0; i + 3 < b.n; ++i)
    if (memcmp(b.p + i, "tok", 3) == 0 && b.p[i + 3] >= '0' && b.p[i + 3] <= '9') {
      memcpy(b.p + i, "\xe2\x96\x81", 3);
      ++renamed;
    }
  cr_assert_eq(renamed, 69, "tokens 3..71");
  const char *path = tmp_file("spm.gguf", &b);
  free(b.p);
  static const char *const prompts[2] = {"1", "1,5,6"};
  for (int k = 0; k < 2; ++k) {
    deco_test_run_t ids, text, dec;
    DECO_TEST_RUN_CLI(&ids, "generate", "--model", path, "--prompt-ids", prompts[k], "--steps", "12",
                      "--temperature", "0", "--ignore-eos", "--print-ids", "--backend", "cpu");
    DECO_TEST_RUN_CLI(&text, "generate", "--model", path, "--prompt-ids", prompts[k], "--steps", "12",
                      "--temperature", "0", "--ignore-eos", "--backend", "cpu");
    cr_assert(ids.status == 0 && text.status == 0, "%s%s", ids.err, text.err);
    /* The generated ids, decoded whole (which drops the first space). */
    const char *gen = ids.out;
    for (int skip = k ? 3 : 1; skip > 0; --skip) gen = strchr(gen, ' ') + 1;
    char line[256];
    snprintf(line, sizeof line, "%s", gen);
    line[strcspn(line, "\n")] = '\0';
    DECO_TEST_RUN_CLI(&dec, "tokenize", "--model", path, "--decode", line);
    cr_assert_eq(dec.status, 0, "%s", dec.err);
    char want[512];
    snprintf(want, sizeof want, "%s%s", k ? " " : "", dec.out);
    cr_assert_str_eq(text.out, want, "prompt %s: ids %s", prompts[k], ids.out);
    cr_assert(text.out[0] == ' ' || k == 0, "%s", text.out);
    deco_test_run_free(&ids);
    deco_test_run_free(&text);
    deco_test_run_free(&dec);
  }
}

/* A matrix written with a trailing unit dim ([64, 64, 1]: GGUF allows it,
 * and the parse takes it as [64, 64]) runs as the plain file does, whole
 * and split over two ranks (each rank uploads its slice of it). The
 * fixture's tensor infos end 30 bytes before its 32-aligned data, so the
 * extra dim fits in that padding and no offset moves. Ids are compared at
 * the same TP size (across sizes the sums run in another order). */
Test(gguf_model, trailing_unit_dims_run_at_any_tp) {
  blob_t b = read_blob(fixture("tiny_f32", ".gguf"));
  static const char name[] = "blk.0.attn_q.weight";
  unsigned char pat[8 + sizeof name - 1];
  const uint64_t len = sizeof name - 1;
  memcpy(pat, &len, 8);
  memcpy(pat + 8, name, len);
  const unsigned char *hit = memmem(b.p, b.n, pat, sizeof pat);
  cr_assert_not_null(hit);
  const size_t nd_at = (size_t)(hit - b.p) + sizeof pat, dims_end = nd_at + 4 + 16;
  uint32_t nd;
  uint64_t d[2];
  memcpy(&nd, b.p + nd_at, 4);
  memcpy(d, b.p + nd_at + 4, 16);
  cr_assert(nd == 2 && d[0] == 64 && d[1] == 64, "n_dims %u, dims %llu x %llu", nd, (unsigned long long)d[0],
            (unsigned long long)d[1]);
  const size_t data_at = 3200, infos_end = 3170; /* tiny_f32: all zeros between them */
  for (size_t i = infos_end; i < data_at; ++i) cr_assert_eq(b.p[i], 0, "byte %zu of the padding", i);
  blob_t c = {malloc(b.n), b.n};
  cr_assert_not_null(c.p);
  memcpy(c.p, b.p, dims_end);
  const uint32_t three = 3;
  const uint64_t one = 1;
  memcpy(c.p + nd_at, &three, 4);
  memcpy(c.p + dims_end, &one, 8);
  memcpy(c.p + dims_end + 8, b.p + dims_end, infos_end - dims_end);
  memset(c.p + infos_end + 8, 0, data_at - infos_end - 8);
  memcpy(c.p + data_at, b.p + data_at, b.n - data_at);
  const char *plain = fixture("tiny_f32", ".gguf"), *unit = tmp_file("unit_dim.gguf", &c);
  char *want = NULL; /* the plain file's ids at the same TP size */
  for (int k = 0; k < 4; ++k) {
    const char *argv[] = {"generate", "--model", k % 2 ? unit : plain, "--prompt-ids", "5,9,3", "--steps", "20",
                          "--temperature", "0", "--ignore-eos", "--print-ids", "--tp", k < 2 ? "1" : "2", NULL};
    deco_test_run_t r;
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    cr_assert_eq(r.status, 0, "case %d: %s", k, r.err);
    if (k % 2 == 0) {
      free(want);
      want = strdup(r.out);
    } else {
      cr_assert_str_eq(r.out, want, "TP %s: the unit dim changed the ids", argv[12]);
    }
    deco_test_run_free(&r);
  }
  free(want);
  free(c.p);
  free(b.p);
}

Test(gguf_model, cli_refuses_bad_gguf_files) {
  blob_t b = read_blob(fixture("tiny_q4_1", ".gguf"));
  blob_t c = {malloc(b.n), b.n};
  deco_test_run_t r;
  /* Another architecture: exit 1, the file and the field named. */
  memcpy(c.p, b.p, b.n);
  memcpy(c.p + kv_value_at(&c, "general.architecture") + 8, "qwen2", 5);
  const char *p = tmp_file("arch.gguf", &c);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", p, "--prompt-ids", "5", "--steps", "4", "--print-ids", "--backend",
                    "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strncmp(r.err, "deco: error: ", 13) == 0 && strstr(r.err, p) &&
                strstr(r.err, "metadata general.architecture is 'qwen2'"),
            "%s", r.err);
  cr_assert_str_eq(r.out, "");
  deco_test_run_free(&r);
  /* No BOS id in the file and no prompt: nothing to start from. */
  memcpy(c.p, b.p, b.n);
  memcpy(c.p + kv_value_at(&c, "tokenizer.ggml.bos_token_id") - 4 - 2, "ix", 2); /* an unknown key now */
  p = tmp_file("nobos.gguf", &c);
  deco_model_hparams_t h;
  cr_assert_eq(deco_gguf_read_hparams(p, &h), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(h.bos_id, -1);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", p, "--steps", "4", "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  char want[4200];
  snprintf(want, sizeof want, "deco: error: no prompt: %s names no BOS id", p); /* the file as given */
  cr_assert(strstr(r.err, want), "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--model", p, "--prompt-ids", "5,6", "--steps", "4", "--print-ids", "--backend",
                    "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_test_run_free(&r);
  /* Text comes from the file's own vocabulary: the generated ids' text,
   * as `deco tokenize --decode` gives it. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", p, "--prompt-ids", "5", "--steps", "6", "--ignore-eos", "--print-ids",
                    "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *gen = strchr(r.out, ' ');
  cr_assert_not_null(gen, "%s", r.out);
  deco_test_run_t text, dec;
  DECO_TEST_RUN_CLI(&text, "generate", "--model", p, "--prompt-ids", "5", "--steps", "6", "--ignore-eos", "--backend",
                    "cpu");
  DECO_TEST_RUN_CLI(&dec, "tokenize", "--model", p, "--decode", gen + 1);
  cr_assert(text.status == 0 && dec.status == 0, "%s %s", text.err, dec.err);
  cr_assert_str_eq(text.out, dec.out);
  deco_test_run_free(&text);
  deco_test_run_free(&dec);
  deco_test_run_free(&r);
  /* An id outside the file's vocabulary. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", p, "--prompt-ids", "72", "--steps", "4", "--print-ids", "--backend",
                    "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "--prompt-ids: id 72 >= vocab 72"), "%s", r.err);
  deco_test_run_free(&r);
  free(c.p);
  free(b.p);
}

/* ---- the synthetic SmolLM2 shape ------------------------------------------ */

Test(gguf_model, synthetic_smollm2_shape) {
  deco_model_hparams_t h;
  cr_assert_eq(deco_synthetic_hparams("smollm2-135m", &h), DECO_STATUS_SUCCESS);
  cr_assert(h.dim == 576 && h.hidden_dim == 1536 && h.n_layers == 30 && h.n_heads == 9 && h.n_kv_heads == 3 &&
            h.head_dim == 64 && h.vocab_size == 49152 && h.seq_len == 8192 && h.rope_theta == 100000.0f &&
            h.norm_eps == 1e-5f && h.shared_classifier && !h.builtin_vocab && h.rope_style == DECO_ROPE_INTERLEAVED &&
            h.bos_id == 1 && h.n_stop_ids == 2 && h.stop_ids[0] == 2 && h.stop_ids[1] == 0);
  cr_assert_eq(deco_synthetic_hparams("smollm2", &h), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "smollm2-135m"), "%s", deco_last_error(NULL));
  /* Text with a shape that has no vocabulary: a usage problem named. */
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--synthetic", "smollm2-135m", "--prompt", "hi", "--backend", "cpu");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "--prompt needs --tokenizer: synthetic:smollm2-135m has no built-in vocabulary "
                          "(or use --prompt-ids with --print-ids)"),
            "%s", r.err);
  deco_test_run_free(&r);
}
