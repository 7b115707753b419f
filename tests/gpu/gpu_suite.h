/* tests/gpu/gpu_suite.h — the fixture the GPU suites share: a CUDA context
 * `gpu` and a CPU reference context `cpu`, created before each test and
 * destroyed after it. DECO_GPU_SUITE(name, seconds) declares the suite; a
 * suite that needs more calls deco_gpu_suite_setup / _teardown from its own. */
#ifndef DECO_TESTS_GPU_SUITE_H
#define DECO_TESTS_GPU_SUITE_H

#include <criterion/criterion.h>

#include "common/testutil.h"
#include "deco/deco.h"

static deco_ctx_t *gpu, *cpu;

static void deco_gpu_suite_setup(void) {
  gpu = deco_test_cuda_ctx();
  cr_assert_not_null(gpu, "no CUDA device");
  cpu = deco_test_cpu_ctx();
}

static void deco_gpu_suite_teardown(void) {
  deco_ctx_destroy(gpu);
  deco_ctx_destroy(cpu);
}

#define DECO_GPU_SUITE(name, seconds) \
  TestSuite(name, .init = deco_gpu_suite_setup, .fini = deco_gpu_suite_teardown, .timeout = seconds)

#endif
