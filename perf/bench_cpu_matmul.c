/* perf/bench_cpu_matmul.c — the CPU backend's matmul (kernels/linear/
 * matmul_cpu.c) against the reference (matmul_ref.c) at SmolLM2-135M's
 * projections as deco's forward runs them (dim 576, hidden 1536, 30 layers,
 * vocab 49152, f32: fused QKV 960x576, O 576x576, fused gate/up 3072x576,
 * down 576x1536, the classifier 49152x576; n x k), m = 1 (a decode step)
 * and 81 (a verification forward of an 80-node tree), 1 and 2 threads.
 * Every layer has its own weights (540 MB in all), and the calls replay a
 * forward's order (30 layers, then the classifier), so each call reads its
 * weights from memory as a decode step does. Checks both against float64
 * dot products before timing. Per shape the median call; `step` sums one
 * forward's projections (30 x each layer shape + the classifier).
 * Run: build-cpu/bin/bench_cpu_matmul [--steps N] [--ref-layers L] [--threads 1,2] [--m 1,81]
 *                                   [--isa auto|portable|avx2|avx512] [--no-ref]
 * CSV on stdout: impl,isa,m,shape,n,k,threads,median_us,gflops,weight_gbps,speedup_vs_ref
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/op_impl.h"
#include "linear/matmul_cpu.h"

enum { N_LAYERS = 30, N_SHAPES = 5, MAX_LIST = 8 };

typedef struct shape {
  const char *name;
  int n, k, per_step; /* calls per forward */
} shape_t;

static const shape_t shapes[N_SHAPES] = {{"qkv", 960, 576, N_LAYERS},
                                         {"o", 576, 576, N_LAYERS},
                                         {"gate_up", 3072, 576, N_LAYERS},
                                         {"down", 576, 1536, N_LAYERS},
                                         {"classifier", 49152, 576, 1}};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = (float)((double)(s >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int parse_list(const char *s, int *out) {
  int n = 0;
  while (*s && n < MAX_LIST) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 4096) return -1;
    out[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return -1;
  }
  return n;
}

typedef struct weights {
  float *w[N_SHAPES][N_LAYERS];
} weights_t;

/* One implementation: the fast path with an instruction set, or the reference. */
typedef struct impl {
  int ref;
  deco_matmul_cpu_isa_t isa;
} impl_t;

static deco_status_t run(const impl_t *im, const deco_exec_t *exec, const deco_matmul_args_t *args) {
  return im->ref ? deco_matmul_ref(exec, args) : deco_matmul_cpu_isa(exec, args, im->isa);
}

/* Median seconds per call of each shape over `steps` forwards of `layers`
 * layers (the classifier once per forward). */
static int time_impl(const impl_t *im, const weights_t *wt, const float *a, float *out, int m, int threads, int steps,
                     int layers, double med[N_SHAPES]) {
  deco_exec_t exec = {.backend = DECO_BACKEND_CPU, .n_threads = threads};
  double *t[N_SHAPES];
  int nt[N_SHAPES] = {0};
  for (int s = 0; s < N_SHAPES; ++s) t[s] = malloc(sizeof(double) * (size_t)(steps + 1) * N_LAYERS);
  for (int step = 0; step <= steps; ++step) { /* step 0 warms up */
    for (int l = 0; l <= layers; ++l)
      for (int s = 0; s < N_SHAPES; ++s) {
        const int last = s == N_SHAPES - 1;
        if (last != (l == layers)) continue; /* layers first, then the classifier */
        deco_matmul_args_t args = DECO_MATMUL_ARGS_INIT;
        args.m = m, args.n = shapes[s].n, args.k = shapes[s].k, args.a = a, args.out = out;
        args.w = wt->w[s][last ? 0 : l];
        const double t0 = now_seconds();
        if (run(im, &exec, &args) != DECO_STATUS_SUCCESS) return 1;
        const double dt = now_seconds() - t0;
        if (step > 0) t[s][nt[s]++] = dt;
      }
  }
  for (int s = 0; s < N_SHAPES; ++s) {
    qsort(t[s], (size_t)nt[s], sizeof(double), cmp_double);
    med[s] = t[s][nt[s] / 2];
    free(t[s]);
  }
  return 0;
}

/* The path and the reference against float64 on every row of m and the
 * first 32 columns of each shape. */
static int validate(const impl_t *fast, const weights_t *wt, const float *a, float *out, int m) {
  const impl_t ref = {.ref = 1};
  const impl_t *ims[2] = {fast, &ref};
  const deco_exec_t exec = {.backend = DECO_BACKEND_CPU};
  for (int s = 0; s < N_SHAPES; ++s)
    for (int i = 0; i < 2; ++i) {
      const int n = 32, k = shapes[s].k;
      deco_matmul_args_t args = DECO_MATMUL_ARGS_INIT;
      args.m = m, args.n = n, args.k = k, args.a = a, args.w = wt->w[s][0], args.out = out;
      if (run(ims[i], &exec, &args) != DECO_STATUS_SUCCESS) return 1;
      for (int r = 0; r < m; ++r)
        for (int j = 0; j < n; ++j) {
          double want = 0;
          for (int t = 0; t < k; ++t) want += (double)a[(size_t)r * k + t] * wt->w[s][0][(size_t)j * k + t];
          const double got = out[(size_t)r * n + j];
          if (!(fabs(got - want) <= 1e-4 + 1e-4 * fabs(want))) {
            fprintf(stderr, "bench_cpu_matmul: %s %s m=%d row %d col %d: %.9g, float64 %.9g\n",
                    i ? "ref" : "fast", shapes[s].name, m, r, j, got, want);
            return 1;
          }
        }
    }
  return 0;
}

static void cpu_name(char *buf, size_t cap) {
  snprintf(buf, cap, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0) {
      const char *v = strchr(line, ':');
      if (v) snprintf(buf, cap, "%s", v + 2);
      buf[strcspn(buf, "\n")] = '\0';
      break;
    }
  fclose(f);
}

int main(int argc, char **argv) {
  int steps = 3, ref_layers = 2, no_ref = 0;
  int threads[MAX_LIST] = {1, 2}, n_threads = 2, ms[MAX_LIST] = {1, 81}, n_ms = 2;
  deco_matmul_cpu_isa_t isa = DECO_MATMUL_CPU_AUTO;
  for (int i = 1; i < argc; ++i) {
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(argv[i], "--steps") == 0 && (steps = atoi(v)) >= 1) ++i;
    else if (strcmp(argv[i], "--ref-layers") == 0 && (ref_layers = atoi(v)) >= 1 && ref_layers <= N_LAYERS) ++i;
    else if (strcmp(argv[i], "--threads") == 0 && (n_threads = parse_list(v, threads)) > 0) ++i;
    else if (strcmp(argv[i], "--m") == 0 && (n_ms = parse_list(v, ms)) > 0) ++i;
    else if (strcmp(argv[i], "--no-ref") == 0) no_ref = 1;
    else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
      const char *names[] = {"auto", "portable", "avx2", "avx512"};
      int found = 0;
      for (int k = 0; k < 4; ++k)
        if (strcmp(v, names[k]) == 0) isa = (deco_matmul_cpu_isa_t)k, found = 1;
      if (!found) goto usage;
      ++i;
    } else {
    usage:
      fprintf(stderr, "usage: bench_cpu_matmul [--steps N] [--ref-layers L] [--threads 1,2] [--m 1,81] "
                      "[--isa auto|portable|avx2|avx512] [--no-ref]\n");
      return 2;
    }
  }
  if (isa == DECO_MATMUL_CPU_AUTO) isa = deco_matmul_cpu_isa_best();
  if (!deco_matmul_cpu_isa_available(isa)) {
    fprintf(stderr, "bench_cpu_matmul: the %s path does not run here\n", deco_matmul_cpu_isa_name(isa));
    return 1;
  }
  char cpu[160];
  cpu_name(cpu, sizeof cpu);
  int omp_max = 1;
#ifdef _OPENMP
  omp_max = omp_get_max_threads();
#endif
  fprintf(stderr, "# %s; matmul_cpu path %s; OpenMP default %d threads\n", cpu, deco_matmul_cpu_isa_name(isa),
          omp_max);

  weights_t wt;
  size_t bytes = 0;
  for (int s = 0; s < N_SHAPES; ++s)
    for (int l = 0; l < N_LAYERS; ++l) {
      wt.w[s][l] = NULL;
      if (l >= shapes[s].per_step) continue;
      const size_t n = (size_t)shapes[s].n * shapes[s].k;
      wt.w[s][l] = malloc(sizeof(float) * n);
      if (!wt.w[s][l]) return fprintf(stderr, "bench_cpu_matmul: out of memory\n"), 1;
      fill(wt.w[s][l], n, (uint64_t)(s * 64 + l + 1));
      bytes += sizeof(float) * n;
    }
  int max_m = 1;
  for (int i = 0; i < n_ms; ++i) max_m = ms[i] > max_m ? ms[i] : max_m;
  float *a = malloc(sizeof(float) * (size_t)max_m * 1536), *out = malloc(sizeof(float) * (size_t)max_m * 49152);
  if (!a || !out) return 1;
  fill(a, (size_t)max_m * 1536, 99);
  fprintf(stderr, "# weights: %.0f MB (SmolLM2-135M's projections in f32)\n", (double)bytes / 1e6);

  const impl_t fast = {.ref = 0, .isa = isa}, ref = {.ref = 1};
  for (int i = 0; i < n_ms; ++i)
    if (validate(&fast, &wt, a, out, ms[i])) return 1;

  printf("impl,isa,m,shape,n,k,threads,median_us,gflops,weight_gbps,speedup_vs_ref\n");
  for (int mi = 0; mi < n_ms; ++mi)
    for (int ti = 0; ti < n_threads; ++ti) {
      const int m = ms[mi];
      double tf[N_SHAPES], tr[N_SHAPES];
      if (time_impl(&fast, &wt, a, out, m, threads[ti], steps, N_LAYERS, tf)) return 1;
      const int have_ref = !no_ref;
      if (have_ref && time_impl(&ref, &wt, a, out, m, threads[ti], 1, m > 1 ? ref_layers : N_LAYERS, tr)) return 1;
      double step_f = 0, step_r = 0, flops_step = 0, bytes_step = 0;
      for (int r = 0; r < 2; ++r)
        for (int s = 0; s <= N_SHAPES; ++s) {
          if (r == 1 && !have_ref) continue;
          const double *t = r ? tr : tf;
          double us, flops, wbytes;
          const char *name;
          int n = 0, k = 0;
          if (s < N_SHAPES) {
            n = shapes[s].n, k = shapes[s].k, name = shapes[s].name;
            us = t[s] * 1e6;
            flops = 2.0 * m * n * k;
            wbytes = 4.0 * n * k;
            if (r == 0) step_f += us * shapes[s].per_step;
            else step_r += us * shapes[s].per_step;
            if (r == 0) flops_step += flops * shapes[s].per_step, bytes_step += wbytes * shapes[s].per_step;
          } else {
            name = "step";
            us = r ? step_r : step_f;
            flops = flops_step;
            wbytes = bytes_step;
          }
          const double speedup = have_ref ? (s < N_SHAPES ? tr[s] / tf[s] : step_r / step_f) : 0;
          printf("%s,%s,%d,%s,%d,%d,%d,%.1f,%.2f,%.2f,", r ? "ref" : "fast", r ? "-" : deco_matmul_cpu_isa_name(isa),
                 m, name, n, k, threads[ti], us, flops / us * 1e-3, wbytes / us * 1e-3);
          if (r == 0 && have_ref) printf("%.2f\n", speedup);
          else printf("\n");
        }
      fprintf(stderr, "m=%d threads=%d: projections of one forward %.1f ms (%.1f GFLOP/s)%s", m, threads[ti],
              step_f * 1e-3, flops_step / step_f * 1e-3, have_ref ? "" : "\n");
      if (have_ref) fprintf(stderr, ", reference %.1f ms: %.1fx\n", step_r * 1e-3, step_r / step_f);
      fflush(stdout);
    }
  for (int s = 0; s < N_SHAPES; ++s)
    for (int l = 0; l < N_LAYERS; ++l) free(wt.w[s][l]);
  free(a);
  free(out);
  return 0;
}
