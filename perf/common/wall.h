/* perf/common/wall.h — what the benches that run on either backend share
 * (bench_kv_heads, bench_draft_step, bench_tp_layer; bench_spec and
 * bench_draft take its context; public API only, no
 * CUDA runtime):
 * wall-clock timing of a callback that enqueues work on a context (samples
 * around `inner` calls and one synchronisation; the median), the
 * context-to-context copy bandwidth measured the same way (the memory
 * floor's denominator, docs/PERF.md), the options they all take, the
 * backend and dtype options, the context on that backend, comma lists, CSV
 * quoting (perf/common/bench.c quotes with it too) and the command line. Header-only (static functions).
 */
#ifndef DECO_PERF_WALL_H
#define DECO_PERF_WALL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deco/deco.h"

static inline double wall_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int wall_cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Enqueues one unit of work on the context's stream (or runs it, on the
 * CPU); returns 0 on success. */
typedef int (*wall_fn)(void *user);

/* Median microseconds of one call: warmup samples, then reps samples, each
 * the wall time of inner calls and a synchronisation, divided by inner. */
static inline int wall_time(deco_ctx_t *ctx, wall_fn fn, void *user, int warmup, int reps, int inner,
                            double *median_us) {
  double *s = calloc((size_t)(reps > 0 ? reps : 1), sizeof(double));
  if (!s || reps < 1 || inner < 1) {
    free(s);
    fprintf(stderr, "wall_time: reps %d inner %d (or out of host memory)\n", reps, inner);
    return 1;
  }
  for (int r = -warmup; r < reps; ++r) {
    const double t0 = wall_now_us();
    for (int i = 0; i < inner; ++i)
      if (fn(user)) {
        free(s);
        return 1;
      }
    if (deco_ctx_synchronize(ctx) != DECO_STATUS_SUCCESS) {
      fprintf(stderr, "wall_time: %s\n", deco_last_error(ctx));
      free(s);
      return 1;
    }
    if (r >= 0) s[r] = (wall_now_us() - t0) / inner;
  }
  qsort(s, (size_t)reps, sizeof(double), wall_cmp_double);
  *median_us = reps % 2 ? s[reps / 2] : 0.5 * (s[reps / 2 - 1] + s[reps / 2]);
  free(s);
  return 0;
}

typedef struct wall_copy {
  deco_ctx_t *ctx;
  void *dst, *src;
  size_t bytes;
} wall_copy_t;

static inline int wall_copy_fn(void *u) {
  wall_copy_t *c = u;
  if (deco_memcpy_async(c->ctx, c->dst, c->src, c->bytes, DECO_COPY_CTX_TO_CTX) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "copy: %s\n", deco_last_error(c->ctx));
    return 1;
  }
  return 0;
}

/* Context-to-context copy bandwidth in GB/s, bytes read + written (as
 * perf/common/bench.h counts it): a copy of bytes, median of 10. */
static inline int wall_copy_gbps(deco_ctx_t *ctx, size_t bytes, double *gbps) {
  wall_copy_t c = {ctx, NULL, NULL, bytes};
  int rc = 1;
  double us = 0.0;
  if (deco_malloc(ctx, &c.src, bytes) != DECO_STATUS_SUCCESS ||
      deco_malloc(ctx, &c.dst, bytes) != DECO_STATUS_SUCCESS ||
      deco_memset(ctx, c.src, 1, bytes) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "copy bandwidth: %s\n", deco_last_error(ctx));
    goto done;
  }
  if (wall_time(ctx, wall_copy_fn, &c, 2, 10, 1, &us)) goto done;
  *gbps = 2.0 * (double)bytes / (us * 1e3);
  rc = 0;
done:
  deco_free(ctx, c.src);
  deco_free(ctx, c.dst);
  return rc;
}

/* "32,16,8" -> out[0..*n); 1 on a malformed list, a value outside
 * [lo, hi] or more than cap values. */
static inline int wall_int_list(const char *s, int lo, int hi, int *out, int cap, int *n) {
  *n = 0;
  for (const char *p = s; *p;) {
    char *end;
    const long v = strtol(p, &end, 10);
    if (end == p || v < lo || v > hi || *n == cap || (*end && *end != ',')) return 1;
    out[(*n)++] = (int)v;
    p = *end ? end + 1 : end;
  }
  return *n == 0;
}

static inline void wall_csv_field(FILE *f, const char *s) {
  if (strpbrk(s, ",\"\n") == NULL) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; ++s) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* The options every wall bench takes, as given: NULL and 0 when absent
 * (each bench picks its own defaults), header 1 unless --no-header. */
typedef struct wall_opts {
  const char *backend, *dtype, *device; /* --backend, --dtype, --device LABEL */
  int reps, inner, threads;             /* --reps, --inner, --threads */
  int header;
} wall_opts_t;

#define WALL_OPTS_INIT {NULL, NULL, NULL, 0, 0, 0, 1}

/* The option argv[*i] of prog: --no-header, or an option and the value
 * after it (*i then steps over the value), stored in w when it is one of
 * wall_opts_t's. 1: taken (go on to the next); 0: not one of them, *v its
 * value, for the caller (its own options, else unknown); 2 after "prog:
 * OPT needs a value" when argv ends there. */
static inline int wall_option(const char *prog, int argc, char **argv, int *i, wall_opts_t *w, const char **v) {
  const char *a = argv[*i];
  if (!strcmp(a, "--no-header")) {
    w->header = 0;
    return 1;
  }
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", prog, a);
    return 2;
  }
  *v = argv[++*i];
  if (!strcmp(a, "--backend")) w->backend = *v;
  else if (!strcmp(a, "--dtype")) w->dtype = *v;
  else if (!strcmp(a, "--device")) w->device = *v;
  else if (!strcmp(a, "--reps")) w->reps = atoi(*v);
  else if (!strcmp(a, "--inner")) w->inner = atoi(*v);
  else if (!strcmp(a, "--threads")) w->threads = atoi(*v);
  else return 0;
  return 1;
}

/* --backend (cpu|cuda; NULL: cuda when a device is there) and --dtype
 * (bf16|f32; NULL: bf16 on CUDA, f32 on the CPU) as prog's options: 0, 2
 * after a usage message, or 77 when CUDA is asked for and there is no
 * device. */
static inline int wall_backend_dtype(const char *prog, const char *backend_s, const char *dtype_s,
                                     deco_backend_t *backend, deco_dtype_t *dtype) {
  if (backend_s && strcmp(backend_s, "cpu") && strcmp(backend_s, "cuda")) {
    fprintf(stderr, "%s: --backend %s: expected cpu or cuda\n", prog, backend_s);
    return 2;
  }
  *backend = backend_s ? (strcmp(backend_s, "cuda") ? DECO_BACKEND_CPU : DECO_BACKEND_CUDA)
                       : (deco_cuda_device_count() > 0 ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU);
  if (*backend == DECO_BACKEND_CUDA && deco_cuda_device_count() == 0) {
    fprintf(stderr, "%s: no CUDA device\n", prog);
    return 77;
  }
  if (dtype_s && strcmp(dtype_s, "bf16") && strcmp(dtype_s, "f32")) {
    fprintf(stderr, "%s: --dtype %s: expected bf16 or f32\n", prog, dtype_s);
    return 2;
  }
  *dtype = dtype_s ? (strcmp(dtype_s, "bf16") ? DECO_DTYPE_F32 : DECO_DTYPE_BF16)
                   : (*backend == DECO_BACKEND_CUDA ? DECO_DTYPE_BF16 : DECO_DTYPE_F32);
  return 0;
}

/* A context on backend, with threads worker threads when threads > 0; NULL
 * after "prog: why" on stderr. */
static inline deco_ctx_t *wall_ctx_create(const char *prog, deco_backend_t backend, int threads) {
  deco_ctx_config_t cc = DECO_CTX_CONFIG_INIT;
  cc.backend = backend;
  deco_ctx_t *ctx = NULL;
  if (deco_ctx_create(&cc, &ctx) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "%s: %s\n", prog, deco_last_error(NULL));
    return NULL;
  }
  if (threads > 0 && deco_ctx_set_threads(ctx, threads) != DECO_STATUS_SUCCESS) {
    fprintf(stderr, "%s: %s\n", prog, deco_last_error(ctx));
    deco_ctx_destroy(ctx);
    return NULL;
  }
  return ctx;
}

/* argv joined by spaces (truncated to cap). */
static inline void wall_command(int argc, char **argv, char *buf, size_t cap) {
  buf[0] = '\0';
  for (int i = 0; i < argc; ++i) {
    const size_t at = strlen(buf);
    snprintf(buf + at, cap - at, "%s%s", i ? " " : "", argv[i]);
  }
}

#endif
