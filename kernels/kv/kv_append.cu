/* kernels/kv/kv_append.cu — writes the new tokens' K and V rows into the
 * paged cache: token j of sequence s goes to slot kv_lens[s] - n_s + j
 * (kernels/common/paged.h). k, v [n_tokens][n_kv_heads][head_dim], tokens
 * kv_stride elements apart;
 * pools [n_pages][page_size][n_kv_heads][head_dim]. Tokens past
 * q_indptr[n_seqs], or whose slot has no valid page, are skipped.
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "common/paged.h"

/* One block per token (capacity); the real count and the slot come from
 * device memory, so a captured graph can be replayed with other sizes.
 * E is the copy unit: uint4 when rows and pointers are 16-byte aligned. */
template <typename E>
static __global__ void kv_append_kernel(const E *__restrict__ k, const E *__restrict__ v, /* [n_tokens][row] */
                                        E *__restrict__ k_pages, E *__restrict__ v_pages, /* [n_pages * page_size][row] */
                                        const int32_t *__restrict__ block_table,          /* [n_seqs][max_pages] */
                                        const int32_t *__restrict__ q_indptr,             /* [n_seqs + 1] */
                                        const int32_t *__restrict__ kv_lens,              /* [n_seqs] */
                                        int n_seqs, int max_pages, int page_size, int n_pages, int row,
                                        size_t in_row) { /* row and in_row in units of E */
  const int t = blockIdx.x;
  const int s = deco_ragged_seq_of(q_indptr, n_seqs, t);
  if (s < 0) return;
  const int n_s = q_indptr[s + 1] - q_indptr[s];
  const int slot = kv_lens[s] - n_s + (t - q_indptr[s]);
  const long long r = deco_paged_row(block_table + (size_t)s * max_pages, max_pages, page_size, n_pages, slot);
  if (r < 0) return;
  const E *ks = k + (size_t)t * in_row, *vs = v + (size_t)t * in_row;
  E *kd = k_pages + (size_t)r * row, *vd = v_pages + (size_t)r * row;
  for (int i = threadIdx.x; i < row; i += blockDim.x) {
    kd[i] = ks[i];
    vd[i] = vs[i];
  }
}

template <typename E>
static deco_status_t kv_append_launch(const deco_exec_t *exec, const deco_kv_append_args_t *a, int row, size_t in_row) {
  const deco_paged_kv_t *c = &a->cache;
  int threads = (row + 31) / 32 * 32;
  threads = threads > 256 ? 256 : threads;
  kv_append_kernel<E><<<a->batch.n_tokens, threads, 0, DECO_CUDA_STREAM(exec)>>>(
      (const E *)a->k, (const E *)a->v, (E *)c->k_pages, (E *)c->v_pages, c->block_table, a->batch.q_indptr,
      a->batch.kv_lens, a->batch.n_seqs, c->max_pages_per_seq, c->page_size, c->n_pages, row, in_row);
  DECO_CUDA_CHECK_LAUNCH(exec, "kv_append_kernel");
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_kv_append_cuda(const deco_exec_t *exec, const deco_kv_append_args_t *a) {
  const deco_paged_kv_t *c = &a->cache;
  const size_t es = deco_dtype_size(c->dtype), row_bytes = (size_t)c->n_kv_heads * c->head_dim * es;
  const size_t in_bytes = a->kv_stride ? (size_t)a->kv_stride * es : row_bytes;
  const bool vec = row_bytes % 16 == 0 && in_bytes % 16 == 0 && deco_aligned(a->k, 16) && deco_aligned(a->v, 16) &&
                   deco_aligned(c->k_pages, 16) && deco_aligned(c->v_pages, 16);
  if (vec) return kv_append_launch<uint4>(exec, a, (int)(row_bytes / 16), in_bytes / 16);
  if (row_bytes % 4 == 0 && in_bytes % 4 == 0 && deco_aligned(a->k, 4) && deco_aligned(a->v, 4) &&
      deco_aligned(c->k_pages, 4) && deco_aligned(c->v_pages, 4))
    return kv_append_launch<uint32_t>(exec, a, (int)(row_bytes / 4), in_bytes / 4);
  return kv_append_launch<uint16_t>(exec, a, (int)(row_bytes / 2), in_bytes / 2);
}
