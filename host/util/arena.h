/* host/util/arena.h — library-private: carving one allocation into typed
 * buffers. A layout is written once, as a function that takes every buffer
 * from an arena in order; run over an arena with no base it only sizes
 * (every pointer NULL, arena.bytes the total), run over the allocated base
 * (or over a host image of the same block) it carves. One walk, so sizes,
 * offsets and pointers cannot disagree.
 *
 *   deco_arena_t a = DECO_ARENA_SIZING;  layout(&a, &bufs, dims);   // a.bytes
 *   deco_malloc(ctx, &base, a.bytes);
 *   a = deco_arena_at(base);             layout(&a, &bufs, dims);   // pointers
 */
#ifndef DECO_HOST_UTIL_ARENA_H
#define DECO_HOST_UTIL_ARENA_H

#include <stddef.h>

typedef struct deco_arena {
  char *base;   /* NULL while sizing */
  size_t bytes; /* taken so far */
} deco_arena_t;

#define DECO_ARENA_SIZING ((deco_arena_t){.base = NULL, .bytes = 0})

static inline deco_arena_t deco_arena_at(void *base) { return (deco_arena_t){.base = (char *)base, .bytes = 0}; }

/* count elements of elem_bytes at the next multiple of align (a power of
 * two); NULL while sizing. */
static inline void *deco_arena_take(deco_arena_t *a, size_t count, size_t elem_bytes, size_t align) {
  size_t at = (a->bytes + align - 1) & ~(align - 1);
  a->bytes = at + count * elem_bytes;
  return a->base ? a->base + at : NULL;
}

/* Whole buffers (activations, tables) start on 256 bytes, as deco_malloc's
 * own allocations do, so vector loads and library kernels see the same
 * alignment whether a buffer is carved or allocated alone. */
#define DECO_ARENA_ALIGN 256

#endif
