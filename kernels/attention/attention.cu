/* kernels/attention/attention.cu — causal attention over the paged KV cache
 * (prefill and decode, any GQA ratio, head dims 8..256). Head dims 64 and
 * 128 in f16/bf16 run on the tensor-core path (attention_mma.cu: the
 * tree-attention kernel in its causal mode); everything else on the kernel
 * here: one pass with an online softmax in fp32 (Milakov & Gimelshein 2018;
 * FlashAttention's rescaling), split over the keys with a merge step when
 * there are too few (token, KV head) pairs to fill the GPU (split-KV
 * decoding).
 * q, out [n_tokens][n_heads][head_dim]; pools [n_pages][page_size][n_kv_heads][head_dim].
 */
#include <math.h>

#include "attention/attention_mma.h"
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "common/paged.h"

/* Block = ATT_WARPS warps working on one token, one KV head and up to HG of
 * the query heads that share it, so each K/V row is loaded once for all of
 * them. Lane l holds dims l, l+32, ... (DPL per lane: coalesced rows for any
 * head dim). Warps take keys round-robin, each with its own running (max,
 * sum, acc); the warps' states are merged through shared memory at the end.
 * With n_splits > 1, block z covers the z-th slice of the keys and writes an
 * unnormalised (max, sum, acc) to the workspace; attention_merge_kernel then
 * combines the slices. */
#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_MAX_SPLITS 64

/* KU: keys per warp whose loads are in flight together (8, or 4 at the
 * largest head dims to bound registers). */
template <typename T, int DPL, int HG, int KU>
static __global__ __launch_bounds__(ATT_THREADS, 2) void attention_kernel(
    const T *__restrict__ q,              /* [n_tokens][n_heads][head_dim], tokens q_stride apart */
    size_t q_stride,
    T *__restrict__ out,                  /* [n_tokens][n_heads][head_dim] (n_splits == 1) */
    const T *__restrict__ k_pages,        /* [n_pages * page_size][n_kv_heads][head_dim] */
    const T *__restrict__ v_pages,        /* same */
    const int32_t *__restrict__ block_table, /* [n_seqs][max_pages] */
    const int32_t *__restrict__ q_indptr, /* [n_seqs + 1] */
    const int32_t *__restrict__ kv_lens,  /* [n_seqs] */
    int n_seqs, int capacity, int max_pages, int page_size, int n_pages, int n_heads, int n_kv_heads,
    int head_dim, int group, int n_chunks, float scale, int n_splits,
    float *__restrict__ ws_acc,           /* [n_tokens][n_heads][n_splits][head_dim] (n_splits > 1) */
    float *__restrict__ ws_ml) {          /* [n_tokens][n_heads][n_splits][2]: max, sum */
  const int t = blockIdx.x;
  const int kvh = blockIdx.y / n_chunks, chunk = blockIdx.y % n_chunks, z = blockIdx.z;
  const int h0 = kvh * group + chunk * HG;
  const int hg = min(HG, group - chunk * HG);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  const int s = deco_ragged_seq_of(q_indptr, n_seqs, t);
  if (s < 0) return; /* no sequence holds it (before q_indptr[0], past the real count): left untouched */
  const int t0 = q_indptr[s], n_s = q_indptr[s + 1] - t0, len = kv_lens[s];
  /* Inconsistent batch metadata: the token's output is NaN (the reference
   * refuses such a batch; a kernel cannot, so it poisons what it cannot compute). */
  const bool bad_meta = n_s < 0 || len < n_s || q_indptr[s + 1] > capacity;
  const int n_keys = bad_meta ? 0 : len - n_s + (t - t0) + 1; /* slots 0..last */
  const int per_split = (n_keys + n_splits - 1) / n_splits;
  const int kb = z * per_split, ke = min(kb + per_split, n_keys);

  float qr[HG][DPL];
#pragma unroll
  for (int hh = 0; hh < HG; ++hh)
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      qr[hh][i] = (hh < hg && d < head_dim) ? deco_to_f32(q[(size_t)t * q_stride + (size_t)(h0 + hh) * head_dim + d])
                                            : 0.0f;
    }

  float m[HG], l[HG], acc[HG][DPL];
#pragma unroll
  for (int hh = 0; hh < HG; ++hh) {
    m[hh] = -INFINITY;
    l[hh] = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[hh][i] = 0.0f;
  }

  const int32_t *bt = block_table + (size_t)s * max_pages;
  const size_t kv_row = (size_t)n_kv_heads * head_dim;
  int bad_page = 0;
  /* Warp w takes keys w, w + ATT_WARPS, ... (the same order as one key at a
   * time), KU of them per step, in two phases: first the KU block-table
   * entries, then the KU K/V rows. Interleaving them would make each row wait
   * for its own table entry in turn (KU dependent round trips per step). */
  for (int p0 = kb + warp; p0 < ke; p0 += ATT_WARPS * KU) {
    long long row[KU];
#pragma unroll
    for (int j = 0; j < KU; ++j) {
      const int p = p0 + j * ATT_WARPS;
      row[j] = p < ke ? deco_paged_row(bt, max_pages, page_size, n_pages, p) : -1;
      if (p < ke && row[j] < 0) bad_page = 1;
    }
    float kf[KU][DPL], vf[KU][DPL];
    bool ok[KU];
#pragma unroll
    for (int j = 0; j < KU; ++j) {
      ok[j] = row[j] >= 0; /* warp-uniform */
      const size_t base = (size_t)(ok[j] ? row[j] : 0) * kv_row + (size_t)kvh * head_dim;
#pragma unroll
      for (int i = 0; i < DPL; ++i) {
        const int d = lane + 32 * i;
        const bool in = ok[j] && d < head_dim;
        kf[j][i] = in ? deco_to_f32(k_pages[base + d]) : 0.0f;
        vf[j][i] = in ? deco_to_f32(v_pages[base + d]) : 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < KU; ++j) {
      if (!ok[j]) continue;
#pragma unroll
      for (int hh = 0; hh < HG; ++hh) {
        if (hh < hg) {
          float part = 0.0f;
#pragma unroll
          for (int i = 0; i < DPL; ++i) part += qr[hh][i] * kf[j][i];
          const float score = deco_warp_sum(part) * scale;
          const float m_new = fmaxf(m[hh], score);
          const float corr = expf(m[hh] - m_new); /* 0 on the first key (m = -inf) */
          const float e = expf(score - m_new);
          l[hh] = l[hh] * corr + e;
#pragma unroll
          for (int i = 0; i < DPL; ++i) acc[hh][i] = acc[hh][i] * corr + e * vf[j][i];
          m[hh] = m_new;
        }
      }
    }
  }

  /* Merge the warps' states. */
  __shared__ float sm_m[ATT_WARPS][HG], sm_l[ATT_WARPS][HG];
  __shared__ float sm_acc[ATT_WARPS][HG][DPL * 32];
  const int bad = __syncthreads_or(bad_page) || bad_meta;
#pragma unroll
  for (int hh = 0; hh < HG; ++hh) {
    if (lane == 0) {
      sm_m[warp][hh] = m[hh];
      sm_l[warp][hh] = l[hh];
    }
#pragma unroll
    for (int i = 0; i < DPL; ++i) sm_acc[warp][hh][lane + 32 * i] = acc[hh][i];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < hg * head_dim; idx += ATT_THREADS) {
    const int hh = idx / head_dim, d = idx - hh * head_dim;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < ATT_WARPS; ++w) mx = fmaxf(mx, sm_m[w][hh]);
    float sum = 0.0f, a = 0.0f;
#pragma unroll
    for (int w = 0; w < ATT_WARPS; ++w) {
      const float f = sm_m[w][hh] == -INFINITY ? 0.0f : expf(sm_m[w][hh] - mx); /* warps with no key */
      sum += sm_l[w][hh] * f;
      a += sm_acc[w][hh][d] * f;
    }
    const size_t th = (size_t)t * n_heads + h0 + hh;
    if (n_splits == 1) {
      out[th * head_dim + d] = deco_from_f32<T>(bad ? deco_nan_f32() : a / sum);
    } else {
      ws_acc[(th * n_splits + z) * head_dim + d] = a;
      if (d == 0) {
        ws_ml[(th * n_splits + z) * 2] = mx;
        ws_ml[(th * n_splits + z) * 2 + 1] = bad ? deco_nan_f32() : sum;
      }
    }
  }
}

/* Combines the key slices of one (token, head): rescale each slice's sum and
 * acc to the common max, add in slice order, divide. A NaN sum marks a slice
 * that met an invalid page. One thread per dim. */
template <typename T>
static __global__ void attention_merge_kernel(const float *__restrict__ ws_acc, const float *__restrict__ ws_ml,
                                              T *__restrict__ out, const int32_t *__restrict__ q_indptr, int n_seqs,
                                              int n_heads, int head_dim, int n_splits) {
  const int t = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  if (d >= head_dim || deco_ragged_seq_of(q_indptr, n_seqs, t) < 0) return;
  const size_t th = (size_t)t * n_heads + h;
  float mx = -INFINITY;
  bool bad = false;
  for (int z = 0; z < n_splits; ++z) {
    mx = fmaxf(mx, ws_ml[(th * n_splits + z) * 2]);
    bad = bad || isnan(ws_ml[(th * n_splits + z) * 2 + 1]);
  }
  float sum = 0.0f, a = 0.0f;
  for (int z = 0; z < n_splits; ++z) {
    const float mz = ws_ml[(th * n_splits + z) * 2];
    const float f = mz == -INFINITY ? 0.0f : expf(mz - mx); /* empty slices */
    sum += ws_ml[(th * n_splits + z) * 2 + 1] * f;
    a += ws_acc[(th * n_splits + z) * head_dim + d] * f;
  }
  out[th * head_dim + d] = deco_from_f32<T>(bad ? deco_nan_f32() : a / sum);
}

/* ---- Plan: the launch shape and the workspace it needs (one function for both) ---- */

struct attention_plan {
  int dpl, hg, n_chunks, n_splits;
  size_t ws_acc_floats, ws_bytes;
};

static attention_plan make_plan(const deco_exec_t *exec, const deco_attention_args_t *a) {
  attention_plan pl;
  const int hd = a->cache.head_dim;
  pl.dpl = hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8;
  pl.hg = pl.dpl == 8 ? 4 : 8; /* keeps q and acc at <= 64 registers per lane */
  const int group = a->n_heads / a->cache.n_kv_heads;
  pl.n_chunks = (group + pl.hg - 1) / pl.hg;
  /* Split the keys only when the (token, KV head, head chunk) blocks cannot
   * give every SM four blocks (enough loads in flight) and the block table
   * allows long sequences; the real lengths are in device memory, so the
   * bound is the table's capacity. */
  const long long blocks = (long long)a->batch.n_tokens * a->cache.n_kv_heads * pl.n_chunks;
  const long long target = 4LL * (exec->sm_count > 0 ? exec->sm_count : 1);
  const long long max_len = (long long)a->cache.max_pages_per_seq * a->cache.page_size;
  long long splits = 1;
  if (blocks < target && max_len > 256) {
    splits = (target + blocks - 1) / blocks;
    const long long by_len = (max_len + 63) / 64; /* at least ~64 keys per slice */
    if (splits > by_len) splits = by_len;
    if (splits > ATT_MAX_SPLITS) splits = ATT_MAX_SPLITS;
  }
  pl.n_splits = (int)splits;
  pl.ws_acc_floats = 0;
  pl.ws_bytes = 0;
  if (pl.n_splits > 1) {
    const size_t ths = (size_t)a->batch.n_tokens * a->n_heads * pl.n_splits;
    pl.ws_acc_floats = ths * hd;
    pl.ws_bytes = (ths * hd + ths * 2) * sizeof(float);
  }
  return pl;
}

size_t deco_attention_workspace_size_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  if (a->batch.n_tokens == 0) return 0; /* nothing runs */
  if (deco_attention_mma_cuda_eligible(a)) return deco_attention_mma_workspace_cuda(exec, a);
  return make_plan(exec, a).ws_bytes;
}

const char *deco_attention_path_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  if (deco_attention_mma_cuda_eligible(a)) return deco_attention_mma_path_cuda(exec, a);
  return make_plan(exec, a).n_splits > 1 ? "simt+split" : "simt";
}

template <typename T, int DPL, int HG, int KU>
static deco_status_t attention_launch(const deco_exec_t *exec, const deco_attention_args_t *a,
                                      const attention_plan &pl) {
  const deco_paged_kv_t *c = &a->cache;
  const deco_ragged_batch_t *b = &a->batch;
  float *ws_acc = pl.n_splits > 1 ? (float *)exec->workspace : NULL;
  float *ws_ml = pl.n_splits > 1 ? ws_acc + pl.ws_acc_floats : NULL;
  const dim3 grid((unsigned)b->n_tokens, (unsigned)(c->n_kv_heads * pl.n_chunks), (unsigned)pl.n_splits);
  cudaStream_t stream = DECO_CUDA_STREAM(exec);
  attention_kernel<T, DPL, HG, KU><<<grid, ATT_THREADS, 0, stream>>>(
      (const T *)a->q, a->q_stride ? (size_t)a->q_stride : (size_t)a->n_heads * c->head_dim, (T *)a->out,
      (const T *)c->k_pages, (const T *)c->v_pages, c->block_table, b->q_indptr,
      b->kv_lens, b->n_seqs, b->n_tokens, c->max_pages_per_seq, c->page_size, c->n_pages, a->n_heads, c->n_kv_heads,
      c->head_dim, a->n_heads / c->n_kv_heads, pl.n_chunks, a->scale, pl.n_splits, ws_acc, ws_ml);
  DECO_CUDA_CHECK_LAUNCH(exec, "attention_kernel");
  if (pl.n_splits > 1) {
    const dim3 mgrid((unsigned)b->n_tokens, (unsigned)a->n_heads);
    const int threads = (c->head_dim + 31) / 32 * 32;
    attention_merge_kernel<T><<<mgrid, threads, 0, stream>>>(ws_acc, ws_ml, (T *)a->out, b->q_indptr, b->n_seqs,
                                                             a->n_heads, c->head_dim, pl.n_splits);
    DECO_CUDA_CHECK_LAUNCH(exec, "attention_merge_kernel");
  }
  return DECO_STATUS_SUCCESS;
}

template <typename T>
static deco_status_t attention_dispatch(const deco_exec_t *exec, const deco_attention_args_t *a,
                                        const attention_plan &pl) {
  switch (pl.dpl) {
  case 1: return attention_launch<T, 1, 8, 8>(exec, a, pl);
  case 2: return attention_launch<T, 2, 8, 8>(exec, a, pl);
  case 4: return attention_launch<T, 4, 8, 8>(exec, a, pl);
  default: return attention_launch<T, 8, 4, 4>(exec, a, pl);
  }
}

deco_status_t deco_attention_cuda(const deco_exec_t *exec, const deco_attention_args_t *a) {
  if (deco_attention_mma_cuda_eligible(a)) return deco_attention_mma_cuda(exec, a);
  const attention_plan pl = make_plan(exec, a);
  if (pl.ws_bytes > 0) {
    if (exec->workspace == NULL || exec->workspace_bytes < pl.ws_bytes)
      return DECO_EXEC_FAIL(
          exec, DECO_STATUS_WORKSPACE_TOO_SMALL,
          "deco_attention: needs a workspace of %zu bytes (%d key slices for %d tokens x %d heads), the "
          "context has %zu; see deco_attention_workspace_size",
          pl.ws_bytes, pl.n_splits, a->batch.n_tokens, a->n_heads, exec->workspace_bytes);
    if (!deco_aligned(exec->workspace, sizeof(float)))
      return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT, "deco_attention: workspace is not 4-byte aligned");
  }
  DECO_DTYPE_SWITCH(a->cache.dtype, T, return attention_dispatch<T>(exec, a, pl));
  return DECO_EXEC_FAIL(exec, DECO_STATUS_UNSUPPORTED, "deco_attention: dtype %d", (int)a->cache.dtype);
}
