/* kernels/verify/accept_common.h — scalar pieces of tree acceptance that the
 * C references and the CUDA kernels must compute identically (DECO_HD):
 * the rank key of a logit, the target weight w = exp2((l - max) * c), and the
 * fixed-point scale the GPU uses for its order-independent sums.
 */
#ifndef DECO_KERNELS_VERIFY_ACCEPT_COMMON_H
#define DECO_KERNELS_VERIFY_ACCEPT_COMMON_H

#include <stdint.h>

#include "deco/philox.h" /* DECO_HD */

/* log2(e): weights are exp2((l - m) * c) with c = DECO_ACCEPT_LOG2E / T, in fp32. */
#define DECO_ACCEPT_LOG2E 1.44269504088896340736f

/* Order-preserving u32 image of a logit (larger logit -> larger key), with
 * -0 folded onto +0 so the key agrees with float comparison. Tokens are
 * ranked by (key desc, id asc): that is the order of top-k and top-p. */
DECO_HD uint32_t deco_accept_ord(float x) {
  union {
    float f;
    uint32_t u;
  } v;
  v.f = x;
  if (x == 0.0f) v.u = 0u;
  return (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);
}

/* Inverse of deco_accept_ord (for keys produced by it). */
DECO_HD float deco_accept_unord(uint32_t k) {
  union {
    float f;
    uint32_t u;
  } v;
  v.u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  return v.f;
}

/* Target weight of a logit given the row maximum m and c = log2(e) / T. */
DECO_HD float deco_accept_weight(float logit, float m, float c) {
  return exp2f((logit - m) * c);
}

/* Fractional bits of the GPU's fixed-point sums of values in [0, 2]:
 * 61 - ceil(log2(vocab)), so a whole row of them fits in 63 bits. */
DECO_HD int deco_accept_fixed_bits(int vocab) {
  int b = 0;
  while (b < 31 && (1 << b) < vocab) ++b;
  return 61 - b;
}

#endif
