/* kernels/verify/accept_common.h — scalar pieces of tree acceptance that the
 * C references and the CUDA kernels must compute identically
 * (DECO_KERNEL_HD): the target weight w = exp2((l - max) * c) and the
 * fixed-point scale the GPU uses for its order-independent sums. Tokens
 * rank by (deco_float_key(logit) desc, id asc), common/float_key.h: that is
 * the order of top-k and top-p.
 */
#ifndef DECO_KERNELS_VERIFY_ACCEPT_COMMON_H
#define DECO_KERNELS_VERIFY_ACCEPT_COMMON_H

#include <math.h>
#include <stdint.h>

#include "common/float_key.h"
#include "common/hd.h"

/* log2(e): weights are exp2((l - m) * c) with c = DECO_ACCEPT_LOG2E / T, in fp32. */
#define DECO_ACCEPT_LOG2E 1.44269504088896340736f

/* Target weight of a logit given the row maximum m and c = log2(e) / T. */
DECO_KERNEL_HD float deco_accept_weight(float logit, float m, float c) {
  return exp2f((logit - m) * c);
}

/* Fractional bits of the GPU's fixed-point sums of values in [0, 2]:
 * 61 - ceil(log2(vocab)), so a whole row of them fits in 63 bits. */
DECO_KERNEL_HD int deco_accept_fixed_bits(int vocab) {
  int b = 0;
  while (b < 31 && (1 << b) < vocab) ++b;
  return 61 - b;
}

#endif
