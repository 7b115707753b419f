/* kernels/kv/kv_compact.cu — KV compaction after tree acceptance, the rule of
 * kv_compact_ref.c: slot L_b + path[b][d] -> L_b + d, d = 1 .. accept_len-1,
 * every layer, K and V, one launch. pools [n_pages][page_size][n_kv_heads]
 * [head_dim] per layer, layer l at + l * layer_stride elements.
 *
 * CTA = (tree, layer, K or V); each thread owns a column slice of the row for
 * the whole path, so the per-slice order is the sequential one. Sources are
 * loaded 8 rows at a time before any of those 8 destinations is written: a
 * destination L + d can only be the source of an earlier d' (path[d'] = d > d'),
 * already read, never of a later one (path[d''] >= d'' > d). A tree whose
 * accept_len / path / pages are invalid is skipped (the reference reports it).
 */
#include <cuda_runtime.h>

#include "common/op_impl.h"
#include "common/paged.h"

namespace {

struct compact_params {
  deco_paged_kv_t cache;
  int n_layers;
  size_t layer_stride_bytes;
  const int32_t *prefix_lens;
  const int32_t *path;
  const int32_t *accept_len;
  int row_units; /* row bytes / sizeof(U) */
};

template <typename U>
__global__ void __launch_bounds__(128) kv_compact_kernel(compact_params P) {
  __shared__ long long src_row[DECO_TREE_MAX_NODES], dst_row[DECO_TREE_MAX_NODES];
  __shared__ int valid;
  const int b = blockIdx.x, layer = blockIdx.y, which = blockIdx.z;
  const deco_paged_kv_t &c = P.cache;
  const int len = P.accept_len[b], L = P.prefix_lens[b];
  const int32_t *path = P.path + (size_t)b * DECO_TREE_MAX_NODES;
  const int32_t *bt = c.block_table + (size_t)b * c.max_pages_per_seq;
  if (threadIdx.x == 0) valid = len >= 1 && len <= DECO_TREE_MAX_NODES && L >= 0 && path[0] == 0;
  __syncthreads();
  if (!valid) return;
  int bad = 0;
  for (int d = 1 + threadIdx.x; d < len; d += blockDim.x) {
    int p = path[d];
    if (p <= path[d - 1] || p >= DECO_TREE_MAX_NODES) bad = 1;
    long long s = deco_paged_row(bt, c.max_pages_per_seq, c.page_size, c.n_pages, L + p);
    long long t = deco_paged_row(bt, c.max_pages_per_seq, c.page_size, c.n_pages, L + d);
    if (s < 0 || t < 0) bad = 1;
    src_row[d] = s;
    dst_row[d] = t;
  }
  if (__syncthreads_or(bad)) return;
  char *pool = (char *)(which ? c.v_pages : c.k_pages) + (size_t)layer * P.layer_stride_bytes;
  U *base = reinterpret_cast<U *>(pool);
  const size_t ru = (size_t)P.row_units;
  for (int e = threadIdx.x; e < P.row_units; e += blockDim.x) {
    for (int d0 = 1; d0 < len; d0 += 8) {
      U buf[8];
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (d0 + k < len) buf[k] = base[(size_t)src_row[d0 + k] * ru + e];
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (d0 + k < len && path[d0 + k] != d0 + k) base[(size_t)dst_row[d0 + k] * ru + e] = buf[k];
    }
  }
}

}  // namespace

extern "C" deco_status_t deco_kv_compact_cuda(const deco_exec_t *exec, const deco_kv_compact_args_t *a) {
  const size_t esize = deco_dtype_size(a->cache.dtype);
  const size_t row_bytes = (size_t)a->cache.n_kv_heads * a->cache.head_dim * esize;
  compact_params p;
  p.cache = a->cache;
  p.n_layers = a->n_layers;
  p.layer_stride_bytes = a->layer_stride * esize;
  p.prefix_lens = a->prefix_lens;
  p.path = a->path;
  p.accept_len = a->accept_len;
  /* widest unit that divides the row and the layer stride and keeps alignment */
  uintptr_t align = (uintptr_t)a->cache.k_pages | (uintptr_t)a->cache.v_pages | (uintptr_t)row_bytes |
                    (uintptr_t)p.layer_stride_bytes;
  size_t unit = (align & 15u) == 0 ? 16 : (align & 7u) == 0 ? 8 : (align & 3u) == 0 ? 4 : 2;
  p.row_units = (int)(row_bytes / unit);
  int threads = p.row_units < 128 ? ((p.row_units + 31) / 32) * 32 : 128;
  dim3 grid((unsigned)a->n_trees, (unsigned)a->n_layers, 2);
  cudaStream_t s = (cudaStream_t)exec->stream;
  if (a->n_layers > 65535)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_kv_compact: n_layers = %d exceeds 65535", a->n_layers);
  switch (unit) {
  case 16: kv_compact_kernel<uint4><<<grid, threads, 0, s>>>(p); break;
  case 8: kv_compact_kernel<uint2><<<grid, threads, 0, s>>>(p); break;
  case 4: kv_compact_kernel<uint32_t><<<grid, threads, 0, s>>>(p); break;
  default: kv_compact_kernel<uint16_t><<<grid, threads, 0, s>>>(p); break;
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    return DECO_EXEC_FAIL(exec, DECO_STATUS_CUDA_ERROR, "deco_kv_compact: launch failed: %s", cudaGetErrorString(err));
  return DECO_STATUS_SUCCESS;
}
