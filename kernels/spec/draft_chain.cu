/* kernels/spec/draft_chain.cu — deco_draft_chain on the GPU: one block; its
 * threads find the argmax of the last draft forward's last row (strided
 * scans, then a tree reduction under the shared total order of
 * draft_chain_common.h), and thread 0 writes the chain id and the next
 * forward's batch, as the reference does. Sampled chains (temperature > 0):
 * the block also sums z (the weights exp((x - max) / T) in f32 — double
 * exps would cost more than the row's reads on a large vocabulary — summed
 * strided in double, then a tree reduction), writes q,
 * sums q over contiguous chunks (one per thread), and thread 0 walks the
 * chunks' sums and then the one chunk where u * total falls — the header's
 * draw with the sums in another order than the reference's. Same contract
 * as draft_chain_ref.c; the argument struct is passed by value, its
 * pointers are device memory. A top-w tree's stage (width > 1) is one
 * thread's bookkeeping (draft_chain_common.h).
 */
#include "common/cuda_common.cuh"
#include "common/op_impl.h"
#include "spec/draft_chain_common.h"

#define CHAIN_THREADS 512

/* Sum of v over the block (every thread gets it). */
static __device__ double block_sum(double v, double *sd) {
  const int t = threadIdx.x;
  sd[t] = v;
  __syncthreads();
  for (int half = CHAIN_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) sd[t] += sd[t + half];
    __syncthreads();
  }
  const double s = sd[0];
  __syncthreads();
  return s;
}

/* q row of level a.stage and the id drawn from it (thread 0's return
 * value counts); best, bv: the row's argmax and its value. */
static __device__ int32_t sample(const deco_draft_chain_args_t &a, const float *row, int count, int32_t best,
                                 float bv, int has_nan, double *sd) {
  const int t = threadIdx.x, V = a.vocab;
  float *q = a.q + (size_t)(a.stage - 1) * (size_t)V;
  if (count == 0 || !deco_draft_chain_usable(bv, has_nan)) {
    const int32_t x = count > 0 ? best : 0;
    for (int i = t; i < V; i += CHAIN_THREADS) q[i] = i == x ? 1.0f : 0.0f;
    return x;
  }
  const float T = a.temperature;
  double part = 0;
  for (int i = t; i < V; i += CHAIN_THREADS) part += expf((row[i] - bv) / T);
  const double z = block_sum(part, sd);
  for (int i = t; i < V; i += CHAIN_THREADS) q[i] = (float)((double)expf((row[i] - bv) / T) / z);
  __syncthreads(); /* q written by the block is visible to it */
  const int chunk = (V + CHAIN_THREADS - 1) / CHAIN_THREADS;
  const int lo = t * chunk < V ? t * chunk : V, hi = lo + chunk < V ? lo + chunk : V;
  part = 0;
  for (int i = lo; i < hi; ++i) part += q[i];
  sd[t] = part;
  __syncthreads();
  int32_t x = best;
  if (t == 0) {
    double total = 0;
    for (int c = 0; c < CHAIN_THREADS; ++c) total += sd[c];
    const double target = (double)deco_draft_chain_uniform(&a, a.stage) * total;
    double cum = 0;
    for (int c = 0; c < CHAIN_THREADS; ++c) {
      if (!(cum + sd[c] > target)) {
        cum += sd[c];
        continue;
      }
      /* The draw lies in chunk c (its sum is positive); rounding aside,
       * its running sum crosses target, else its last positive id. */
      const int c0 = c * chunk, c1 = c0 + chunk < V ? c0 + chunk : V;
      for (int i = c0; i < c1; ++i) {
        if (q[i] <= 0.0f) continue;
        x = i;
        cum += q[i];
        if (cum > target) break;
      }
      break;
    }
  }
  return x;
}

static __global__ void __launch_bounds__(CHAIN_THREADS) draft_chain_kernel(deco_draft_chain_args_t a) {
  __shared__ float sv[CHAIN_THREADS];
  __shared__ int32_t si[CHAIN_THREADS];
  __shared__ double sd[CHAIN_THREADS];
  const int t = threadIdx.x;
  /* Every thread reads the count before thread 0 rewrites it (barrier below). */
  const int count = a.stage >= 1 ? a.q_indptr[1] : 0;
  const float *row = a.logits + (size_t)(count > 0 ? count - 1 : 0) * (size_t)a.vocab;
  float bv = 0.0f;
  int32_t bi = -1;
  int nan = 0;
  if (count > 0) {
    for (int i = t; i < a.vocab; i += CHAIN_THREADS) {
      const float v = row[i];
      nan |= v != v;
      if (bi < 0 || deco_draft_chain_above(v, i, bv, bi)) {
        bv = v;
        bi = i;
      }
    }
  }
  sv[t] = bv;
  si[t] = bi;
  const int has_nan = __syncthreads_or(nan);
  for (int half = CHAIN_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) {
      const int32_t oi = si[t + half];
      if (oi >= 0 && (si[t] < 0 || deco_draft_chain_above(sv[t + half], oi, sv[t], si[t]))) {
        sv[t] = sv[t + half];
        si[t] = oi;
      }
    }
    __syncthreads();
  }
  int32_t best = si[0] >= 0 ? si[0] : 0;
  if (a.stage >= 1 && a.temperature > 0.0f) best = sample(a, row, count, best, sv[0], has_nan, sd);
  if (t == 0) deco_draft_chain_finish(&a, count, best);
}

/* A top-w tree's stage: bookkeeping over at most 256 nodes, one thread
 * (the top-W ids come from deco_topk_rows). */
static __global__ void draft_tree_kernel(deco_draft_chain_args_t a) { deco_draft_tree_finish(&a); }

deco_status_t deco_draft_chain_cuda(const deco_exec_t *exec, const deco_draft_chain_args_t *a) {
  if (a->width > 1) {
    draft_tree_kernel<<<1, 1, 0, DECO_CUDA_STREAM(exec)>>>(*a);
    DECO_CUDA_CHECK_LAUNCH(exec, "draft_tree_kernel");
    return DECO_STATUS_SUCCESS;
  }
  draft_chain_kernel<<<1, CHAIN_THREADS, 0, DECO_CUDA_STREAM(exec)>>>(*a);
  DECO_CUDA_CHECK_LAUNCH(exec, "draft_chain_kernel");
  return DECO_STATUS_SUCCESS;
}
