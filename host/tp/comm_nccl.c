/* host/tp/comm_nccl.c — the NCCL backend (device buffers, the context's
 * stream): one rank per GPU, either one process each (the unique id shared
 * over MPI, NCCL's own NCCL_COMM_ID bootstrap, or served by rank 0 on
 * MASTER_ADDR:MASTER_PORT) or one process driving several GPUs with one
 * thread each (per-device ncclCommInitRankConfig in one group).
 * Communicators created here are non-blocking: initialisation and every
 * call are followed by polling ncclCommGetAsyncError until it leaves
 * ncclInProgress, with a timeout; an error or the timeout aborts the
 * communicator (ncclCommAbort) and returns a message naming the operation,
 * so a dead peer never hangs a rank. The communicators of one process
 * created together form a group: aborting one (a failing rank, an error,
 * a timeout) aborts them all, and a watchdog thread per group polls their
 * asynchronous errors and aborts the group on the first, or when one member
 * stays behind the others' collectives for the timeout, so a rank waiting
 * on its stream is released. Collectives are enqueued on the stream (and
 * so can be captured in a CUDA graph); barrier and the host all-gather
 * wait for a stream the same way. NCCL's sums are not in rank order: results are
 * reproducible per NCCL's algorithm choice, not bit-equal to the threads
 * backend. Built only with CUDA and NCCL found at configure.
 */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef DECO_HAVE_MPI
#include <mpi.h>
#endif

#include "tp/comm_internal.h"
#include "util/sized.h"

/* The communicators of one process created together (one, or create_all's
 * n): an abort of any aborts all; the watchdog polls their asynchronous
 * errors. mu serialises ncclCommAbort against the members' calls, so no
 * call runs on a communicator being freed. */
typedef struct nccl_group {
  pthread_mutex_t mu;
  int n, refs;
  ncclComm_t comms[DECO_COMM_MAX_RANKS];
  int live[DECO_COMM_MAX_RANKS]; /* 1: owned and neither aborted nor destroyed */
  deco_comm_t *handles[DECO_COMM_MAX_RANKS];
  int aborted;
  pthread_t watchdog;
  int watching, stop;
  /* Progress: collectives each member enqueued, and since when a member
   * has been behind the furthest one (0: not behind). */
  unsigned long long entered[DECO_COMM_MAX_RANKS];
  double behind_since[DECO_COMM_MAX_RANKS];
  double timeout_s;
} nccl_group_t;

typedef struct nccl_state {
  ncclComm_t comm;
  int owned;        /* 1: destroyed (or aborted) with the handle */
  double timeout_s; /* how long a call may stay in progress */
  int device;
  void *barrier_buf; /* one int on the device, for barrier */
  cudaStream_t host_stream; /* the host all-gather's own stream, made on first use */
  nccl_group_t *group;      /* NULL for a wrapped engine communicator */
  int slot;                 /* this handle's index in group */
  int mpi_init_by_us;       /* release MPI on destroy (comm_mpi.c) */
  int comm_gone;            /* ungrouped: ncclCommAbort was called */
} nccl_state_t;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Aborts every live communicator of the group once; the handles are marked
 * so that their next call fails at once. Called with g->mu held. */
static void group_abort_locked(nccl_group_t *g) {
  if (g->aborted) return;
  g->aborted = 1;
  for (int i = 0; i < g->n; ++i) {
    if (g->handles[i]) atomic_store(&g->handles[i]->aborted, 1);
    if (g->live[i]) {
      ncclCommAbort(g->comms[i]);
      g->live[i] = 0;
      if (g->handles[i]) ((nccl_state_t *)g->handles[i]->impl)->owned = 0;
    }
  }
}

/* Aborts this handle's communicator: the whole group when it has one. A
 * wrapped engine communicator (no group, not owned) is aborted only after
 * an error or a timeout (force: NCCL leaves it unusable then), never by a
 * plain deco_comm_abort. */
static void abort_one(deco_comm_t *c, int force) {
  nccl_state_t *s = c->impl;
  atomic_store(&c->aborted, 1);
  if (s->group) {
    pthread_mutex_lock(&s->group->mu);
    group_abort_locked(s->group);
    pthread_mutex_unlock(&s->group->mu);
  } else if ((s->owned || force) && !s->comm_gone) {
    ncclCommAbort(s->comm);
    s->owned = 0;
    s->comm_gone = 1;
  }
}

/* ncclCommGetAsyncError on a handle's communicator, or ncclInvalidUsage
 * once the group was aborted (the communicator is gone). */
static ncclResult_t async_error(nccl_state_t *s, ncclResult_t *async) {
  ncclResult_t q;
  if (s->group) pthread_mutex_lock(&s->group->mu);
  if ((s->group && s->group->aborted) || s->comm_gone) {
    *async = ncclInvalidUsage;
    q = ncclSuccess;
  } else {
    q = ncclCommGetAsyncError(s->comm, async);
  }
  if (s->group) pthread_mutex_unlock(&s->group->mu);
  return q;
}

/* The watchdog: every 10 ms, the asynchronous error of each member; the
 * first error aborts the group, which releases every member's waits (a
 * kernel waiting on a dead peer, a stream synchronised elsewhere). */
static void *watchdog_main(void *arg) {
  nccl_group_t *g = arg;
  for (;;) {
    pthread_mutex_lock(&g->mu);
    if (g->stop || g->aborted) {
      pthread_mutex_unlock(&g->mu);
      return NULL;
    }
    for (int i = 0; i < g->n; ++i) {
      if (!g->live[i]) continue;
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(g->comms[i], &async) != ncclSuccess ||
          (async != ncclSuccess && async != ncclInProgress)) {
        fprintf(stderr,
                "deco: nccl communicator: rank %d reports %s: aborting the %d communicator(s) of this process\n",
                g->handles[i] ? g->handles[i]->rank : i, ncclGetErrorString(async), g->n);
        group_abort_locked(g);
        break;
      }
    }
    /* A member that stays behind the others' collectives for the timeout
     * (stuck outside NCCL: its peers' kernels wait for it forever, and a
     * stream synchronised outside this file would never return) aborts
     * the group. Members past their last collective (destroyed) are not
     * waited for; replayed CUDA graphs enqueue nothing here, so ranks
     * replaying stay level. */
    unsigned long long furthest = 0;
    for (int i = 0; i < g->n && !g->aborted; ++i)
      if (g->entered[i] > furthest) furthest = g->entered[i];
    const double now = now_s();
    for (int i = 0; i < g->n && !g->aborted; ++i) {
      if (!g->live[i] || g->entered[i] == furthest) {
        g->behind_since[i] = 0;
        continue;
      }
      if (g->behind_since[i] == 0) g->behind_since[i] = now;
      if (now - g->behind_since[i] > g->timeout_s) {
        fprintf(stderr,
                "deco: nccl communicator: rank %d has not reached collective %llu for %.0f s (another rank has): "
                "aborting the %d communicator(s) of this process\n",
                g->handles[i] ? g->handles[i]->rank : i, g->entered[i] + 1, g->timeout_s, g->n);
        group_abort_locked(g);
      }
    }
    pthread_mutex_unlock(&g->mu);
    usleep(10 * 1000);
  }
}

static nccl_group_t *group_new(int n, const ncclComm_t *comms) {
  nccl_group_t *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  pthread_mutex_init(&g->mu, NULL);
  g->n = n;
  g->timeout_s = DECO_COMM_NCCL_TIMEOUT_S;
  for (int i = 0; i < n; ++i) {
    g->comms[i] = comms[i];
    g->live[i] = 1;
  }
  return g;
}

static void group_start_watchdog(nccl_group_t *g) {
  g->watching = pthread_create(&g->watchdog, NULL, watchdog_main, g) == 0;
}

/* Drops one handle's reference; the last stops the watchdog and frees. */
static void group_release(nccl_group_t *g, int slot) {
  pthread_mutex_lock(&g->mu);
  g->handles[slot] = NULL;
  const int last = --g->refs == 0;
  if (last) g->stop = 1;
  pthread_mutex_unlock(&g->mu);
  if (!last) return;
  if (g->watching) pthread_join(g->watchdog, NULL);
  pthread_mutex_lock(&g->mu);
  for (int i = 0; i < g->n; ++i)
    if (g->live[i]) ncclCommAbort(g->comms[i]); /* never wrapped: nothing else frees it */
  pthread_mutex_unlock(&g->mu);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

/* After an NCCL call that returned *r: polls the asynchronous error of s's
 * communicator every 100 us while it is in progress. 1 once it is ready,
 * 0 when it is still in progress after timeout_s, -1 with *r the error
 * (the call's, the query's or the asynchronous one). */
static int poll_ready(nccl_state_t *s, ncclResult_t *r, double timeout_s) {
  const double t0 = now_s();
  while (*r == ncclInProgress || *r == ncclSuccess) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t q = async_error(s, &async);
    if (q != ncclSuccess) {
      *r = q;
      return -1;
    }
    if (async == ncclSuccess) return 1;
    if (async != ncclInProgress) {
      *r = async;
      return -1;
    }
    if (now_s() - t0 > timeout_s) return 0;
    usleep(100);
  }
  return -1;
}

/* Waits until a freshly initialised communicator leaves ncclInProgress:
 * success, or ncclCommAbort and a message (the communicator is gone). */
static deco_status_t init_wait(ncclComm_t comm, ncclResult_t r, double timeout_s, const char *op, const char *what,
                               int rank, int size) {
  nccl_state_t alone = {.comm = comm}; /* no group: async_error asks NCCL itself */
  const int ready = poll_ready(&alone, &r, timeout_s);
  if (ready > 0) return DECO_STATUS_SUCCESS;
  if (ready == 0) {
    ncclCommAbort(comm);
    return DECO_FAIL(NULL, DECO_STATUS_ABORTED,
                     "%s: %s (rank %d of %d) still in progress after %.0f s: aborted (ncclCommAbort)", op, what, rank,
                     size, timeout_s);
  }
  const char *last = ncclGetLastError(comm);
  ncclCommAbort(comm);
  return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: %s (rank %d of %d): %s%s%s; aborted (ncclCommAbort)", op, what,
                   rank, size, ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
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
 * or the timeout aborts it (and its group: every later call then fails at
 * once). */
static deco_status_t settle(deco_comm_t *c, deco_ctx_t *ctx, ncclResult_t r, const char *op) {
  nccl_state_t *s = c->impl;
  const int ready = poll_ready(s, &r, s->timeout_s);
  if (ready > 0) return DECO_STATUS_SUCCESS;
  if (ready == 0) {
    abort_one(c, 1);
    return DECO_FAIL(ctx, DECO_STATUS_ABORTED,
                     "nccl communicator: %s still in progress after %.0f s on rank %d of %d: the communicator was "
                     "aborted (ncclCommAbort)",
                     op, s->timeout_s, c->rank, c->size);
  }
  /* Under the group's lock: the watchdog may abort the communicator (and
   * so free it) at any moment; NCCL's last error is copied out before the
   * lock goes (ncclGetLastError only reads, it never blocks). */
  char last[256] = "";
  if (s->group) pthread_mutex_lock(&s->group->mu);
  if (s->group && s->group->aborted) {
    snprintf(last, sizeof last, "%s", "another rank of this process aborted");
  } else if (s->comm_gone) {
    snprintf(last, sizeof last, "%s", "the communicator was already aborted");
  } else {
    const char *text = ncclGetLastError(s->comm);
    snprintf(last, sizeof last, "%s", text ? text : "");
  }
  if (s->group) pthread_mutex_unlock(&s->group->mu);
  abort_one(c, 1);
  return DECO_FAIL(ctx, DECO_STATUS_ABORTED, "nccl communicator: %s failed on rank %d of %d: %s%s%s; the communicator "
                   "was aborted (ncclCommAbort)",
                   op, c->rank, c->size, ncclGetErrorString(r), *last ? ": " : "", last);
}

/* 1 once this handle's communicator was aborted (its group's, or an
 * ungrouped one's): NCCL has then ended whatever it had running on the
 * device. Read under the group's lock (the watchdog aborts under it). */
static int comm_gone(nccl_state_t *s) {
  if (!s->group) return s->comm_gone;
  pthread_mutex_lock(&s->group->mu);
  const int gone = s->group->aborted;
  pthread_mutex_unlock(&s->group->mu);
  return gone;
}

/* Waits for a stream to drain while polling the communicator's
 * asynchronous errors (a peer that died shows there, not as a hang). The
 * timeout aborts the communicator, which ends its kernels on the stream:
 * a healthy communicator whose stream is stuck (a peer that never joined
 * the collective, a kernel before it that never ends) reports no error,
 * so the timeout must not be left to settle, which would answer success. */
static deco_status_t wait_stream(deco_comm_t *c, deco_ctx_t *ctx, cudaStream_t st, const char *op) {
  nccl_state_t *s = c->impl;
  const double t0 = now_s();
  for (;;) {
    cudaError_t e = cudaStreamQuery(st);
    if (e == cudaSuccess) return DECO_STATUS_SUCCESS;
    if (e != cudaErrorNotReady) {
      (void)cudaGetLastError();
      return DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR, "nccl communicator: %s: %s", op, cudaGetErrorString(e));
    }
    ncclResult_t async = ncclSuccess;
    async_error(s, &async);
    if (async != ncclSuccess && async != ncclInProgress) return settle(c, ctx, async, op);
    if (now_s() - t0 > s->timeout_s) {
      abort_one(c, 1);
      return DECO_FAIL(ctx, DECO_STATUS_ABORTED,
                       "nccl communicator: %s: the stream did not drain within the timeout of %.0f s on rank %d of "
                       "%d: the communicator was aborted (ncclCommAbort)",
                       op, s->timeout_s, c->rank, c->size);
    }
    usleep(100);
  }
}

static cudaStream_t stream_of(deco_ctx_t *ctx) { return ctx ? (cudaStream_t)deco_ctx_stream(ctx) : 0; }

/* Enqueues under the group's lock, so an abort never frees the
 * communicator under a call; an aborted group refuses. enter locks (0 when
 * aborted, unlocked again); leave unlocks and passes the call's result,
 * which C evaluates before leave runs. */
static int enter(nccl_state_t *s) {
  if (!s->group) return !s->comm_gone;
  pthread_mutex_lock(&s->group->mu);
  if (!s->group->aborted) return 1;
  pthread_mutex_unlock(&s->group->mu);
  return 0;
}
static ncclResult_t leave(nccl_state_t *s, ncclResult_t r) {
  if (s->group) pthread_mutex_unlock(&s->group->mu);
  return r;
}
#define ENQUEUE(s, call) (enter(s) ? leave((s), (call)) : ncclInvalidUsage)
/* A collective: also counted as the member's progress (watchdog_main). */
static int enter_collective(nccl_state_t *s) {
  if (!enter(s)) return 0;
  if (s->group) ++s->group->entered[s->slot];
  return 1;
}
#define ENQUEUE_COLLECTIVE(s, call) (enter_collective(s) ? leave((s), (call)) : ncclInvalidUsage)

static deco_status_t all_reduce_sum(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx,
                ENQUEUE_COLLECTIVE(s, ncclAllReduce(buf, buf, n, nccl_type(dtype), ncclSum, s->comm, stream_of(ctx))),
                "ncclAllReduce");
}

static deco_status_t all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                deco_comm_dtype_t dtype) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx, ENQUEUE_COLLECTIVE(s, ncclAllGather(send, recv, n, nccl_type(dtype), s->comm, stream_of(ctx))),
                "ncclAllGather");
}

/* Host buffers: staged through one device buffer, gathered on the
 * handle's own stream and waited for, so the result is in recv on return
 * whatever the context's stream is doing. */
static deco_status_t host_all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                     deco_comm_dtype_t dtype) {
  static const char op[] = "host all-gather";
  nccl_state_t *s = c->impl;
  const size_t bytes = n * deco_comm_dtype_size(dtype), total = bytes * (size_t)c->size;
  if (n == 0) return DECO_STATUS_SUCCESS;
  cudaError_t e = cudaSetDevice(s->device);
  if (e == cudaSuccess && s->host_stream == NULL) e = cudaStreamCreateWithFlags(&s->host_stream, cudaStreamNonBlocking);
  char *dev = NULL;
  if (e == cudaSuccess) e = cudaMalloc((void **)&dev, total + bytes);
  if (e == cudaSuccess) e = cudaMemcpyAsync(dev + total, send, bytes, cudaMemcpyHostToDevice, s->host_stream);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (dev) cudaFree(dev);
    return DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR, "nccl communicator: %s on rank %d: %s", op, c->rank,
                     cudaGetErrorString(e));
  }
  deco_status_t st =
      settle(c, ctx,
             ENQUEUE_COLLECTIVE(s, ncclAllGather(dev + total, dev, n, nccl_type(dtype), s->comm, s->host_stream)), op);
  /* The gather drained (polled, under the timeout) before recv is copied:
   * a copy into pageable memory returns only once done, so queued behind
   * a gather whose peer never comes it would block past any timeout. A
   * failed settle has already aborted (nothing to wait for then). */
  if (!comm_gone(s)) {
    const deco_status_t w = wait_stream(c, ctx, s->host_stream, op);
    if (st == DECO_STATUS_SUCCESS) st = w;
  }
  if (st == DECO_STATUS_SUCCESS) {
    e = cudaMemcpyAsync(recv, dev, total, cudaMemcpyDeviceToHost, s->host_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s->host_stream); /* only the copy is queued now */
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      st = DECO_FAIL(ctx, DECO_STATUS_CUDA_ERROR, "nccl communicator: %s on rank %d: %s", op, c->rank,
                     cudaGetErrorString(e));
    }
  }
  /* The buffer goes only when nothing queued can still use it: the stream
   * drained, or the communicator was aborted (NCCL then ends the gather's
   * kernel). Otherwise (a CUDA error on the stream with the communicator
   * alive) it is left allocated: cudaFree would wait for the queued gather,
   * the very hang the timeout exists to avoid. */
  if (comm_gone(s) || cudaStreamQuery(s->host_stream) == cudaSuccess)
    cudaFree(dev);
  else
    (void)cudaGetLastError();
  return st;
}

static deco_status_t broadcast(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                               int root) {
  nccl_state_t *s = c->impl;
  return settle(c, ctx,
                ENQUEUE_COLLECTIVE(s, ncclBroadcast(buf, buf, n, nccl_type(dtype), root, s->comm, stream_of(ctx))),
                "ncclBroadcast");
}

/* An all-reduce of one int, then the stream drained while polling for
 * asynchronous errors (wait_stream). */
static deco_status_t barrier(deco_comm_t *c, deco_ctx_t *ctx) {
  nccl_state_t *s = c->impl;
  cudaStream_t st = stream_of(ctx);
  void *one = s->barrier_buf;
  DECO_TRY(settle(c, ctx, ENQUEUE_COLLECTIVE(s, ncclAllReduce(one, one, 1, ncclInt32, ncclSum, s->comm, st)),
                  "ncclAllReduce (barrier)"));
  return wait_stream(c, ctx, st, "barrier");
}

static void abort_comm(deco_comm_t *c) { abort_one(c, 0); }

/* s->owned, read under the group's lock (an abort clears it). */
static int owned_now(nccl_state_t *s) {
  if (!s->group) return s->owned;
  pthread_mutex_lock(&s->group->mu);
  const int owned = s->owned;
  pthread_mutex_unlock(&s->group->mu);
  return owned;
}

/* What a handle holds besides its communicator (finalized, destroyed or
 * aborted before): its group reference, stream, barrier int, MPI. */
static void release(deco_comm_t *c) {
  nccl_state_t *s = c->impl;
  if (s->group) group_release(s->group, s->slot);
  /* On the handle's GPU (one thread may release several), then back. */
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  if (s->device >= 0 && s->device != current) cudaSetDevice(s->device);
  if (s->host_stream) cudaStreamDestroy(s->host_stream);
  if (s->barrier_buf) cudaFree(s->barrier_buf);
  if (current >= 0 && s->device >= 0 && s->device != current) cudaSetDevice(current);
  (void)cudaGetLastError();
#ifdef DECO_HAVE_MPI
  deco_comm_mpi_release(s->mpi_init_by_us);
#endif
  free(s);
  free(c);
}

static void destroy(deco_comm_t *c) {
  nccl_state_t *s = c->impl;
  if (owned_now(s)) {
    /* Finalize flushes outstanding work, polled like any call. */
    if (settle(c, NULL, ENQUEUE(s, ncclCommFinalize(s->comm)), "ncclCommFinalize") == DECO_STATUS_SUCCESS) {
      if (s->group) pthread_mutex_lock(&s->group->mu);
      if (!s->group || !s->group->aborted) {
        ncclCommDestroy(s->comm);
        if (s->group) s->group->live[s->slot] = 0;
      }
      if (s->group) pthread_mutex_unlock(&s->group->mu);
    }
  }
  release(c);
}

/* Handles of one group from one thread (create_all's): finalize is
 * collective over the clique, so every member's ncclCommFinalize goes into
 * one ncclGroupStart/End (finalizing them one by one would wait in the
 * first for the others), then all are polled together until quiescent
 * (an error or the timeout aborts the group), then each is destroyed.
 * Handles of different groups, or without one, are independent: destroyed
 * one by one. */
static void destroy_all(deco_comm_t **cs, int n) {
  nccl_group_t *g = NULL;
  int together = 1;
  for (int i = 0; i < n; ++i) {
    if (cs[i] == NULL) continue;
    nccl_state_t *s = cs[i]->impl;
    if (s->group == NULL || (g && s->group != g)) together = 0;
    g = s->group;
  }
  if (!together || g == NULL) {
    for (int i = 0; i < n; ++i)
      if (cs[i]) destroy(cs[i]);
    return;
  }
  ncclComm_t fin[DECO_COMM_MAX_RANKS];
  int slot[DECO_COMM_MAX_RANKS], k = 0, ok = 1, timed_out = 0;
  ncclResult_t bad = ncclSuccess;
  double timeout_s = DECO_COMM_NCCL_TIMEOUT_S;
  /* The lock is held across the group call: with non-blocking
   * communicators ncclGroupEnd returns ncclInProgress instead of waiting,
   * and the watchdog must not abort a communicator inside it. */
  pthread_mutex_lock(&g->mu);
  if (!g->aborted) {
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) {
      ok = 0, bad = r;
    } else {
      for (int i = 0; i < n && ok; ++i) {
        if (cs[i] == NULL) continue;
        nccl_state_t *s = cs[i]->impl;
        if (!s->owned || !g->live[s->slot]) continue;
        timeout_s = s->timeout_s;
        r = ncclCommFinalize(s->comm);
        if (r != ncclSuccess && r != ncclInProgress) ok = 0, bad = r;
        fin[k] = s->comm;
        slot[k++] = s->slot;
      }
      r = ncclGroupEnd(); /* always paired with the start */
      if (ok && r != ncclSuccess && r != ncclInProgress) ok = 0, bad = r;
    }
  }
  pthread_mutex_unlock(&g->mu);
  /* Every finalized communicator quiescent, or the group aborted. */
  const double t0 = now_s();
  for (int pending = k > 0; ok && pending;) {
    pending = 0;
    pthread_mutex_lock(&g->mu);
    if (g->aborted) ok = 0;
    for (int j = 0; j < k && ok; ++j) {
      ncclResult_t a = ncclSuccess;
      const ncclResult_t q = ncclCommGetAsyncError(fin[j], &a);
      if (q != ncclSuccess || (a != ncclSuccess && a != ncclInProgress)) ok = 0, bad = q != ncclSuccess ? q : a;
      if (a == ncclInProgress) pending = 1;
    }
    pthread_mutex_unlock(&g->mu);
    if (ok && pending && now_s() - t0 > timeout_s) ok = 0, timed_out = 1;
    if (ok && pending) usleep(100);
  }
  pthread_mutex_lock(&g->mu);
  if (ok && !g->aborted) {
    for (int j = 0; j < k; ++j) {
      ncclCommDestroy(fin[j]); /* after a finalize: local only, never blocks */
      g->live[slot[j]] = 0;
      if (g->handles[slot[j]]) ((nccl_state_t *)g->handles[slot[j]]->impl)->owned = 0;
    }
  } else {
    const int by_other = g->aborted && bad == ncclSuccess && !timed_out;
    group_abort_locked(g);
    if (timed_out)
      DECO_FAIL(NULL, DECO_STATUS_ABORTED,
                "nccl communicator: ncclCommFinalize of %d communicator(s) still in progress after %.0f s: the "
                "communicators were aborted (ncclCommAbort)",
                k, timeout_s);
    else if (!by_other)
      DECO_FAIL(NULL, DECO_STATUS_ABORTED,
                "nccl communicator: ncclCommFinalize of %d communicator(s) failed: %s; the communicators were "
                "aborted (ncclCommAbort)",
                k, ncclGetErrorString(bad));
  }
  pthread_mutex_unlock(&g->mu);
  for (int i = 0; i < n; ++i)
    if (cs[i]) release(cs[i]);
}

static const deco_comm_ops_t nccl_ops = {.all_reduce_sum = all_reduce_sum, .all_gather = all_gather,
                                         .host_all_gather = host_all_gather, .broadcast = broadcast, .barrier = barrier,
                                         .abort = abort_comm,
                                         .destroy = destroy, .destroy_all = destroy_all};

/* A handle on an initialised communicator (init_wait done: NCCL answers
 * rank and count only then). On failure the communicator is the caller's. */
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

/* Puts handles into a new group (aborts spread, a watchdog polls). On
 * failure (no memory) the handles stay ungrouped: still usable alone. */
static void group_handles(int n, deco_comm_t **h) {
  ncclComm_t raw[DECO_COMM_MAX_RANKS];
  for (int i = 0; i < n; ++i) raw[i] = ((nccl_state_t *)h[i]->impl)->comm;
  nccl_group_t *g = group_new(n, raw);
  if (!g) return;
  g->refs = n;
  g->timeout_s = ((nccl_state_t *)h[0]->impl)->timeout_s;
  for (int i = 0; i < n; ++i) {
    nccl_state_t *s = h[i]->impl;
    g->handles[i] = h[i];
    s->group = g;
    s->slot = i;
  }
  group_start_watchdog(g);
}

/* ---- The unique id, process per GPU ---- */

deco_status_t deco_comm_nccl_create(const deco_comm_nccl_config_t *config, deco_comm_t **out) {
  static const char op[] = "deco_comm_nccl_create";
  if (out == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  const deco_comm_nccl_config_t defaults = DECO_COMM_NCCL_CONFIG_INIT;
  deco_comm_nccl_config_t given = defaults;
  if (config) DECO_TRY(deco_sized_read(NULL, &given, config, &defaults, sizeof given, "deco_comm_nccl_create: config"));
  config = &given;
  deco_comm_env_t env;
  const int found = deco_comm_env_read(&env);
  if (found < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: %s", op, deco_last_error(NULL));
  const double timeout = config->timeout_s > 0 ? config->timeout_s : DECO_COMM_NCCL_TIMEOUT_S;
  const int device = config->device >= 0 ? config->device : env.local_rank;
  /* A GPU that cannot be selected fails this rank, but under MPI only after
   * the id's broadcast below, which every rank must enter. */
  deco_status_t st = DECO_STATUS_SUCCESS;
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    st = DECO_FAIL(NULL, DECO_STATUS_NO_DEVICE, "%s: rank %d: GPU %d: %s", op, env.rank, device,
                   cudaGetErrorString(e));
  }
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  const char *comm_id = getenv("NCCL_COMM_ID"), *maddr = getenv("MASTER_ADDR"), *mport = getenv("MASTER_PORT");
  int mpi_init_by_us = 0;
  int mpi_launch = found > 0 && (strcmp(env.source, "OMPI_COMM_WORLD") == 0 || strcmp(env.source, "PMI") == 0);
#ifndef DECO_HAVE_MPI
  mpi_launch = 0;
#endif
  if (env.size == 1) {
    if (st == DECO_STATUS_SUCCESS && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
  } else if (mpi_launch) {
#ifdef DECO_HAVE_MPI
    const deco_status_t mst = deco_comm_mpi_acquire(&mpi_init_by_us, op);
    const int mpi_init_ok = mst == DECO_STATUS_SUCCESS;
    if (st == DECO_STATUS_SUCCESS) st = mst;
    int world = 0;
    if (st == DECO_STATUS_SUCCESS) MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (st == DECO_STATUS_SUCCESS && world != env.size)
      st = DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: MPI_COMM_WORLD has %d ranks but the launcher's environment (%s) says %d", op, world,
                     env.source, env.size);
    if (st == DECO_STATUS_SUCCESS && env.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
    /* Every rank with MPI up enters the broadcast, whatever failed before
     * it: rank 0 sends a status word with the id, so a rank 0 that could
     * not make the id fails every rank instead of leaving them waiting. */
    if (mpi_init_ok) {
      struct {
        int32_t ok;
        ncclUniqueId id;
      } msg;
      memset(&msg, 0, sizeof msg);
      msg.ok = st == DECO_STATUS_SUCCESS;
      msg.id = id;
      if (MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        if (st == DECO_STATUS_SUCCESS) st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: MPI_Bcast of the NCCL id", op);
      } else if (st == DECO_STATUS_SUCCESS && !msg.ok) {
        st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL,
                       "%s: rank 0 failed before it could share the NCCL id (its own message says why); this is rank "
                       "%d of %d",
                       op, env.rank, env.size);
      } else if (st == DECO_STATUS_SUCCESS) {
        id = msg.id;
      }
      /* A rank that failed on its own (its world check) fails the others
       * too, rather than leaving them in ncclCommInitRankConfig until the
       * timeout. */
      int mine = st == DECO_STATUS_SUCCESS, all = 0;
      if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) all = 0;
      if (st == DECO_STATUS_SUCCESS && !all)
        st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL,
                       "%s: another rank failed before the NCCL communicator was made (its own message says why); "
                       "this is rank %d of %d",
                       op, env.rank, env.size);
    }
#endif
  } else if (comm_id && *comm_id) {
    /* NCCL's own bootstrap: every rank derives the id from NCCL_COMM_ID. */
    if (st == DECO_STATUS_SUCCESS && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId with NCCL_COMM_ID=%s", op, comm_id);
  } else if (maddr && *maddr && mport && *mport) {
    if (st == DECO_STATUS_SUCCESS && env.rank == 0 && ncclGetUniqueId(&id) != ncclSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId", op);
    /* Served by rank 0 over TCP (comm_tcp.c), every wait bounded. */
    if (st == DECO_STATUS_SUCCESS)
      st = deco_comm_tcp_share(&id, sizeof id, env.rank, env.size, maddr, mport, timeout, op);
  } else if (st == DECO_STATUS_SUCCESS) {
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: rank %d of %d has no way to share the NCCL id: no MPI launch (OMPI_COMM_WORLD_*, PMI_*), "
                     "no NCCL_COMM_ID, no MASTER_ADDR and MASTER_PORT",
                     op, env.rank, env.size);
  }
  ncclComm_t comm = NULL;
  if (st == DECO_STATUS_SUCCESS) {
    ncclConfig_t nc = NCCL_CONFIG_INITIALIZER;
    nc.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&comm, env.size, id, env.rank, &nc);
    if (r != ncclSuccess && r != ncclInProgress)
      st = DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclCommInitRankConfig (rank %d of %d): %s", op, env.rank,
                     env.size, ncclGetErrorString(r));
    /* Rank and count are answered only once initialisation completed. */
    if (st == DECO_STATUS_SUCCESS) st = init_wait(comm, r, timeout, op, "ncclCommInitRankConfig", env.rank, env.size);
    if (st == DECO_STATUS_SUCCESS) {
      st = wrap(comm, 1, device, timeout, out, op);
      if (st != DECO_STATUS_SUCCESS) ncclCommAbort(comm);
    }
  }
  if (st != DECO_STATUS_SUCCESS) {
#ifdef DECO_HAVE_MPI
    deco_comm_mpi_release(mpi_init_by_us);
#endif
    /* This rank's own first failure is the one to tell (the MPI steps it
     * still took may have recorded theirs since). */
    if (e != cudaSuccess)
      st = DECO_FAIL(NULL, DECO_STATUS_NO_DEVICE, "%s: rank %d: GPU %d: %s", op, env.rank, device,
                     cudaGetErrorString(e));
    return st;
  }
  ((nccl_state_t *)(*out)->impl)->mpi_init_by_us = mpi_init_by_us;
  group_handles(1, out);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_comm_nccl_create_all(int n, const int *devices, deco_comm_t **comms) {
  static const char op[] = "deco_comm_nccl_create_all";
  if (comms == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: comms is NULL", op);
  if (n < 1 || n > DECO_COMM_MAX_RANKS)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %d outside [1, %d]", op, n, DECO_COMM_MAX_RANKS);
  const double timeout = DECO_COMM_NCCL_TIMEOUT_S;
  ncclComm_t raw[DECO_COMM_MAX_RANKS];
  int devs[DECO_COMM_MAX_RANKS], started = 0;
  for (int r = 0; r < n; ++r) {
    comms[r] = NULL;
    raw[r] = NULL;
    devs[r] = devices ? devices[r] : r;
  }
  ncclUniqueId id;
  ncclResult_t res = ncclGetUniqueId(&id);
  if (res != ncclSuccess)
    return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclGetUniqueId: %s", op, ncclGetErrorString(res));
  /* One non-blocking init per device inside a group (what ncclCommInitAll
   * does, but each communicator can then be polled and aborted). */
  ncclConfig_t nc = NCCL_CONFIG_INITIALIZER;
  nc.blocking = 0;
  int bad_rank = -1; /* the rank whose GPU could not be selected */
  cudaError_t dev_err = cudaSuccess;
  res = ncclGroupStart();
  for (int r = 0; r < n && (res == ncclSuccess || res == ncclInProgress); ++r) {
    if ((dev_err = cudaSetDevice(devs[r])) != cudaSuccess) {
      (void)cudaGetLastError();
      bad_rank = r;
      res = ncclInvalidArgument;
      break;
    }
    res = ncclCommInitRankConfig(&raw[r], n, id, r, &nc);
    if (res == ncclSuccess || res == ncclInProgress) started = r + 1;
  }
  const ncclResult_t end = ncclGroupEnd();
  if (res == ncclSuccess || res == ncclInProgress) res = end;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (res != ncclSuccess && res != ncclInProgress) {
    st = bad_rank >= 0 ? DECO_FAIL(NULL, DECO_STATUS_NO_DEVICE, "%s: rank %d: GPU %d: %s", op, bad_rank,
                                   devs[bad_rank], cudaGetErrorString(dev_err))
                       : DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: ncclCommInitRankConfig over %d GPUs: %s", op, n,
                                   ncclGetErrorString(res));
    for (int r = 0; r < started; ++r)
      if (raw[r]) ncclCommAbort(raw[r]);
    return st;
  }
  /* Every rank's init completes or every communicator is aborted. */
  int r = 0;
  for (; r < n; ++r) {
    st = init_wait(raw[r], ncclInProgress, timeout, op, "ncclCommInitRankConfig", r, n);
    if (st != DECO_STATUS_SUCCESS) break;
  }
  if (st != DECO_STATUS_SUCCESS) {
    for (int q = 0; q < n; ++q)
      if (q != r) ncclCommAbort(raw[q]); /* init_wait aborted raw[r] */
    return st;
  }
  for (r = 0; r < n; ++r) {
    cudaSetDevice(devs[r]);
    st = wrap(raw[r], 1, devs[r], timeout, &comms[r], op);
    if (st != DECO_STATUS_SUCCESS) break;
  }
  if (st != DECO_STATUS_SUCCESS) {
    for (int q = 0; q < n; ++q) {
      if (comms[q]) {
        ((nccl_state_t *)comms[q]->impl)->owned = 0;
        deco_comm_destroy(comms[q]);
        comms[q] = NULL;
      }
      ncclCommAbort(raw[q]);
    }
    return st;
  }
  group_handles(n, comms);
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
