/* tests/common/randtree.c — see randtree.h. */
#include "common/randtree.h"

uint64_t deco_test_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int deco_test_rng_int(uint64_t *s, int lo, int hi) { return lo + (int)(deco_test_rng_next(s) % (uint64_t)(hi - lo + 1)); }

void deco_test_random_tree(uint64_t *s, int n, int shape, int32_t *parent) {
  parent[0] = -1;
  for (int i = 1; i < n; ++i) {
    switch (shape % 5) {
    case 0: parent[i] = deco_test_rng_int(s, 0, i - 1); break;                 /* bushy */
    case 1: parent[i] = i - 1; break;                                          /* chain */
    case 2: parent[i] = 0; break;                                              /* star */
    case 3: parent[i] = deco_test_rng_int(s, i > 3 ? i - 3 : 0, i - 1); break; /* deep */
    default: parent[i] = (i - 1) / 3; break;                                   /* 3-ary, breadth first */
    }
  }
}
