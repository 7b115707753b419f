/* kernels/linear/matmul_cpu.c — the CPU backend's matmul, out = a · wᵀ
 * (a [m][k], w [n][k], out [m][n], all f32), batch-invariant: out[i][j]
 * depends only on a[i], w[j] and k, never on m, on the tile it falls in, on
 * the thread count or on the instruction set. Every output is one dot
 * product summed in this order (the spec of all three paths below):
 *   16 lanes; lane l accumulates a[i][16c + l] * w[j][16c + l] for
 *   c = 0, 1, ... with one fused multiply-add each (fmaf: one rounding), k
 *   padded with zeros to a multiple of 16; then s[l] += s[l + 8] (l < 8),
 *   s[l] += s[l + 4] (l < 4), s[l] += s[l + 2] (l < 2), result s[0] + s[1].
 * Paths: portable C with fmaf, AVX2+FMA (two 8-lane registers per output),
 * AVX-512 (one 16-lane register), the SIMD ones picked at run time. Register
 * tiles of rows x columns reuse each load; OpenMP threads split the output
 * columns, never a sum. Why it matters: speculative greedy decoding equals
 * plain greedy on the CPU only because a row's result does not depend on
 * how many rows are computed together. matmul_ref.c (one sequential sum per
 * output) stays the spec of the op tests; this order differs from it by
 * rounding only (within the f32 reduction tolerance).
 */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/op_impl.h"
#include "linear/matmul_cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DECO_MM_X86 1
#include <immintrin.h>
#endif

enum { LANES = DECO_MATMUL_CPU_LANES };

/* Computes out[:, j0:j1] (every row) for one path. */
typedef void (*cols_fn)(const float *a, const float *w, float *out, int m, int n, int k, int j0, int j1,
                        int accumulate);

static inline void store(float *o, float v, int accumulate) { *o = accumulate ? *o + v : v; }

/* ---- portable: the order above, written out ---------------------------- */

static float reduce_lanes(float s[LANES]) {
  for (int l = 0; l < 8; ++l) s[l] += s[l + 8];
  for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
  for (int l = 0; l < 2; ++l) s[l] += s[l + 2];
  return s[0] + s[1];
}

static float dot_portable(const float *x, const float *w, int k) {
  float s[LANES] = {0};
  int k0 = 0;
  for (; k0 + LANES <= k; k0 += LANES)
    for (int l = 0; l < LANES; ++l) s[l] = fmaf(x[k0 + l], w[k0 + l], s[l]);
  if (k0 < k) { /* the zero padding, as the SIMD paths' masked loads give it */
    float xt[LANES] = {0}, wt[LANES] = {0};
    memcpy(xt, x + k0, sizeof(float) * (size_t)(k - k0));
    memcpy(wt, w + k0, sizeof(float) * (size_t)(k - k0));
    for (int l = 0; l < LANES; ++l) s[l] = fmaf(xt[l], wt[l], s[l]);
  }
  return reduce_lanes(s);
}

static void cols_portable(const float *a, const float *w, float *out, int m, int n, int k, int j0, int j1,
                          int accumulate) {
  for (int j = j0; j < j1; ++j) /* w[j] stays in cache over the rows */
    for (int i = 0; i < m; ++i)
      store(out + (size_t)i * n + j, dot_portable(a + (size_t)i * k, w + (size_t)j * k, k), accumulate);
}

#ifdef DECO_MM_X86
/* ---- AVX2 + FMA: lanes 0-7 and 8-15 of an output in two registers ------- */

#define DECO_MM_AVX2 __attribute__((target("avx2,fma")))
#define DECO_MM_INLINE __attribute__((always_inline)) static inline

/* The fixed tree: l + l+8 (the two registers), l + l+4, l + l+2, 0 + 1. */
DECO_MM_AVX2 DECO_MM_INLINE float reduce_avx2(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* Rows x columns of outputs per tile: 2 x 3 x 2 accumulators + 2 rows of a + 1 of w = 15 of 16 registers. */
enum { AVX2_R = 2, AVX2_C = 3 };

/* An R x C tile (R <= AVX2_R, C <= AVX2_C, constants after inlining):
 * a [R][k] (row stride k), w [C][k], out [R][C] (row stride n). */
DECO_MM_AVX2 DECO_MM_INLINE void tile_avx2(const float *a, const float *w, float *out, int n, int k,
                                           int accumulate, const int R, const int C) {
  __m256 lo[AVX2_R][AVX2_C], hi[AVX2_R][AVX2_C], x[AVX2_R];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) lo[r][c] = hi[r][c] = _mm256_setzero_ps();
  int k0 = 0;
  for (; k0 + LANES <= k; k0 += LANES) {
    for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(a + (size_t)r * k + k0);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_loadu_ps(w + (size_t)c * k + k0);
      for (int r = 0; r < R; ++r) lo[r][c] = _mm256_fmadd_ps(x[r], wv, lo[r][c]);
    }
    for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(a + (size_t)r * k + k0 + 8);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_loadu_ps(w + (size_t)c * k + k0 + 8);
      for (int r = 0; r < R; ++r) hi[r][c] = _mm256_fmadd_ps(x[r], wv, hi[r][c]);
    }
  }
  if (k0 < k) { /* masked loads read zeros past k and touch no memory there */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mlo = _mm256_cmpgt_epi32(_mm256_set1_epi32(k - k0), lane);
    const __m256i mhi = _mm256_cmpgt_epi32(_mm256_set1_epi32(k - k0 - 8), lane);
    for (int r = 0; r < R; ++r) x[r] = _mm256_maskload_ps(a + (size_t)r * k + k0, mlo);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_maskload_ps(w + (size_t)c * k + k0, mlo);
      for (int r = 0; r < R; ++r) lo[r][c] = _mm256_fmadd_ps(x[r], wv, lo[r][c]);
    }
    for (int r = 0; r < R; ++r) x[r] = _mm256_maskload_ps(a + (size_t)r * k + k0 + 8, mhi);
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_maskload_ps(w + (size_t)c * k + k0 + 8, mhi);
      for (int r = 0; r < R; ++r) hi[r][c] = _mm256_fmadd_ps(x[r], wv, hi[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) store(out + (size_t)r * n + c, reduce_avx2(lo[r][c], hi[r][c]), accumulate);
}

DECO_MM_AVX2 static void cols_avx2(const float *a, const float *w, float *out, int m, int n, int k, int j0, int j1,
                                   int accumulate) {
  int j = j0;
  /* A panel of AVX2_C rows of w stays in L1/L2 while every row of a passes. */
  for (; j + AVX2_C <= j1; j += AVX2_C) {
    const float *wj = w + (size_t)j * k;
    int i = 0;
    for (; i + AVX2_R <= m; i += AVX2_R)
      tile_avx2(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, AVX2_R, AVX2_C);
    for (; i < m; ++i) tile_avx2(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, 1, AVX2_C);
  }
  for (; j < j1; ++j) {
    const float *wj = w + (size_t)j * k;
    int i = 0;
    for (; i + AVX2_R <= m; i += AVX2_R)
      tile_avx2(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, AVX2_R, 1);
    for (; i < m; ++i) tile_avx2(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, 1, 1);
  }
}

/* ---- AVX-512: all 16 lanes of an output in one register ----------------- */

#define DECO_MM_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* The same tree: its first step adds the register's two halves. */
DECO_MM_AVX512 DECO_MM_INLINE float reduce_avx512(__m512 s) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));
  return reduce_avx2(_mm512_castps512_ps256(s), hi);
}

/* The same tree for 16 outputs at once, lane by lane (a transpose in
 * shuffles instead of a horizontal sum per output): every add joins the
 * same two values as the tree above, first operand first. v[i] holds the
 * accumulators of the output whose result lands in lane (i % 4) * 4 + i / 4. */
DECO_MM_AVX512 DECO_MM_INLINE __m512 reduce16_avx512(const __m512 v[16]) {
  __m512 s1[8], s2[4], s3[2];
  for (int p = 0; p < 8; ++p) /* l + l+8: 256-bit halves of two outputs side by side */
    s1[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                          _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
  for (int p = 0; p < 4; ++p) /* l + l+4: 128-bit quarters, one output per quarter */
    s2[p] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * p], s1[2 * p + 1], 0x88),
                          _mm512_shuffle_f32x4(s1[2 * p], s1[2 * p + 1], 0xDD));
  for (int p = 0; p < 2; ++p) /* l + l+2 */
    s3[p] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * p], s2[2 * p + 1], 0x44),
                          _mm512_shuffle_ps(s2[2 * p], s2[2 * p + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], 0x88), _mm512_shuffle_ps(s3[0], s3[1], 0xDD)); /* 0 + 1 */
}

/* 4 x 6 accumulators + 4 rows of a + 1 of w = 29 of 32 registers. */
enum { AVX512_R = 4, AVX512_C = 6 };

DECO_MM_AVX512 DECO_MM_INLINE void tile_avx512(const float *a, const float *w, float *out, int n, int k,
                                               int accumulate, const int R, const int C) {
  __m512 s[AVX512_R][AVX512_C], x[AVX512_R];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) s[r][c] = _mm512_setzero_ps();
  int k0 = 0;
  for (; k0 + LANES <= k; k0 += LANES) {
    for (int r = 0; r < R; ++r) x[r] = _mm512_loadu_ps(a + (size_t)r * k + k0);
    for (int c = 0; c < C; ++c) {
      const __m512 wv = _mm512_loadu_ps(w + (size_t)c * k + k0);
      for (int r = 0; r < R; ++r) s[r][c] = _mm512_fmadd_ps(x[r], wv, s[r][c]);
    }
  }
  if (k0 < k) {
    const __mmask16 mask = (__mmask16)((1u << (k - k0)) - 1u);
    for (int r = 0; r < R; ++r) x[r] = _mm512_maskz_loadu_ps(mask, a + (size_t)r * k + k0);
    for (int c = 0; c < C; ++c) {
      const __m512 wv = _mm512_maskz_loadu_ps(mask, w + (size_t)c * k + k0);
      for (int r = 0; r < R; ++r) s[r][c] = _mm512_fmadd_ps(x[r], wv, s[r][c]);
    }
  }
  if (R == AVX512_R && C == AVX512_C) { /* a full tile: its 24 outputs reduced 16 at a time */
    float res[32];
    __m512 v[16];
    for (int half = 0; half < 2; ++half) {
      for (int i = 0; i < 16; ++i) {
        const int o = half * 16 + (i % 4) * 4 + i / 4; /* the output landing in lane (i % 4) * 4 + i / 4 */
        v[i] = o < R * C ? s[o / C][o % C] : _mm512_setzero_ps();
      }
      _mm512_storeu_ps(res + half * 16, reduce16_avx512(v));
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) store(out + (size_t)r * n + c, res[r * C + c], accumulate);
    return;
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) store(out + (size_t)r * n + c, reduce_avx512(s[r][c]), accumulate);
}

DECO_MM_AVX512 static void cols_avx512(const float *a, const float *w, float *out, int m, int n, int k, int j0,
                                       int j1, int accumulate) {
  int j = j0;
  const int row_tiles = m / AVX512_R;
  const size_t panel_bytes = sizeof(float) * AVX512_C * (size_t)k; /* AVX512_C rows of w, contiguous */
  for (; j + AVX512_C <= j1; j += AVX512_C) {
    const float *wj = w + (size_t)j * k;
    /* While the row tiles pass over this panel, the next one is prefetched
     * a slice per tile (fresh weights come from memory). */
    const char *next = j + 2 * AVX512_C <= j1 ? (const char *)(wj + (size_t)AVX512_C * k) : NULL;
    int i = 0;
    for (int t = 0; i + AVX512_R <= m; i += AVX512_R, ++t) {
      if (next)
        for (size_t b = panel_bytes * t / row_tiles; b < panel_bytes * (t + 1) / row_tiles; b += 64)
          _mm_prefetch(next + b, _MM_HINT_T0);
      tile_avx512(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, AVX512_R, AVX512_C);
    }
    for (; i < m; ++i) tile_avx512(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, 1, AVX512_C);
  }
  for (; j < j1; ++j) {
    const float *wj = w + (size_t)j * k;
    int i = 0;
    for (; i + AVX512_R <= m; i += AVX512_R)
      tile_avx512(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, AVX512_R, 1);
    for (; i < m; ++i) tile_avx512(a + (size_t)i * k, wj, out + (size_t)i * n + j, n, k, accumulate, 1, 1);
  }
}
#endif /* DECO_MM_X86 */

/* ---- selection and threads ---------------------------------------------- */

int deco_matmul_cpu_isa_available(deco_matmul_cpu_isa_t isa) {
  switch (isa) {
  case DECO_MATMUL_CPU_AUTO:
  case DECO_MATMUL_CPU_PORTABLE: return 1;
#ifdef DECO_MM_X86
  /* __builtin_cpu_supports also checks that the OS saves the registers. */
  case DECO_MATMUL_CPU_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case DECO_MATMUL_CPU_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  case DECO_MATMUL_CPU_AVX2:
  case DECO_MATMUL_CPU_AVX512: return 0;
#endif
  }
  return 0;
}

deco_matmul_cpu_isa_t deco_matmul_cpu_isa_best(void) {
  if (deco_matmul_cpu_isa_available(DECO_MATMUL_CPU_AVX512)) return DECO_MATMUL_CPU_AVX512;
  if (deco_matmul_cpu_isa_available(DECO_MATMUL_CPU_AVX2)) return DECO_MATMUL_CPU_AVX2;
  return DECO_MATMUL_CPU_PORTABLE;
}

const char *deco_matmul_cpu_isa_name(deco_matmul_cpu_isa_t isa) {
  switch (isa) {
  case DECO_MATMUL_CPU_AUTO: return "auto";
  case DECO_MATMUL_CPU_PORTABLE: return "portable";
  case DECO_MATMUL_CPU_AVX2: return "avx2";
  case DECO_MATMUL_CPU_AVX512: return "avx512";
  }
  return "?";
}

/* Splits the columns into one contiguous range per thread, in whole tiles
 * (the split changes which thread computes an output, never how). */
static void run_threads(cols_fn fn, int tile_c, const deco_exec_t *exec, const float *a, const float *w,
                        float *out, int m, int n, int k, int accumulate) {
  const int tiles = (n + tile_c - 1) / tile_c;
  int threads = 1;
#ifdef _OPENMP
  if ((long long)n * k >= DECO_MATMUL_CPU_PARALLEL_MIN_WEIGHTS ||
      (long long)m * n * k >= DECO_MATMUL_CPU_PARALLEL_MIN_MACS)
    threads = exec != NULL && exec->n_threads > 0 ? exec->n_threads : omp_get_max_threads();
#endif
  if (threads > tiles) threads = tiles;
  if (threads <= 1) {
    fn(a, w, out, m, n, k, 0, n, accumulate);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const long long t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int j0 = (int)(tiles * t / nt) * tile_c;
    int j1 = (int)(tiles * (t + 1) / nt) * tile_c;
    if (j1 > n) j1 = n;
    if (j0 < j1) fn(a, w, out, m, n, k, j0, j1, accumulate);
  }
#endif
}

deco_status_t deco_matmul_cpu_isa(const deco_exec_t *exec, const deco_matmul_args_t *p, deco_matmul_cpu_isa_t isa) {
  if (isa == DECO_MATMUL_CPU_AUTO) isa = deco_matmul_cpu_isa_best();
  if (!deco_matmul_cpu_isa_available(isa))
    return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_matmul: the %s path does not run on this CPU or build",
                          deco_matmul_cpu_isa_name(isa));
  if (p->dtype != DECO_DTYPE_F32 || p->out_dtype != DECO_DTYPE_F32)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_matmul: the CPU path takes f32 only");
  if (p->m <= 0) return DECO_STATUS_SUCCESS;
  const float *a = (const float *)p->a, *w = (const float *)p->w;
  float *out = (float *)p->out;
  cols_fn fn = cols_portable;
  int tile_c = 1;
#ifdef DECO_MM_X86
  if (isa == DECO_MATMUL_CPU_AVX512) {
    fn = cols_avx512;
    tile_c = AVX512_C;
  } else if (isa == DECO_MATMUL_CPU_AVX2) {
    fn = cols_avx2;
    tile_c = AVX2_C;
  }
#endif
  run_threads(fn, tile_c, exec, a, w, out, p->m, p->n, p->k, p->accumulate);
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_matmul_cpu(const deco_exec_t *exec, const deco_matmul_args_t *args) {
  return deco_matmul_cpu_isa(exec, args, DECO_MATMUL_CPU_AUTO);
}
