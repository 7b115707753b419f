/* kernels/verify/tree_accept_sample.cu — lossless stochastic acceptance over
 * a ragged batch of draft trees (Leviathan et al.; Chen et al.; SpecInfer /
 * recursive rejection sampling), the rule of tree_accept_sample_ref.c.
 * logits [n_nodes][vocab] f32 or bf16, draft_probs [n_nodes][vocab] f32.
 *
 * One launch: a team of G CTAs per request (a cluster, G <= 8, on sm_90; 1
 * elsewhere) walks the tree depth by depth, each CTA owning a vocabulary
 * slice, so only the rows the decisions need are read: the logits of the
 * accepted path (a stats pass: max, top token, sum of exp2 weights in fp64)
 * plus, with top-k / top-p, radix-select passes over the same rows (L2-hot:
 * 4-bit digits of the rank key, counts and fixed-point weight sums per
 * digit, stopping as soon as the cut is one token), a residual pass per
 * rejection (draft row q) and one bonus pass (inverse CDF in id order: slice
 * totals, then one thread rescans its segment). The trade-off against one
 * wide pass over every node: the walk reads ~accept_len rows instead of n,
 * at the price of a team barrier per reduction (~1-2 us each). Sums that
 * decide are fixed-point u64 (order-independent, so deterministic); CHAIN is
 * run as TREE_WITH_REPLACEMENT (the <= 1 child check is the reference's).
 * A malformed tree gets accept_len 0, bonus -1, path -1. A row that holds a
 * NaN or an infinity ends the walk at its node (bonus: the id of its largest
 * logit, NaN skipped) and sets the non-finite flag. No workspace.
 */
#include <cuda_runtime.h>

#include "common/op_impl.h"
#include "deco/philox.h"
#include "verify/accept_common.h"
#include "verify/accept_device.cuh"

namespace {

struct sample_params {
  deco_tree_batch_t tree;
  const int32_t *tokens;
  const void *logits;
  int vocab;
  float temperature;
  int top_k;
  float top_p;
  int kind;
  const float *q;
  const uint64_t *seed;
  const uint32_t *offset;
  deco_tree_verify_out_t out;
};

struct sample_smem {
  acc_tree tree;
  acc_xch xch;
  acc_red red;
  uint32_t h_cnt[ACC_WARPS][16];
  unsigned long long h_sum[ACC_WARPS][16];
  uint32_t h_min[ACC_WARPS][16];
  uint64_t bins[3][16]; /* team-combined count, sum, min id */
  int path[DECO_TREE_MAX_NODES];
  int rej_x[DECO_TREE_MAX_NODES];    /* rejected tokens at the current node, in order */
  double rej_qs[DECO_TREE_MAX_NODES]; /* q scale used at that trial (1 / D_i, or 0) */
  double rej_Z[DECO_TREE_MAX_NODES];  /* residual normaliser, <= 0 = update skipped */
  uint64_t seg[2 * ACC_WARPS];
  int found;
};

/* The target at the current node: support = keys >= (cut_ord, cut_id). */
struct target {
  float m, c;
  int top;
  int nonfinite; /* the row holds a NaN or an infinity */
  double S;
  int filtered;
  uint32_t cut_ord;
  int cut_id;
};

__device__ __forceinline__ bool in_support(const target &t, float l, int y) {
  if (!t.filtered) return true;
  uint32_t o = deco_float_key(l);
  return o > t.cut_ord || (o == t.cut_ord && y <= t.cut_id);
}

/* Online softmax statistics of a row over the team: max, top token, and
 * S = sum of exp2((l - m) * c) in fp64. */
template <typename T>
__device__ void stats_pass(const T *row, int lo, int hi, float c, sample_smem *sm, target &t) {
  float m = -INFINITY;
  int id = 0x7fffffff;
  double s = 0.0;
  int bad = 0;
  acc_for_each(row, lo, hi, [&](int i, float l) {
    bad |= !isfinite(l);
    if (l > m) {
      s = s * (double)exp2f((m - l) * c);
      m = l;
      id = i;
    } else if (l == m && i < id) {
      id = i;
    }
    s += (double)exp2f((l - m) * c);
  });
  bad = __syncthreads_or(bad);
  float bm = m;
  int bid = id;
  acc_block_argmax(bm, bid, &sm->red);
  /* block sum of s rescaled to the block max, fixed order */
  double sv = m == -INFINITY ? 0.0 : s * (double)exp2f((m - bm) * c);
  for (int o = 16; o > 0; o >>= 1) sv += __shfl_down_sync(0xffffffffu, sv, o);
  __syncthreads();
  if (threadIdx.x % 32 == 0) sm->red.d[threadIdx.x / 32] = sv;
  __syncthreads();
  if (threadIdx.x == 0) {
    double bs = 0.0;
    for (int k = 0; k < ACC_WARPS; ++k) bs += sm->red.d[k];
    acc_xch_slot(&sm->xch)[0] = acc_f2u(bm);
    acc_xch_slot(&sm->xch)[1] = (uint64_t)(uint32_t)bid;
    acc_xch_slot(&sm->xch)[2] = acc_d2u(bs);
    acc_xch_slot(&sm->xch)[3] = (uint64_t)bad;
  }
  acc_xch_publish(&sm->xch);
  acc_team tm = acc_team_get();
  float M = -INFINITY;
  int top = 0x7fffffff;
  t.nonfinite = 0;
  for (int r = 0; r < tm.size; ++r) {
    float rv = acc_u2f(acc_xch_read(&sm->xch, r, 0));
    int ri = (int)(uint32_t)acc_xch_read(&sm->xch, r, 1);
    t.nonfinite |= acc_xch_read(&sm->xch, r, 3) != 0;
    if (rv > M || (rv == M && ri < top)) {
      M = rv;
      top = ri;
    }
  }
  double S = 0.0;
  for (int r = 0; r < tm.size; ++r) {
    float rv = acc_u2f(acc_xch_read(&sm->xch, r, 0));
    double rs = acc_u2d(acc_xch_read(&sm->xch, r, 2));
    if (rv != -INFINITY) S += rs * (double)exp2f((rv - M) * c);
  }
  acc_xch_done(&sm->xch);
  t.m = M;
  t.top = top;
  t.S = S;
}

/* One 16-bin histogram pass of the radix select over the candidates: keys
 * whose resolved bits match (phase 0: the rank key's bits under ord_mask;
 * phase 1: the key equals cut_ord and the inverted id's bits under id_mask),
 * and, if has_low, keys >= (low_ord, low_id). Bins combined over the team
 * into sm->bins. */
template <typename T>
__device__ void hist_pass(const T *row, int lo, int hi, const target &t, double scale, int vocab, int phase,
                          uint32_t ord_prefix, uint32_t ord_mask, uint32_t id_prefix, uint32_t id_mask, int shift,
                          bool has_low, uint32_t low_ord, int low_id, sample_smem *sm) {
  const int w = threadIdx.x / 32;
  for (int i = threadIdx.x; i < ACC_WARPS * 16; i += blockDim.x) {
    sm->h_cnt[i / 16][i % 16] = 0;
    sm->h_sum[i / 16][i % 16] = 0;
    sm->h_min[i / 16][i % 16] = 0xffffffffu;
  }
  __syncthreads();
  acc_for_each(row, lo, hi, [&](int y, float l) {
    uint32_t o = deco_float_key(l);
    if (has_low && !(o > low_ord || (o == low_ord && y <= low_id))) return;
    uint32_t d;
    if (phase == 0) {
      if ((o & ord_mask) != ord_prefix) return;
      d = (o >> shift) & 15u;
    } else {
      uint32_t k = (uint32_t)(vocab - 1 - y);
      if (o != ord_prefix || (k & id_mask) != id_prefix) return;
      d = (k >> shift) & 15u;
    }
    atomicAdd(&sm->h_cnt[w][d], 1u);
    atomicAdd(&sm->h_sum[w][d], (unsigned long long)acc_fixed((double)deco_accept_weight(l, t.m, t.c), scale));
    atomicMin(&sm->h_min[w][d], (uint32_t)y);
  });
  __syncthreads();
  if (threadIdx.x < 16) {
    uint64_t cnt = 0, sum = 0;
    uint32_t mn = 0xffffffffu;
    for (int k = 0; k < ACC_WARPS; ++k) {
      cnt += sm->h_cnt[k][threadIdx.x];
      sum += sm->h_sum[k][threadIdx.x];
      mn = min(mn, sm->h_min[k][threadIdx.x]);
    }
    uint64_t *slot = acc_xch_slot(&sm->xch);
    slot[threadIdx.x] = cnt;
    slot[16 + threadIdx.x] = sum;
    slot[32 + threadIdx.x] = mn;
  }
  acc_xch_publish(&sm->xch);
  acc_team tm = acc_team_get();
  if (threadIdx.x < 16) {
    uint64_t cnt = 0, sum = 0, mn = 0xffffffffu;
    for (int r = 0; r < tm.size; ++r) {
      cnt += acc_xch_read(&sm->xch, r, threadIdx.x);
      sum += acc_xch_read(&sm->xch, r, 16 + threadIdx.x);
      mn = min(mn, acc_xch_read(&sm->xch, r, 32 + threadIdx.x));
    }
    sm->bins[0][threadIdx.x] = cnt;
    sm->bins[1][threadIdx.x] = sum;
    sm->bins[2][threadIdx.x] = mn;
  }
  acc_xch_done(&sm->xch); /* its barriers also publish sm->bins to the block */
}

/* The digit a radix pass keeps, from the team-combined bins, highest digit
 * first: top-k (mode 0) the bin holding the krem-th ranked key (krem and
 * the kept mass `above` lose the bins above it); top-p (mode 1) the lowest
 * bin whose strictly-higher mass is still < thr (`above` becomes that mass).
 * 0 when no bin qualifies (unreachable for consistent counts). */
__device__ __forceinline__ int choose_digit(const sample_smem *sm, int mode, long long &krem, uint64_t &above,
                                            double thr) {
  int chosen = -1;
  if (mode == 0) {
    for (int d = 15; d >= 0; --d) {
      if ((long long)sm->bins[0][d] >= krem) {
        chosen = d;
        break;
      }
      krem -= (long long)sm->bins[0][d];
      above += sm->bins[1][d];
    }
  } else {
    uint64_t A = above, Achosen = above;
    for (int d = 15; d >= 0; --d) {
      if (sm->bins[0][d] == 0) continue;
      if ((double)A < thr) {
        chosen = d;
        Achosen = A;
        A += sm->bins[1][d];
      } else {
        break;
      }
    }
    above = Achosen;
  }
  return chosen < 0 ? 0 : chosen;
}

/* Radix select of a cut key. mode 0 (top-k): the k-th ranked key. mode 1
 * (top-p): the lowest key whose strictly-higher weight sum is < p * total,
 * among keys >= the low cut when has_low. Returns the cut and, in *sum_keep,
 * the fixed-point weight sum of the keys >= the cut (with *sum_all, the sum of
 * all candidates of the first pass). */
template <typename T>
__device__ void radix_select(const T *row, int lo, int hi, const target &t, double scale, int vocab, bool bf16,
                             int mode, int k, double p, bool has_low, uint32_t low_ord, int low_id, sample_smem *sm,
                             uint32_t &cut_ord, int &cut_id, uint64_t &sum_keep) {
  uint32_t prefix = 0, mask = 0;
  uint64_t above = 0;
  long long krem = k;
  double thr = 0.0;
  bool first = true;
  const int min_shift = bf16 ? 16 : 0;
  /* value digits */
  for (int shift = 28; shift >= min_shift; shift -= 4) {
    hist_pass(row, lo, hi, t, scale, vocab, 0, prefix, mask, 0, 0, shift, has_low, low_ord, low_id, sm);
    if (first && mode == 1) {
      uint64_t tot = 0;
      for (int d = 0; d < 16; ++d) tot += sm->bins[1][d];
      thr = p * (double)tot;
    }
    first = false;
    const int chosen = choose_digit(sm, mode, krem, above, thr);
    prefix |= (uint32_t)chosen << shift;
    mask |= 15u << shift;
    if (sm->bins[0][chosen] == 1) {
      /* one candidate left: its id is the bin's minimum; read its key */
      cut_id = (int)sm->bins[2][chosen];
      cut_ord = deco_float_key(acc_load(row, cut_id));
      sum_keep = above + sm->bins[1][chosen];
      return;
    }
  }
  if (bf16) prefix |= (prefix & 0x80000000u) ? 0u : 0xffffu;
  cut_ord = prefix;
  /* tied values: digits of the inverted id */
  int bits = 0;
  while (bits < 31 && (1 << bits) < vocab) ++bits;
  uint32_t idp = 0, idm = 0;
  for (int shift = ((bits + 3) / 4) * 4 - 4; shift >= 0; shift -= 4) {
    hist_pass(row, lo, hi, t, scale, vocab, 1, prefix, 0, idp, idm, shift, has_low, low_ord, low_id, sm);
    const int chosen = choose_digit(sm, mode, krem, above, thr);
    idp |= (uint32_t)chosen << shift;
    idm |= 15u << shift;
    if (sm->bins[0][chosen] == 1 || shift == 0) {
      cut_id = (int)sm->bins[2][chosen];
      sum_keep = above + sm->bins[1][chosen];
      return;
    }
  }
}

/* Residual r_k(y) after the first k rejections at this node (not DETERMINISTIC). */
__device__ __forceinline__ double residual(const target &t, float l, int y, float qy, int k, bool without,
                                           const sample_smem *sm) {
  double r = in_support(t, l, y) ? (double)deco_accept_weight(l, t.m, t.c) / t.S : 0.0;
  bool ex = false;
  for (int i = 0; i < k; ++i) {
    double qi = ex ? 0.0 : (double)qy * sm->rej_qs[i];
    double Z = sm->rej_Z[i];
    if (Z > 0.0) {
      double d = r - qi;
      r = d > 0.0 ? d / Z : 0.0;
    }
    if (without && y == sm->rej_x[i]) ex = true;
  }
  return r;
}

__device__ __forceinline__ bool rejected_before(const sample_smem *sm, int k, int x) {
  for (int i = 0; i < k; ++i)
    if (sm->rej_x[i] == x) return true;
  return false;
}

/* One CTA per SM is all a team uses: saying so lets ptxas give a thread
 * 128 registers on sm_8x too, where it otherwise aimed at two CTAs (64
 * registers) and spilled; the sm_90a code is byte-identical either way. */
template <typename T>
__global__ void __launch_bounds__(ACC_THREADS, 1) tree_accept_sample_kernel(sample_params P) {
  __shared__ sample_smem sm;
  const acc_team tm = acc_team_get();
  const int b = blockIdx.x / tm.size;
  if (!acc_begin(P.tree, P.out, b, tm, &sm.tree, &sm.xch)) return;
  const int node0 = sm.tree.node0, V = P.vocab;
  int lo, hi;
  acc_chunk(V, tm, lo, hi);
  const uint64_t seed = *P.seed;
  const uint32_t offset = *P.offset;
  const double scale = exp2((double)deco_accept_fixed_bits(V));
  const bool det = P.kind == DECO_DRAFT_DETERMINISTIC;
  const bool without = P.kind == DECO_DRAFT_TREE_WITHOUT_REPLACEMENT;
  const bool bf16 = sizeof(T) == 2;
  const int k_eff = (P.top_k > 0 && P.top_k < V) ? P.top_k : V;
  const bool use_k = k_eff < V, use_p = P.top_p < 1.0f;
  target t;
  t.c = DECO_ACCEPT_LOG2E / P.temperature;
  int v = 0, len = 1, bonus = -1, nonfinite = 0;
  if (threadIdx.x == 0) sm.path[0] = 0;
  for (;;) {
    const T *row = (const T *)P.logits + (size_t)(node0 + v) * V;
    stats_pass(row, lo, hi, t.c, &sm, t);
    if (t.nonfinite) {
      /* No distribution to sample: the path ends here, the bonus is the
       * row's largest number (NaN skipped), and the caller is told. */
      nonfinite = v + 1;
      bonus = t.top == 0x7fffffff ? 0 : t.top;
      break;
    }
    t.filtered = 0;
    if (use_k || use_p) {
      uint32_t ko = 0, po = 0;
      int kid = 0, pid = 0;
      uint64_t ksum = 0, psum = 0;
      if (use_k) {
        radix_select(row, lo, hi, t, scale, V, bf16, 0, k_eff, 0.0, false, 0u, 0, &sm, ko, kid, ksum);
      }
      if (use_p) {
        radix_select(row, lo, hi, t, scale, V, bf16, 1, 0, (double)P.top_p, use_k, ko, kid, &sm, po, pid, psum);
        t.cut_ord = po;
        t.cut_id = pid;
        t.S = (double)psum / scale;
      } else {
        t.cut_ord = ko;
        t.cut_id = kid;
        t.S = (double)ksum / scale;
      }
      t.filtered = 1;
    }
    const float *q = det ? nullptr : P.q + (size_t)(node0 + v) * V;
    acc_tree_children(&sm.tree, v);
    int nrej = 0;        /* rejections recorded at this node */
    double WX = t.S;     /* DETERMINISTIC: weight left after removing X */
    double D = 1.0;      /* WITHOUT: normaliser of q_i */
    int accepted = -1;
    for (int c = acc_tree_next_child(&sm.tree, -1); c >= 0 && accepted < 0; c = acc_tree_next_child(&sm.tree, c)) {
      const int x = P.tokens[node0 + c];
      if (x < 0 || x >= V) continue;
      const double u = (double)deco_philox_uniform(seed, offset, (uint32_t)b, (uint32_t)c, 0);
      const float lx = acc_load(row, x);
      if (det) {
        bool live = in_support(t, lx, x) && !rejected_before(&sm, nrej, x);
        double wx = (double)deco_accept_weight(lx, t.m, t.c);
        double px = (live && WX > 0.0) ? wx / WX : 0.0;
        if (u < px) {
          accepted = c;
        } else if (live) {
          __syncthreads(); /* everyone has read rej_x before it grows */
          if (threadIdx.x == 0) sm.rej_x[nrej] = x;
          __syncthreads();
          ++nrej;
          WX -= wx;
        }
        continue;
      }
      const double qs = without ? (D > 0.0 ? 1.0 / D : 0.0) : 1.0;
      const float qx_raw = __ldg(q + x);
      const bool ex = without && rejected_before(&sm, nrej, x);
      const double qx = ex ? 0.0 : (double)qx_raw * qs;
      const double px = residual(t, lx, x, qx_raw, nrej, without, &sm);
      if (u * qx < px) {
        accepted = c;
        continue;
      }
      /* rejection: Z = sum_y max(0, r(y) - q_i(y)) over the row */
      uint64_t zpart = 0;
      acc_for_each(row, lo, hi, [&](int y, float l) {
        float qy = __ldg(q + y);
        double r = residual(t, l, y, qy, nrej, without, &sm);
        bool exy = without && rejected_before(&sm, nrej, y);
        double d = r - (exy ? 0.0 : (double)qy * qs);
        zpart += acc_fixed(d, scale);
      });
      uint64_t Zf = acc_team_sum_u64(zpart, &sm.xch, &sm.red);
      if (threadIdx.x == 0) {
        sm.rej_x[nrej] = x;
        sm.rej_qs[nrej] = qs;
        sm.rej_Z[nrej] = (double)Zf / scale;
      }
      __syncthreads();
      ++nrej;
      if (without && !ex) D -= (double)qx_raw;
    }
    if (accepted >= 0) {
      v = accepted;
      if (threadIdx.x == 0) sm.path[len] = v;
      ++len;
      continue;
    }
    /* bonus: inverse CDF of the current weights, in id order */
    const bool resid = !det && nrej > 0;
    auto weight = [&](int y, float l) -> double {
      if (det) return (in_support(t, l, y) && !rejected_before(&sm, nrej, y)) ? (double)deco_accept_weight(l, t.m, t.c)
                                                                               : 0.0;
      if (resid) return residual(t, l, y, __ldg(q + y), nrej, without, &sm);
      return in_support(t, l, y) ? (double)deco_accept_weight(l, t.m, t.c) : 0.0;
    };
    const int seg_len = (hi - lo + (int)blockDim.x - 1) / (int)blockDim.x;
    const int s0 = min(hi, lo + (int)threadIdx.x * seg_len), s1 = min(hi, s0 + seg_len);
    uint64_t mine = 0;
    for (int y = s0; y < s1; ++y) mine += acc_fixed(weight(y, acc_load(row, y)), scale);
    /* block exclusive scan of the segment sums (warp shuffles, then warp totals) */
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    uint64_t incl = mine;
    for (int o = 1; o < 32; o <<= 1) {
      uint64_t y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    __syncthreads();
    if (lane == 31) sm.seg[warp] = incl;
    __syncthreads();
    if (warp == 0) {
      uint64_t w = lane < ACC_WARPS ? sm.seg[lane] : 0;
      for (int o = 1; o < 32; o <<= 1) {
        uint64_t y = __shfl_up_sync(0xffffffffu, w, o);
        if (lane >= o) w += y;
      }
      if (lane < ACC_WARPS) sm.seg[ACC_WARPS + lane] = w;
    }
    __syncthreads();
    const uint64_t excl = incl - mine + (warp > 0 ? sm.seg[ACC_WARPS + warp - 1] : 0);
    if (threadIdx.x == 0) acc_xch_slot(&sm.xch)[0] = sm.seg[2 * ACC_WARPS - 1];
    acc_xch_publish(&sm.xch);
    uint64_t before = 0, total = 0;
    for (int r = 0; r < tm.size; ++r) {
      uint64_t s = acc_xch_read(&sm.xch, r, 0);
      if (r < tm.rank) before += s;
      total += s;
    }
    acc_xch_done(&sm.xch);
    const double ub = (double)deco_philox_uniform(seed, offset, (uint32_t)b, (uint32_t)v, 1);
    int found = 0x7fffffff;
    if (total > 0) {
      uint64_t thr = (uint64_t)(ub * (double)total);
      if (thr >= total) thr = total - 1;
      uint64_t cum = before + excl;
      if (thr >= cum && thr < cum + mine) {
        for (int y = s0; y < s1; ++y) {
          cum += acc_fixed(weight(y, acc_load(row, y)), scale);
          if (cum > thr) {
            found = y;
            break;
          }
        }
      }
    }
    /* team minimum of the found id (one thread of one rank finds it) */
    __syncthreads();
    if (threadIdx.x == 0) sm.found = 0x7fffffff;
    __syncthreads();
    if (found != 0x7fffffff) atomicMin(&sm.found, found);
    __syncthreads();
    if (threadIdx.x == 0) acc_xch_slot(&sm.xch)[0] = (uint64_t)(uint32_t)sm.found;
    acc_xch_publish(&sm.xch);
    int best = 0x7fffffff;
    for (int r = 0; r < tm.size; ++r) best = min(best, (int)acc_xch_read(&sm.xch, r, 0));
    acc_xch_done(&sm.xch);
    bonus = best == 0x7fffffff ? t.top : best;
    break;
  }
  acc_finish(P.out, b, tm, sm.path, len, bonus, nonfinite);
}

}  // namespace

extern "C" size_t deco_tree_accept_sample_workspace_size_cuda(const deco_exec_t *exec,
                                                              const deco_tree_accept_sample_args_t *a) {
  (void)exec;
  (void)a;
  return 0; /* teams exchange partials through distributed shared memory */
}

extern "C" deco_status_t deco_tree_accept_sample_cuda(const deco_exec_t *exec,
                                                      const deco_tree_accept_sample_args_t *a) {
  sample_params p;
  p.tree = a->tree;
  p.tokens = a->tokens;
  p.logits = a->logits;
  p.vocab = a->vocab;
  p.temperature = a->temperature;
  p.top_k = a->top_k;
  p.top_p = a->top_p;
  p.kind = a->draft_kind == DECO_DRAFT_CHAIN ? DECO_DRAFT_TREE_WITH_REPLACEMENT : a->draft_kind;
  p.q = a->draft_probs;
  p.seed = a->seed;
  p.offset = a->offset;
  p.out = a->out;
  return acc_run(exec, "deco_tree_accept_sample", tree_accept_sample_kernel<float>,
                 tree_accept_sample_kernel<__nv_bfloat16>, a->logits_dtype, a->tree.n_trees, a->vocab, p);
}
