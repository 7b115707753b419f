/* host/util/bytes.h — library-private: the little-endian fields of the
 * library's own file formats (recycling states, n-gram tables) and the
 * FNV-1a 64 hash they and the tokenizers use. Byte by byte, so the formats
 * read the same on any host.
 */
#ifndef DECO_HOST_UTIL_BYTES_H
#define DECO_HOST_UTIL_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t deco_get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t deco_get_u64(const unsigned char *p) {
  return (uint64_t)deco_get_u32(p) | (uint64_t)deco_get_u32(p + 4) << 32;
}
static inline void deco_put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void deco_put_u64(unsigned char *p, uint64_t v) {
  deco_put_u32(p, (uint32_t)v);
  deco_put_u32(p + 4, (uint32_t)(v >> 32));
}

/* FNV-1a 64: any single changed byte changes the result (each step is a
 * bijection of the running value). */
static inline uint64_t deco_fnv1a64(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

#endif
