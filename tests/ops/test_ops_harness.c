/* tests/ops/test_ops_harness.c — the op harness on the CPU (label cpu): every
 * case of the table (tests/ops/op_cases.h), one test per op, run on the
 * public op of a CPU context and on the kernel-level reference
 * (deco_<op>_ref), each against the harness's double-precision oracle.
 * Cases the CPU backend does not take (f16/bf16: it computes in f32 only)
 * are run anyway and must say DECO_STATUS_UNSUPPORTED; the summary line of
 * each op counts them. Built with -DDECO_HARNESS_MUTANT=n
 * (tests/ops/run_mutants.sh) it must fail.
 *   build/bin/test_ops_harness --filter 'ops_harness/attention'
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ops/harness.h"

static void run_op(deco_op_kind_t op) {
  harness_tally_t tl;
  const int failures = harness_run_cpu(op, &tl);
  static const char *const names[2] = {"cpu", "ref"};
  harness_print_tally(op, &tl, names, 2);
  cr_expect_gt(tl.cases, 0, "the table has no %s case", deco_op_kind_name(op));
  cr_expect_gt(tl.passed[0] + tl.refused[0], 0, "no %s case ran on the CPU", deco_op_kind_name(op));
  cr_expect_eq(failures, 0, "%s: %d runs failed (FAIL lines above)", deco_op_kind_name(op), failures);
}

/* One test per op of the harness. */
#define OP_TEST(name, kind) \
  Test(ops_harness, name, .timeout = 600) { run_op(kind); }
HARNESS_OPS(OP_TEST)
#undef OP_TEST

/* The table itself: every op has cases, every case a harness op, each op
 * looked up by its own kind; prints the coverage (cases per op and dtype). */
Test(ops_harness, table) {
  const deco_op_cases_t *t = harness_table();
  int count[DECO_OP_COUNT][3] = {{0}}, tagged = 0;
  for (int i = 0; i < t->n; ++i) {
    const deco_op_case_t *c = &t->v[i];
    cr_assert_lt((unsigned)c->op, DECO_OP_COUNT, "case %d: op %d", i, (int)c->op);
    cr_assert_lt((unsigned)c->dtype, 3u, "case %d: dtype %d", i, (int)c->dtype);
    cr_assert_not_null(harness_op(c->op), "case %d: no harness op for %s", i, deco_op_kind_name(c->op));
    count[c->op][c->dtype]++;
    tagged += (c->tags & DECO_CASE_TAG_BENCH) != 0;
  }
  fprintf(stderr, "harness table: %d cases (%d with the benches' shapes)\n%-16s %6s %6s %6s\n", t->n, tagged, "op",
          "f32", "f16", "bf16");
  for (int op = 0; op < DECO_OP_COUNT; ++op) {
    fprintf(stderr, "%-16s %6d %6d %6d\n", deco_op_kind_name((deco_op_kind_t)op), count[op][0], count[op][1],
            count[op][2]);
    cr_expect_gt(count[op][0] + count[op][1] + count[op][2], 0, "no case of %s", deco_op_kind_name((deco_op_kind_t)op));
    const harness_op_t *o = harness_op((deco_op_kind_t)op);
    cr_expect(o && o->kind == (deco_op_kind_t)op, "harness_op(%s) is another op's", deco_op_kind_name((deco_op_kind_t)op));
  }
}
