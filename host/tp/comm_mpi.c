/* host/tp/comm_mpi.c — the MPI backend (host buffers, one rank per
 * process): all-reduce is an all-gather of every rank's buffer followed by
 * the sum in rank order (comm.c), so its results equal the threads
 * backend's bit for bit, at the price of (N-1) x the payload received per
 * rank instead of a ring's 2 (N-1)/N. Abort is MPI_Abort: MPI offers no
 * portable way to release peers blocked in a collective, so the job ends
 * (mpirun exits non-zero). Built only when MPI is found at configure.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/comm_internal.h"

typedef struct mpi_state {
  MPI_Comm comm;
  int owned;   /* 1: our duplicate of MPI_COMM_WORLD, freed by destroy */
  int init_by_us;
  void *gather; /* [size][n] of the last all-reduce */
  size_t gather_bytes;
} mpi_state_t;

/* Handles that called MPI_Init: the last one to go calls MPI_Finalize. */
static int g_init_refs;

deco_status_t deco_comm_mpi_acquire(int *init_by_us, const char *op) {
  int initialized = 0;
  *init_by_us = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: MPI_Init failed", op);
    *init_by_us = 1;
    ++g_init_refs;
  } else if (g_init_refs > 0) {
    *init_by_us = 1; /* initialised by another of our handles: share its finalize */
    ++g_init_refs;
  }
  return DECO_STATUS_SUCCESS;
}

void deco_comm_mpi_release(int init_by_us) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (init_by_us && --g_init_refs == 0 && !finalized) MPI_Finalize();
}

static deco_status_t mpi_fail(deco_comm_t *c, deco_ctx_t *ctx, int err, const char *op) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", err);
  return DECO_FAIL(ctx, DECO_STATUS_INTERNAL, "mpi communicator: %s failed on rank %d of %d: %s", op, c->rank, c->size,
                   text);
}

/* The bytes of n elements of dtype; more than MPI's int count takes is
 * refused (what: the collective, in words). */
static deco_status_t mpi_bytes(deco_ctx_t *ctx, size_t n, deco_comm_dtype_t dtype, const char *what, size_t *bytes) {
  *bytes = n * deco_comm_dtype_size(dtype);
  if (*bytes > (size_t)0x7fffffff)
    return DECO_FAIL(ctx, DECO_STATUS_CAPACITY, "mpi communicator: %zu bytes in one %s (at most 2^31 - 1)", *bytes,
                     what);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t all_reduce_sum(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype) {
  mpi_state_t *s = c->impl;
  size_t bytes;
  DECO_TRY(mpi_bytes(ctx, n, dtype, "all-reduce", &bytes));
  if (s->gather_bytes < bytes * (size_t)c->size) {
    void *p = realloc(s->gather, bytes * (size_t)c->size);
    if (!p) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "mpi communicator: out of host memory");
    s->gather = p;
    s->gather_bytes = bytes * (size_t)c->size;
  }
  int err = MPI_Allgather(buf, (int)bytes, MPI_BYTE, s->gather, (int)bytes, MPI_BYTE, s->comm);
  if (err != MPI_SUCCESS) return mpi_fail(c, ctx, err, "MPI_Allgather");
  const void *in[DECO_COMM_MAX_RANKS];
  for (int r = 0; r < c->size; ++r) in[r] = (const char *)s->gather + (size_t)r * bytes;
  deco_comm_sum_rank_order(in, c->size, buf, n, dtype);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                deco_comm_dtype_t dtype) {
  mpi_state_t *s = c->impl;
  size_t bytes;
  DECO_TRY(mpi_bytes(ctx, n, dtype, "all-gather", &bytes));
  int err = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, s->comm);
  return err == MPI_SUCCESS ? DECO_STATUS_SUCCESS : mpi_fail(c, ctx, err, "MPI_Allgather");
}

static deco_status_t broadcast(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                               int root) {
  mpi_state_t *s = c->impl;
  size_t bytes;
  DECO_TRY(mpi_bytes(ctx, n, dtype, "broadcast", &bytes));
  int err = MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, s->comm);
  return err == MPI_SUCCESS ? DECO_STATUS_SUCCESS : mpi_fail(c, ctx, err, "MPI_Bcast");
}

static deco_status_t barrier(deco_comm_t *c, deco_ctx_t *ctx) {
  int err = MPI_Barrier(((mpi_state_t *)c->impl)->comm);
  return err == MPI_SUCCESS ? DECO_STATUS_SUCCESS : mpi_fail(c, ctx, err, "MPI_Barrier");
}

static void abort_job(deco_comm_t *c) { MPI_Abort(((mpi_state_t *)c->impl)->comm, 1); }

static void destroy(deco_comm_t *c) {
  mpi_state_t *s = c->impl;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (s->owned && !finalized) MPI_Comm_free(&s->comm);
  deco_comm_mpi_release(s->init_by_us);
  free(s->gather);
  free(s);
  free(c);
}

static const deco_comm_ops_t mpi_ops = {.all_reduce_sum = all_reduce_sum, .all_gather = all_gather,
                                        .host_all_gather = all_gather, .broadcast = broadcast, .barrier = barrier, .abort = abort_job,
                                        .destroy = destroy};

static deco_status_t wrap(MPI_Comm comm, int owned, int init_by_us, deco_comm_t **out, const char *op) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (size > DECO_COMM_MAX_RANKS)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: %d ranks (at most %d)", op, size, DECO_COMM_MAX_RANKS);
  deco_comm_t *c = calloc(1, sizeof *c);
  mpi_state_t *s = calloc(1, sizeof *s);
  if (!c || !s) {
    free(c);
    free(s);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  }
  *s = (mpi_state_t){.comm = comm, .owned = owned, .init_by_us = init_by_us};
  *c = (deco_comm_t){.ops = &mpi_ops, .backend = DECO_COMM_MPI, .rank = rank, .size = size, .impl = s};
  atomic_store(&c->aborted, 0);
  *out = c;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_comm_mpi_create(deco_comm_t **out) {
  static const char op[] = "deco_comm_mpi_create";
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  deco_comm_env_t env;
  const int found = deco_comm_env_read(&env);
  if (found < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, deco_last_error(NULL));
  if (found == 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: not started by a launcher (mpirun, srun): none of OMPI_COMM_WORLD_RANK/SIZE, "
                     "PMI_RANK/SIZE, SLURM_PROCID/STEP_NUM_TASKS, RANK/WORLD_SIZE is set",
                     op);
  int init_by_us = 0;
  DECO_TRY(deco_comm_mpi_acquire(&init_by_us, op));
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world != env.size) {
    deco_comm_mpi_release(init_by_us);
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: MPI_COMM_WORLD has %d ranks but the launcher's environment (%s) says %d: was this process "
                     "started by the launcher that set it?",
                     op, world, env.source, env.size);
  }
  MPI_Comm dup;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &dup) != MPI_SUCCESS) {
    deco_comm_mpi_release(init_by_us);
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: MPI_Comm_dup failed", op);
  }
  deco_status_t st = wrap(dup, 1, init_by_us, out, op);
  if (st != DECO_STATUS_SUCCESS) {
    MPI_Comm_free(&dup);
    deco_comm_mpi_release(init_by_us);
  }
  return st;
}

deco_status_t deco_comm_from_mpi(const void *mpi_comm, deco_comm_t **out) {
  static const char op[] = "deco_comm_from_mpi";
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  if (mpi_comm == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: mpi_comm is NULL", op);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: MPI is not initialised", op);
  return wrap(*(const MPI_Comm *)mpi_comm, 0, 0, out, op);
}
