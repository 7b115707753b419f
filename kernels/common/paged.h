/* kernels/common/paged.h — slot arithmetic of the paged KV cache, shared by
 * the C references and the CUDA kernels (DECO_KERNEL_HD functions).
 */
#ifndef DECO_KERNELS_PAGED_H
#define DECO_KERNELS_PAGED_H

#include <stddef.h>
#include <stdint.h>

#include "common/hd.h"

/* Row index of slot in a pool [n_pages][page_size][...], or -1 if the slot is
 * outside the block table or its page id outside the pool. */
DECO_KERNEL_HD long long deco_paged_row(const int32_t *block_table_row, int max_pages, int page_size, int n_pages,
                                 int slot) {
  if (slot < 0) return -1;
  int page_idx = slot / page_size;
  if (page_idx >= max_pages) return -1;
  int page = block_table_row[page_idx];
  if (page < 0 || page >= n_pages) return -1;
  return (long long)page * page_size + slot % page_size;
}

/* Sequence that owns flat token t of a ragged batch (binary search over
 * q_indptr[0..n_seqs]); -1 when t is before q_indptr[0] or past the real
 * token count. The search keeps q_indptr[lo] <= t < q_indptr[hi + 1], so
 * even a device-side indptr that does not rise yields a range holding t. */
DECO_KERNEL_HD int deco_ragged_seq_of(const int32_t *q_indptr, int n_seqs, int t) {
  if (t < 0 || t < q_indptr[0] || t >= q_indptr[n_seqs]) return -1;
  int lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (q_indptr[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

#endif
