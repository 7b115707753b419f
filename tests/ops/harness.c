/* tests/ops/harness.c — the loop of the op harness (harness.h): for every
 * case and target, allocate each tensor in the target's memory behind
 * poison (0xFF bytes: NaN in every float dtype; 0xA5 in integer tensors,
 * whose legitimate values include -1) and followed by guard words, upload
 * the inputs, run, then check the status, the guards, that inputs are
 * unchanged, that every output element was written and nothing past it, and
 * compare with the expectation.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "ops/harness.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/tolerances.h"

#define POISON_FLOAT 0xFF
#define POISON_INT 0xA5

/* ---- Numbers ------------------------------------------------------------------------ */

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

uint16_t harness_f32_to_bf16(float x) {
  const uint32_t u = f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

uint16_t harness_f32_to_f16(float x) {
  const uint32_t u = f32_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return (uint16_t)(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds to infinity */
  if (a < 0x38800000u) {                                   /* below 2^-14: a multiple of 2^-24 */
    const double q = rint((double)bits_f32(a) * 16777216.0); /* nearest even (the default rounding mode) */
    return (uint16_t)(sign | (uint32_t)q);
  }
  const uint32_t mant = a & 0x7fffffu, e = (a >> 23) - 127 + 15, rem = mant & 0x1fffu;
  uint32_t hbits = (e << 10) | (mant >> 13);
  if (rem > 0x1000u || (rem == 0x1000u && (hbits & 1u))) hbits++; /* a carry moves into the exponent */
  return (uint16_t)(sign | hbits);
}

float harness_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

float harness_f16_to_f32(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const float s = (h & 0x8000u) ? -1.0f : 1.0f;
  if (e == 0) return s * ldexpf((float)m, -24);
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * ldexpf((float)(1024 + m), e - 25);
}

float harness_round(float x, deco_dtype_t dt) {
  if (dt == DECO_DTYPE_BF16) return harness_bf16_to_f32(harness_f32_to_bf16(x));
  if (dt == DECO_DTYPE_F16) return harness_f16_to_f32(harness_f32_to_f16(x));
  return x;
}

uint64_t harness_rng(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int harness_rng_int(uint64_t *s, int lo, int hi) { return lo + (int)(harness_rng(s) % (uint64_t)(hi - lo + 1)); }

void harness_uniform(float *x, size_t n, uint64_t seed, uint32_t stream, float lo, float hi) {
  deco_test_fill_uniform(x, n, seed, stream, lo, hi);
}

static size_t elem_size(const ht_t *t, deco_dtype_t storage) {
  return t->kind == HT_I32 ? 4 : t->kind == HT_U8 ? 1 : deco_dtype_size(storage);
}

/* Storage bits of x in dt (f32: its 32 bits). */
static uint32_t store_bits(float x, deco_dtype_t dt) {
  return dt == DECO_DTYPE_F32 ? f32_bits(x) : dt == DECO_DTYPE_BF16 ? harness_f32_to_bf16(x) : harness_f32_to_f16(x);
}

static void pack(void *dst, const float *src, size_t n, deco_dtype_t dt) {
  for (size_t i = 0; i < n; ++i) {
    if (dt == DECO_DTYPE_F32) memcpy((char *)dst + 4 * i, &src[i], 4);
    else {
      const uint16_t h = (uint16_t)store_bits(src[i], dt);
      memcpy((char *)dst + 2 * i, &h, 2);
    }
  }
}

static float unpack1(const void *src, size_t i, deco_dtype_t dt) {
  if (dt == DECO_DTYPE_F32) {
    float x;
    memcpy(&x, (const char *)src + 4 * i, 4);
    return x;
  }
  uint16_t h;
  memcpy(&h, (const char *)src + 2 * i, 2);
  return dt == DECO_DTYPE_BF16 ? harness_bf16_to_f32(h) : harness_f16_to_f32(h);
}

static uint32_t raw_bits(const void *src, size_t i, size_t es) {
  if (es == 4) {
    uint32_t u;
    memcpy(&u, (const char *)src + 4 * i, 4);
    return u;
  }
  uint16_t h;
  memcpy(&h, (const char *)src + 2 * i, 2);
  return h;
}

/* ---- Tensors ------------------------------------------------------------------------ */

int ht_add(hcase_t *h, const char *name, int role, int kind, deco_dtype_t dtype, size_t n) {
  cr_assert_lt(h->n_t, HT_MAX, "too many tensors");
  ht_t *t = &h->t[h->n_t];
  memset(t, 0, sizeof *t);
  t->name = name;
  t->role = role;
  t->kind = kind;
  t->dtype = dtype;
  t->tol_dtype = h->c->dtype;
  t->n = n;
  t->n_written = n;
  t->cmp = h->c->cmp;
  const size_t m = n ? n : 1;
  if (kind == HT_FLOAT) t->f = calloc(m, sizeof(float));
  else if (kind == HT_I32) t->i = calloc(m, sizeof(int32_t));
  else t->b = calloc(m, 1);
  return h->n_t++;
}

int ht_uniform(hcase_t *h, const char *name, int role, deco_dtype_t dtype, size_t n, uint32_t stream, float lo,
               float hi) {
  const int k = ht_add(h, name, role, HT_FLOAT, dtype, n);
  if (h->shapes_only) return k;
  harness_uniform(h->t[k].f, n, h->c->seed, stream, lo, hi);
  for (size_t i = 0; i < n; ++i) h->t[k].f[i] = harness_round(h->t[k].f[i], dtype);
  return k;
}

float *ht_expect_f(hcase_t *h, int k) {
  free(h->t[k].ef);
  h->t[k].ef = calloc(h->t[k].n ? h->t[k].n : 1, sizeof(float));
  return h->t[k].ef;
}

int32_t *ht_expect_i(hcase_t *h, int k) {
  free(h->t[k].ei);
  h->t[k].ei = calloc(h->t[k].n ? h->t[k].n : 1, sizeof(int32_t));
  return h->t[k].ei;
}

void hcase_free(hcase_t *h) {
  for (int k = 0; k < h->n_t; ++k) {
    free(h->t[k].f);
    free(h->t[k].i);
    free(h->t[k].b);
    free(h->t[k].ef);
    free(h->t[k].ei);
  }
  h->n_t = 0;
}

/* ---- Targets ------------------------------------------------------------------------ */

static void on_ref_error(void *user, deco_status_t status, const char *message) {
  harness_target_t *t = user;
  (void)status;
  snprintf(t->message, sizeof t->message, "%s", message);
}

void harness_target_init(harness_target_t *t, const char *name, deco_ctx_t *ctx, int ref) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->ctx = ctx;
  t->ref = ref;
  t->exec.backend = DECO_BACKEND_CPU;
  t->exec.on_error = on_ref_error;
  t->exec.error_user = t;
}

void harness_workspace(harness_target_t *t, size_t bytes) {
  if (bytes == 0 || t->ref) return;
  t->ws = deco_test_buf_alloc(t->ctx, bytes);
  t->has_ws = 1;
  cr_assert_eq(deco_ctx_set_workspace(t->ctx, t->ws.ptr, bytes), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(t->ctx));
}

void harness_path(harness_target_t *t, const char *path) { snprintf(t->path, sizeof t->path, "%s", path); }

static const char *target_message(const harness_target_t *t) {
  return t->ref ? t->message : deco_last_error(t->ctx);
}

/* ---- Comparing ---------------------------------------------------------------------- */

static float tol_for(deco_op_cmp_t cmp, deco_dtype_t dt) {
  if (dt == DECO_DTYPE_F16) return DECO_TOL_F16;
  if (dt == DECO_DTYPE_BF16) return DECO_TOL_BF16;
  return cmp == DECO_CMP_REDUCTION ? DECO_TOL_F32_REDUCTION : DECO_TOL_F32_ELEMENTWISE;
}

/* Element i of a float tensor against its expectation; 0 when it matches. */
static int float_mismatch(const ht_t *t, float got, uint32_t got_bits, float want, deco_dtype_t storage,
                          double *err) {
  *err = 0.0;
  switch (t->cmp) {
  case DECO_CMP_BITWISE: return got_bits != store_bits(want, storage);
  case DECO_CMP_EXACT:
    if (isnan(want)) return !isnan(got);
    return !(got == want);
  default: {
    if (isnan(want)) return !isnan(got);
    const double tol = tol_for(t->cmp, t->tol_dtype);
    *err = fabs((double)got - (double)want);
    return !(*err <= tol + tol * fabs((double)want));
  }
  }
}

typedef struct run_ctx {
  const hcase_t *h;
  const harness_target_t *t;
  const char *what;
  int problems;
} run_ctx_t;

static void report(run_ctx_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(run_ctx_t *r, const char *fmt, ...) {
  if (r->problems == 0) fprintf(stderr, "FAIL [%s] %s\n", r->t->name, r->what);
  r->problems++;
  va_list ap;
  va_start(ap, fmt);
  fputs("    ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int is_poison(const unsigned char *raw, size_t i, size_t es, int kind) {
  const unsigned char p = kind == HT_FLOAT ? POISON_FLOAT : POISON_INT;
  for (size_t j = 0; j < es; ++j)
    if (raw[i * es + j] != p) return 0;
  return 1;
}

/* Checks one tensor after a successful run. raw: offset + n elements. */
static void check_tensor(run_ctx_t *r, const ht_t *t, deco_dtype_t storage, const unsigned char *raw,
                         const unsigned char *uploaded) {
  const size_t es = elem_size(t, storage), off = t->offset;
  const unsigned char *v = raw + off * es;
  for (size_t i = 0; i < off; ++i)
    if (!is_poison(raw, i, es, t->kind)) {
      report(r, "%s: filler element %zu before the pointer was written", t->name, i);
      break;
    }
  if (t->role == HT_IN) {
    if (memcmp(v, uploaded, t->n * es) != 0) {
      size_t i = 0;
      while (i < t->n * es && v[i] == uploaded[i]) ++i;
      report(r, "%s: an input was modified (first at element %zu)", t->name, i / es);
    }
    return;
  }
  const size_t n_cmp = t->role == HT_OUT ? t->n_written : t->n;
  if (t->role == HT_OUT) {
    size_t unwritten = 0, first = 0, past = 0, first_past = 0;
    for (size_t i = 0; i < t->n; ++i) {
      const int p = is_poison(v, i, es, t->kind);
      if (i < t->n_written && p && unwritten++ == 0) first = i;
      if (i >= t->n_written && !p && past++ == 0) first_past = i;
    }
    if (unwritten) report(r, "%s: %zu of %zu elements never written (first %zu)", t->name, unwritten, t->n_written, first);
    if (past)
      report(r, "%s: %zu elements written past the %zu the op owns (first %zu)", t->name, past, t->n_written,
             first_past);
  }
  if (!t->ef && !t->ei) return;
  size_t bad = 0, worst = 0;
  double max_err = 0.0;
  for (size_t i = 0; i < n_cmp; ++i) {
    int mismatch;
    double err = 0.0;
    if (t->kind == HT_I32) {
      int32_t got;
      memcpy(&got, v + 4 * i, 4);
      mismatch = got != t->ei[i];
      if (mismatch && bad < 5) report(r, "%s[%zu]: got %d, expected %d", t->name, i, got, t->ei[i]);
    } else {
      const float got = unpack1(v, i, storage);
      mismatch = float_mismatch(t, got, raw_bits(v, i, es), t->ef[i], storage, &err);
      if (mismatch && bad < 5)
        report(r, "%s[%zu]: got %.9g (bits %08x), expected %.9g (bits %08x)", t->name, i, (double)got,
               (unsigned)raw_bits(v, i, es), (double)t->ef[i], (unsigned)store_bits(t->ef[i], storage));
    }
    if (mismatch) bad++;
    if (!(err <= max_err)) {
      max_err = err;
      worst = i;
    }
  }
  if (bad) {
    if (t->kind == HT_FLOAT && (t->cmp == DECO_CMP_ELEMENTWISE || t->cmp == DECO_CMP_REDUCTION)) {
      const double tol = tol_for(t->cmp, t->tol_dtype);
      report(r, "%s: %zu of %zu elements outside %.0e + %.0e|r| (%s; max |diff| %.3g at %zu)", t->name, bad, n_cmp,
             tol, tol, deco_op_cmp_name(t->cmp), max_err, worst);
    } else {
      report(r, "%s: %zu of %zu elements differ (%s)", t->name, bad, n_cmp, deco_op_cmp_name(t->cmp));
    }
  }
}

/* ---- One run ------------------------------------------------------------------------ */

typedef enum { RUN_PASSED, RUN_FAILED, RUN_UNSUPPORTED, RUN_REFUSED } run_result_t;

static deco_dtype_t storage_of(const ht_t *t, const harness_target_t *tg) {
  return t->kind != HT_FLOAT ? DECO_DTYPE_F32 : tg->twin ? DECO_DTYPE_F32 : t->dtype;
}

/* Runs h on t. want: the status the target must return. keep: the
 * contents of the tensors the op writes become their expected values (the
 * reference run of a CUDA case) instead of being compared. why: not NULL
 * when the target must refuse the case (DECO_STATUS_UNSUPPORTED); receives
 * the status and message. */
static run_result_t run_once(hcase_t *h, const harness_op_t *op, harness_target_t *t, deco_status_t want,
                             const char *what, int keep, char *why, size_t why_n) {
  run_ctx_t r = {h, t, what, 0};
  deco_test_buf_t bufs[HT_MAX];
  void *ptrs[HT_MAX];
  unsigned char *uploaded[HT_MAX];
  for (int k = 0; k < h->n_t; ++k) {
    const ht_t *x = &h->t[k];
    const deco_dtype_t st = storage_of(x, t);
    const size_t es = elem_size(x, st), bytes = (x->offset + x->n) * es;
    bufs[k] = deco_test_buf_alloc(t->ctx, bytes ? bytes : 1); /* poisoned with 0xFF, guard words after */
    if (x->kind != HT_FLOAT) cr_assert_eq(deco_memset(t->ctx, bufs[k].ptr, POISON_INT, bytes), DECO_STATUS_SUCCESS);
    uploaded[k] = NULL;
    if (x->role != HT_OUT && x->n && !h->shapes_only) {
      uploaded[k] = malloc(x->n * es);
      if (x->kind == HT_FLOAT) pack(uploaded[k], x->f, x->n, st);
      else memcpy(uploaded[k], x->kind == HT_I32 ? (const void *)x->i : (const void *)x->b, x->n * es);
      cr_assert_eq(deco_memcpy(t->ctx, (char *)bufs[k].ptr + x->offset * es, uploaded[k], x->n * es,
                               DECO_COPY_HOST_TO_CTX),
                   DECO_STATUS_SUCCESS);
    }
    ptrs[k] = (char *)bufs[k].ptr + x->offset * es;
  }
  t->message[0] = '\0';
  t->path[0] = '\0';
  t->has_ws = 0;
  deco_status_t st = op->call(h, ptrs, t);
  if (st == DECO_STATUS_SUCCESS && !t->ref) {
    deco_status_t sync = deco_ctx_synchronize(t->ctx);
    if (sync != DECO_STATUS_SUCCESS) st = sync;
  }
  run_result_t result = RUN_PASSED;
  if (st != want) {
    if (st == DECO_STATUS_UNSUPPORTED && want == DECO_STATUS_SUCCESS && why == NULL) {
      report(&r, "unexpected %s: %s", deco_status_string(st), target_message(t));
    } else if (st == DECO_STATUS_UNSUPPORTED && why != NULL) {
      snprintf(why, why_n, "%s (%.200s)", deco_status_string(st), target_message(t));
      result = RUN_UNSUPPORTED;
    } else {
      report(&r, "status %s, expected %s: %s", deco_status_string(st), deco_status_string(want), target_message(t));
    }
  } else if (why != NULL) {
    report(&r, "ran (%s) where the table says it is not supported", deco_status_string(st));
  } else if (st != DECO_STATUS_SUCCESS) {
    result = RUN_REFUSED; /* bad device data, refused as expected; guards still checked */
  }
  /* Path and split expectations (CUDA). */
  const deco_op_case_t *c = h->c;
  if (result == RUN_PASSED && !t->ref && deco_ctx_backend(t->ctx) == DECO_BACKEND_CUDA && c->path &&
      strncmp(t->path, c->path, strlen(c->path)) != 0)
    report(&r, "took path %s, expected %s...", t->path, c->path);
  if (result == RUN_PASSED && !t->ref && deco_ctx_backend(t->ctx) == DECO_BACKEND_CUDA && c->split) {
    const int split = c->op == DECO_OP_ATTENTION ? t->has_ws : strstr(t->path, "+split") != NULL;
    if (split != (c->split == DECO_SPLIT_ALWAYS))
      report(&r, "path %s: expected %s KV split", t->path, c->split == DECO_SPLIT_ALWAYS ? "a" : "no");
  }
  for (int k = 0; k < h->n_t; ++k) {
    ht_t *x = &h->t[k];
    const deco_dtype_t sto = storage_of(x, t);
    const size_t es = elem_size(x, sto), total = x->offset + x->n;
    if (!deco_test_buf_guard_ok(&bufs[k])) report(&r, "%s: guard words after the buffer were overwritten", x->name);
    if (result == RUN_PASSED && total) {
      unsigned char *raw = malloc(total * es);
      deco_test_buf_download(&bufs[k], raw, total * es);
      if (keep && x->role != HT_IN) {
        /* The reference's result becomes the expectation. */
        const unsigned char *v = raw + x->offset * es;
        if (x->kind == HT_FLOAT) {
          float *e = ht_expect_f(h, k);
          for (size_t i = 0; i < x->n; ++i) e[i] = unpack1(v, i, sto);
        } else if (x->kind == HT_I32) {
          memcpy(ht_expect_i(h, k), v, x->n * 4);
        }
      } else {
        check_tensor(&r, x, sto, raw, uploaded[k]);
      }
      free(raw);
    }
    deco_test_buf_free(&bufs[k]);
    free(uploaded[k]);
  }
  if (t->has_ws) {
    if (!deco_test_buf_guard_ok(&t->ws)) report(&r, "workspace guard words overwritten");
    cr_assert_eq(deco_ctx_set_workspace(t->ctx, NULL, 0), DECO_STATUS_SUCCESS);
    deco_test_buf_free(&t->ws);
    t->has_ws = 0;
  }
  if (r.problems) {
    if (t->path[0]) fprintf(stderr, "    (path %s)\n", t->path);
    return RUN_FAILED;
  }
  return result;
}

static void tally_add(harness_tally_t *tl, int target, run_result_t res, const char *why) {
  switch (res) {
  case RUN_PASSED: tl->passed[target]++; break;
  case RUN_FAILED: tl->failed[target]++; break;
  case RUN_UNSUPPORTED:
    tl->unsupported[target]++;
    if (why && !tl->unsupported_why[target][0])
      snprintf(tl->unsupported_why[target], sizeof tl->unsupported_why[target], "%s", why);
    break;
  case RUN_REFUSED:
    tl->refused[target]++;
    if (why && !tl->refused_why[target][0])
      snprintf(tl->refused_why[target], sizeof tl->refused_why[target], "%s", why);
    break;
  }
}

/* DECO_HARNESS_VERBOSE=1: one line per case with its time. */
static int verbose(void) {
  const char *v = getenv("DECO_HARNESS_VERBOSE");
  return v && *v && *v != '0';
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void describe(const deco_op_case_t *c, int index, char *buf, size_t n) {
  char d[400];
  deco_op_case_describe(c, d, sizeof d);
  snprintf(buf, n, "case %d: %s seed=%llu (%s)", index, d, (unsigned long long)c->seed, c->origin);
}

static void build(hcase_t *h, const deco_op_case_t *c, const harness_op_t *op, int shapes_only) {
  memset(h, 0, sizeof *h);
  h->c = c;
  h->shapes_only = shapes_only;
  h->bad_status = DECO_STATUS_INVALID_ARGUMENT;
  op->setup(h);
}

const deco_op_cases_t *harness_table(void) {
  static deco_op_cases_t table;
  static int built;
  if (!built) {
    deco_op_cases_build(&table);
    built = 1;
  }
  return &table;
}

int harness_run_cpu(deco_op_kind_t kind, harness_tally_t *tl) {
  const harness_op_t *op = harness_op(kind);
  cr_assert_not_null(op, "no harness op for %s", deco_op_kind_name(kind));
  const deco_op_cases_t *table = harness_table();
  deco_ctx_t *cpu = deco_test_cpu_ctx();
  harness_target_t targets[2];
  harness_target_init(&targets[0], "cpu", cpu, 0);
  harness_target_init(&targets[1], "ref", cpu, 1);
  memset(tl, 0, sizeof *tl);
  int failures = 0;
  for (int ci = 0; ci < table->n; ++ci) {
    const deco_op_case_t *c = &table->v[ci];
    if (c->op != kind) continue;
    tl->cases++;
    char what[600];
    describe(c, ci, what, sizeof what);
    const double t0 = now_s();
    const int bad_data = (c->tags & DECO_CASE_TAG_BAD_DATA) != 0;
    const int supported = op->cpu_supports(c);
    /* A case the CPU must refuse needs buffers of the right sizes, not values. */
    hcase_t h;
    build(&h, c, op, !supported);
    if (bad_data) {
      op->corrupt(&h); /* the reference refuses bad device data */
      h.corrupted = 1;
    } else if (supported) {
      op->oracle(&h);
    }
    for (int ti = 0; ti < 2; ++ti) {
      harness_target_t *t = &targets[ti];
      char why[300] = "";
      run_result_t res;
      if (!supported && t->ref) {
        /* The kernel-level reference trusts its caller: it is not called with
         * what the entry point refuses. */
        snprintf(why, sizeof why, "the reference computes in f32 only (the public op refuses %s)",
                 deco_dtype_name(c->dtype));
        res = RUN_UNSUPPORTED;
      } else if (!supported) {
        res = run_once(&h, op, t, DECO_STATUS_SUCCESS, what, 0, why, sizeof why);
      } else {
        res = run_once(&h, op, t, bad_data ? h.bad_status : DECO_STATUS_SUCCESS, what, 0, NULL, 0);
        if (res == RUN_REFUSED)
          snprintf(why, sizeof why, "bad device data: %s (%.200s)", deco_status_string(h.bad_status),
                   target_message(t));
      }
      tally_add(tl, ti, res, why);
      failures += res == RUN_FAILED;
    }
    hcase_free(&h);
    if (verbose()) fprintf(stderr, "%.3f s  %s\n", now_s() - t0, what);
  }
  deco_ctx_destroy(cpu);
  return failures;
}

int harness_run_cuda(deco_op_kind_t kind, unsigned tags, harness_tally_t *tl) {
  const harness_op_t *op = harness_op(kind);
  cr_assert_not_null(op, "no harness op for %s", deco_op_kind_name(kind));
  const deco_op_cases_t *table = harness_table();
  deco_ctx_t *cpu = deco_test_cpu_ctx(), *gpu = deco_test_cuda_ctx();
  cr_assert_not_null(gpu, "no CUDA device");
  harness_target_t ref, cuda;
  harness_target_init(&ref, "ref", cpu, 1);
  harness_target_init(&cuda, "cuda", gpu, 0);
  memset(tl, 0, sizeof *tl);
  int failures = 0;
  for (int ci = 0; ci < table->n; ++ci) {
    const deco_op_case_t *c = &table->v[ci];
    if (c->op != kind || (tags && !(c->tags & tags))) continue;
    tl->cases++;
    char what[600];
    describe(c, ci, what, sizeof what);
    const double t0 = now_s();
    hcase_t h;
    build(&h, c, op, 0);
    /* The reference on the same rounded values: as it is where the CPU takes
     * the case, else its f32 twin (outputs rounded to the case's dtype when
     * compared bit for bit). */
    ref.twin = !op->cpu_supports(c);
    run_result_t res = run_once(&h, op, &ref, DECO_STATUS_SUCCESS, what, 1, NULL, 0);
    if (res != RUN_PASSED) {
      fprintf(stderr, "    (the reference run failed: no expectation for %s)\n", what);
      tally_add(tl, 0, RUN_FAILED, NULL);
      failures++;
      hcase_free(&h);
      continue;
    }
    if (c->tags & DECO_CASE_TAG_BAD_DATA) {
      op->corrupt(&h); /* breaks the inputs; turns the expectations into what CUDA writes */
      h.corrupted = 1;
    }
    res = run_once(&h, op, &cuda, DECO_STATUS_SUCCESS, what, 0, NULL, 0);
    tally_add(tl, 0, res, NULL);
    failures += res == RUN_FAILED;
    hcase_free(&h);
    if (verbose()) fprintf(stderr, "%.3f s  %s (path %s)\n", now_s() - t0, what, cuda.path);
  }
  deco_ctx_destroy(gpu);
  deco_ctx_destroy(cpu);
  return failures;
}

void harness_print_tally(deco_op_kind_t kind, const harness_tally_t *tl, const char *const *names, int n) {
  fprintf(stderr, "harness %s: %d cases", deco_op_kind_name(kind), tl->cases);
  for (int ti = 0; ti < n; ++ti) {
    fprintf(stderr, "; %s: %d passed, %d FAILED", names[ti], tl->passed[ti], tl->failed[ti]);
    if (tl->unsupported[ti])
      fprintf(stderr, ", %d not supported [%s]", tl->unsupported[ti], tl->unsupported_why[ti]);
    if (tl->refused[ti]) fprintf(stderr, ", %d refused as expected [%s]", tl->refused[ti], tl->refused_why[ti]);
  }
  fputc('\n', stderr);
}

#define HARNESS_OP_ONE(name, kind) +1
_Static_assert(0 HARNESS_OPS(HARNESS_OP_ONE) == DECO_OP_COUNT, "HARNESS_OPS names every op once");
#undef HARNESS_OP_ONE

const harness_op_t *harness_op(deco_op_kind_t kind) {
#define HARNESS_OP_ENTRY(name, kind) [kind] = &harness_op_##name,
  static const harness_op_t *const ops[DECO_OP_COUNT] = {HARNESS_OPS(HARNESS_OP_ENTRY)};
#undef HARNESS_OP_ENTRY
  return (unsigned)kind < DECO_OP_COUNT ? ops[kind] : NULL;
}

int harness_cpu_f32_only(const deco_op_case_t *c) { return c->dtype == DECO_DTYPE_F32; }
