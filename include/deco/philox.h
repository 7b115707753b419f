/* deco/philox.h — Philox4x32-10 (Salmon et al., SC'11, "Parallel random
 * numbers: as easy as 1, 2, 3"), the one generator of the project.
 *
 * Header-only and identical in C and CUDA, so the CPU and GPU make the same
 * draws. Counter words, by convention: (seed offset, request, node, draw
 * index); key = the 64-bit seed (low word first). Integer arithmetic only;
 * the uniform conversion below is exact in fp32, so it is bit-identical too.
 */
#ifndef DECO_PHILOX_H
#define DECO_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define DECO_HD __host__ __device__ __forceinline__
#else
#define DECO_HD static inline
#endif

typedef struct deco_philox_u32x4 {
  uint32_t v[4];
} deco_philox_u32x4_t;

DECO_HD uint32_t deco_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

/* Ten rounds of Philox4x32 on counter (c0..c3) with key (k0, k1). */
DECO_HD deco_philox_u32x4_t deco_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                               uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = deco_philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = deco_philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u; /* golden ratio */
    k1 += 0xBB67AE85u; /* sqrt(3) - 1 */
  }
  deco_philox_u32x4_t r;
  r.v[0] = c0;
  r.v[1] = c1;
  r.v[2] = c2;
  r.v[3] = c3;
  return r;
}

/* Uniform float in [0, 1) from the top 24 bits of a word (exact in fp32). */
DECO_HD float deco_philox_to_unit(uint32_t x) {
  return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* The project's convention: one uniform per (seed, offset, request, node, draw). */
DECO_HD float deco_philox_uniform(uint64_t seed, uint32_t offset, uint32_t request, uint32_t node,
                                  uint32_t draw) {
  deco_philox_u32x4_t r = deco_philox4x32_10(offset, request, node, draw, (uint32_t)seed,
                                             (uint32_t)(seed >> 32));
  return deco_philox_to_unit(r.v[0]);
}

#endif /* DECO_PHILOX_H */
