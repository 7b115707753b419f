/* kernels/verify/accept_device.cuh — device helpers of tree acceptance: the
 * "team" of CTAs that shares one request's vocabulary (a thread-block cluster
 * on sm_90, exchanging partials through distributed shared memory; a single
 * CTA elsewhere), block reductions, logit loads, and the tree's shape in
 * shared memory. Every CTA of a team combines the partials of all ranks in
 * rank order, so all of them hold identical values and take identical
 * branches; that keeps cluster barriers uniform and the result deterministic.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <atomic>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#include <cooperative_groups.h>
#define ACC_HAVE_CLUSTER 1
#else
#define ACC_HAVE_CLUSTER 0
#endif

#include "common/cuda_common.cuh"
#include "common/exec.h"
#include "deco/tree.h"

#define ACC_THREADS 512
#define ACC_WARPS (ACC_THREADS / 32)
#define ACC_MAX_TEAM 8
#define ACC_XCH_WORDS 56 /* u64 words one CTA publishes per exchange */

/* ---- team of CTAs ---- */

struct acc_team {
  int rank, size;
};

__device__ __forceinline__ acc_team acc_team_get() {
  acc_team t;
#if ACC_HAVE_CLUSTER
  cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
  t.rank = (int)cl.block_rank();
  t.size = (int)cl.num_blocks();
#else
  t.rank = 0;
  t.size = 1;
#endif
  return t;
}

/* Barrier over the team; also a block barrier, with release/acquire of the
 * shared memory the ranks read from each other. */
__device__ __forceinline__ void acc_team_sync() {
#if ACC_HAVE_CLUSTER
  cooperative_groups::this_cluster().sync();
#else
  __syncthreads();
#endif
}

/* Rank r's copy of a shared-memory word array (DSMEM on sm_90). */
__device__ __forceinline__ const uint64_t *acc_team_peer(uint64_t *local, int r) {
#if ACC_HAVE_CLUSTER
  return cooperative_groups::this_cluster().map_shared_rank(local, (unsigned)r);
#else
  (void)r;
  return local;
#endif
}

/* Double-buffered exchange area: exchange k writes buffer k & 1; between two
 * writes of one buffer every rank has passed the other exchange's barrier,
 * so nobody still reads it. */
struct acc_xch {
  uint64_t buf[2][ACC_XCH_WORDS];
  int phase;
};

/* Publishes words[0..n) (already in xch->buf[phase], written by the caller
 * before this call) and waits: afterwards acc_xch_read gives every rank's. */
__device__ __forceinline__ uint64_t *acc_xch_slot(acc_xch *x) { return x->buf[x->phase & 1]; }

__device__ __forceinline__ void acc_xch_publish(acc_xch *x) { acc_team_sync(); }

__device__ __forceinline__ uint64_t acc_xch_read(acc_xch *x, int r, int w) {
  return acc_team_peer(x->buf[x->phase & 1], r)[w];
}

/* Ends an exchange: the next one uses the other buffer. Every thread reads
 * the phase, so it is advanced behind a block barrier by thread 0. */
__device__ __forceinline__ void acc_xch_done(acc_xch *x) {
  __syncthreads();
  if (threadIdx.x == 0) x->phase++;
  __syncthreads();
}

/* ---- conversions and loads ---- */

__device__ __forceinline__ uint64_t acc_f2u(float f) { return (uint64_t)__float_as_uint(f); }
__device__ __forceinline__ float acc_u2f(uint64_t u) { return __uint_as_float((uint32_t)u); }
__device__ __forceinline__ uint64_t acc_d2u(double d) { return (uint64_t)__double_as_longlong(d); }
__device__ __forceinline__ double acc_u2d(uint64_t u) { return __longlong_as_double((long long)u); }

__device__ __forceinline__ float acc_load(const float *row, int i) { return __ldg(row + i); }
__device__ __forceinline__ float acc_load(const __nv_bfloat16 *row, int i) { return __bfloat162float(row[i]); }

/* Value in [0, 2] to fixed point with 2^fbits units (truncating). */
__device__ __forceinline__ uint64_t acc_fixed(double v, double scale) {
  return v > 0.0 ? __double2ull_rz(v * scale) : 0ull;
}

/* ---- block reductions (ACC_THREADS threads; result valid in every thread) ---- */

struct acc_red {
  uint64_t u[ACC_WARPS][34];
  float f[ACC_WARPS];
  int i[ACC_WARPS];
  double d[ACC_WARPS];
};

__device__ __forceinline__ uint64_t acc_block_sum_u64(uint64_t v, acc_red *s) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) s->u[w][0] = v;
  __syncthreads();
  uint64_t t = 0;
  for (int k = 0; k < ACC_WARPS; ++k) t += s->u[k][0];
  return t;
}

/* Maximum value with the lowest index among equal maxima. */
__device__ __forceinline__ void acc_block_argmax(float &v, int &idx, acc_red *s) {
  for (int o = 16; o > 0; o >>= 1) {
    float ov = __shfl_down_sync(0xffffffffu, v, o);
    int oi = __shfl_down_sync(0xffffffffu, idx, o);
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  __syncthreads();
  if (l == 0) {
    s->f[w] = v;
    s->i[w] = idx;
  }
  __syncthreads();
  v = s->f[0];
  idx = s->i[0];
  for (int k = 1; k < ACC_WARPS; ++k)
    if (s->f[k] > v || (s->f[k] == v && s->i[k] < idx)) {
      v = s->f[k];
      idx = s->i[k];
    }
}

/* ---- the tree in shared memory ---- */

struct acc_tree {
  int n;     /* nodes, 0 = malformed */
  int node0; /* first flat node */
  int par[DECO_TREE_MAX_NODES];
  uint32_t kids[DECO_TREE_MAX_NODES / 32]; /* children of the node last asked for */
};

/* Loads tree b and checks it (size 1..256 within capacity, parent[0] = -1,
 * 0 <= parent[i] < i, and the batch starting at node 0, which the CPU twin
 * checks for the whole batch); t->n = 0 marks a malformed tree. */
__device__ __forceinline__ void acc_tree_load(const deco_tree_batch_t &tb, int b, acc_tree *t) {
  int lo = tb.tree_indptr[b], hi = tb.tree_indptr[b + 1];
  int n = hi - lo;
  bool ok_size = tb.tree_indptr[0] == 0 && lo >= 0 && n >= 1 && n <= DECO_TREE_MAX_NODES && hi <= tb.n_nodes;
  int bad = 0;
  for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) {
    int p = (ok_size && i < n) ? tb.parent[lo + i] : -2;
    t->par[i] = p;
    if (ok_size && i < n && (i == 0 ? p != -1 : (p < 0 || p >= i))) bad = 1;
  }
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    t->n = (!ok_size || bad) ? 0 : n;
    t->node0 = lo;
  }
  __syncthreads();
}

/* The start every acceptance kernel shares: resets the team's exchange and
 * loads tree b. A malformed tree gets accept_len 0, bonus -1 and path -1
 * (written by rank 0 of the team) and false comes back after a team
 * barrier: the kernel then returns. */
__device__ __forceinline__ bool acc_begin(const deco_tree_batch_t &tb, const deco_tree_verify_out_t &out, int b,
                                          const acc_team &tm, acc_tree *t, acc_xch *xch) {
  if (threadIdx.x == 0) xch->phase = 0;
  acc_tree_load(tb, b, t);
  if (t->n > 0) return true;
  if (tm.rank == 0) {
    int32_t *path = out.path + (size_t)b * DECO_TREE_MAX_NODES;
    for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) path[i] = -1;
    if (threadIdx.x == 0) {
      out.accept_len[b] = 0;
      out.bonus[b] = -1;
      if (out.nonfinite) out.nonfinite[b] = 0;
    }
  }
  acc_team_sync();
  return false;
}

/* The end every acceptance kernel shares: rank 0 of the team writes the
 * accepted path (path[0 .. len), -1 after), accept_len, the bonus and the
 * non-finite flag (0, or 1 + node); then a team barrier, since peers may
 * still read this CTA's shared memory. */
__device__ __forceinline__ void acc_finish(const deco_tree_verify_out_t &out, int b, const acc_team &tm,
                                           const int *path, int len, int bonus, int nonfinite) {
  if (tm.rank == 0) {
    __syncthreads(); /* the path in shared memory is complete */
    int32_t *out_path = out.path + (size_t)b * DECO_TREE_MAX_NODES;
    for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) out_path[i] = i < len ? path[i] : -1;
    if (threadIdx.x == 0) {
      out.accept_len[b] = len;
      out.bonus[b] = bonus;
      if (out.nonfinite) out.nonfinite[b] = nonfinite;
    }
  }
  acc_team_sync();
}

/* Marks the children of v in t->kids (a 256-bit set, read in increasing index). */
__device__ __forceinline__ void acc_tree_children(acc_tree *t, int v) {
  __syncthreads(); /* earlier readers of kids are done */
  for (int i = threadIdx.x; i < DECO_TREE_MAX_NODES; i += blockDim.x) {
    uint32_t m = __ballot_sync(0xffffffffu, i < t->n && t->par[i] == v && i > v);
    if ((i & 31) == 0) t->kids[i / 32] = m;
  }
  __syncthreads();
}

/* Next child of the current set after node `after` (-1 to start), or -1. */
__device__ __forceinline__ int acc_tree_next_child(const acc_tree *t, int after) {
  int start = after + 1;
  for (int w = start / 32; w < DECO_TREE_MAX_NODES / 32; ++w) {
    uint32_t m = t->kids[w];
    if (w == start / 32) m &= (start % 32) ? ~((1u << (start % 32)) - 1u) : 0xffffffffu;
    if (m) return w * 32 + __ffs(m) - 1;
  }
  return -1;
}

/* ---- row traversal ---- */

/* Calls f(i, logit) for every i in [lo, hi) owned by this thread: 16-byte
 * vector loads over the aligned body, two vectors in flight per step. */
template <typename T, typename F>
__device__ __forceinline__ void acc_for_each(const T *row, int lo, int hi, F &&f) {
  constexpr int VEC = 16 / sizeof(T);
  int a0 = lo;
  while (a0 < hi && ((uintptr_t)(row + a0) & 15u)) ++a0;
  int nvec = (hi - a0) / VEC;
  int a1 = a0 + nvec * VEC;
  for (int i = lo + threadIdx.x; i < a0; i += blockDim.x) f(i, acc_load(row, i));
  const uint4 *v = reinterpret_cast<const uint4 *>(row + a0);
  int g = threadIdx.x;
  for (; g + (int)blockDim.x < nvec; g += 2 * blockDim.x) {
    uint4 x0 = __ldg(v + g), x1 = __ldg(v + g + blockDim.x);
    const T *e0 = reinterpret_cast<const T *>(&x0), *e1 = reinterpret_cast<const T *>(&x1);
#pragma unroll
    for (int k = 0; k < VEC; ++k) f(a0 + g * VEC + k, (float)e0[k]);
#pragma unroll
    for (int k = 0; k < VEC; ++k) f(a0 + (g + (int)blockDim.x) * VEC + k, (float)e1[k]);
  }
  for (; g < nvec; g += blockDim.x) {
    uint4 x0 = __ldg(v + g);
    const T *e0 = reinterpret_cast<const T *>(&x0);
#pragma unroll
    for (int k = 0; k < VEC; ++k) f(a0 + g * VEC + k, (float)e0[k]);
  }
  for (int i = a1 + threadIdx.x; i < hi; i += blockDim.x) f(i, acc_load(row, i));
}

/* The vocabulary slice [lo, hi) of team rank r: chunks of a multiple of 8. */
__device__ __forceinline__ void acc_chunk(int vocab, acc_team tm, int &lo, int &hi) {
  int chunk = ((vocab + tm.size - 1) / tm.size + 7) & ~7;
  lo = min(vocab, tm.rank * chunk);
  hi = min(vocab, lo + chunk);
}

/* Argmax over the whole team: max logit, lowest id among equal maxima, NaN
 * skipped (a row of NaN alone gives id 0); nonfinite: the row holds a NaN
 * or an infinity. */
template <typename T>
__device__ __forceinline__ void acc_team_argmax(const T *row, int lo, int hi, acc_xch *xch, acc_red *red, float &m,
                                                int &idx, bool &nonfinite) {
  float v = -INFINITY;
  int id = 0x7fffffff;
  int bad = 0;
  acc_for_each(row, lo, hi, [&](int i, float l) {
    bad |= !isfinite(l);
    if (l > v || (l == v && i < id)) {
      v = l;
      id = i;
    }
  });
  bad = __syncthreads_or(bad);
  acc_block_argmax(v, id, red);
  if (threadIdx.x == 0) {
    acc_xch_slot(xch)[0] = acc_f2u(v);
    acc_xch_slot(xch)[1] = (uint64_t)(uint32_t)id;
    acc_xch_slot(xch)[2] = (uint64_t)bad;
  }
  acc_xch_publish(xch);
  acc_team tm = acc_team_get();
  m = -INFINITY;
  idx = 0x7fffffff;
  nonfinite = false;
  for (int r = 0; r < tm.size; ++r) {
    float rv = acc_u2f(acc_xch_read(xch, r, 0));
    int ri = (int)(uint32_t)acc_xch_read(xch, r, 1);
    nonfinite = nonfinite || acc_xch_read(xch, r, 2) != 0;
    if (rv > m || (rv == m && ri < idx)) {
      m = rv;
      idx = ri;
    }
  }
  if (idx == 0x7fffffff) idx = 0; /* every logit NaN */
  acc_xch_done(xch);
}

/* Sum of per-thread u64 values over the team. */
__device__ __forceinline__ uint64_t acc_team_sum_u64(uint64_t v, acc_xch *xch, acc_red *red) {
  uint64_t b = acc_block_sum_u64(v, red);
  if (threadIdx.x == 0) acc_xch_slot(xch)[0] = b;
  acc_xch_publish(xch);
  acc_team tm = acc_team_get();
  uint64_t t = 0;
  for (int r = 0; r < tm.size; ++r) t += acc_xch_read(xch, r, 0);
  acc_xch_done(xch);
  return t;
}

/* ---- host side: team size and the cluster launch ---- */

/* Enough CTAs to cover the SMs, at most ACC_MAX_TEAM (portable cluster
 * size), slices of at least 4096 tokens; clusters need sm_90 and a kernel
 * compiled for it (ptx_version, acc_ptx_version): a build whose newest
 * code is compute_80 PTX (DECO_CUDA_ARCHS 80 or 80-virtual) runs on an
 * sm_90 GPU through the driver's JIT, with ACC_HAVE_CLUSTER 0, and such a
 * kernel takes one CTA per tree. */
static inline int acc_team_size(const deco_exec_t *exec, int ptx_version, int n_trees, int vocab) {
  if (exec->cc_major < 9 || ptx_version < 90) return 1;
  int g = exec->sm_count / (n_trees > 0 ? n_trees : 1);
  int by_vocab = vocab / 4096;
  if (g > by_vocab) g = by_vocab;
  if (g > ACC_MAX_TEAM) g = ACC_MAX_TEAM;
  return g < 1 ? 1 : g;
}

/* The launch of n_trees teams of `team` CTAs, one cluster per team when
 * team > 1; attr is the storage cfg points to. */
static inline cudaLaunchConfig_t acc_team_config(int n_trees, int team, cudaStream_t stream,
                                                 cudaLaunchAttribute attr[1]) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)n_trees * (unsigned)team);
  cfg.blockDim = dim3(ACC_THREADS);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = (unsigned)team;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = team > 1 ? 1 : 0;
  return cfg;
}

template <typename K, typename Params>
static cudaError_t acc_launch_team(K kernel, int n_trees, int team, cudaStream_t stream, Params p) {
  cudaLaunchAttribute attr[1];
  const cudaLaunchConfig_t cfg = acc_team_config(n_trees, team, stream, attr);
  return cudaLaunchKernelEx(&cfg, kernel, p);
}

/* The PTX architecture the kernels run from on the current device. Every
 * kernel of the library comes from one architecture list, so one query per
 * device serves them all (cudaFuncGetAttributes is no stream operation: it
 * may run while a step is captured). */
template <typename K>
static cudaError_t acc_ptx_version(K kernel, int *ptx) {
  static std::atomic<int> known[64];
  return deco_cuda_once_per_device(known, ptx, [kernel](int, int *v) {
    cudaFuncAttributes fa;
    const cudaError_t err = cudaFuncGetAttributes(&fa, kernel);
    if (err == cudaSuccess) *v = fa.ptxVersion;
    return err;
  });
}

/* The largest team whose cluster of CTAs both kernels can hold resident
 * on the current device: ACC_MAX_TEAM on a whole H100; fewer where the
 * SMs a GPC offers are limited (a MIG slice, an MPS or green-context SM
 * share), where a larger cluster launch would fail. Asked once per device;
 * a runtime that cannot answer the first query leaves ACC_MAX_TEAM. */
template <typename KF, typename KB>
static int acc_max_team(KF kernel_f32, KB kernel_bf16) {
  static std::atomic<int> known[64];
  int team = 0;
  const cudaError_t err = deco_cuda_once_per_device(known, &team, [kernel_f32, kernel_bf16](int, int *fits) {
    *fits = 1; /* unless some g > 1 fits */
    for (int g = ACC_MAX_TEAM; g > 1; --g) {
      cudaLaunchAttribute attr[1];
      const cudaLaunchConfig_t cfg = acc_team_config(1, g, 0, attr);
      int nf = 0, nb = 0;
      if (cudaOccupancyMaxActiveClusters(&nf, kernel_f32, &cfg) != cudaSuccess ||
          cudaOccupancyMaxActiveClusters(&nb, kernel_bf16, &cfg) != cudaSuccess) {
        (void)cudaGetLastError();
        if (g == ACC_MAX_TEAM) *fits = ACC_MAX_TEAM; /* no answer at all: as before the query */
        break;
      }
      if (nf > 0 && nb > 0) {
        *fits = g;
        break;
      }
    }
    return cudaSuccess;
  });
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return ACC_MAX_TEAM;
  }
  return team;
}

/* One team per request, running the kernel for the logits' dtype (f32 or
 * bf16); a launch failure becomes the op's CUDA error. */
template <typename KF, typename KB, typename Params>
static deco_status_t acc_run(const deco_exec_t *exec, const char *op, KF kernel_f32, KB kernel_bf16, deco_dtype_t dtype,
                             int n_trees, int vocab, const Params &p) {
  const bool bf16 = dtype == DECO_DTYPE_BF16;
  /* Clusters need an sm_90 device: only there does the build matter. */
  int ptx = 0;
  cudaError_t err = exec->cc_major >= 9 ? acc_ptx_version(kernel_f32, &ptx) : cudaSuccess;
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUDA_ERROR, "%s: the kernel's attributes: %s", op, cudaGetErrorString(err));
  }
  int team = acc_team_size(exec, ptx, n_trees, vocab);
  if (team > 1) {
    const int fits = acc_max_team(kernel_f32, kernel_bf16);
    if (team > fits) team = fits;
  }
  cudaStream_t s = (cudaStream_t)exec->stream;
  err = bf16 ? acc_launch_team(kernel_bf16, n_trees, team, s, p) : acc_launch_team(kernel_f32, n_trees, team, s, p);
  if (err == cudaSuccess) err = cudaGetLastError();
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUDA_ERROR, "%s: launch (team %d) failed: %s", op, team,
                          cudaGetErrorString(err));
  }
  return DECO_STATUS_SUCCESS;
}
