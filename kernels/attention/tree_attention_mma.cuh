/* kernels/attention/tree_attention_mma.cuh — tensor-core tree attention for
 * head dims 64/128 in f16/bf16 (mma.sync m16n8k16, fp32 accumulate), in the
 * FlashAttention-2 arrangement (Dao 2023): each warp owns 16 query rows and
 * keeps Q fragments, the running max/sum and the output in registers; K/V
 * tiles of 64 keys are gathered through the block table with cp.async into
 * a shared-memory ring of 2..4 stages (chosen per launch: deeper for the
 * 8-warp CTAs that are alone on their SM) and read with ldmatrix; page
 * lookups advance incrementally (no division per chunk). All query heads of
 * a KV group are rows of the same CTA, so a K/V tile is loaded once for
 * them. Prefix tiles are unmasked; tiles holding tree slots L..L+n-1 test
 * the ancestor sets built in shared memory. Instantiated once per file.
 */
#ifndef DECO_KERNELS_TREE_ATTENTION_MMA_CUH
#define DECO_KERNELS_TREE_ATTENTION_MMA_CUH

#include <atomic>

#include "attention/tree_attention_common.cuh"

namespace deco_tree {

constexpr int kMmaKeys = 64; /* keys per K/V tile */
constexpr int kMmaMaxWarps = 8;
constexpr int kMmaMaxStages = 4;

template <typename T> struct MmaOp;
template <> struct MmaOp<__half> {
  static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
  }
};
template <> struct MmaOp<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
  }
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void *src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void prefetch_l1(const void *ptr) {
  asm volatile("prefetch.global.L1 [%0];\n" ::"l"(ptr));
}

/* Waits until at most stages - 2 of this thread's copy groups are pending. */
__device__ __forceinline__ void cp_async_wait_ring(int stages) {
  if (stages >= 4) cp_async_wait<2>();
  else if (stages == 3) cp_async_wait<1>();
  else cp_async_wait<0>();
}

template <int HD> constexpr size_t mma_smem_bytes(int stages) {
  return (size_t)kTreeSmemBytes + 2 /*K, V*/ * (size_t)stages * kMmaKeys * (HD + 8) * 2 /*bytes*/;
}

/* Rows [row0, row0 + rows per CTA) of the CTA's tree and KV head, over its
 * KV split. Called by the whole CTA; every early return is CTA-uniform. */
template <int HD, typename T>
__device__ __forceinline__ void mma_rows(const Params &p, const Cta &c, const TreeInfo &ti, const int row0,
                                         unsigned char *smem_raw) {
  constexpr int BN = kMmaKeys;
  constexpr int KST = HD + 8;  /* smem row stride: +16 bytes keeps ldmatrix rows on distinct banks */
  constexpr int NT = BN / 8;   /* 8-key column tiles of S */
  constexpr int KSTEPS = HD / 16;
  constexpr int DT = HD / 8;   /* 8-wide column tiles of O */
  constexpr int CH = HD / 8;   /* 16-byte chunks per K/V row */
  using Op = MmaOp<T>;

  uint32_t *anc = reinterpret_cast<uint32_t *>(smem_raw);
  int *jump = reinterpret_cast<int *>(anc + 2 * kAncBufWords);
  const int nst = p.stages;
  T *Ks = reinterpret_cast<T *>(jump + 2 * kMaxNodes); /* [stages][BN][KST] */
  T *Vs = Ks + nst * BN * KST;                          /* [stages][BN][KST] */

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nthreads = blockDim.x;
  const int rows_per_cta = (nthreads / 32) * 16;
  const int G = p.group, rows_total = ti.n * G;
  const int row_end = min(row0 + rows_per_cta, rows_total);
  /* A tree past the block table is unusable; a causal sequence is not: the
   * gather gives slots past the table NaN keys, so exactly the tokens whose
   * window reaches them come out NaN (as with invalid pages). */
  const long long lim = p.causal ? (long long)INT32_MAX - 4 * kMaxNodes : (long long)p.kv_capacity;
  if (ti.L < 0 || (long long)ti.L + ti.n > lim) {
    fill_rows(p, ti, c.g, row0, row_end, c.split, deco_nan_canonical_f32());
    return;
  }
  /* Keys of the tile: the whole tree's, or in causal mode those its last
   * token sees. Splits are cut from the tree's (sequence's) real length. */
  const int L = ti.L, keys = p.causal ? L + (row_end - 1) / G + 1 : L + ti.n;
  const int chunk = split_chunk(L + ti.n, p.n_splits);
  const long long kb = (long long)c.split * chunk;
  if (kb >= keys) { /* an empty split; split 0 never is, so bad parents still reach the merge */
    fill_rows(p, ti, c.g, row0, row_end, c.split, -INFINITY);
    return;
  }
  const int k_begin = (int)kb;
  const int k_end = (int)min((long long)keys, kb + chunk);
  /* Parents into registers now, checked after the first loads are issued. */
  const bool tree = !p.causal;
  const int par0 = tree && tid < ti.n ? p.parent[ti.t0 + tid] : 0;
  const int par1 = tree && tid + nthreads < ti.n ? p.parent[ti.t0 + tid + nthreads] : 0;

  const T *kp = static_cast<const T *>(p.k_pages);
  const T *vp = static_cast<const T *>(p.v_pages);
  const int32_t *bt = p.block_table + (size_t)c.b * p.max_pages;
  /* Gather: this thread copies 16-byte chunk gch of rows gr0 + i * grs of
   * each tile (i < g_iter). Tiles are gathered in order, so each row's page
   * index and in-page offset advance by BN slots per tile: no division in
   * the loop. */
  constexpr int kMaxIter = BN * CH / 128; /* chunks per thread with 4 warps */
  const int g_iter = BN * CH / nthreads, gch = tid % CH, gr0 = tid / CH, grs = nthreads / CH;
  const int ps = p.page_size, adv_pg = BN / ps, adv_po = BN % ps;
  int gpg[kMaxIter], gpo[kMaxIter];
#pragma unroll
  for (int i = 0; i < kMaxIter; ++i) {
    const int key = k_begin + gr0 + i * grs;
    gpg[i] = key / ps;
    gpo[i] = key - gpg[i] * ps;
  }
  /* Gathers keys kt..kt+BN-1 into a stage: one 16-byte cp.async per chunk;
   * a slot without a valid page gets NaN keys (its row turns NaN unless
   * masked) and zero values (so a masked NaN slot adds 0, not 0 * NaN);
   * slots past k_end get zeros and are masked. */
  auto load_tile = [&](int stage, int kt) {
    T *ks = Ks + stage * BN * KST;
    T *vs = Vs + stage * BN * KST;
#pragma unroll
    for (int i = 0; i < kMaxIter; ++i) {
      if (i < g_iter) {
        const int r = gr0 + i * grs, key = kt + r;
        T *dk = ks + r * KST + gch * 8;
        T *dv = vs + r * KST + gch * 8;
        long long row = -2;
        if (key < k_end) {
          row = -1;
          if (gpg[i] < p.max_pages) {
            const int page = bt[gpg[i]];
            if (page >= 0 && page < p.n_pages) row = (long long)page * ps + gpo[i];
          }
        }
        if (row >= 0) {
          const size_t off = ((size_t)row * p.n_kv + c.g) * HD + gch * 8;
          cp_async_16(smem_addr(dk), kp + off);
          cp_async_16(smem_addr(dv), vp + off);
        } else {
          const uint32_t kw = row == -1 ? 0xffffffffu : 0u; /* all-ones halves are NaN in f16 and bf16 */
          *reinterpret_cast<uint4 *>(dk) = make_uint4(kw, kw, kw, kw);
          *reinterpret_cast<uint4 *>(dv) = make_uint4(0u, 0u, 0u, 0u);
        }
        gpg[i] += adv_pg;
        gpo[i] += adv_po;
        if (gpo[i] >= ps) {
          gpo[i] -= ps;
          gpg[i]++;
        }
      }
    }
  };
  /* Pulls the block-table entries of the tile starting at kt into L1, so
   * that the gather of that tile does not wait on them (a few threads). */
  auto prefetch_pages = [&](int kt) {
    if (tid >= 4 || kt >= k_end) return;
    const int e0 = kt / ps;
    const int e1 = min((min(kt + BN, k_end) - 1) / ps, p.max_pages - 1);
    const int a0 = e0 & ~31, line = tid * 32; /* 32 entries per 128-byte line */
    if (e0 < p.max_pages && a0 + line <= e1) prefetch_l1(bt + a0 + line);
  };

  const int n_tiles = (k_end - k_begin + BN - 1) / BN;
  for (int s = 0; s < nst - 1; ++s) {
    if (s < n_tiles) load_tile(s, k_begin + s * BN);
    cp_async_commit();
  }
  prefetch_pages(k_begin + (nst - 1) * BN);

  /* This thread's two rows (gq and gq + 8 of its warp's 16) and Q fragments. */
  const int gq = lane >> 2, tq = lane & 3;
  const int rA = row0 + warp * 16 + gq, rB = rA + 8;
  const bool vA = rA < rows_total, vB = rB < rows_total;
  const bool warp_active = row0 + warp * 16 < rows_total;
  const int nodeA = vA ? rA / G : 0, nodeB = vB ? rB / G : 0;
  /* Output rows (dense) and where the rows' queries start (q_stride apart). */
  const int hA = c.g * G + (vA ? rA % G : 0), hB = c.g * G + (vB ? rB % G : 0);
  const size_t qrowA = (size_t)(ti.t0 + nodeA) * p.n_heads + hA;
  const size_t qrowB = (size_t)(ti.t0 + nodeB) * p.n_heads + hB;
  const T *qA = static_cast<const T *>(p.q) + (size_t)(ti.t0 + nodeA) * p.q_stride + (size_t)hA * HD;
  const T *qB = static_cast<const T *>(p.q) + (size_t)(ti.t0 + nodeB) * p.q_stride + (size_t)hB * HD;
  uint32_t qf[KSTEPS][4];
#pragma unroll
  for (int kk = 0; kk < KSTEPS; ++kk) {
    const int col = kk * 16 + 2 * tq;
    qf[kk][0] = vA ? *reinterpret_cast<const uint32_t *>(qA + col) : 0u;
    qf[kk][1] = vB ? *reinterpret_cast<const uint32_t *>(qB + col) : 0u;
    qf[kk][2] = vA ? *reinterpret_cast<const uint32_t *>(qA + col + 8) : 0u;
    qf[kk][3] = vB ? *reinterpret_cast<const uint32_t *>(qB + col + 8) : 0u;
  }

  /* Parent check (topological order, one root) while the tiles fly. */
  const uint32_t *ancf = anc;
  if (tree) {
    int bad = 0;
    if (tid < ti.n) {
      jump[tid] = par0;
      bad |= tid == 0 ? par0 != -1 : (par0 < 0 || par0 >= tid);
    }
    if (tid + nthreads < ti.n) {
      jump[tid + nthreads] = par1;
      bad |= par1 < 0 || par1 >= tid + nthreads;
    }
    if (__syncthreads_or(bad)) {
      cp_async_wait<0>(); /* no copy may land after the CTA is gone */
      fill_rows(p, ti, c.g, row0, row_end, c.split, deco_nan_canonical_f32());
      return;
    }
    /* Ancestor sets only when this split reaches the tree slots. */
    if (k_end > L) ancf = anc + build_ancestors(anc, jump, ti.n) * kAncBufWords;
  }

  float o[DT][4];
#pragma unroll
  for (int dt = 0; dt < DT; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.0f, lB = 0.0f; /* l: this thread's partial sums */

  /* ldmatrix addresses: this lane's row/column within a tile, in bytes. */
  const uint32_t k_smem = smem_addr(Ks), v_smem = smem_addr(Vs), stage_bytes = BN * KST * 2;
  const uint32_t k_lane = (((lane & 7) + ((lane >> 4) << 3)) * KST + ((lane >> 3) & 1) * 8) * 2;
  const uint32_t v_lane = (((lane & 7) + ((lane >> 3) & 1) * 8) * KST + (lane >> 4) * 8) * 2;
  int st = 0, st_next = nst - 1; /* ring slots of tile it and of tile it + stages - 1 */
  for (int it = 0; it < n_tiles; ++it) {
    const int kt = k_begin + it * BN;
    /* Groups committed so far: tiles 0 .. it + stages - 2; allowing
     * stages - 2 pending means tile it has landed. */
    cp_async_wait_ring(nst);
    /* Everyone is done with tile it - 1, whose slot is refilled next. */
    __syncthreads();
    {
      const int nxt = it + nst - 1;
      if (nxt < n_tiles) load_tile(st_next, k_begin + nxt * BN);
      cp_async_commit();
      prefetch_pages(k_begin + (nxt + 1) * BN);
    }
    if (warp_active) {
      const uint32_t ks = k_smem + st * stage_bytes + k_lane;
      const uint32_t vs = v_smem + st * stage_bytes + v_lane;
      float s[NT][4];
#pragma unroll
      for (int j = 0; j < NT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
      /* S = Q K^T: one ldmatrix.x4 gives the B fragments of two key tiles. */
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk) {
#pragma unroll
        for (int jp = 0; jp < NT / 2; ++jp) {
          uint32_t b4[4];
          ldmatrix_x4(b4, ks + (jp * 16 * KST + kk * 16) * 2);
          Op::run(s[2 * jp], qf[kk], b4[0], b4[1]);
          Op::run(s[2 * jp + 1], qf[kk], b4[2], b4[3]);
        }
      }
      /* Mask: slots past k_end, and tree slots that are not ancestors of the
       * row's node. Prefix-only tiles skip it. Scores stay unscaled: the
       * scale (base 2) is folded into the exponent's FFMA below. */
      const bool need_mask = kt + BN > L || kt + BN > k_end;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float xa = s[j][e], xb = s[j][2 + e];
          if (need_mask) {
            const int key = kt + j * 8 + 2 * tq + e;
            bool okA = key < k_end, okB = okA;
            if (okA && key >= L) {
              if (tree) {
                okA = anc_has(ancf, nodeA, key - L);
                okB = anc_has(ancf, nodeB, key - L);
              } else { /* a chain: token j sees slots up to L + j */
                okA = key - L <= nodeA;
                okB = key - L <= nodeB;
              }
            }
            if (!okA) xa = -INFINITY;
            if (!okB) xb = -INFINITY;
          }
          s[j][e] = xa;
          s[j][2 + e] = xb;
        }
      }
      /* Online softmax; a row max of -inf (all masked so far) uses 0 as the
       * shift so that exp2 gives 0 instead of NaN, while NaN scores (bad
       * pages) still flow into the sum and poison the row (fmaxf skips NaN). */
      float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        mxA = fmaxf(mxA, fmaxf(s[j][0], s[j][1]));
        mxB = fmaxf(mxB, fmaxf(s[j][2], s[j][3]));
      }
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 1));
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, 2));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 1));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, 2));
      const float sl2 = p.scale_log2; /* > 0, so the max of raw scores is the max of scaled ones */
      const float mnA = fmaxf(mA, mxA), mnB = fmaxf(mB, mxB);
      const float shA = mnA == -INFINITY ? 0.0f : mnA * sl2, shB = mnB == -INFINITY ? 0.0f : mnB * sl2;
      const float cA = fast_exp2(mA * sl2 - shA), cB = fast_exp2(mB * sl2 - shB);
      mA = mnA;
      mB = mnB;
      float sumA = 0.0f, sumB = 0.0f;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        s[j][0] = fast_exp2(fmaf(s[j][0], sl2, -shA));
        s[j][1] = fast_exp2(fmaf(s[j][1], sl2, -shA));
        s[j][2] = fast_exp2(fmaf(s[j][2], sl2, -shB));
        s[j][3] = fast_exp2(fmaf(s[j][3], sl2, -shB));
        sumA += s[j][0] + s[j][1];
        sumB += s[j][2] + s[j][3];
      }
      lA = lA * cA + sumA;
      lB = lB * cB + sumB;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        o[dt][0] *= cA;
        o[dt][1] *= cA;
        o[dt][2] *= cB;
        o[dt][3] *= cB;
      }
      /* O += P V: the S accumulators of two key tiles form one A fragment;
       * V is [key][dim] in shared memory, so its B fragments come transposed. */
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[4];
        a[0] = Op::pack(s[2 * kk][0], s[2 * kk][1]);
        a[1] = Op::pack(s[2 * kk][2], s[2 * kk][3]);
        a[2] = Op::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = Op::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dp = 0; dp < DT / 2; ++dp) {
          uint32_t b4[4];
          ldmatrix_x4_trans(b4, vs + (kk * 16 * KST + dp * 16) * 2);
          Op::run(o[2 * dp], a, b4[0], b4[1]);
          Op::run(o[2 * dp + 1], a, b4[2], b4[3]);
        }
      }
    }
    st = st + 1 == nst ? 0 : st + 1;
    st_next = st_next + 1 == nst ? 0 : st_next + 1;
  }
  cp_async_wait<0>();

  /* The four threads of a row hold partial sums over different keys. */
  lA += __shfl_xor_sync(0xffffffffu, lA, 1);
  lA += __shfl_xor_sync(0xffffffffu, lA, 2);
  lB += __shfl_xor_sync(0xffffffffu, lB, 1);
  lB += __shfl_xor_sync(0xffffffffu, lB, 2);
  if (p.n_splits == 1) {
    T *out = static_cast<T *>(p.out);
    const float iA = 1.0f / lA, iB = 1.0f / lB;
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      const int col = dt * 8 + 2 * tq;
      if (vA) *reinterpret_cast<uint32_t *>(out + qrowA * HD + col) = Op::pack(o[dt][0] * iA, o[dt][1] * iA);
      if (vB) *reinterpret_cast<uint32_t *>(out + qrowB * HD + col) = Op::pack(o[dt][2] * iB, o[dt][3] * iB);
    }
  } else {
    /* Normalised partial output and its log-sum-exp (base 2); an empty row
     * (every key of this split masked) gets -inf and zeros. */
    const size_t split_off = (size_t)c.split * p.cap_nodes * p.n_heads;
    const float iA = lA > 0.0f ? 1.0f / lA : (lA == 0.0f ? 0.0f : deco_nan_canonical_f32());
    const float iB = lB > 0.0f ? 1.0f / lB : (lB == 0.0f ? 0.0f : deco_nan_canonical_f32());
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      const int col = dt * 8 + 2 * tq;
      if (vA)
        *reinterpret_cast<float2 *>(p.part_o + (split_off + qrowA) * HD + col) = make_float2(o[dt][0] * iA, o[dt][1] * iA);
      if (vB)
        *reinterpret_cast<float2 *>(p.part_o + (split_off + qrowB) * HD + col) = make_float2(o[dt][2] * iB, o[dt][3] * iB);
    }
    if (tq == 0) {
      const float sl2 = p.scale_log2; /* m is kept in raw score units */
      if (vA)
        p.part_lse[split_off + qrowA] =
            lA > 0.0f ? mA * sl2 + log2f(lA) : (lA == 0.0f ? -INFINITY : deco_nan_canonical_f32());
      if (vB)
        p.part_lse[split_off + qrowB] =
            lB > 0.0f ? mB * sl2 + log2f(lB) : (lB == 0.0f ? -INFINITY : deco_nan_canonical_f32());
    }
  }
}

/* 4 or 8 warps (blockDim.x = 32 * warps); register budget set for 8. A
 * CTA takes row tiles c.tile, c.tile + p.tiles, ... of its tree (one in tree
 * mode: the grid covers 256 nodes; causal sequences may need more). */
template <int HD, typename T>
__global__ void __launch_bounds__(32 * kMmaMaxWarps, 1) tree_attention_mma_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Cta c = cta_coords(p);
  /* The tree's node range and prefix length (independent loads). */
  TreeInfo ti;
  ti.t0 = p.tree_indptr[c.b];
  const int t1 = p.tree_indptr[c.b + 1];
  const int len = p.prefix_lens[c.b];
  const int max_n = p.causal ? p.cap_nodes : kMaxNodes;
  if (!(ti.t0 >= 0 && t1 > ti.t0 && t1 - ti.t0 <= max_n && t1 <= p.cap_nodes)) return;
  ti.n = t1 - ti.t0;
  ti.L = !p.causal ? len : (len < ti.n ? -1 : len - ti.n); /* -1: unusable, the rows become NaN */
  ti.bad = 0;
  const long long rows_total = (long long)ti.n * p.group, rows_per_cta = (blockDim.x >> 5) * 16;
  for (int tile = c.tile;; tile += p.tiles) {
    const long long row0 = tile * rows_per_cta;
    if (row0 >= rows_total) return;
    if (tile != c.tile) __syncthreads(); /* the last tile's readers of shared memory are done */
    mma_rows<HD, T>(p, c, ti, (int)row0, smem_raw);
  }
}

/* The deepest ring, at most kMmaMaxStages, whose shared memory fits in
 * `optin` bytes; 2 stages (86 KiB at head dim 128) fit on every device the
 * library builds for. */
template <int HD> int mma_deepest_ring(int optin) {
  int stages = kMmaMaxStages;
  while (stages > 2 && mma_smem_bytes<HD>(stages) > (size_t)optin) --stages;
  return stages;
}

/* Host side: once per device, finds the deepest ring the device holds and
 * raises the kernel's dynamic shared-memory limit to it; then launches grid
 * (n_trees * n_kv * tiles, n_splits) with the plan's ring cut to that depth
 * (the plan's 4 stages need 154 KiB at head dim 128, more than sm_86/89/120
 * give a block). */
template <int HD, typename T>
cudaError_t tree_attention_mma_launch(const Params &p, const Plan &plan, cudaStream_t stream) {
  static std::atomic<int> deepest[64];
  int max_stages = 0;
  const cudaError_t err = deco_cuda_once_per_device(deepest, &max_stages, [](int, int *stages) {
    int optin = 0;
    const cudaError_t e = deco_cuda_smem_optin(&optin);
    if (e != cudaSuccess) return e;
    *stages = mma_deepest_ring<HD>(optin);
    return cudaFuncSetAttribute(tree_attention_mma_kernel<HD, T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)mma_smem_bytes<HD>(*stages));
  });
  if (err != cudaSuccess) return err;
  Params q = p;
  q.stages = plan.stages < max_stages ? plan.stages : max_stages;
  dim3 grid((unsigned)(p.n_trees * p.n_kv * plan.tiles), (unsigned)plan.n_splits);
  tree_attention_mma_kernel<HD, T><<<grid, 32 * plan.warps, mma_smem_bytes<HD>(q.stages), stream>>>(q);
  return cudaGetLastError();
}

}  // namespace deco_tree

#endif
