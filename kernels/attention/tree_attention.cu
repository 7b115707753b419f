/* kernels/attention/tree_attention.cu — tree attention on the GPU: the plan
 * (which kernel, rows per CTA, KV splits), the generic kernel (any head dim
 * 8..256, f32/f16/bf16, fp32 math in shared memory), the log-sum-exp merge
 * of KV splits (FlashDecoding-style split-KV), and the entry points.
 * Node i of tree b attends to prefix slots 0..L_b-1 (unmasked) and to tree
 * slots L_b + j for its ancestors j (mask from the parent array, built in
 * shared memory). q, out [n_nodes][n_heads][head_dim]; paged K/V pools.
 */
#include <stdio.h>

#include "attention/tree_attention_common.cuh"
#include "common/cuda_common.cuh"
#include "common/op_impl.h"

namespace deco_tree {

/* ---- generic kernel: 4 warps x 4 query rows, 32-key tiles in fp32 ---- */

constexpr int kGenWarps = 4;
constexpr int kGenRowsPerWarp = 4;
constexpr int kGenRows = kGenWarps * kGenRowsPerWarp;
constexpr int kGenKeys = 32;   /* one key per lane for the scores */
constexpr int kGenDimChunks = 8; /* 8 x 32 lanes cover head dims up to 256 */

/* 32-lane chunks of the head dim a kernel instance keeps per row: the
 * generic kernel is instantiated for 1, 2, 4 and 8, so that a small head dim
 * (stories260K: 8) does not run the loops of a 256-wide one. */
static int gen_chunks(int hd) { return hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8; }

static size_t generic_smem_bytes(int hd) {
  return (size_t)kTreeSmemBytes + kGenKeys * sizeof(long long) +
         sizeof(float) * ((size_t)kGenRows * hd + (size_t)kGenKeys * (hd + 1) + (size_t)kGenKeys * hd);
}

template <int kChunks>
__global__ void __launch_bounds__(kGenWarps * 32, 1) tree_attention_generic_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int hd = p.head_dim;
  uint32_t *anc = reinterpret_cast<uint32_t *>(smem_raw);
  int *jump = reinterpret_cast<int *>(anc + 2 * kAncBufWords);
  long long *krow = reinterpret_cast<long long *>(jump + 2 * kMaxNodes); /* [kGenKeys] pool row per key */
  float *Qs = reinterpret_cast<float *>(krow + kGenKeys);                /* [kGenRows][hd] */
  float *Ks = Qs + kGenRows * hd;                                        /* [kGenKeys][hd + 1]: lane = key */
  float *Vs = Ks + kGenKeys * (hd + 1);                                  /* [kGenKeys][hd] */

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const Cta c = cta_coords(p);
  TreeInfo ti;
  if (!load_tree(p, c.b, jump, ti)) return;
  const int G = p.group, rows_total = ti.n * G, row0 = c.tile * kGenRows;
  if (row0 >= rows_total) return;
  const int row_end = min(row0 + kGenRows, rows_total);
  if (ti.bad) {
    fill_rows(p, ti, c.g, row0, row_end, c.split, deco_nan_canonical_f32());
    return;
  }
  const int keys = ti.L + ti.n, chunk = split_chunk(keys, p.n_splits);
  const long long kb = (long long)c.split * chunk;
  if (kb >= keys) {
    fill_rows(p, ti, c.g, row0, row_end, c.split, -INFINITY);
    return;
  }
  const int k_begin = (int)kb;
  const int k_end = (int)min((long long)keys, kb + chunk);
  const int L = ti.L;
  const uint32_t *ancf = anc;
  if (k_end > L) ancf = anc + build_ancestors(anc, jump, ti.n) * kAncBufWords;

  for (int idx = tid; idx < kGenRows * hd; idx += blockDim.x) {
    const int r = idx / hd, d = idx - r * hd, row = row0 + r;
    float v = 0.0f;
    if (row < rows_total)
      v = load_elem(p.q, (size_t)(ti.t0 + row / G) * p.q_stride + (size_t)(c.g * G + row % G) * hd + d, p.dtype);
    Qs[idx] = v;
  }
  int node[kGenRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kGenRowsPerWarp; ++rr) {
    const int row = row0 + warp * kGenRowsPerWarp + rr;
    node[rr] = row < rows_total ? row / G : 0;
  }
  float o[kGenRowsPerWarp][kChunks], m[kGenRowsPerWarp], l[kGenRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kGenRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f; /* this lane's partial sum */
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch) o[rr][ch] = 0.0f;
  }
  const int32_t *bt = p.block_table + (size_t)c.b * p.max_pages;
  const float *q0 = Qs + warp * kGenRowsPerWarp * hd;

  for (int kt = k_begin; kt < k_end; kt += kGenKeys) {
    __syncthreads(); /* readers of the previous tile are done (first pass: Qs is visible) */
    if (tid < kGenKeys) {
      const int key = kt + tid;
      krow[tid] = key < k_end ? deco_paged_row(bt, p.max_pages, p.page_size, p.n_pages, key) : -2;
    }
    __syncthreads();
    /* A slot without a valid page: NaN key (poisons rows that attend to
     * it), zero value (a masked slot then adds exactly 0). */
    for (int r = warp; r < kGenKeys; r += kGenWarps) {
      const long long kr = krow[r];
      for (int d = lane; d < hd; d += 32) {
        float kv = 0.0f, vv = 0.0f;
        if (kr >= 0) {
          const size_t off = ((size_t)kr * p.n_kv + c.g) * hd + d;
          kv = load_elem(p.k_pages, off, p.dtype);
          vv = load_elem(p.v_pages, off, p.dtype);
        } else if (kr == -1) {
          kv = deco_nan_canonical_f32();
        }
        Ks[r * (hd + 1) + d] = kv;
        Vs[r * hd + d] = vv;
      }
    }
    __syncthreads();
    float s[kGenRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kGenRowsPerWarp; ++rr) s[rr] = 0.0f;
    const float *kl = Ks + lane * (hd + 1);
    for (int d = 0; d < hd; ++d) {
      const float kd = kl[d];
#pragma unroll
      for (int rr = 0; rr < kGenRowsPerWarp; ++rr) s[rr] += q0[rr * hd + d] * kd;
    }
    const int key = kt + lane;
    float pr[kGenRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kGenRowsPerWarp; ++rr) {
      bool ok = key < k_end;
      if (ok && key >= L) ok = anc_has(ancf, node[rr], key - L);
      const float x = ok ? s[rr] * p.scale_log2 : -INFINITY;
      const float mn = fmaxf(m[rr], deco_warp_max(x));
      const float sh = mn == -INFINITY ? 0.0f : mn; /* all masked so far: exp2 gives 0, not NaN */
      const float corr = exp2f(m[rr] - sh);
      m[rr] = mn;
      pr[rr] = exp2f(x - sh);
      l[rr] = l[rr] * corr + pr[rr];
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) o[rr][ch] *= corr;
    }
    for (int k = 0; k < kGenKeys; ++k) {
      float vk[kChunks];
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) {
        const int d = lane + 32 * ch;
        vk[ch] = d < hd ? Vs[k * hd + d] : 0.0f;
      }
#pragma unroll
      for (int rr = 0; rr < kGenRowsPerWarp; ++rr) {
        const float pk = __shfl_sync(0xffffffffu, pr[rr], k);
#pragma unroll
        for (int ch = 0; ch < kChunks; ++ch) o[rr][ch] += pk * vk[ch];
      }
    }
  }

  const size_t split_off = (size_t)c.split * p.cap_nodes * p.n_heads;
#pragma unroll
  for (int rr = 0; rr < kGenRowsPerWarp; ++rr) {
    const float lt = deco_warp_sum(l[rr]);
    const int row = row0 + warp * kGenRowsPerWarp + rr;
    if (row >= rows_total) continue;
    const size_t orow = (size_t)(ti.t0 + node[rr]) * p.n_heads + c.g * G + row % G;
    if (p.n_splits == 1) {
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) {
        const int d = lane + 32 * ch;
        if (d < hd) store_elem(p.out, orow * hd + d, p.dtype, o[rr][ch] / lt);
      }
    } else {
      const float inv = lt > 0.0f ? 1.0f / lt : (lt == 0.0f ? 0.0f : deco_nan_canonical_f32());
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) {
        const int d = lane + 32 * ch;
        if (d < hd) p.part_o[(split_off + orow) * hd + d] = o[rr][ch] * inv;
      }
      if (lane == 0)
        p.part_lse[split_off + orow] =
            lt > 0.0f ? m[rr] + log2f(lt) : (lt == 0.0f ? -INFINITY : deco_nan_canonical_f32());
    }
  }
}

/* ---- merge of KV splits: one warp per (node, head) row ---- */

constexpr int kMergeWarps = 8;

/* Grid x: (tree, node) pairs, nodes_max per tree; causal: flat tokens. */
__global__ void __launch_bounds__(kMergeWarps * 32) tree_attention_merge_kernel(const Params p, int nodes_max) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int head = blockIdx.y * kMergeWarps + warp;
  int t;
  if (p.causal) {
    t = blockIdx.x;
    const int s = deco_ragged_seq_of(p.tree_indptr, p.n_trees, t);
    if (s < 0) return;
    const int t0 = p.tree_indptr[s], t1 = p.tree_indptr[s + 1];
    /* Same range test as the attention kernel: rows it skipped stay untouched. */
    if (!(t0 >= 0 && t1 > t0 && t1 <= p.cap_nodes && t >= t0 && t < t1)) return;
  } else {
    const int b = blockIdx.x / nodes_max, node = blockIdx.x % nodes_max;
    const int t0 = p.tree_indptr[b], t1 = p.tree_indptr[b + 1];
    if (!(t0 >= 0 && t1 > t0 && t1 - t0 <= kMaxNodes && t1 <= p.cap_nodes)) return;
    if (node >= t1 - t0) return;
    t = t0 + node;
  }
  if (head >= p.n_heads) return;
  const int hd = p.head_dim;
  const size_t row = (size_t)t * p.n_heads + head;
  const size_t stride = (size_t)p.cap_nodes * p.n_heads;
  float mx = -INFINITY;
  bool poisoned = false;
  for (int s = 0; s < p.n_splits; ++s) {
    const float v = p.part_lse[s * stride + row];
    poisoned |= isnan(v);
    mx = fmaxf(mx, v);
  }
  float acc[kGenDimChunks];
#pragma unroll
  for (int ch = 0; ch < kGenDimChunks; ++ch) acc[ch] = 0.0f;
  float wsum = 0.0f;
  if (!poisoned && mx > -INFINITY) {
    for (int s = 0; s < p.n_splits; ++s) {
      const float v = p.part_lse[s * stride + row];
      if (v == -INFINITY) continue; /* an empty split: its partial output was not written */
      const float w = exp2f(v - mx);
      wsum += w;
      const float *po = p.part_o + (s * stride + row) * hd;
#pragma unroll
      for (int ch = 0; ch < kGenDimChunks; ++ch) {
        const int d = lane + 32 * ch;
        if (d < hd) acc[ch] += w * po[d];
      }
    }
  }
  const float inv = (poisoned || !(wsum > 0.0f)) ? deco_nan_canonical_f32() : 1.0f / wsum;
#pragma unroll
  for (int ch = 0; ch < kGenDimChunks; ++ch) {
    const int d = lane + 32 * ch;
    if (d < hd) store_elem(p.out, row * hd + d, p.dtype, acc[ch] * inv);
  }
}

/* ---- plan ---- */

constexpr int kMinSplitKeys = 256; /* below this a split costs more than it spreads */
constexpr int kMaxSplits = 64;

static bool aligned16(const void *ptr) { return ((uintptr_t)ptr & 15u) == 0; }

Shape make_shape(int causal, const deco_paged_kv_t *c, int n_heads, int B, int cap, const void *q, int q_stride,
                 const void *out) {
  Shape s;
  s.causal = causal;
  s.dtype = (int)c->dtype;
  s.head_dim = c->head_dim;
  s.n_kv = c->n_kv_heads;
  s.n_heads = n_heads;
  s.B = B;
  s.cap = cap;
  s.max_pages = c->max_pages_per_seq;
  s.page_size = c->page_size;
  s.q_stride = q_stride ? q_stride : n_heads * c->head_dim;
  s.aligned = aligned16(q) && aligned16(out) && aligned16(c->k_pages) && aligned16(c->v_pages);
  return s;
}
static Shape tree_shape(const deco_tree_attention_args_t *a) {
  return make_shape(0, &a->cache, a->n_heads, a->tree.n_trees, a->tree.n_nodes, a->q, a->q_stride, a->out);
}
bool mma_shape(const Shape &s) {
  return (s.dtype == DECO_DTYPE_F16 || s.dtype == DECO_DTYPE_BF16) && (s.head_dim == 64 || s.head_dim == 128) &&
         s.aligned && s.q_stride % 8 == 0 && (long long)s.cap * s.n_heads <= INT32_MAX;
}

/* Everything here comes from host-side values, so the workspace size, the
 * path name and the launch agree. The real tree sizes and prefix lengths
 * live in device memory: the node capacity and the block-table capacity
 * stand in for them (average nodes per tree, longest possible prefix). */
static Plan make_plan(const deco_exec_t *exec, const Shape &s, long long *grid_x) {
  const int B = s.B, cap = s.cap, G = s.n_heads / s.n_kv;
  Plan plan;
  plan.mma = mma_shape(s);
  /* A tree has at most 256 nodes; a causal sequence any number of tokens. */
  const int node_limit = s.causal ? cap : kMaxNodes;
  const int nodes_max = cap < node_limit ? cap : node_limit;
  int nodes_avg = (int)(((long long)cap + B - 1) / B);
  if (nodes_avg > node_limit) nodes_avg = node_limit;
  if (nodes_avg < 1) nodes_avg = 1;
  int rows_per_cta, ctas_per_sm;
  if (plan.mma) {
    /* 8 warps share each K/V tile among 128 rows when a KV group has that
     * many (a 64-node tree with 4 query heads per KV head has 256); 4 warps
     * (two CTAs per SM) otherwise. */
    plan.warps = (long long)nodes_avg * G >= 128 ? 8 : 4;
    rows_per_cta = 16 * plan.warps;
    /* 8 warps are alone on their SM (registers): a 4-deep K/V ring keeps
     * three tiles in flight. 4-warp CTAs keep a 2-deep ring so that two fit
     * on an SM (88 KB each at head dim 128): more warps beat deeper rings. */
    plan.stages = plan.warps == 8 ? 4 : 2;
    ctas_per_sm = plan.warps == 8 ? 1 : 2;
    plan.smem = 0;
  } else {
    plan.warps = kGenWarps;
    plan.stages = 1;
    rows_per_cta = kGenRows;
    ctas_per_sm = 4;
    plan.smem = generic_smem_bytes(s.head_dim);
  }
  const long long target = (long long)(exec->sm_count > 0 ? exec->sm_count : 1) * ctas_per_sm;
  long long tiles = ((long long)nodes_max * G + rows_per_cta - 1) / rows_per_cta;
  const long long tiles_avg = ((long long)nodes_avg * G + rows_per_cta - 1) / rows_per_cta;
  if (s.causal) {
    /* The capacity may sit in one sequence or be spread over many: cover
     * the average sequence, and enough tiles that one long sequence alone
     * fills the GPU (CTAs of short ones exit at once); CTAs loop over the
     * row tiles of longer ones. */
    const long long fill = (target + s.n_kv - 1) / s.n_kv;
    const long long want = tiles_avg > fill ? tiles_avg : fill;
    if (tiles > want) tiles = want;
  }
  plan.tiles = (int)tiles;
  *grid_x = (long long)B * s.n_kv * plan.tiles;

  long long kv_cap = (long long)s.max_pages * s.page_size;
  if (kv_cap > INT32_MAX - 4 * kMaxNodes) kv_cap = INT32_MAX - 4 * kMaxNodes;
  /* Split the keys when the (tree, KV head, row tile) CTAs cannot fill the
   * GPU once; floor, so that the split CTAs fit in one wave. The kernels cut
   * each tree's real keys into n_splits chunks of at least 64. */
  const long long base = (long long)B * s.n_kv * tiles_avg;
  long long splits = base < target ? target / base : 1;
  const long long max_splits = (kv_cap + kMinSplitKeys - 1) / kMinSplitKeys;
  if (splits > max_splits) splits = max_splits;
  if (splits > kMaxSplits) splits = kMaxSplits;
  if (splits < 1) splits = 1;
  plan.n_splits = (int)splits;
  return plan;
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static size_t workspace_bytes(const Shape &s, const Plan &plan) {
  if (plan.n_splits == 1 || s.cap == 0) return 0;
  const size_t rows = (size_t)plan.n_splits * s.cap * s.n_heads;
  return 256 + align256(rows * s.head_dim * sizeof(float)) + align256(rows * sizeof(float));
}

static const char *path_name(const Plan &plan) {
  /* Valid until the next call on the same thread. */
  static thread_local char name[48];
  int len = snprintf(name, sizeof name, "%s", plan.mma ? (plan.warps == 8 ? "mma-w8" : "mma-w4") : "generic");
  if (plan.n_splits > 1) snprintf(name + len, sizeof name - (size_t)len, "+split%d", plan.n_splits);
  return name;
}

/* The instance of the generic kernel that runs head dim hd. */
typedef void (*GenericKernel)(const Params);
static GenericKernel generic_kernel(int hd) {
  switch (gen_chunks(hd)) {
  case 1: return tree_attention_generic_kernel<1>;
  case 2: return tree_attention_generic_kernel<2>;
  case 4: return tree_attention_generic_kernel<4>;
  default: return tree_attention_generic_kernel<8>;
  }
}

/* Launches the plan: attention kernel, then the merge of KV splits. */
static deco_status_t launch(const deco_exec_t *exec, const char *op, const Shape &s, const Plan &plan, long long grid_x,
                            Params &p) {
  if (grid_x > INT32_MAX)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "%s: %d %s x %d KV heads x %d row tiles exceed one grid", op,
                          s.B, s.causal ? "sequences" : "trees", s.n_kv, plan.tiles);
  p.part_o = nullptr;
  p.part_lse = nullptr;
  p.tiles = plan.tiles;
  p.n_splits = plan.n_splits;
  p.stages = plan.stages;
  if (plan.n_splits > 1) {
    const size_t need = workspace_bytes(s, plan);
    if (exec->workspace == NULL || exec->workspace_bytes < need)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_WORKSPACE_TOO_SMALL,
                            "%s: %d KV splits need %zu workspace bytes, the context has %zu "
                            "(size it with %s_workspace_size)",
                            op, plan.n_splits, need, exec->workspace ? exec->workspace_bytes : (size_t)0, op);
    const size_t rows = (size_t)plan.n_splits * s.cap * s.n_heads;
    char *ws = (char *)(((uintptr_t)exec->workspace + 255) & ~(uintptr_t)255);
    p.part_o = (float *)ws;
    p.part_lse = (float *)(ws + align256(rows * s.head_dim * sizeof(float)));
  }
  cudaStream_t stream = (cudaStream_t)exec->stream;
  cudaError_t err = cudaSuccess;
  if (plan.mma) {
    const bool bf16 = s.dtype == DECO_DTYPE_BF16;
    if (s.head_dim == 64)
      err = bf16 ? tree_attention_mma_launch_h64_bf16(p, plan, stream) : tree_attention_mma_launch_h64_f16(p, plan, stream);
    else
      err = bf16 ? tree_attention_mma_launch_h128_bf16(p, plan, stream)
                 : tree_attention_mma_launch_h128_f16(p, plan, stream);
  } else {
    const GenericKernel kernel = generic_kernel(s.head_dim);
    /* Raised every call (cheap next to a launch, valid on any device) to
     * the most this instance can take, its widest head dim: one value per
     * instance, so host threads launching it with different head dims
     * never lower the limit under each other's launch. */
    const size_t smem_max = generic_smem_bytes(32 * gen_chunks(s.head_dim));
    if (smem_max > 48 * 1024)
      err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_max);
    if (err == cudaSuccess) {
      dim3 grid((unsigned)grid_x, (unsigned)plan.n_splits);
      kernel<<<grid, kGenWarps * 32, plan.smem, stream>>>(p);
      err = cudaGetLastError();
    }
  }
  if (err != cudaSuccess)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUDA_ERROR, "%s: %s kernel launch failed: %s", op,
                          plan.mma ? "mma" : "generic", cudaGetErrorString(err));
  if (plan.n_splits > 1) {
    const int nodes_max = s.causal ? 1 : (s.cap < kMaxNodes ? s.cap : kMaxNodes);
    const long long rows_x = s.causal ? (long long)s.cap : (long long)s.B * nodes_max;
    dim3 grid((unsigned)rows_x, (unsigned)((s.n_heads + kMergeWarps - 1) / kMergeWarps));
    tree_attention_merge_kernel<<<grid, kMergeWarps * 32, 0, stream>>>(p, nodes_max);
    err = cudaGetLastError();
    if (err != cudaSuccess)
      return DECO_EXEC_FAIL(exec, DECO_STATUS_CUDA_ERROR, "%s: merge kernel launch failed: %s", op,
                            cudaGetErrorString(err));
  }
  return DECO_STATUS_SUCCESS;
}

/* The launch parameters both modes share. */
Params base_params(const deco_paged_kv_t *c, int n_heads, float scale, const void *q, int q_stride,
                          void *out) {
  Params p;
  p.q = q;
  p.q_stride = q_stride ? q_stride : n_heads * c->head_dim;
  p.out = out;
  p.k_pages = c->k_pages;
  p.v_pages = c->v_pages;
  p.block_table = c->block_table;
  p.dtype = (int)c->dtype;
  p.head_dim = c->head_dim;
  p.n_heads = n_heads;
  p.n_kv = c->n_kv_heads;
  p.group = n_heads / c->n_kv_heads;
  p.page_size = c->page_size;
  p.n_pages = c->n_pages;
  p.max_pages = c->max_pages_per_seq;
  long long kv_cap = (long long)c->max_pages_per_seq * c->page_size;
  p.kv_capacity = kv_cap > INT32_MAX - 4 * kMaxNodes ? INT32_MAX - 4 * kMaxNodes : (int)kv_cap;
  p.scale_log2 = scale * 1.4426950408889634f;
  return p;
}

/* The workspace, path name and launch of a tree batch or a causal batch
 * (s.causal): indptr, the parents (tree) and lens (prefix lengths, or
 * kv_lens when causal) in context memory. */
size_t shape_workspace(const deco_exec_t *exec, const Shape &s) {
  long long grid_x;
  return workspace_bytes(s, make_plan(exec, s, &grid_x));
}

const char *shape_path(const deco_exec_t *exec, const Shape &s) {
  long long grid_x;
  return path_name(make_plan(exec, s, &grid_x));
}

deco_status_t shape_run(const deco_exec_t *exec, const char *op, const Shape &s, Params p, const int32_t *indptr,
                        const int32_t *parent, const int32_t *lens) {
  long long grid_x;
  const Plan plan = make_plan(exec, s, &grid_x);
  p.causal = s.causal;
  p.tree_indptr = indptr;
  p.parent = parent;
  p.prefix_lens = lens;
  p.n_trees = s.B;
  p.cap_nodes = s.cap;
  return launch(exec, op, s, plan, grid_x, p);
}

}  // namespace deco_tree

using namespace deco_tree;

extern "C" size_t deco_tree_attention_workspace_size_cuda(const deco_exec_t *exec,
                                                          const deco_tree_attention_args_t *a) {
  return shape_workspace(exec, tree_shape(a));
}

extern "C" const char *deco_tree_attention_path_cuda(const deco_exec_t *exec, const deco_tree_attention_args_t *a) {
  return shape_path(exec, tree_shape(a));
}

extern "C" deco_status_t deco_tree_attention_cuda(const deco_exec_t *exec, const deco_tree_attention_args_t *a) {
  return shape_run(exec, "deco_tree_attention", tree_shape(a),
                   base_params(&a->cache, a->n_heads, a->scale, a->q, a->q_stride, a->out), a->tree.tree_indptr,
                   a->tree.parent, a->prefix_lens);
}
