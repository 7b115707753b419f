/* tests/gpu/test_tp_nccl.c — the NCCL communicator at world size 1 (the
 * test hosts have one GPU, and NCCL refuses two ranks on one device):
 * created from the launcher variables of a world of one, its collectives
 * on device buffers leave a lone rank's values as they are; the
 * one-process path (ncclCommInitAll over one GPU) builds a communicator;
 * and stories260K (bf16) run with the communicator in its model config —
 * the all-reduces after O and down then go through NCCL, captured in the
 * step's CUDA graph — gives the ids, K/V and recycling table of the run
 * without a communicator, bit for bit; `deco generate --comm nccl` in a
 * world of one prints the ids of the plain CUDA run, with ` tp=1`.
 * Registered only when the build found NCCL.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static void world_of_one(void) {
  const char *names[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID",
                         "SLURM_NTASKS", "NCCL_COMM_ID", "MASTER_ADDR", "MASTER_PORT"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) unsetenv(names[i]);
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  setenv("LOCAL_RANK", "0", 1);
}

Test(tp_nccl, collectives_at_world_size_1, .timeout = 120) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx, "no CUDA device");
  world_of_one();
  deco_comm_t *comm = NULL;
  cr_assert_eq(deco_comm_nccl_create(NULL, &comm), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_comm_rank(comm), 0);
  cr_assert_eq(deco_comm_size(comm), 1);
  cr_assert_eq(deco_comm_backend(comm), DECO_COMM_NCCL);
  float host[257], back[257];
  deco_test_fill_uniform(host, 257, 5, 0, -3.0f, 3.0f);
  void *dev = NULL, *dev2 = NULL;
  cr_assert_eq(deco_malloc(ctx, &dev, sizeof host), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_malloc(ctx, &dev2, sizeof host), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_memcpy(ctx, dev, host, sizeof host, DECO_COPY_HOST_TO_CTX), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_comm_all_reduce_sum(comm, ctx, dev, 257, DECO_COMM_F32), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  cr_assert_eq(deco_comm_all_gather(comm, ctx, dev, dev2, 257, DECO_COMM_F32), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_comm_broadcast(comm, ctx, dev2, 257, DECO_COMM_F32, 0), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_comm_barrier(comm, ctx), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_memcpy(ctx, back, dev2, sizeof back, DECO_COPY_CTX_TO_HOST), DECO_STATUS_SUCCESS);
  cr_assert(memcmp(back, host, sizeof host) == 0, "a lone rank's sum changed its values");
  /* The agreement check all-gathers host memory (staged through the
   * device under NCCL): one rank always agrees with itself. */
  cr_assert_eq(deco_comm_check_same(comm, ctx, 0x0123456789abcdefull, "hash"), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(ctx));
  /* The same communicator wrapped as an engine would hand it over is
   * refused without a pointer. */
  deco_comm_t *w = NULL;
  cr_assert_eq(deco_comm_from_nccl(NULL, 0, &w), DECO_STATUS_NULL_POINTER);
  deco_free(ctx, dev);
  deco_free(ctx, dev2);
  deco_comm_destroy(comm);
  /* One process, one thread per GPU: here one GPU. */
  deco_comm_t *all[1] = {NULL};
  const int devices[1] = {0};
  cr_assert_eq(deco_comm_nccl_create_all(1, devices, all), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_comm_size(all[0]), 1);
  /* create_all's handles go together (one grouped finalize). */
  deco_comm_destroy_all(all, 1);
  cr_assert_null(all[0]);
  deco_ctx_destroy(ctx);
}

static void run(deco_comm_t *comm, deco_test_outcome_t *o) {
  deco_ctx_t *ctx = deco_test_cuda_ctx();
  cr_assert_not_null(ctx);
  deco_model_config_t mc = DECO_MODEL_CONFIG_INIT;
  mc.dtype = DECO_DTYPE_BF16;
  mc.comm = comm;
  deco_model_t *m = NULL;
  cr_assert_eq(deco_model_load(ctx, deco_test_data_file("models/stories260K.bin"), &mc, &m), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(ctx));
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 120;
  c.temperature = 0.0f;
  c.ignore_eos = 1;
  c.device_resident = 1;
  c.graph = 1;
  deco_test_outcome_run(m, DECO_TEST_RECYCLE, c, o);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(tp_nccl, graphed_recycling_with_the_nccl_communicator_equals_none, .timeout = 180) {
  world_of_one();
  deco_comm_t *comm = NULL;
  cr_assert_eq(deco_comm_nccl_create(NULL, &comm), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  static deco_test_outcome_t with, without;
  run(comm, &with);
  run(NULL, &without);
  fprintf(stderr, "NCCL world 1, graphed recycle: %d tokens in %d forwards (capture %.3f s)\n", with.stats.tokens,
          with.stats.forwards, with.stats.capture_seconds);
  cr_assert_gt(with.stats.capture_seconds, 0.0, "no graph was captured");
  deco_test_outcome_same(&with, &without);
  deco_test_outcome_free(&with);
  deco_test_outcome_free(&without);
  deco_comm_destroy(comm);
}

Test(tp_nccl, the_cli_with_comm_nccl_in_a_world_of_one_prints_the_plain_ids, .timeout = 180) {
  world_of_one();
  const char *model = deco_test_data_file("models/stories260K.bin");
  deco_test_run_t plain, nccl;
  DECO_TEST_RUN_CLI(&plain, "generate", "--model", model, "--backend", "cuda", "--temperature", "0", "--steps", "32",
                    "--print-ids");
  DECO_TEST_RUN_CLI(&nccl, "generate", "--model", model, "--comm", "nccl", "--temperature", "0", "--steps", "32",
                    "--print-ids");
  cr_assert_eq(plain.status, 0, "%s", plain.err);
  cr_assert_eq(nccl.status, 0, "%s", nccl.err);
  cr_assert_str_eq(nccl.out, plain.out);
  const char *line = deco_test_last_line(nccl.err);
  cr_assert(strlen(line) >= 5 && strcmp(line + strlen(line) - 5, " tp=1") == 0, "stats: %s", line);
  deco_test_run_free(&plain);
  deco_test_run_free(&nccl);
}
