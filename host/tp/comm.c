/* host/tp/comm.c — the communicator's public entry points: argument checks,
 * dispatch to the backend, the abort flag, the rank-order sum the host
 * backends share, the launcher environment and the agreement check on a
 * 64-bit value that every tensor-parallel run starts with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/comm_internal.h"

const char *deco_comm_backend_name(deco_comm_backend_t backend) {
  switch (backend) {
  case DECO_COMM_THREADS: return "threads";
  case DECO_COMM_MPI: return "mpi";
  case DECO_COMM_NCCL: return "nccl";
  }
  return "?";
}

int deco_comm_backend_available(deco_comm_backend_t backend) {
  switch (backend) {
  case DECO_COMM_THREADS: return 1;
  case DECO_COMM_MPI:
#ifdef DECO_HAVE_MPI
    return 1;
#else
    return 0;
#endif
  case DECO_COMM_NCCL:
#ifdef DECO_HAVE_NCCL
    return 1;
#else
    return 0;
#endif
  }
  return 0;
}

deco_comm_dtype_t deco_comm_dtype_of(deco_dtype_t dtype) {
  return dtype == DECO_DTYPE_F16 ? DECO_COMM_F16 : dtype == DECO_DTYPE_BF16 ? DECO_COMM_BF16 : DECO_COMM_F32;
}

size_t deco_comm_dtype_size(deco_comm_dtype_t dtype) {
  switch (dtype) {
  case DECO_COMM_F32: return 4;
  case DECO_COMM_F16: return 2;
  case DECO_COMM_BF16: return 2;
  case DECO_COMM_INT32: return 4;
  }
  return 0;
}

void deco_comm_sum_rank_order(const void *const *in, int size, void *out, size_t n, deco_comm_dtype_t dtype) {
  switch (dtype) {
  case DECO_COMM_F32:
    for (size_t i = 0; i < n; ++i) {
      float acc = ((const float *)in[0])[i];
      for (int r = 1; r < size; ++r) acc += ((const float *)in[r])[i];
      ((float *)out)[i] = acc;
    }
    break;
  case DECO_COMM_F16:
  case DECO_COMM_BF16: {
    const int f16 = dtype == DECO_COMM_F16;
    for (size_t i = 0; i < n; ++i) {
      float acc = 0.0f;
      for (int r = 0; r < size; ++r) {
        const uint16_t v = ((const uint16_t *)in[r])[i];
        const float x = f16 ? deco_f16_to_f32(v) : deco_bf16_to_f32(v);
        acc = r == 0 ? x : acc + x;
      }
      ((uint16_t *)out)[i] = f16 ? deco_f32_to_f16(acc) : deco_f32_to_bf16(acc);
    }
    break;
  }
  case DECO_COMM_INT32:
    for (size_t i = 0; i < n; ++i) {
      uint32_t acc = 0; /* wrapping, like a two's-complement add */
      for (int r = 0; r < size; ++r) acc += (uint32_t)((const int32_t *)in[r])[i];
      ((int32_t *)out)[i] = (int32_t)acc;
    }
    break;
  }
}

int deco_comm_rank(const deco_comm_t *c) { return c ? c->rank : 0; }
int deco_comm_size(const deco_comm_t *c) { return c ? c->size : 1; }
deco_comm_backend_t deco_comm_backend(const deco_comm_t *c) { return c ? c->backend : DECO_COMM_THREADS; }

/* What every collective checks first. */
static deco_status_t check(deco_comm_t *c, deco_ctx_t *ctx, const void *buf, size_t n, deco_comm_dtype_t dtype,
                           const char *op) {
  if (c == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: comm is NULL", op);
  if (deco_comm_dtype_size(dtype) == 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: dtype = %d is not a communicator dtype", op, (int)dtype);
  if (buf == NULL && n > 0) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: buffer is NULL", op);
  if (atomic_load(&c->aborted))
    return DECO_FAIL(ctx, DECO_STATUS_ABORTED, "%s: the communicator was aborted (rank %d of %d)", op, c->rank,
                     c->size);
  return DECO_STATUS_SUCCESS;
}

/* A backend's failure marks the handle: an abort seen once stays seen. */
static deco_status_t note(deco_comm_t *c, deco_status_t st) {
  if (st == DECO_STATUS_ABORTED) atomic_store(&c->aborted, 1);
  return st;
}

deco_status_t deco_comm_all_reduce_sum(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n,
                                       deco_comm_dtype_t dtype) {
  DECO_TRY(check(c, ctx, buf, n, dtype, "deco_comm_all_reduce_sum"));
  return note(c, c->ops->all_reduce_sum(c, ctx, buf, n, dtype));
}

deco_status_t deco_comm_all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                   deco_comm_dtype_t dtype) {
  static const char op[] = "deco_comm_all_gather";
  DECO_TRY(check(c, ctx, send, n, dtype, op));
  if (recv == NULL && n > 0) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: recv is NULL", op);
  const size_t bytes = n * deco_comm_dtype_size(dtype);
  const char *s = send, *r = recv;
  if (n > 0 && s < r + bytes * (size_t)c->size && r < s + bytes)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: send overlaps recv", op);
  return note(c, c->ops->all_gather(c, ctx, send, recv, n, dtype));
}

deco_status_t deco_comm_broadcast(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                                  int root) {
  static const char op[] = "deco_comm_broadcast";
  DECO_TRY(check(c, ctx, buf, n, dtype, op));
  if (root < 0 || root >= c->size)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: root %d outside [0, %d)", op, root, c->size);
  return note(c, c->ops->broadcast(c, ctx, buf, n, dtype, root));
}

deco_status_t deco_comm_barrier(deco_comm_t *c, deco_ctx_t *ctx) {
  int dummy = 0;
  DECO_TRY(check(c, ctx, &dummy, 0, DECO_COMM_INT32, "deco_comm_barrier"));
  return note(c, c->ops->barrier(c, ctx));
}

void deco_comm_abort(deco_comm_t *c) {
  if (c == NULL) return;
  atomic_store(&c->aborted, 1);
  c->ops->abort(c);
}

int deco_comm_aborted(const deco_comm_t *c) {
  if (c == NULL) return 0;
  if (atomic_load(&((deco_comm_t *)c)->aborted)) return 1;
  return c->ops->aborted ? c->ops->aborted(c) : 0;
}

void deco_comm_destroy(deco_comm_t *c) {
  if (c) c->ops->destroy(c);
}

void deco_comm_destroy_all(deco_comm_t **comms, int n) {
  if (comms == NULL || n <= 0) return;
  /* Together only when every handle is of one backend that can. */
  const deco_comm_ops_t *ops = NULL;
  int same = 1;
  for (int i = 0; i < n; ++i) {
    if (comms[i] == NULL) continue;
    if (ops == NULL) ops = comms[i]->ops;
    if (comms[i]->ops != ops) same = 0;
  }
  if (ops && same && ops->destroy_all && n <= DECO_COMM_MAX_RANKS) {
    ops->destroy_all(comms, n);
  } else {
    for (int i = 0; i < n; ++i) deco_comm_destroy(comms[i]);
  }
  for (int i = 0; i < n; ++i) comms[i] = NULL;
}

uint64_t deco_comm_hash(uint64_t h, const void *data, size_t bytes) {
  const unsigned char *p = data;
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

deco_status_t deco_comm_check_same(deco_comm_t *c, deco_ctx_t *ctx, uint64_t value, const char *what) {
  static const char op[] = "deco_comm_check_same";
  if (c == NULL) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: comm is NULL", op);
  if (what == NULL) what = "value";
  /* Two int32 halves per rank, so every backend carries it. */
  int32_t mine[2] = {(int32_t)(uint32_t)(value >> 32), (int32_t)(uint32_t)value};
  int32_t *all = malloc(sizeof(int32_t) * 2 * (size_t)c->size);
  if (!all) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  /* Host buffers: the backend's host all-gather (NCCL stages them through
   * the device and waits for its stream). */
  deco_status_t st = check(c, ctx, mine, 2, DECO_COMM_INT32, op);
  if (st == DECO_STATUS_SUCCESS) st = note(c, c->ops->host_all_gather(c, ctx, mine, all, 2, DECO_COMM_INT32));
  if (st == DECO_STATUS_SUCCESS) {
    const uint64_t first = ((uint64_t)(uint32_t)all[0] << 32) | (uint32_t)all[1];
    for (int r = 1; r < c->size; ++r) {
      const uint64_t v = ((uint64_t)(uint32_t)all[2 * r] << 32) | (uint32_t)all[2 * r + 1];
      if (v != first) {
        st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "the ranks disagree on the %s: rank 0 has %016llx, rank %d has %016llx (this is rank %d)",
                       what, (unsigned long long)first, r, (unsigned long long)v, c->rank);
        break;
      }
    }
  }
  free(all);
  return st;
}

/* ---- The launcher's environment ---- */

/* Parses a non-negative decimal int; -1 when malformed. */
static int env_int(const char *name, int *out) {
  const char *s = getenv(name);
  if (s == NULL || *s == '\0') return 0;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > 1 << 24) {
    DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s = '%s' is not a non-negative integer", name, s);
    return -1;
  }
  *out = (int)v;
  return 1;
}

int deco_comm_env_read(deco_comm_env_t *env) {
  static const struct {
    const char *rank, *size, *local, *source;
  } sets[] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD"},
              {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "PMI"},
              /* srun sets SLURM_STEP_NUM_TASKS for its step; an sbatch
               * script has SLURM_PROCID and SLURM_NTASKS but is no rank. */
              {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM"},
              {"RANK", "WORLD_SIZE", "LOCAL_RANK", "RANK/WORLD_SIZE"}};
  enum { N_SETS = sizeof sets / sizeof sets[0], TORCHRUN_SET = N_SETS - 1 };
  /* torchrun marks its workers with TORCHELASTIC_RUN_ID. It is the
   * innermost launcher wherever it runs (one task per node under srun or
   * mpirun, each starting the node's workers), so its RANK/WORLD_SIZE wins
   * over the outer launcher's variables, which the workers inherit. */
  const char *elastic = getenv("TORCHELASTIC_RUN_ID");
  const int torchrun_first = elastic != NULL && *elastic != '\0';
  *env = (deco_comm_env_t){.rank = 0, .size = 1, .local_rank = 0, .source = "none"};
  for (size_t k = 0; k < N_SETS; ++k) {
    const size_t i = !torchrun_first ? k : k == 0 ? TORCHRUN_SET : k - 1;
    int rank = 0, size = 0, local = 0;
    /* A set counts only whole: a variable without its partner is no launch,
     * whatever it holds. */
    const char *rs = getenv(sets[i].rank), *ss = getenv(sets[i].size);
    if (!rs || !*rs || !ss || !*ss) continue;
    const int a = env_int(sets[i].rank, &rank), b = env_int(sets[i].size, &size);
    if (a < 0 || b < 0) return -1;
    if (a == 0 || b == 0) continue;
    const int l = env_int(sets[i].local, &local);
    if (l < 0) return -1;
    if (size < 1 || rank >= size) {
      DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s = %d is not below %s = %d", sets[i].rank, rank, sets[i].size,
                size);
      return -1;
    }
    *env = (deco_comm_env_t){.rank = rank, .size = size, .local_rank = l ? local : 0, .source = sets[i].source};
    return 1;
  }
  return 0;
}

#ifndef DECO_HAVE_MPI
deco_status_t deco_comm_mpi_create(deco_comm_t **out) {
  if (out) *out = NULL;
  return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                   "deco_comm_mpi_create: this build has no MPI (install libopenmpi-dev and reconfigure)");
}
deco_status_t deco_comm_from_mpi(const void *mpi_comm, deco_comm_t **out) {
  if (out) *out = NULL;
  return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                   "deco_comm_from_mpi: this build has no MPI (install libopenmpi-dev and reconfigure)");
}
#endif

#ifndef DECO_HAVE_NCCL
static deco_status_t no_nccl(deco_comm_t **out, const char *op) {
  if (out) *out = NULL;
  return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                   "%s: this build has no NCCL (a CUDA build finds it beside the toolkit or in the system)", op);
}
deco_status_t deco_comm_nccl_create(const deco_comm_nccl_config_t *config, deco_comm_t **out) {
  return no_nccl(out, "deco_comm_nccl_create");
}
deco_status_t deco_comm_nccl_create_all(int n, const int *devices, deco_comm_t **comms) {
  return no_nccl(comms, "deco_comm_nccl_create_all");
}
deco_status_t deco_comm_from_nccl(const void *nccl_comm, double timeout_s, deco_comm_t **out) {
  return no_nccl(out, "deco_comm_from_nccl");
}
#endif
