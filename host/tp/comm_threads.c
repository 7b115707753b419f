/* host/tp/comm_threads.c — the threads backend: N ranks as threads of one
 * process sharing host memory. A collective posts each rank's pointer, meets
 * at a barrier, reads the others' buffers directly, and meets again before
 * anyone may overwrite what was read. The barrier spins a little (a rank
 * usually arrives within microseconds of the others), then blocks on a
 * condition variable, so ranks oversubscribing the cores do not burn them.
 * An abort wakes every waiter of a meet that has not completed at once with
 * DECO_STATUS_ABORTED (a meet completes for every rank or for none); the
 * meet after a collective's reads waits for every rank whatever happens, so
 * no rank's buffer is freed while another reads it. Each rank
 * posts its call (collective, count, dtype, root) with its pointer, the
 * public barrier included; a call that differs from rank 0's aborts every
 * rank before a buffer is read.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "tp/comm_internal.h"

/* Spins before blocking: about a microsecond of polling. Longer spins
 * measured slower on 2 shared cores (ranks outnumber cores: a spinning
 * rank takes the core its peer needs). */
#define SPIN_ITERS 200

typedef struct shared {
  int size;
  atomic_int refs;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* The meets: generation (high 32 bits) and how many ranks have arrived at
   * it (low 32), one word, so that leaving a meet on abort and the meet's
   * completion exclude each other (meet()). */
  _Atomic uint64_t meet_state;
  atomic_int aborted;
  const void *posted[DECO_COMM_MAX_RANKS]; /* each rank's buffer in the current collective */
  /* What each rank called it with: a rank whose call differs from rank 0's
   * would read past the others' buffers. */
  struct {
    int op, dtype, root;
    size_t n;
  } call[DECO_COMM_MAX_RANKS];
} shared_t;

typedef struct rank_state {
  shared_t *sh;
  void *scratch; /* this rank's sum before it overwrites its buffer */
  size_t scratch_bytes;
} rank_state_t;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Leaves meet generation g on abort: 1 when this rank's arrival was taken
 * back, so the meet cannot complete without it; 0 when the meet completed
 * first (every rank had arrived), and this rank must go on with it. */
static int withdraw(shared_t *sh, uint32_t g) {
  uint64_t st = atomic_load(&sh->meet_state);
  while ((uint32_t)(st >> 32) == g && (uint32_t)st < (uint32_t)sh->size)
    if (atomic_compare_exchange_weak(&sh->meet_state, &st, st - 1)) return 1;
  return 0;
}

/* Every rank arrives before any leaves; the last to arrive opens the next
 * generation. An abort ends the wait of a rank that can still withdraw, so
 * a meet either completes for every rank or for none. Firm: the meet after
 * a collective's reads, which every rank that passed the first meet reaches
 * (nothing between the two can fail); it holds each rank until no other
 * still reads its buffer, abort or not. */
static deco_status_t meet(deco_comm_t *c, deco_ctx_t *ctx, int firm) {
  shared_t *sh = ((rank_state_t *)c->impl)->sh;
  if (!firm && atomic_load(&sh->aborted)) goto aborted;
  const uint64_t st = atomic_fetch_add(&sh->meet_state, 1) + 1;
  const uint32_t g = (uint32_t)(st >> 32);
  if ((uint32_t)st == (uint32_t)sh->size) {
    pthread_mutex_lock(&sh->mu);
    atomic_store(&sh->meet_state, (uint64_t)(g + 1u) << 32);
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return DECO_STATUS_SUCCESS;
  }
  for (int i = 0;; ++i) {
    if ((uint32_t)(atomic_load(&sh->meet_state) >> 32) != g) return DECO_STATUS_SUCCESS;
    if (!firm && atomic_load(&sh->aborted)) {
      if (withdraw(sh, g)) goto aborted;
      firm = 1; /* completed: wait for the generation to open */
    }
    if (i < SPIN_ITERS) {
      cpu_relax();
      continue;
    }
    pthread_mutex_lock(&sh->mu);
    if ((uint32_t)(atomic_load(&sh->meet_state) >> 32) == g && (firm || !atomic_load(&sh->aborted)))
      pthread_cond_wait(&sh->cv, &sh->mu);
    pthread_mutex_unlock(&sh->mu);
  }
aborted:
  return DECO_FAIL(ctx, DECO_STATUS_ABORTED,
                   "threads communicator: the communicator was aborted by another rank (this is rank %d of %d)",
                   c->rank, c->size);
}

static deco_status_t barrier(deco_comm_t *c, deco_ctx_t *ctx) { return meet(c, ctx, 0); }

/* The second meet of a collective: every buffer has been read. */
static void reads_done(deco_comm_t *c, deco_ctx_t *ctx) { (void)meet(c, ctx, 1); }

enum { OP_ALL_REDUCE, OP_ALL_GATHER, OP_BROADCAST, OP_BARRIER };
static const char *const op_names[] = {"all-reduce", "all-gather", "broadcast", "barrier"};

static void abort_all(deco_comm_t *c);

/* Posts this rank's buffer and call, meets the others, then checks every
 * rank's call against rank 0's (each rank reads the same posts, so all of
 * them agree on a mismatch): a mismatch aborts the communicator before
 * anyone reads a buffer. */
static deco_status_t post_and_meet(deco_comm_t *c, deco_ctx_t *ctx, const void *buf, int op, size_t n,
                                   deco_comm_dtype_t dtype, int root) {
  shared_t *sh = ((rank_state_t *)c->impl)->sh;
  sh->posted[c->rank] = buf;
  sh->call[c->rank].op = op;
  sh->call[c->rank].n = n;
  sh->call[c->rank].dtype = (int)dtype;
  sh->call[c->rank].root = root;
  DECO_TRY(barrier(c, ctx));
  for (int r = 1; r < sh->size; ++r) {
    const int op0 = sh->call[0].op, opr = sh->call[r].op;
    if (opr == op0 && sh->call[r].n == sh->call[0].n && sh->call[r].dtype == sh->call[0].dtype &&
        sh->call[r].root == sh->call[0].root)
      continue;
    const size_t n0 = sh->call[0].n, nr = sh->call[r].n;
    const int d0 = sh->call[0].dtype, dr = sh->call[r].dtype, root0 = sh->call[0].root, rootr = sh->call[r].root;
    atomic_store(&c->aborted, 1);
    abort_all(c);
    return DECO_FAIL(ctx, DECO_STATUS_ABORTED,
                     "threads communicator: the ranks' calls differ: rank 0 called %s of %zu elements (dtype %d, "
                     "root %d), rank %d called %s of %zu elements (dtype %d, root %d); the communicator was aborted "
                     "(this is rank %d of %d)",
                     op_names[op0], n0, d0, root0, r, op_names[opr], nr, dr, rootr, c->rank, c->size);
  }
  return DECO_STATUS_SUCCESS;
}

static deco_status_t grow_scratch(rank_state_t *rs, deco_ctx_t *ctx, size_t bytes) {
  if (rs->scratch_bytes >= bytes) return DECO_STATUS_SUCCESS;
  void *p = realloc(rs->scratch, bytes);
  if (!p) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "threads communicator: out of host memory");
  rs->scratch = p;
  rs->scratch_bytes = bytes;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t all_reduce_sum(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype) {
  rank_state_t *rs = c->impl;
  shared_t *sh = rs->sh;
  const size_t bytes = n * deco_comm_dtype_size(dtype);
  /* Every rank computes the whole sum itself, in rank order: the same bits
   * everywhere without a shared result buffer. A failure to get scratch
   * still meets the others, then aborts them. */
  deco_status_t st = grow_scratch(rs, ctx, bytes);
  if (st != DECO_STATUS_SUCCESS) {
    deco_comm_abort(c);
    return st;
  }
  DECO_TRY(post_and_meet(c, ctx, buf, OP_ALL_REDUCE, n, dtype, 0));
  deco_comm_sum_rank_order(sh->posted, sh->size, rs->scratch, n, dtype);
  reads_done(c, ctx);
  memcpy(buf, rs->scratch, bytes);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t all_gather(deco_comm_t *c, deco_ctx_t *ctx, const void *send, void *recv, size_t n,
                                deco_comm_dtype_t dtype) {
  shared_t *sh = ((rank_state_t *)c->impl)->sh;
  const size_t bytes = n * deco_comm_dtype_size(dtype);
  DECO_TRY(post_and_meet(c, ctx, send, OP_ALL_GATHER, n, dtype, 0));
  for (int r = 0; r < sh->size; ++r) memcpy((char *)recv + (size_t)r * bytes, sh->posted[r], bytes);
  reads_done(c, ctx);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t broadcast(deco_comm_t *c, deco_ctx_t *ctx, void *buf, size_t n, deco_comm_dtype_t dtype,
                               int root) {
  shared_t *sh = ((rank_state_t *)c->impl)->sh;
  DECO_TRY(post_and_meet(c, ctx, buf, OP_BROADCAST, n, dtype, root));
  if (c->rank != root) memcpy(buf, sh->posted[root], n * deco_comm_dtype_size(dtype));
  reads_done(c, ctx);
  return DECO_STATUS_SUCCESS;
}

/* The public barrier: a call of its own (posted like a collective, so a
 * rank in a barrier while another is in a collective is a mismatch, not a
 * collective reading a stale post), then a second meet so that nobody's
 * next post overwrites a call record another rank is still checking. */
static deco_status_t barrier_call(deco_comm_t *c, deco_ctx_t *ctx) {
  DECO_TRY(post_and_meet(c, ctx, NULL, OP_BARRIER, 0, DECO_COMM_INT32, 0));
  reads_done(c, ctx);
  return DECO_STATUS_SUCCESS;
}

static void abort_all(deco_comm_t *c) {
  shared_t *sh = ((rank_state_t *)c->impl)->sh;
  pthread_mutex_lock(&sh->mu);
  atomic_store(&sh->aborted, 1);
  pthread_cond_broadcast(&sh->cv);
  pthread_mutex_unlock(&sh->mu);
}

static int shared_aborted(const deco_comm_t *c) {
  return atomic_load(&((const rank_state_t *)c->impl)->sh->aborted);
}

static void destroy(deco_comm_t *c) {
  rank_state_t *rs = c->impl;
  shared_t *sh = rs->sh;
  if (atomic_fetch_sub(&sh->refs, 1) == 1) {
    pthread_cond_destroy(&sh->cv);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
  }
  free(rs->scratch);
  free(rs);
  free(c);
}

static const deco_comm_ops_t threads_ops = {.all_reduce_sum = all_reduce_sum, .all_gather = all_gather,
                                            .host_all_gather = all_gather, .broadcast = broadcast,
                                            .barrier = barrier_call, .abort = abort_all,
                                            .aborted = shared_aborted, .destroy = destroy};

deco_status_t deco_comm_threads_create(int size, deco_comm_t **comms) {
  static const char op[] = "deco_comm_threads_create";
  if (comms == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: comms is NULL", op);
  if (size < 1 || size > DECO_COMM_MAX_RANKS)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: size = %d outside [1, %d]", op, size,
                     DECO_COMM_MAX_RANKS);
  for (int r = 0; r < size; ++r) comms[r] = NULL;
  shared_t *sh = calloc(1, sizeof *sh);
  if (!sh) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  sh->size = size;
  pthread_mutex_init(&sh->mu, NULL);
  pthread_cond_init(&sh->cv, NULL);
  atomic_store(&sh->refs, 0);
  atomic_store(&sh->meet_state, 0);
  for (int r = 0; r < size; ++r) {
    deco_comm_t *c = calloc(1, sizeof *c);
    rank_state_t *rs = calloc(1, sizeof *rs);
    if (!c || !rs) {
      free(c);
      free(rs);
      for (int q = 0; q < r; ++q) deco_comm_destroy(comms[q]);
      if (r == 0) {
        pthread_cond_destroy(&sh->cv);
        pthread_mutex_destroy(&sh->mu);
        free(sh);
      }
      for (int q = 0; q < size; ++q) comms[q] = NULL;
      return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
    }
    rs->sh = sh;
    atomic_fetch_add(&sh->refs, 1);
    *c = (deco_comm_t){.ops = &threads_ops, .backend = DECO_COMM_THREADS, .rank = r, .size = size, .impl = rs};
    atomic_store(&c->aborted, 0);
    comms[r] = c;
  }
  return DECO_STATUS_SUCCESS;
}
