/* host/tp/comm_nccl.c — the NCCL backend (device buffers, the context's
 * stream): one rank per GPU, either one process each (the unique id shared
 * over MPI, NCCL's own NCCL_COMM_ID bootstrap, or served by rank 0 on
 * MASTER_ADDR:MASTER_PORT) or one process driving several GPUs with one
 * thread each (ncclCommInitAll). Communicators created here are
 * non-blocking: every call is followed by polling ncclCommGetAsyncError
 * until it leaves ncclInProgress, with a timeout; an error or the timeout
 * aborts the communicator (ncclCommAbort) and returns a message naming the
 * operation, so a dead peer never hangs a rank. Collectives are enqueued on
 * the stream (and so can be captured in a CUDA graph); barrier waits for
 * the stream the same way. NCCL's sums are not in rank order: results are
 * reproducible per NCCL's algorithm choice, not bit-equal to the threads
 * backend. Built only with CUDA and NCCL found at configure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cuda_runtime_api.h>
#include <errno.h>
#include <nccl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef DECO_HAVE_MPI
#include <mpi.h>
#endif

#include "tp/comm_internal.h"

typedef struct nccl_state {
  ncclComm_t comm;
  int owned;        /* 1: destroyed (or aborted) with the handle */
  double timeout_s; /* how long a call may stay in progress */
  int device;
  void *barrier_buf; /* one int on the device, for barrier */
} nccl_state_t;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static ncclDataType_t nccl_type(deco_comm_dtype_t dt) {
  switch (dt) {
  case DECO_COMM_F16: return ncclFloat16;
  case DECO_COMM_BF16: return ncclBfloat16;
  case DECO_COMM_INT32: return ncclInt32;
  default: return ncclFloat32;
  }
}

/* After an NCCL call: wait while the communicator is in progress; an error
 * or the timeout aborts it (every later call then fails at once). */
static deco_status_t settle(deco_comm_t *c, deco_ctx_t *ctx, ncclResult_t r, const char *op) {
  nccl_state_t *s = c->impl;
  const double t0 = now_s();
  while (r == ncclInProgress || r == ncclSuccess) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t q = ncclCommGetAsyncError(s->comm, &async);
    if (q != ncclSuccess) {
      r = q;
      break;
    }
    if (async == ncclSuccess) return DECO_STATUS_SUCCESS;
    if (async != ncclInProgress) {
      r = async;
      break;
    }
    if (now_s() - t0 > s->timeout_s) {
      atomic_store(&c->aborted, 1);
      ncclCommAbort(s->comm);
      s->owned = 0;
      return DECO_FAIL(ctx, DECO_STATUS_ABORTED,
                       "nccl communicator: %s still in progress after %.0f s on rank %d of %d: the communicator was "
                       "aborted (ncclCommAbort)",
                       op, s->timeout_s, c->rank, c->size);
    }
    usleep(100);
  }
  atomic_store(&c->aborted, 1);
  const char *last = ncclGetLastError(s->comm);
  ncclCommAbort(s->comm);
  s->owned = 0;
  return DECO_FAIL(ctx, DECO_STATUS_ABORTED, "nccl communicator: %s failed on rank %d of %d: %s%s%s; the communicator "
                   "was aborted (ncclCommAbort)",
                   op, c->rank, c->size, ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
}

static cudaStream_t stream_of(deco_ctx_t *ctx) { return ctx ? (cudaStream_t)deco_ctx_stream(ctx) : 0; }

static deco_status_t all_reduce_sum(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx, ncclAllReduce(buf, buf, n, nccl_type(dtype), ncclSum, s->comm, stream_of(ctx)),
                "ncclAllReduce");
}

static deco_status_t all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                deco_comm_dtype_t dtype) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx, ncclAllGather(send, recv, n, nccl_type(dtype), s->comm, stream_of(ctx)), "ncclAllGather");
}

static deco_status_t broadcast(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                               int root) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx, ncclBroadcast(buf, buf, n, nccl_type(dtype), root, s->comm, stream_of(ctx)),
                "ncclBroadcast");
}

/* An all-reduce of one int, then the stream drained while polling for
 * asynchronous errors (a peer that died shows there, not as a hang). */
static deco_status_t barrier(deco_comm_t *c, deco_ctx_t *ctx) {
  nccl_state_t *s = c->impl;
  cudaStream_t st = stream_of(ctx);
  DECO_TRY(settle(c, ctx, ncclAllReduce(s->barrier_buf, s->barrier_buf, 1, ncclInt32, ncclSum, s->comm, st),
                  "ncclAllReduce (barrier)"));
  const double t0 = now_s();
  for (;;) {
    cudaError_t e = cudaStreamQuery(st);
    if (e == cudaSuccess) return DECO_STATUS_SUCCESS;
    if (e != cudaErrorNotReady) {
      (void)cudaGetLastError();
      return DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR, "nccl communicator: barrier: %s", cudaGetErrorString(e));
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(s->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) return settle(c, ctx, async, "barrier");
    if (now_s() - t0 > s->timeout_s) return settle(c, ctx, ncclInProgress, "barrier");
    usleep(100);
  }
}

static void abort_comm(deco_comm_t *c) {
  nccl_state_t *s = c->impl;
  if (s->owned) {
    ncclCommAbort(s->comm);
    s->owned = 0;
  }
}

static void destroy(deco_comm_t *c) {
  nccl_state_t *s = c->impl;
  if (s->owned) {
    /* Finalize flushes outstanding work, polled like any call. */
    if (settle(c, NULL, ncclCommFinalize(s->comm), "ncclCommFinalize") == DECO_STATUS_SUCCESS)
      ncclCommDestroy(s->comm);
  }
  if (s->barrier_buf) cudaFree(s->barrier_buf);
  free(s);
  free(c);
}

static const deco_comm_ops_t nccl_ops = {.all_reduce_sum = all_reduce_sum, .all_gather = all_gather,
                                         .broadcast = broadcast, .barrier = barrier, .abort = abort_comm,
                                         .destroy = destroy};

static deco_status_t wrap(ncclComm_t comm, int owned, int device, double timeout_s, deco_comm_t **out,
                          const char *op) {
  int rank = 0, size = 1;
  if (ncclCommUserRank(comm, &rank) != ncclSuccess || ncclCommCount(comm, &size) != ncclSuccess)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: not a usable NCCL communicator", op);
  if (size > DECO_COMM_MAX_RANKS)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: %d ranks (at most %d)", op, size, DECO_COMM_MAX_RANKS);
  deco_comm_t *c = calloc(1, sizeof *c);
  nccl_state_t *s = calloc(1, sizeof *s);
  if (!c || !s) {
    free(c);
    free(s);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  }
  cudaError_t e = cudaMalloc(&s->barrier_buf, sizeof(int32_t));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    free(c);
    free(s);
    return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: cudaMalloc: %s", op, cudaGetErrorString(e));
  }
  s->comm = comm;
  s->owned = owned;
  s->device = device;
  s->timeout_s = timeout_s > 0 ? timeout_s : DECO_COMM_NCCL_TIMEOUT_S;
  *c = (deco_comm_t){.ops = &nccl_ops, .backend = DECO_COMM_NCCL, .rank = rank, .size = size, .impl = s};
  atomic_store(&c->aborted, 0);
  *out = c;
  return DECO_STATUS_SUCCESS;
}

/* ---- The unique id, process per GPU ---- */

/* Rank 0 serves the id on MASTER_ADDR:MASTER_PORT to size - 1 peers; the
 * others connect (retrying until the timeout) and read it. */
static deco_status_t tcp_share_id(ncclUniqueId *id, int rank, int size, const char *addr, const char *port,
                                  double timeout_s, const char *op) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (rank == 0) hints.ai_flags = AI_PASSIVE;
  int g = getaddrinfo(rank == 0 ? NULL : addr, port, &hints, &ai);
  if (g != 0)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: MASTER_ADDR=%s MASTER_PORT=%s: %s", op, addr, port,
                     gai_strerror(g));
  deco_status_t st = DECO_STATUS_SUCCESS;
  const double t0 = now_s();
  if (rank == 0) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, size) != 0) {
      st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: cannot listen on MASTER_PORT=%s: %s", op, port, strerror(errno));
    } else {
      for (int served = 1; served < size && st == DECO_STATUS_SUCCESS; ++served) {
        int peer = accept(fd, NULL, NULL);
        if (peer < 0 || write(peer, id, sizeof *id) != (ssize_t)sizeof *id)
          st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: serving the NCCL id on port %s: %s", op, port,
                         strerror(errno));
        if (peer >= 0) close(peer);
      }
    }
    if (fd >= 0) close(fd);
  } else {
    for (;;) {
      int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        size_t got = 0;
        while (got < sizeof *id) {
          ssize_t k = read(fd, (char *)id + got, sizeof *id - got);
          if (k <= 0) break;
          got += (size_t)k;
        }
        close(fd);
        if (got != sizeof *id)
          st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: short NCCL id from %s:%s", op, addr, port);
        break;
      }
      if (fd >= 0) close(fd);
      if (now_s() - t0 > timeout_s) {
        st = DECO_FAIL(NULL, DECO_STATUS_IO_ERROR, "%s: no NCCL id served at MASTER_ADDR=%s MASTER_PORT=%s after %.0f s",
                       op, addr, port, timeout_s);
        break;
      }
      usleep(100 * 1000);
    }
  }
  freeaddrinfo(ai);
  return st;
}

deco_status_t deco_comm_nccl_create(const deco_comm_nccl_config_t *config, deco_comm_t **out) {
  static const char op[] = "deco_comm_nccl_create";
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  const deco_comm_nccl_config_t defaults = DECO_COMM_NCCL_CONFIG_INIT;
  if (config == NULL) config = &defaults;
  if (config->size != sizeof *config)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: config->size = %zu, expected %zu", op, config->size,
                     sizeof *config);
  deco_comm_env_t env;
  const int found = deco_comm_env_read(&env);
  if (found < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, deco_last_error(NULL));
  const double timeout = config->timeout_s > 0 ? config->timeout_s : DECO_COMM_NCCL_TIMEOUT_S;
  const int device = config->device >= 0 ? config->device : env.local_rank;
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return DECO_FAIL(NULL, DECO_STATUS_NO_DEVICE, "%s: rank %d: GPU %d: %s", op, env.rank, device,
                     cudaGetErrorString(e));
  }
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  const char *comm_id = getenv("NCCL_COMM_ID"), *maddr = getenv("MASTER_ADDR"), *mport = getenv("MASTER_PORT");
  deco_status_t st = DECO_STATUS_SUCCESS;
  int mpi_launch = found > 0 && (strcmp(env.source, "OMPI_COMM_WORLD") == 0 || strcmp(env.source, "PMI") == 0);
#ifndef DECO_HAVE_MPI
  mpi_launch = 0;
#endif
  if (env.size == 1) {
    if (ncclGetUniqueId(&id) != ncclSuccess) st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
  } else if (mpi_launch) {
#ifdef DECO_HAVE_MPI
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized && MPI_Init(NULL, NULL) != MPI_SUCCESS)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: MPI_Init failed", op);
    if (st == DECO_STATUS_SUCCESS && env.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
    if (st == DECO_STATUS_SUCCESS && MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: MPI_Bcast of the NCCL id", op);
#endif
  } else if (comm_id && *comm_id) {
    /* NCCL's own bootstrap: every rank derives the id from NCCL_COMM_ID. */
    if (ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId with NCCL_COMM_ID=%s", op, comm_id);
  } else if (maddr && *maddr && mport && *mport) {
    if (env.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
    if (st == DECO_STATUS_SUCCESS) st = tcp_share_id(&id, env.rank, env.size, maddr, mport, timeout, op);
  } else {
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: rank %d of %d has no way to share the NCCL id: no MPI launch (OMPI_COMM_WORLD_*, PMI_*), "
                     "no NCCL_COMM_ID, no MASTER_ADDR and MASTER_PORT",
                     op, env.rank, env.size);
  }
  if (st != DECO_STATUS_SUCCESS) return st;
  ncclConfig_t nc = NCCL_CONFIG_INITIALIZER;
  nc.blocking = 0;
  ncclComm_t comm;
  ncclResult_t r = ncclCommInitRankConfig(&comm, env.size, id, env.rank, &nc);
  if (r != ncclSuccess && r != ncclInProgress)
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclCommInitRankConfig (rank %d of %d): %s", op, env.rank,
                     env.size, ncclGetErrorString(r));
  DECO_TRY(wrap(comm, 1, device, timeout, out, op));
  st = settle(*out, NULL, r, "ncclCommInitRankConfig");
  if (st != DECO_STATUS_SUCCESS) {
    deco_comm_destroy(*out);
    *out = NULL;
  }
  return st;
}

deco_status_t deco_comm_nccl_create_all(int n, const int *devices, deco_comm_t **comms) {
  static const char op[] = "deco_comm_nccl_create_all";
  if (comms == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: comms is NULL", op);
  if (n < 1 || n > DECO_COMM_MAX_RANKS)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %d outside [1, %d]", op, n, DECO_COMM_MAX_RANKS);
  ncclComm_t raw[DECO_COMM_MAX_RANKS];
  int devs[DECO_COMM_MAX_RANKS];
  for (int r = 0; r < n; ++r) {
    comms[r] = NULL;
    devs[r] = devices ? devices[r] : r;
  }
  ncclResult_t res = ncclCommInitAll(raw, n, devs);
  if (res != ncclSuccess)
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclCommInitAll over %d GPUs: %s", op, n,
                     ncclGetErrorString(res));
  for (int r = 0; r < n; ++r) {
    cudaSetDevice(devs[r]);
    deco_status_t st = wrap(raw[r], 1, devs[r], DECO_COMM_NCCL_TIMEOUT_S, &comms[r], op);
    if (st != DECO_STATUS_SUCCESS) {
      for (int q = 0; q < r; ++q) deco_comm_destroy(comms[q]);
      for (int q = r; q < n; ++q) ncclCommDestroy(raw[q]);
      for (int q = 0; q < n; ++q) comms[q] = NULL;
      return st;
    }
  }
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_comm_from_nccl(const void *nccl_comm, double timeout_s, deco_comm_t **out) {
  static const char op[] = "deco_comm_from_nccl";
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  if (nccl_comm == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: nccl_comm is NULL", op);
  int device = -1;
  cudaGetDevice(&device);
  return wrap(*(const ncclComm_t *)nccl_comm, 0, device, timeout_s, out, op);
}
