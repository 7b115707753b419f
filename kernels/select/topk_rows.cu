/* kernels/select/topk_rows.cu — per-row top-k (k <= 16) of raw logits, f32
 * or bf16 [n_rows][vocab] -> ids [n_rows][k] (+ values), sorted by value
 * descending and equal values by id ascending (the key order of
 * kernels/select/topk_key.h), for Token Recycling's update (Luo et al. 2024).
 * Long rows are split over several blocks whose partial lists a second
 * kernel merges; keys are distinct, so the result does not depend on timing.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "select/topk_key.h"

#define TOPK_THREADS 256
#define TOPK_MAX_SPLITS 32  /* one lane per partial list in the merge */
#define TOPK_MIN_CHUNK 4096 /* elements per block before a row is split further */
#define TOPK_UNROLL 4       /* 16-byte loads in flight per thread */

/* ---- Plan: how many blocks share a row, and the workspace that needs ---- */

typedef struct topk_plan {
  int splits;       /* blocks per row, 1..TOPK_MAX_SPLITS */
  int chunk;        /* elements per block, a multiple of 8 (whole 16-byte vectors) */
  size_t ws_bytes;  /* partial lists [n_rows][splits][k] uint64 keys, 0 when splits = 1 */
} topk_plan_t;

/* Enough blocks for about two waves (short rows, few rows), but never less
 * than TOPK_MIN_CHUNK elements per block, where the per-block selection
 * would cost more than the loads it spreads. */
static topk_plan_t topk_plan(const deco_exec_t *exec, const deco_topk_rows_args_t *a) {
  topk_plan_t p;
  const long long want_blocks = 2LL * (exec->sm_count > 0 ? exec->sm_count : 1);
  long long s = (want_blocks + a->n_rows - 1) / a->n_rows;
  const long long by_len = ((long long)a->vocab + TOPK_MIN_CHUNK - 1) / TOPK_MIN_CHUNK;
  if (s > by_len) s = by_len;
  if (s > TOPK_MAX_SPLITS) s = TOPK_MAX_SPLITS;
  if (s < 1) s = 1;
  p.splits = (int)s;
  p.chunk = (int)((((long long)a->vocab + s - 1) / s + 7) / 8 * 8);
  p.ws_bytes = s > 1 ? sizeof(uint64_t) * (size_t)a->n_rows * (size_t)s * (size_t)a->k : 0;
  return p;
}

/* ---- Device helpers ---- */

__device__ __forceinline__ uint64_t topk_warp_max(uint64_t x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t y = __shfl_xor_sync(0xffffffffu, x, o);
    x = y > x ? y : x;
  }
  return x;
}

/* l[0..KC) sorted descending; keeps the KC largest keys seen. */
template <int KC> __device__ __forceinline__ void topk_insert(uint64_t (&l)[KC], uint64_t key) {
  if (key > l[KC - 1]) {
    l[KC - 1] = key;
#pragma unroll
    for (int i = KC - 1; i > 0; --i) {
      const bool up = l[i] > l[i - 1];
      const uint64_t hi = up ? l[i] : l[i - 1], lo = up ? l[i - 1] : l[i];
      l[i - 1] = hi;
      l[i] = lo;
    }
  }
}

/* 16-byte vectors of each dtype, widened to f32. */
/* The value written out: the exact widening the C reference does (bf16: a
 * shift, so a NaN keeps its payload bits). */
__device__ __forceinline__ float topk_value(float x) { return x; }
__device__ __forceinline__ float topk_value(__nv_bfloat16 x) {
  return __uint_as_float((uint32_t)__bfloat16_as_ushort(x) << 16);
}

template <typename T> struct topk_vec;
template <> struct topk_vec<float> {
  typedef float4 V;
  static constexpr int N = 4;
  static __device__ __forceinline__ void unpack(V v, float f[4]) {
    f[0] = v.x;
    f[1] = v.y;
    f[2] = v.z;
    f[3] = v.w;
  }
};
template <> struct topk_vec<__nv_bfloat16> {
  typedef uint4 V;
  static constexpr int N = 8;
  static __device__ __forceinline__ void unpack(V v, float f[8]) { deco_unpack8<__nv_bfloat16>(v, f); }
};

/* ---- Kernels ---- */

/* Block (row, split) scans elements [split * chunk, +chunk) of its row; each
 * thread keeps its KC >= k best keys in registers, then k rounds of a block
 * maximum pick the block's k best. With one split they are the answer;
 * otherwise they go to the workspace for topk_merge_kernel. VEC: the row is
 * read in 16-byte vectors (row bytes a multiple of 16, base aligned). */
template <typename T, int KC, bool VEC>
static __global__ void __launch_bounds__(TOPK_THREADS)
    topk_rows_kernel(const T *__restrict__ logits,         /* [n_rows][vocab] */
                     const int32_t *__restrict__ row_count, /* [1] or NULL */
                     int vocab, int k, int splits, int chunk,
                     int32_t *__restrict__ ids,             /* [n_rows][k] */
                     float *__restrict__ values,            /* [n_rows][k] or NULL */
                     uint64_t *__restrict__ partial /* [n_rows][splits][k] */) {
  const int row = blockIdx.x / splits, split = blockIdx.x % splits;
  if (row_count != NULL && row >= *row_count) return; /* uniform over the block */
  const T *x = logits + (size_t)row * vocab;
  const int c0 = split * chunk;
  const int c1 = c0 + chunk < vocab ? c0 + chunk : vocab;

  uint64_t l[KC];
#pragma unroll
  for (int i = 0; i < KC; ++i) l[i] = 0;

  if (VEC) {
    typedef typename topk_vec<T>::V V;
    constexpr int N = topk_vec<T>::N;
    const V *xv = reinterpret_cast<const V *>(x);
    const int v0 = c0 / N, v1 = c1 > c0 ? c1 / N : v0; /* c0 and c1 are multiples of N here */
    for (int i = v0 + (int)threadIdx.x; i < v1; i += TOPK_UNROLL * TOPK_THREADS) {
      V buf[TOPK_UNROLL];
#pragma unroll
      for (int u = 0; u < TOPK_UNROLL; ++u) {
        const int idx = i + u * TOPK_THREADS;
        if (idx < v1) buf[u] = __ldcs(xv + idx); /* read once: do not keep in L1/L2 */
      }
#pragma unroll
      for (int u = 0; u < TOPK_UNROLL; ++u) {
        const int idx = i + u * TOPK_THREADS;
        if (idx < v1) {
          float f[N];
          topk_vec<T>::unpack(buf[u], f);
#pragma unroll
          for (int e = 0; e < N; ++e) topk_insert<KC>(l, deco_topk_key(f[e], idx * N + e));
        }
      }
    }
  } else {
    for (int i = c0 + (int)threadIdx.x; i < c1; i += TOPK_THREADS)
      topk_insert<KC>(l, deco_topk_key(topk_value(x[i]), i));
  }

  __shared__ uint64_t s_warp[TOPK_THREADS / 32];
  __shared__ uint64_t s_best;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = 0; r < k; ++r) {
    const uint64_t m = topk_warp_max(l[0]);
    if (lane == 0) s_warp[warp] = m;
    __syncthreads();
    if (warp == 0) {
      const uint64_t best = topk_warp_max(lane < TOPK_THREADS / 32 ? s_warp[lane] : 0);
      if (lane == 0) {
        s_best = best;
        if (splits == 1) {
          const int32_t id = deco_topk_key_id(best);
          ids[(size_t)row * k + r] = id;
          if (values != NULL) values[(size_t)row * k + r] = topk_value(x[id]);
        } else {
          partial[((size_t)row * splits + split) * k + r] = best;
        }
      }
    }
    __syncthreads();
    /* Keys are distinct: only the owner of the maximum pops it. A block
     * with fewer than k elements emits 0 keys, which sort last. */
    if (l[0] == s_best && s_best != 0) {
#pragma unroll
      for (int i = 0; i + 1 < KC; ++i) l[i] = l[i + 1];
      l[KC - 1] = 0;
    }
  }
}

/* One warp per row: lane s holds the head of split s's sorted list; k
 * rounds of a warp maximum merge them. */
template <typename T>
static __global__ void topk_merge_kernel(const T *__restrict__ logits,          /* [n_rows][vocab] */
                                         const int32_t *__restrict__ row_count, /* [1] or NULL */
                                         const uint64_t *__restrict__ partial,  /* [n_rows][splits][k] */
                                         int vocab, int k, int splits,
                                         int32_t *__restrict__ ids, float *__restrict__ values) {
  const int row = blockIdx.x, lane = threadIdx.x;
  if (row_count != NULL && row >= *row_count) return;
  const uint64_t *lists = partial + (size_t)row * splits * k;
  int pos = 0;
  uint64_t head = lane < splits ? lists[(size_t)lane * k] : 0;
  for (int r = 0; r < k; ++r) {
    const uint64_t best = topk_warp_max(head);
    if (lane == 0) {
      const int32_t id = deco_topk_key_id(best);
      ids[(size_t)row * k + r] = id;
      if (values != NULL) values[(size_t)row * k + r] = topk_value(logits[(size_t)row * vocab + id]);
    }
    if (lane < splits && head == best) {
      ++pos;
      head = pos < k ? lists[(size_t)lane * k + pos] : 0;
    }
  }
}

/* ---- Launch ---- */

template <typename T, int KC>
static deco_status_t topk_rows_launch(const deco_exec_t *exec, const deco_topk_rows_args_t *a, const topk_plan_t &p) {
  const cudaStream_t st = DECO_CUDA_STREAM(exec);
  const T *x = (const T *)a->logits;
  uint64_t *partial = p.splits > 1 ? (uint64_t *)exec->workspace : NULL;
  const unsigned grid = (unsigned)a->n_rows * (unsigned)p.splits;
  const bool vec = ((size_t)a->vocab * sizeof(T)) % 16 == 0 && deco_aligned(a->logits, 16);
  if (vec)
    topk_rows_kernel<T, KC, true><<<grid, TOPK_THREADS, 0, st>>>(x, a->row_count, a->vocab, a->k, p.splits, p.chunk,
                                                                  a->ids, a->values, partial);
  else
    topk_rows_kernel<T, KC, false><<<grid, TOPK_THREADS, 0, st>>>(x, a->row_count, a->vocab, a->k, p.splits, p.chunk,
                                                                   a->ids, a->values, partial);
  DECO_CUDA_CHECK_LAUNCH(exec, "topk_rows_kernel");
  if (p.splits > 1) {
    topk_merge_kernel<T><<<a->n_rows, 32, 0, st>>>(x, a->row_count, partial, a->vocab, a->k, p.splits, a->ids,
                                                   a->values);
    DECO_CUDA_CHECK_LAUNCH(exec, "topk_merge_kernel");
  }
  return DECO_STATUS_SUCCESS;
}

template <typename T>
static deco_status_t topk_rows_dispatch_k(const deco_exec_t *exec, const deco_topk_rows_args_t *a,
                                          const topk_plan_t &p) {
  if (a->k == 1) return topk_rows_launch<T, 1>(exec, a, p);
  if (a->k <= 4) return topk_rows_launch<T, 4>(exec, a, p);
  if (a->k <= 8) return topk_rows_launch<T, 8>(exec, a, p);
  return topk_rows_launch<T, 16>(exec, a, p);
}

size_t deco_topk_rows_workspace_size_cuda(const deco_exec_t *exec, const deco_topk_rows_args_t *a) {
  return topk_plan(exec, a).ws_bytes;
}

deco_status_t deco_topk_rows_cuda(const deco_exec_t *exec, const deco_topk_rows_args_t *a) {
  const topk_plan_t p = topk_plan(exec, a);
  if (p.ws_bytes > 0) {
    if (exec->workspace == NULL || exec->workspace_bytes < p.ws_bytes)
      return DECO_EXEC_FAIL(
          exec, DECO_STATUS_WORKSPACE_TOO_SMALL,
          "deco_topk_rows: needs a workspace of %zu bytes (%d rows split %d ways, k = %d), the context "
          "has %zu; see deco_topk_rows_workspace_size",
          p.ws_bytes, a->n_rows, p.splits, a->k, exec->workspace_bytes);
    if (!deco_aligned(exec->workspace, sizeof(uint64_t)))
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "deco_topk_rows: workspace is not 8-byte aligned");
  }
  if (a->dtype == DECO_DTYPE_F32) return topk_rows_dispatch_k<float>(exec, a, p);
  if (a->dtype == DECO_DTYPE_BF16) return topk_rows_dispatch_k<__nv_bfloat16>(exec, a, p);
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_topk_rows: dtype %s", deco_dtype_name(a->dtype));
}
