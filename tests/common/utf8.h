/* tests/common/utf8.h — byte-level BPE test helpers written independently
 * of the library's own code (header-only, no Criterion, so the fuzzers use
 * them too): GPT-2's byte-to-character map and a strict UTF-8 check. */
#ifndef DECO_TEST_UTF8_H
#define DECO_TEST_UTF8_H

#include <stddef.h>

/* GPT-2's byte-level character of byte c (0..255), as UTF-8 into o (2 bytes
 * room); returns its length. Printable bytes stand for themselves, the
 * others for U+0100 on, in byte order. */
static inline size_t deco_test_byte_char(int c, char *o) {
  int cp = c;
  if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) {
    int k = 0;
    for (int x = 0; x < c; ++x)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++k;
    cp = 256 + k;
  }
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  o[0] = (char)(0xC0 | (cp >> 6));
  o[1] = (char)(0x80 | (cp & 0x3F));
  return 2;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
static inline int deco_test_valid_utf8(const void *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (!k || i + k > n) return 0;
    for (size_t j = 1; j < k; ++j)
      if ((u[i + j] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] > 0x9F) || (c == 0xF0 && u[i + 1] < 0x90) ||
        (c == 0xF4 && u[i + 1] > 0x8F))
      return 0;
    i += k;
  }
  return 1;
}

#endif
