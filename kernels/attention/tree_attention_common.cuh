/* kernels/attention/tree_attention_common.cuh — what the tree-attention
 * kernels share: the launch parameters, the per-CTA tree bookkeeping (range
 * and parent checks on the device-side arrays), the ancestor sets built in
 * shared memory by pointer jumping (256-bit set per node, no dense mask in
 * device memory), and the writes for rows that cannot be computed.
 * Work split: one CTA = (tree b, KV head g, tile of query rows, KV split);
 * rows of a tile are (node, query head of group g), node-major.
 *
 * Causal mode (deco_attention on the tensor-core kernel, attention_mma.cu):
 * "tree" b is sequence b of a ragged batch, its nodes are its new tokens
 * (any number) and each is a chain: token j attends to slots 0 .. L + j
 * with L = kv_len - n.
 * The mask is a comparison; no parent array, no ancestor sets. A sequence
 * whose token range is unusable (past the capacity, decreasing) is skipped,
 * its rows left unwritten; kv_len < n makes its rows NaN.
 */
#ifndef DECO_KERNELS_TREE_ATTENTION_COMMON_CUH
#define DECO_KERNELS_TREE_ATTENTION_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "common/cuda_common.cuh"
#include "common/exec.h"
#include "common/paged.h"
#include "deco/attention.h"
#include "deco/core.h"

namespace deco_tree {

constexpr int kMaxNodes = 256;
constexpr int kAncWords = kMaxNodes / 32;          /* words of one node's ancestor set */
constexpr int kAncBufWords = kMaxNodes * kAncWords; /* one buffer of all sets */
/* Shared memory of the tree bookkeeping: two ancestor buffers and two jump
 * arrays (pointer jumping reads one generation and writes the next). */
constexpr int kTreeSmemBytes = 2 * kAncBufWords * 4 + 2 * kMaxNodes * 4;
/* Keys a KV split covers are a multiple of this (both kernels' key tiles). */
constexpr int kSplitAlign = 64;

struct Params {
  const void *q;   /* [cap_nodes][n_heads][head_dim], nodes q_stride elements apart */
  void *out;       /* [cap_nodes][n_heads][head_dim] */
  int q_stride;
  const void *k_pages, *v_pages; /* [n_pages][page_size][n_kv][head_dim] */
  const int32_t *block_table;    /* [n_trees][max_pages] */
  const int32_t *tree_indptr;    /* [n_trees + 1]; causal: q_indptr */
  const int32_t *parent;         /* [cap_nodes]; causal: unused */
  const int32_t *prefix_lens;    /* [n_trees]; causal: kv_lens (prefix + new tokens) */
  float *part_o;   /* [n_splits][cap_nodes][n_heads][head_dim], split runs only */
  float *part_lse; /* [n_splits][cap_nodes][n_heads], log2 domain */
  int dtype, head_dim;
  int n_trees, cap_nodes, n_heads, n_kv, group;
  int page_size, n_pages, max_pages;
  int kv_capacity; /* slots a block-table row addresses, clipped to int range */
  float scale_log2; /* scale * log2(e): softmax in base 2 */
  int tiles;        /* row tiles per (tree, KV head) in the grid; a CTA takes
                       tiles c.tile, c.tile + tiles, ... (causal batches can
                       hold more rows than the grid covers) */
  int n_splits;     /* KV splits; a tree's keys are cut into n_splits chunks
                       of split_chunk() keys, sized from its real length */
  int stages;       /* K/V ring depth of the tensor-core kernel (2..4) */
  int causal;       /* see the causal mode above */
};

struct Plan {
  int mma;      /* tensor-core kernel (head dim 64/128, f16/bf16) */
  int warps;    /* per CTA; each warp owns 16 query rows (mma) or 4 (generic) */
  int stages;   /* K/V ring depth (mma); the launcher cuts it to what the device's shared memory holds */
  int tiles;
  int n_splits;
  size_t smem; /* dynamic shared memory of the generic kernel */
};

/* Launchers of the tensor-core instantiations (one per .cu file). */
cudaError_t tree_attention_mma_launch_h64_f16(const Params &p, const Plan &plan, cudaStream_t stream);
cudaError_t tree_attention_mma_launch_h64_bf16(const Params &p, const Plan &plan, cudaStream_t stream);
cudaError_t tree_attention_mma_launch_h128_f16(const Params &p, const Plan &plan, cudaStream_t stream);
cudaError_t tree_attention_mma_launch_h128_bf16(const Params &p, const Plan &plan, cudaStream_t stream);

/* Keys per split for a tree (or sequence) with `keys` keys in all: the
 * split CTAs share its real length, not the block table's capacity. */
__device__ __forceinline__ int split_chunk(int keys, int n_splits) {
  if (n_splits == 1) return keys;
  const int c = (keys + n_splits - 1) / n_splits;
  return (c + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
}

/* 2^x with denormal results flushed to zero (one MUFU op): the flushed
 * weights are below 2^-126 of the row's largest. exp2(-inf) = 0, NaN stays. */
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float load_elem(const void *base, size_t i, int dtype) {
  if (dtype == DECO_DTYPE_F32) return static_cast<const float *>(base)[i];
  if (dtype == DECO_DTYPE_F16) return __half2float(static_cast<const __half *>(base)[i]);
  return __bfloat162float(static_cast<const __nv_bfloat16 *>(base)[i]);
}

__device__ __forceinline__ void store_elem(void *base, size_t i, int dtype, float v) {
  if (dtype == DECO_DTYPE_F32) static_cast<float *>(base)[i] = v;
  else if (dtype == DECO_DTYPE_F16) static_cast<__half *>(base)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16 *>(base)[i] = __float2bfloat16_rn(v);
}

/* The CTA's coordinates in the grid: x = ((b * n_kv + g) * tiles + tile)
 * keeps the row tiles of one KV head adjacent so they share K/V in L2. */
struct Cta {
  int b, g, tile, split;
};
__device__ __forceinline__ Cta cta_coords(const Params &p) {
  Cta c;
  int x = blockIdx.x;
  c.tile = x % p.tiles;
  x /= p.tiles;
  c.g = x % p.n_kv;
  c.b = x / p.n_kv;
  c.split = blockIdx.y;
  return c;
}

struct TreeInfo {
  int t0, n, L;
  int bad; /* parents or prefix length unusable: the rows become NaN */
};

/* Reads tree b's node range, prefix length and parents (into jump0, the
 * first pointer-jumping generation). Returns false, uniformly over the CTA,
 * when the range itself is unusable or empty: then nothing of the tree is
 * written, since its rows cannot be located. */
__device__ __forceinline__ bool load_tree(const Params &p, int b, int *jump0, TreeInfo &ti) {
  const int t0 = p.tree_indptr[b], t1 = p.tree_indptr[b + 1];
  if (!(t0 >= 0 && t1 > t0 && t1 - t0 <= kMaxNodes && t1 <= p.cap_nodes)) return false;
  const int n = t1 - t0, L = p.prefix_lens[b];
  int bad = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int par = p.parent[t0 + i];
    jump0[i] = par;
    bad |= (i == 0) ? (par != -1) : (par < 0 || par >= i);
  }
  bad |= (L < 0) || ((long long)L + n > (long long)p.kv_capacity);
  ti.t0 = t0;
  ti.n = n;
  ti.L = L;
  ti.bad = __syncthreads_or(bad);
  return true;
}

/* Ancestor-or-self sets of nodes 0..n-1 by pointer jumping: after round k,
 * set[i] holds the ancestors of i at distance < 2^k and jump[i] the one at
 * distance 2^k (-1 past the root); at most 9 rounds for 256 nodes, one
 * barrier each. jump[0][0..n) must hold the parents (load_tree). Returns
 * the buffer (0 or 1) holding the final sets. Called by the whole CTA. */
__device__ __forceinline__ int build_ancestors(uint32_t *anc, int *jump, int n) {
  const int items = n * kAncWords;
  for (int idx = threadIdx.x; idx < items; idx += blockDim.x) {
    int i = idx / kAncWords, w = idx % kAncWords;
    anc[idx] = (w == (i >> 5)) ? (1u << (i & 31)) : 0u;
  }
  __syncthreads();
  int cur = 0;
  for (;;) {
    const uint32_t *a_in = anc + cur * kAncBufWords;
    uint32_t *a_out = anc + (cur ^ 1) * kAncBufWords;
    const int *j_in = jump + cur * kMaxNodes;
    int *j_out = jump + (cur ^ 1) * kMaxNodes;
    int more = 0;
    for (int idx = threadIdx.x; idx < items; idx += blockDim.x) {
      int i = idx / kAncWords, w = idx % kAncWords;
      int j = j_in[i];
      uint32_t v = a_in[idx];
      if (j >= 0) v |= a_in[j * kAncWords + w];
      a_out[idx] = v;
      if (w == 0) {
        int nj = j >= 0 ? j_in[j] : -1;
        j_out[i] = nj;
        more |= nj >= 0;
      }
    }
    cur ^= 1;
    if (!__syncthreads_or(more)) break;
  }
  return cur;
}

/* 1 if tree node j is node i or one of its ancestors. */
__device__ __forceinline__ bool anc_has(const uint32_t *anc, int i, int j) {
  return (anc[i * kAncWords + (j >> 5)] >> (j & 31)) & 1u;
}

/* Rows [row0, row_end) of the tile (node-major within KV head g) that cannot
 * be computed from this split: in a single-split run their outputs get
 * `value` (NaN), in a split run their log-sum-exp for this split does
 * (NaN poisons the merged row, -inf marks an empty split). */
__device__ __forceinline__ void fill_rows(const Params &p, const TreeInfo &ti, int g, int row0, int row_end,
                                          int split, float value) {
  const int G = p.group, hd = p.head_dim;
  if (p.n_splits == 1) {
    const int items = (row_end - row0) * hd;
    for (int idx = threadIdx.x; idx < items; idx += blockDim.x) {
      int r = row0 + idx / hd, d = idx % hd;
      size_t row = (size_t)(ti.t0 + r / G) * p.n_heads + g * G + r % G;
      store_elem(p.out, row * hd + d, p.dtype, value);
    }
  } else {
    for (int r = row0 + threadIdx.x; r < row_end; r += blockDim.x) {
      size_t row = ((size_t)split * p.cap_nodes + ti.t0 + r / G) * p.n_heads + g * G + r % G;
      p.part_lse[row] = value;
    }
  }
}

/* ---- host side (tree_attention.cu): the plan and launch of a tree batch,
 * or of a causal batch for deco_attention's tensor-core path
 * (attention_mma.cu) ---- */

/* What the plan depends on: host-side values of a tree batch or of a causal
 * ragged batch (deco_attention). */
struct Shape {
  int causal;
  int dtype, head_dim, n_kv, n_heads;
  int B, cap; /* trees (sequences); node (token) capacity */
  int max_pages, page_size;
  int q_stride; /* elements between q's rows */
  bool aligned; /* q, out and both pools 16-byte aligned */
};

Shape make_shape(int causal, const deco_paged_kv_t *c, int n_heads, int B, int cap, const void *q, int q_stride,
                 const void *out);
/* The tensor-core kernel takes the shape (head dim 64/128, f16/bf16, aligned). */
bool mma_shape(const Shape &s);
/* The launch parameters both modes share. */
Params base_params(const deco_paged_kv_t *c, int n_heads, float scale, const void *q, int q_stride, void *out);
/* The workspace, path name and launch of a tree batch or a causal batch
 * (s.causal): indptr, the parents (tree) and lens (prefix lengths, or
 * kv_lens when causal) in the backend's memory; op names the public op in
 * messages. */
size_t shape_workspace(const deco_exec_t *exec, const Shape &s);
const char *shape_path(const deco_exec_t *exec, const Shape &s);
deco_status_t shape_run(const deco_exec_t *exec, const char *op, const Shape &s, Params p, const int32_t *indptr,
                        const int32_t *parent, const int32_t *lens);

}  // namespace deco_tree

#endif
