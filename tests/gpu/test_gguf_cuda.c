/* tests/gpu/test_gguf_cuda.c — GGUF models on the GPU: the deco_dequant op on
 * CUDA against the C reference bit for bit (every stored type into f32, f16
 * and bf16, awkward sizes, inputs at odd addresses, poisoned and guarded
 * outputs); the 3-layer mini SmolLM2 (models-cache/, real Q4_1/Q4_0
 * weights) loaded on the CPU and on CUDA in f32 and bf16, teacher-forced on
 * the three fixture sequences (prefill and one-token decode): argmaxes under
 * the runner-up near-tie rule, logit values within DECO_TOL_FORWARD_F32_*
 * (f32) or the bf16 end-to-end rule with 2 * n_layers + 2 roundings
 * (tests/common/tolerances.h); every decoding mode on the mini (plain,
 * prompt lookup on the host loop, Token Recycling as a replayed CUDA graph
 * with a 49152 x 8 table) against plain greedy under docs/TESTING.md's
 * first-difference rule with the CPU as referee; and the synthetic
 * smollm2-135m shape on CUDA in f32 (argmax rule against the CPU's same
 * seeded weights) and bf16 (runs, finite; agreement printed).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/neartie.h"
#include "common/testutil.h"
#include "common/tolerances.h"
#include "common/topk.h"
#include "gpu_suite.h"

DECO_GPU_SUITE(gguf_cuda, 600);

#define MINI "SmolLM2-135M-mini.gguf"

/* ---- the dequantisation op: CUDA == reference, bit for bit ---------------- */

/* Stored bytes of n elements of type with finite values: random bytes, then
 * every scale (and F16/BF16 element) replaced by a finite value, some of
 * them subnormal, zero or negative zero; F32 elements finite. */
static unsigned char *random_stored(deco_quant_type_t type, size_t n, uint64_t seed, size_t *bytes) {
  *bytes = deco_quant_bytes(type, n);
  cr_assert(*bytes > 0);
  unsigned char *p = malloc(*bytes);
  float *u = malloc(sizeof(float) * *bytes);
  deco_test_fill_uniform(u, *bytes, seed, 1, 0.0f, 1.0f);
  for (size_t i = 0; i < *bytes; ++i) p[i] = (unsigned char)(u[i] * 256.0f); /* u < 1 */
  float *v = malloc(sizeof(float) * (n + 64));
  deco_test_fill_uniform(v, n + 64, seed, 2, -2.0f, 2.0f);
  for (size_t i = 0; i < n + 64; i += 7) v[i] *= 1e-6f; /* f16 subnormals */
  v[3] = 0.0f;
  v[5] = -0.0f;
  uint16_t h;
  switch (type) {
    case DECO_QUANT_F32:
      for (size_t i = 0; i < n; ++i) memcpy(p + 4 * i, &v[i], 4);
      break;
    case DECO_QUANT_F16: case DECO_QUANT_BF16:
      for (size_t i = 0; i < n; ++i) {
        h = type == DECO_QUANT_F16 ? deco_f32_to_f16(v[i]) : deco_f32_to_bf16(v[i]);
        memcpy(p + 2 * i, &h, 2);
      }
      break;
    default: {
      const size_t bb = deco_quant_bytes(type, DECO_QUANT_BLOCK);
      for (size_t b = 0; b < n / DECO_QUANT_BLOCK; ++b) {
        h = deco_f32_to_f16(v[b % (n + 64)] * 0.05f);
        memcpy(p + b * bb, &h, 2);
        if (type == DECO_QUANT_Q4_1) {
          h = deco_f32_to_f16(v[(b + 1) % (n + 64)]);
          memcpy(p + b * bb + 2, &h, 2);
        }
      }
    }
  }
  free(u);
  free(v);
  return p;
}

static void dequant_case(deco_quant_type_t type, deco_dtype_t dt, size_t n, uint64_t seed) {
  size_t bytes;
  unsigned char *in = random_stored(type, n, seed, &bytes);
  const size_t es = deco_dtype_size(dt);
  /* The input one byte into its buffer: the op reads any alignment. */
  deco_test_buf_t d_in = deco_test_buf_alloc(gpu, bytes + 1);
  cr_assert_eq(deco_memcpy(gpu, (unsigned char *)d_in.ptr + 1, in, bytes, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  deco_test_buf_t d_out = deco_test_buf_alloc(gpu, n * es);
  deco_test_buf_poison(&d_out);
  deco_dequant_args_t a = {.type = type, .out_dtype = dt, .n = n, .in = (unsigned char *)d_in.ptr + 1, .out = d_out.ptr};
  cr_assert_eq(deco_dequant(gpu, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  cr_assert_eq(deco_ctx_synchronize(gpu), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
  unsigned char *got = malloc(n * es), *want = malloc(n * es);
  deco_test_buf_download(&d_out, got, n * es);
  deco_dequant_args_t r = {.type = type, .out_dtype = dt, .n = n, .in = in, .out = want};
  cr_assert_eq(deco_dequant(cpu, &r), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; ++i)
    if (memcmp(got + i * es, want + i * es, es) != 0 && bad++ == 0) first = i;
  cr_assert_eq(bad, 0, "dequant %s -> %s n=%zu: %zu elements differ from the reference, the first at %zu",
               deco_quant_type_name(type), deco_dtype_name(dt), n, bad, first);
  /* The reference's values are finite, so no element can still hold the
   * 0xFF poison (a NaN in every dtype) once both agree; the guard words: */
  cr_assert(deco_test_buf_guard_ok(&d_out), "dequant %s -> %s n=%zu wrote past its output",
            deco_quant_type_name(type), deco_dtype_name(dt), n);
  for (size_t i = 0; i < n; ++i) {
    float f;
    deco_test_unpack(&f, want + i * es, 1, dt);
    cr_assert(isfinite(f), "reference element %zu not finite", i);
  }
  free(got);
  free(want);
  free(in);
  deco_test_buf_free(&d_out);
  deco_test_buf_free(&d_in);
}

Test(gguf_cuda, dequant_bitwise_against_reference) {
  const deco_quant_type_t types[6] = {DECO_QUANT_F32, DECO_QUANT_F16, DECO_QUANT_BF16,
                                      DECO_QUANT_Q8_0, DECO_QUANT_Q4_0, DECO_QUANT_Q4_1};
  const deco_dtype_t dts[3] = {DECO_DTYPE_F32, DECO_DTYPE_F16, DECO_DTYPE_BF16};
  const size_t sizes[5] = {32, 96, 32 * 733, 32 * 19 * 331, (size_t)576 * 1536};
  const size_t odd[3] = {1, 7, 100003}; /* one-element types only */
  int cases = 0;
  for (int t = 0; t < 6; ++t)
    for (int d = 0; d < 3; ++d) {
      for (int s = 0; s < 5; ++s, ++cases) dequant_case(types[t], dts[d], sizes[s], 1000u + (uint64_t)cases);
      if (types[t] == DECO_QUANT_F32 || types[t] == DECO_QUANT_F16 || types[t] == DECO_QUANT_BF16)
        for (int s = 0; s < 3; ++s, ++cases) dequant_case(types[t], dts[d], odd[s], 2000u + (uint64_t)cases);
    }
  fprintf(stderr, "dequant: %d cases bit-identical to the reference\n", cases);
}

/* ---- the mini SmolLM2: CUDA vs CPU, teacher-forced ------------------------ */

Test(gguf_cuda, mini_teacher_forced_against_cpu, .timeout = 300) {
  const char *path = deco_test_model_file(MINI);
  deco_model_t *mc = NULL;
  cr_assert_eq(deco_model_load(cpu, path, NULL, &mc), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  const int V = deco_model_get_hparams(mc)->vocab_size, L = deco_model_get_hparams(mc)->n_layers;
  static const char *const seqs[3] = {"once", "the", "def"};
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  /* Each sequence's ids and CPU logits, for both dtypes. */
  deco_test_topk_t t[3];
  float *ref[3];
  for (int s = 0; s < 3; ++s) {
    char rel[96];
    snprintf(rel, sizeof rel, "fixtures/gguf/smollm2mini_%s.topk", seqs[s]);
    t[s] = deco_test_topk_read(deco_test_data_file(rel));
    ref[s] = deco_test_forward_all(mc, t[s].input, t[s].T);
  }
  int bad = 0;
  size_t bad_values = 0;
  for (int d = 0; d < 2; ++d) {
    deco_model_config_t cfg = DECO_MODEL_CONFIG_INIT;
    cfg.dtype = dts[d];
    deco_model_t *mg = NULL;
    cr_assert_eq(deco_model_load_gguf(gpu, path, &cfg, &mg), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    cr_assert_eq(deco_model_dtype(mg), dts[d]);
    for (int s = 0; s < 3; ++s)
      for (int prefill = 0; prefill < 2; ++prefill) {
        char what[128];
        snprintf(what, sizeof what, "mini %s %s %s", seqs[s], deco_dtype_name(dts[d]), prefill ? "prefill" : "decode");
        float *out = deco_test_teacher_forced(mg, t[s].input, t[s].T, prefill);
        bad += deco_test_argmax_mismatches(what, out, ref[s], t[s].T, V, dts[d]);
        bad_values += deco_test_logit_mismatches(what, out, ref[s], t[s].T, V, dts[d], L, 1);
        free(out);
      }
    deco_model_destroy(mg);
  }
  for (int s = 0; s < 3; ++s) {
    free(ref[s]);
    deco_test_topk_free(&t[s]);
  }
  cr_assert_eq(bad, 0, "%d argmax mismatches outside near ties", bad);
  cr_assert_eq(bad_values, 0, "%zu logit values outside the tolerance", bad_values);
  deco_model_destroy(mc);
}

/* ---- every decoding mode on the mini --------------------------------------- */

static void generate(deco_model_t *m, deco_drafter_t *d, int device_resident, const int32_t *prompt, int n_prompt,
                     int steps, deco_test_capture_t *out) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.temperature = 0.0f;
  c.ignore_eos = 1;
  c.drafter = d;
  c.device_resident = c.graph = device_resident;
  deco_generate_stats_t st;
  deco_test_generate(m, prompt, n_prompt, c, out, &st);
  cr_assert_eq(out->n, steps + 1);
}

Test(gguf_cuda, mini_every_decoding_mode, .timeout = 300) {
  const char *path = deco_test_model_file(MINI);
  deco_model_t *mc = NULL;
  cr_assert_eq(deco_model_load(cpu, path, NULL, &mc), DECO_STATUS_SUCCESS, "%s", deco_last_error(cpu));
  const int V = deco_model_get_hparams(mc)->vocab_size;
  deco_test_topk_t t = deco_test_topk_read(deco_test_data_file("fixtures/gguf/smollm2mini_once.topk"));
  const int n_prompt = 8, steps = 64;
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  for (int d = 0; d < 2; ++d) {
    deco_model_config_t cfg = DECO_MODEL_CONFIG_INIT;
    cfg.dtype = dts[d];
    deco_model_t *mg = NULL;
    cr_assert_eq(deco_model_load(gpu, path, &cfg, &mg), DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    deco_recycler_t *rec;
    deco_tree_template_t tmpl;
    cr_assert_eq(deco_recycler_create(gpu, V, DECO_RECYCLE_DEFAULT_K, &rec), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(gpu));
    cr_assert_eq(deco_tree_template_default(&tmpl), DECO_STATUS_SUCCESS);
    static deco_test_capture_t plain, spec;
    generate(mg, NULL, 0, t.input, n_prompt, steps, &plain);
    /* name, source, device-resident (graphed) */
    const struct {
      const char *name;
      deco_test_source_t source;
      int device;
    } modes[3] = {{"plain graphed", DECO_TEST_PLAIN, 1}, {"lookup", DECO_TEST_LOOKUP, 0},
                  {"recycle graphed", DECO_TEST_RECYCLE, 1}};
    for (int k = 0; k < 3; ++k) {
      cr_assert_eq(deco_recycler_reset(rec), DECO_STATUS_SUCCESS);
      deco_drafter_t *dr = deco_test_drafter(modes[k].source, rec, &tmpl);
      generate(mg, dr, modes[k].device, t.input, n_prompt, steps, &spec);
      deco_drafter_destroy(dr);
      cr_assert_eq(memcmp(plain.ids, spec.ids, sizeof(int32_t) * n_prompt), 0, "a prompt id differs");
      char what[64];
      snprintf(what, sizeof what, "mini %s %s", modes[k].name, deco_dtype_name(dts[d]));
      deco_test_split_excused(what, mc, plain.ids, spec.ids, steps + 1, dts[d]);
    }
    deco_recycler_destroy(rec);
    deco_model_destroy(mg);
  }
  deco_test_topk_free(&t);
  deco_model_destroy(mc);
}

/* ---- the synthetic SmolLM2 shape ------------------------------------------ */

Test(gguf_cuda, synthetic_smollm2_135m, .timeout = 300) {
  deco_model_t *mc = NULL;
  cr_assert_eq(deco_model_create_synthetic(cpu, "smollm2-135m", DECO_SYNTHETIC_SEED, NULL, &mc), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(cpu));
  const int V = 49152, n = 24;
  int32_t ids[24];
  for (int i = 0; i < n; ++i) ids[i] = (int32_t)((i * 7919 + 1) % V);
  float *ref = deco_test_forward_all(mc, ids, n);
  const deco_dtype_t dts[2] = {DECO_DTYPE_F32, DECO_DTYPE_BF16};
  for (int d = 0; d < 2; ++d) {
    deco_model_config_t cfg = DECO_MODEL_CONFIG_INIT;
    cfg.dtype = dts[d];
    deco_model_t *mg = NULL;
    cr_assert_eq(deco_model_create_synthetic(gpu, "smollm2-135m", DECO_SYNTHETIC_SEED, &cfg, &mg),
                 DECO_STATUS_SUCCESS, "%s", deco_last_error(gpu));
    char what[64];
    snprintf(what, sizeof what, "synthetic:smollm2-135m %s", deco_dtype_name(dts[d]));
    float *out = deco_test_teacher_forced(mg, ids, n, 1);
    for (size_t i = 0; i < (size_t)n * V; ++i) cr_assert(isfinite(out[i]), "%s: logit %zu not finite", what, i);
    const int bad = deco_test_argmax_mismatches(what, out, ref, n, V, dts[d]);
    /* Values only printed: the rules are derived for trained models. */
    deco_test_logit_mismatches(what, out, ref, n, V, dts[d], 30, 0);
    if (dts[d] == DECO_DTYPE_F32) cr_assert_eq(bad, 0, "%s: %d argmax mismatches outside near ties", what, bad);
    free(out);
    /* The graphed loop runs at the full shape. */
    static deco_test_capture_t got;
    generate(mg, NULL, 1, ids, 1, 16, &got);
    deco_model_destroy(mg);
  }
  free(ref);
  deco_model_destroy(mc);
}
