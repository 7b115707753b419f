/* tests/test_tp_cli.c — `deco generate --tp N [--comm threads]`: N ranks as
 * threads of one process print what one process prints (greedy, plain and
 * speculative, against the llama2.c fixture) with ` tp=N` at the end of the
 * stats line; TP sizes the heads refuse exit 1 naming the numbers, once;
 * a failing rank's error is printed once; `--comm mpi` outside a launcher is
 * a usage error; an sbatch script's environment (SLURM_PROCID and
 * SLURM_NTASKS without srun's SLURM_STEP_NUM_TASKS) is no launch; a launch
 * whose MPI world differs from the environment's size fails naming both;
 * tokenize and eval run on rank 0 only.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) ++n;
  return n;
}

static const char *ends_with_tp(const char *err, const char *suffix) {
  const char *line = deco_test_last_line(err);
  const size_t n = strlen(line), k = strlen(suffix);
  return n >= k && strcmp(line + n - k, suffix) == 0 ? line : NULL;
}

Test(tp_cli, greedy_at_tp_8_and_speculative_at_tp_2_print_the_fixture) {
  const char *model = deco_test_data_file("models/stories260K.bin");
  const char *fixture = "fixtures/stories260K/greedy_bos_256.ids";
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--tp", "8",
                    "--comm", "threads");
  deco_test_expect_fixture_out("--tp 8", &r, fixture);
  cr_assert(ends_with_tp(r.err, " tp=8"), "stats: %s", r.err);
  cr_assert(strstr(deco_test_last_line(r.err), "stats: tokens=256 "), "%s", r.err);
  deco_test_run_free(&r);
  const char *specs[] = {"lookup", "recycle"};
  for (int i = 0; i < 2; ++i) {
    DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--ignore-eos", "--print-ids", "--tp",
                      "2", "--spec", specs[i]);
    deco_test_expect_fixture_out(specs[i], &r, fixture);
    cr_assert(ends_with_tp(r.err, " tp=2"), "stats: %s", r.err);
    cr_assert(deco_test_stat(r.err, "mean_accepted=") > 1.3, "%s", r.err);
    deco_test_run_free(&r);
  }
  /* Without --tp the stats line is unchanged. */
  DECO_TEST_RUN_CLI(&r, "generate", "--model", model, "--temperature", "0", "--steps", "8", "--print-ids");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_null(strstr(r.err, " tp="), "%s", r.err);
  deco_test_run_free(&r);
}

Test(tp_cli, sampling_at_tp_4_is_reproducible) {
  deco_test_run_t a, b;
  DECO_TEST_RUN_CLI(&a, "generate", "--temperature", "0.9", "--seed", "7", "--steps", "64", "--print-ids", "--tp", "4");
  DECO_TEST_RUN_CLI(&b, "generate", "--temperature", "0.9", "--seed", "7", "--steps", "64", "--print-ids", "--tp", "4");
  cr_assert_eq(a.status, 0, "%s", a.err);
  cr_assert_eq(b.status, 0, "%s", b.err);
  cr_assert_str_eq(a.out, b.out);
  deco_test_run_free(&a);
  deco_test_run_free(&b);
}

Test(tp_cli, refusals_name_the_numbers_once) {
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--tp", "3", "--steps", "8");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "8 query heads") && strstr(r.err, "4 KV heads") && strstr(r.err, "TP 3"), "%s", r.err);
  cr_assert_eq(count(r.err, "deco: error:"), 1, "%s", r.err);
  cr_assert_str_eq(r.out, "");
  deco_test_run_free(&r);

  DECO_TEST_RUN_CLI(&r, "generate", "--tp", "2", "--model", "/nonexistent/model.bin");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "/nonexistent/model.bin"), "%s", r.err);
  cr_assert_eq(count(r.err, "deco: error:"), 1, "%s", r.err);
  deco_test_run_free(&r);

  /* One process's NCCL ranks need a GPU each; without one the message says
   * so (CUDA itself would report an insufficient driver). */
  if (deco_cuda_device_count() == 0 && deco_comm_backend_available(DECO_COMM_NCCL)) {
    DECO_TEST_RUN_CLI(&r, "generate", "--comm", "nccl", "--tp", "2", "--steps", "8");
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, "deco: error: --comm nccl: no CUDA device found (or no driver)\n");
    deco_test_run_free(&r);
  }

  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("PMI_SIZE");
  unsetenv("SLURM_NTASKS");
  unsetenv("WORLD_SIZE");
  DECO_TEST_RUN_CLI(&r, "generate", "--comm", "mpi", "--steps", "8");
  cr_assert_eq(r.status, 2, "%s", r.err);
  cr_assert(strstr(r.err, "launcher") && strstr(r.err, "OMPI_COMM_WORLD_RANK"), "%s", r.err);
  deco_test_run_free(&r);

  /* Inside an sbatch script, not under srun: the plain run. */
  unsetenv("SLURM_STEP_NUM_TASKS");
  setenv("SLURM_PROCID", "0", 1);
  setenv("SLURM_NTASKS", "4", 1);
  DECO_TEST_RUN_CLI(&r, "generate", "--temperature", "0", "--steps", "8", "--print-ids");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_null(strstr(r.err, " tp="), "%s", r.err);
  cr_assert_neq(r.out[0], '\0');
  deco_test_run_free(&r);
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");

  /* The other commands run on rank 0 only: rank 1 of 2 prints nothing. */
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "2", 1);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--text", "Once upon a time");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "");
  cr_assert_str_eq(r.err, "");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "eval", "--ids", "/nonexistent/ids.txt");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "");
  deco_test_run_free(&r);
  setenv("RANK", "0", 1);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--text", "Once upon a time");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_neq(r.out[0], '\0');
  deco_test_run_free(&r);
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");

  /* A launcher variable that is no number: a usage error for every
   * command, not a run alone (it could be one rank of several). */
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x", 1);
  static const char *const cmds[][4] = {{"generate", "--steps", "8", NULL}, {"tokenize", "--text", "a", NULL},
                                        {"eval", "--ids", "/nonexistent/ids.txt", NULL}};
  for (int i = 0; i < 3; ++i) {
    cr_assert_eq(deco_test_run_cli(cmds[i], &r), 0);
    deco_test_cli_error(&r, 2, "launcher environment: OMPI_COMM_WORLD_LOCAL_RANK = 'x' is not a non-negative integer");
    deco_test_run_free(&r);
  }
  /* --help wins there too, as anywhere. */
  DECO_TEST_RUN_CLI(&r, "eval", "--help");
  cr_assert(r.status == 0 && strncmp(r.out, "usage: deco eval", 16) == 0, "exit %d: %s%s", r.status, r.out, r.err);
  deco_test_run_free(&r);
  /* A rank variable without its size is no launch. */
  unsetenv("OMPI_COMM_WORLD_SIZE");
  setenv("OMPI_COMM_WORLD_RANK", "x", 1);
  DECO_TEST_RUN_CLI(&r, "tokenize", "--text", "a");
  cr_assert(r.status == 0 && r.out[0] != '\0', "exit %d: %s", r.status, r.err);
  deco_test_run_free(&r);
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");

  DECO_TEST_RUN_CLI(&r, "generate", "--tp", "0");
  cr_assert_eq(r.status, 2, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--comm", "pigeons");
  cr_assert_eq(r.status, 2, "%s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "generate", "--tp", "2", "--synthetic", "tiny", "--print-ids", "--steps", "4");
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert(strstr(r.err, "tensor parallelism 1 only"), "%s", r.err);
  deco_test_run_free(&r);
}
