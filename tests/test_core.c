/* tests/test_core.c — status names, versions, dtypes, the context and its
 * memory helpers, Philox4x32-10 known answers, half/bf16 conversions.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/testutil.h"

Test(core, status_strings_are_distinct_and_named) {
  for (int s = DECO_STATUS_SUCCESS; s <= DECO_STATUS_ABORTED; ++s) {
    const char *name = deco_status_string((deco_status_t)s);
    cr_assert(strncmp(name, "DECO_STATUS_", 12) == 0, "status %d: %s", s, name);
    cr_assert(strcmp(name, "DECO_STATUS_UNKNOWN") != 0, "status %d has no name", s);
    for (int t = DECO_STATUS_SUCCESS; t < s; ++t) cr_assert_str_neq(name, deco_status_string((deco_status_t)t));
  }
  cr_assert_str_eq(deco_status_string((deco_status_t)999), "DECO_STATUS_UNKNOWN");
}

Test(core, version_matches_header) {
  cr_assert_eq(deco_version(), DECO_VERSION);
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", DECO_VERSION_MAJOR, DECO_VERSION_MINOR, DECO_VERSION_PATCH);
  cr_assert_str_eq(deco_version_string(), expect);
}

Test(core, dtypes) {
  cr_assert_eq(deco_dtype_size(DECO_DTYPE_F32), 4);
  cr_assert_eq(deco_dtype_size(DECO_DTYPE_F16), 2);
  cr_assert_eq(deco_dtype_size(DECO_DTYPE_BF16), 2);
  cr_assert_eq(deco_dtype_size((deco_dtype_t)7), 0);
  cr_assert_str_eq(deco_dtype_name(DECO_DTYPE_BF16), "bf16");
  cr_assert_str_eq(deco_backend_name(DECO_BACKEND_CUDA), "cuda");
}

/* Known-answer vectors of Philox4x32-10 (Salmon et al., Random123). */
Test(core, philox_known_answers) {
  deco_philox_u32x4_t r = deco_philox4x32_10(0, 0, 0, 0, 0, 0);
  uint32_t e0[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  for (int i = 0; i < 4; ++i) cr_assert_eq(r.v[i], e0[i], "zero vector word %d: %08x", i, r.v[i]);
  r = deco_philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  uint32_t e1[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
  for (int i = 0; i < 4; ++i) cr_assert_eq(r.v[i], e1[i], "ones vector word %d: %08x", i, r.v[i]);
  r = deco_philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  uint32_t e2[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  for (int i = 0; i < 4; ++i) cr_assert_eq(r.v[i], e2[i], "pi vector word %d: %08x", i, r.v[i]);
}

Test(core, philox_uniform_range_and_mean) {
  double sum = 0.0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    float u = deco_philox_uniform(42, (uint32_t)i, 0, 0, 0);
    cr_assert(u >= 0.0f && u < 1.0f);
    sum += u;
  }
  /* Mean of n uniforms: sd 1/sqrt(12 n) = 6.5e-4; 6 sd. */
  cr_assert(fabs(sum / n - 0.5) < 4e-3, "mean %f", sum / n);
  cr_assert_eq(deco_philox_to_unit(0xffffffffu), 16777215.0f / 16777216.0f);
}

Test(core, bf16_conversions_round_to_nearest_even) {
  cr_assert_eq(deco_f32_to_bf16(1.0f), 0x3f80);
  cr_assert_eq(deco_f32_to_bf16(-2.0f), 0xc000);
  /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1). */
  cr_assert_eq(deco_f32_to_bf16(1.00390625f), 0x3f80);
  /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6). */
  cr_assert_eq(deco_f32_to_bf16(1.01171875f), 0x3f82);
  cr_assert_eq(deco_f32_to_bf16(INFINITY), 0x7f80);
  cr_assert(isnan(deco_bf16_to_f32(deco_f32_to_bf16(NAN))));
  cr_assert_eq(deco_bf16_to_f32(0x3f80), 1.0f);
  for (int i = 0; i < 0x10000; ++i) {
    uint16_t h = (uint16_t)i;
    float f = deco_bf16_to_f32(h);
    if (!isnan(f)) cr_assert_eq(deco_f32_to_bf16(f), h, "bf16 %04x does not round trip", i);
  }
}

Test(core, f16_conversions_round_trip_and_round) {
  for (int i = 0; i < 0x10000; ++i) {
    uint16_t h = (uint16_t)i;
    float f = deco_f16_to_f32(h);
    if (!isnan(f)) cr_assert_eq(deco_f32_to_f16(f), h, "f16 %04x -> %g does not round trip", i, f);
  }
  cr_assert_eq(deco_f32_to_f16(1.0f), 0x3c00);
  cr_assert_eq(deco_f32_to_f16(65504.0f), 0x7bff);
  cr_assert_eq(deco_f32_to_f16(65520.0f), 0x7c00); /* halfway to the next binade: ties to even = inf */
  cr_assert_eq(deco_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
  cr_assert_eq(deco_f32_to_f16(ldexpf(1.0f, -25)), 0x0000); /* halfway, ties to even (0) */
  cr_assert_eq(deco_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
  cr_assert_eq(deco_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* halfway: even */
  cr_assert_eq(deco_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02);
}

Test(core, ctx_misuse) {
  deco_ctx_t *ctx = (deco_ctx_t *)0x1;
  cr_assert_eq(deco_ctx_create(NULL, &ctx), DECO_STATUS_NULL_POINTER);
  cr_assert_null(ctx);
  cr_assert(strlen(deco_last_error(NULL)) > 0);
  deco_ctx_config_t bad = DECO_CTX_CONFIG_INIT;
  bad.backend = (deco_backend_t)5;
  cr_assert_eq(deco_ctx_create(&bad, &ctx), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_ctx_create(&bad, NULL), DECO_STATUS_NULL_POINTER);
  deco_ctx_destroy(NULL);
  cr_assert_eq(deco_ctx_synchronize(NULL), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_malloc(NULL, (void **)&ctx, 4), DECO_STATUS_NULL_POINTER);
}

Test(core, cuda_ctx_without_device_says_so) {
  if (deco_cuda_device_count() > 0) return; /* covered by the GPU suites */
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  cfg.backend = DECO_BACKEND_CUDA;
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&cfg, &ctx), DECO_STATUS_NO_DEVICE);
  cr_assert_null(ctx);
  cr_assert(strlen(deco_last_error(NULL)) > 0);
}

/* deco_ctx_config_t carries its size first (core.h): DECO_CTX_CONFIG_INIT
 * sets it, a caller's smaller struct gets defaults for what it lacks, and a
 * size of 0, one that does not reach past itself, or a larger struct is
 * refused with a message. */
Test(core, ctx_config_size) {
  deco_ctx_config_t init = DECO_CTX_CONFIG_INIT;
  cr_assert_eq(init.size, sizeof(deco_ctx_config_t));
  cr_assert_eq(init.backend, DECO_BACKEND_CPU);
  cr_assert_eq(init.device, 0);
  cr_assert_null(init.stream);
  deco_ctx_t *ctx = NULL;
  cr_assert_eq(deco_ctx_create(&init, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_ctx_backend(ctx), DECO_BACKEND_CPU);
  deco_ctx_destroy(ctx);

  /* A caller built against a smaller struct: only the fields up to backend. */
  deco_ctx_config_t older = DECO_CTX_CONFIG_INIT;
  older.size = offsetof(deco_ctx_config_t, device);
  older.device = 77; /* past the caller's size: not read */
  ctx = NULL;
  cr_assert_eq(deco_ctx_create(&older, &ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ctx_destroy(ctx);

  /* 0 (not from the macro), nothing past size, larger than ours. */
  const size_t wrong[3] = {0, sizeof(size_t), sizeof(deco_ctx_config_t) + 8};
  for (int i = 0; i < 3; ++i) {
    deco_ctx_config_t c = DECO_CTX_CONFIG_INIT;
    c.size = wrong[i];
    ctx = (deco_ctx_t *)0x1;
    cr_assert_eq(deco_ctx_create(&c, &ctx), DECO_STATUS_INVALID_ARGUMENT);
    cr_assert_null(ctx);
    char want[160];
    snprintf(want, sizeof want, "deco_ctx_create: config: size = %zu, expected %zu", wrong[i],
             sizeof(deco_ctx_config_t));
    cr_assert(strstr(deco_last_error(NULL), want) != NULL, "message: %s", deco_last_error(NULL));
    cr_assert(strstr(deco_last_error(NULL), "INIT macro") != NULL, "message: %s", deco_last_error(NULL));
  }
}

Test(core, cpu_memory_helpers) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  cr_assert_eq(deco_ctx_backend(ctx), DECO_BACKEND_CPU);
  cr_assert_null(deco_ctx_stream(ctx));
  void *p = NULL;
  cr_assert_eq(deco_malloc(ctx, &p, 0), DECO_STATUS_SUCCESS);
  cr_assert_null(p);
  cr_assert_eq(deco_malloc(ctx, &p, 1000), DECO_STATUS_SUCCESS);
  cr_assert_eq((uintptr_t)p % 256, 0);
  char src[1000], dst[1000];
  for (int i = 0; i < 1000; ++i) src[i] = (char)i;
  cr_assert_eq(deco_memcpy(ctx, p, src, 1000, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memset(ctx, p, 7, 10), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, dst, p, 1000, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  for (int i = 0; i < 1000; ++i) cr_assert_eq(dst[i], i < 10 ? 7 : (char)i);
  cr_assert_eq(deco_memcpy(ctx, NULL, src, 10, DECO_COPY_HOST_TO_CTX), DECO_STATUS_NULL_POINTER);
  cr_assert(strstr(deco_last_error(ctx), "dst") != NULL, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_memcpy(ctx, dst, src, 10, (deco_copy_kind_t)9), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_ctx_set_workspace(ctx, NULL, 16), DECO_STATUS_NULL_POINTER);
  cr_assert_eq(deco_ctx_set_workspace(ctx, p, 1000), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ctx_workspace_bytes(ctx), 1000);
  deco_free(ctx, p);
  deco_ctx_destroy(ctx);
}
