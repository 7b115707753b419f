/* tests/ops/gpu_test_ops_harness.c — the op harness on CUDA (label gpu;
 * exits 77 without a device, tests/gpu/gpu_main.c): every case of the table
 * (tests/ops/op_cases.h) on the CUDA backend against the C reference run on
 * the same rounded inputs (its f32 twin where the CPU does not take the
 * dtype), under the per-op tolerances of tests/common/tolerances.h; bad
 * device data must stay local (NaN rows, skipped tokens) where the
 * reference refuses it; kernel paths and KV splits as each case expects.
 * It runs the cases of tests/gpu/test_ops_cuda.c and of the tree-attention
 * sweeps of tests/gpu/test_tree_attention.c; those suites stay until this
 * one has passed on a GPU. small_ops: the small-shape pass, for
 * compute-sanitizer.
 *   build/bin/gpu_test_ops_harness --filter 'ops_harness_gpu/attention'
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ops/harness.h"

static void run_op(deco_op_kind_t op, unsigned tags) {
  harness_tally_t tl;
  const int failures = harness_run_cuda(op, tags, &tl);
  static const char *const names[1] = {"cuda"};
  harness_print_tally(op, &tl, names, 1);
  cr_expect_eq(failures, 0, "%s: %d cases failed (FAIL lines above)", deco_op_kind_name(op), failures);
}

/* One test per op of the harness. */
#define OP_TEST(name, kind) \
  Test(ops_harness_gpu, name, .timeout = 600) { run_op(kind, 0); }
HARNESS_OPS(OP_TEST)
#undef OP_TEST

/* The small-shape cases of every op (compute-sanitizer's subset). */
Test(ops_harness_gpu, small_ops, .timeout = 600) {
  for (int op = 0; op < DECO_OP_COUNT; ++op) {
    harness_tally_t tl;
    const int failures = harness_run_cuda((deco_op_kind_t)op, DECO_CASE_TAG_SMALL, &tl);
    if (tl.cases == 0) continue;
    static const char *const names[1] = {"cuda"};
    harness_print_tally((deco_op_kind_t)op, &tl, names, 1);
    cr_expect_eq(failures, 0, "small %s: %d cases failed", deco_op_kind_name((deco_op_kind_t)op), failures);
  }
}
