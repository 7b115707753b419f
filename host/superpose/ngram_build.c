/* host/superpose/ngram_build.c — counting the n-grams of orders 2..6 of a
 * corpus of id sequences into superposed decoding's table (deco/superpose.h,
 * as the authors' n-gram models count their corpus: P_n(x | ctx) =
 * c(ctx, x) / c(ctx)). For each order the n-grams inside every sequence are
 * sorted, so equal contexts and followers become runs; the contexts are
 * ranked by c(ctx) and the rarest left out until the file fits the size
 * cap; the rest go into the hash table in a canonical order (by order, then
 * ids), so the same corpus always gives the same file.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "superpose/ngram_internal.h"

#define SEP (-1)                  /* between two sequences: no n-gram spans it */
#define MAX_CORPUS ((size_t)1 << 31) /* ids: every count fits 32 bits */
#define FIRST_SEED 0x243F6A8885A308D3ull

struct deco_ngram_builder {
  int vocab;
  int32_t *ids; /* every sequence, each followed by SEP */
  size_t n, cap;
  uint64_t tokens;
};

deco_status_t deco_ngram_builder_create(int vocab_size, deco_ngram_builder_t **out) {
  static const char op[] = "deco_ngram_builder_create";
  if (!out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: out is NULL", op);
  *out = NULL;
  if (vocab_size < 1 || vocab_size > (1 << 24))
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: vocab_size = %d outside [1, 2^24]", op, vocab_size);
  deco_ngram_builder_t *b = calloc(1, sizeof *b);
  if (!b) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  b->vocab = vocab_size;
  *out = b;
  return DECO_STATUS_SUCCESS;
}

void deco_ngram_builder_destroy(deco_ngram_builder_t *b) {
  if (!b) return;
  free(b->ids);
  free(b);
}

deco_status_t deco_ngram_builder_add(deco_ngram_builder_t *b, const int32_t *ids, int n) {
  static const char op[] = "deco_ngram_builder_add";
  if (!b || (!ids && n > 0)) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if (n < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: n = %d", op, n);
  const int i = (int)deco_first_id_outside(ids, (size_t)n, b->vocab);
  if (i < n)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: ids[%d] = %d outside [0, vocab_size = %d)", op, i,
                     (int)ids[i], b->vocab);
  if (b->n + (size_t)n + 1 > MAX_CORPUS)
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: more than 2^31 ids in one table", op);
  if (b->n + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + (size_t)n + 1) cap *= 2;
    int32_t *p = realloc(b->ids, sizeof(int32_t) * cap);
    if (!p) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory (%zu ids)", op, cap);
    b->ids = p;
    b->cap = cap;
  }
  memcpy(b->ids + b->n, ids, sizeof(int32_t) * (size_t)n);
  b->n += (size_t)n;
  b->ids[b->n++] = SEP;
  b->tokens += (uint64_t)n;
  return DECO_STATUS_SUCCESS;
}

/* ---- Counting ---- */

typedef struct gram {
  uint32_t t[DECO_NGRAM_MAX_ORDER]; /* its ids, zeros past the order */
} gram_t;

static int cmp_gram(const void *a, const void *b) {
  const gram_t *x = a, *y = b;
  for (int i = 0; i < DECO_NGRAM_MAX_ORDER; ++i)
    if (x->t[i] != y->t[i]) return x->t[i] < y->t[i] ? -1 : 1;
  return 0;
}

typedef struct context {
  uint32_t ids[DECO_NGRAM_CONTEXT]; /* order - 1 of them, zeros after */
  uint32_t order;
  uint32_t total;
  uint32_t first, count; /* in the builder's follower list */
  uint64_t fp;
} context_t;

typedef struct lists {
  context_t *ctx;
  size_t n_ctx, cap_ctx;
  deco_ngram_follower_t *fol;
  size_t n_fol, cap_fol;
} lists_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 1;
  size_t c = *cap ? *cap : 1024;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return 0;
  *p = q;
  *cap = c;
  return 1;
}

/* Whether the order ids from b->ids[i] are one n-gram: no separator. */
static int window_is_gram(const deco_ngram_builder_t *b, size_t i, int order) {
  int ok = 1;
  for (int j = 0; j < order && ok; ++j) ok = b->ids[i + (size_t)j] != SEP;
  return ok;
}

/* The number of n-grams of this order in b. */
static size_t count_grams(const deco_ngram_builder_t *b, int order) {
  size_t n = 0;
  for (size_t i = 0; i + (size_t)order <= b->n; ++i) n += (size_t)window_is_gram(b, i, order);
  return n;
}

/* Every n-gram of this order in b, in text order, into g. */
static void fill_grams(const deco_ngram_builder_t *b, int order, gram_t *g) {
  size_t w = 0;
  for (size_t i = 0; i + (size_t)order <= b->n; ++i) {
    if (!window_is_gram(b, i, order)) continue;
    for (int j = 0; j < order; ++j) g[w].t[j] = (uint32_t)b->ids[i + (size_t)j];
    w++;
  }
}

/* One context: the sorted n-grams g[i, e) sharing their first order - 1
 * ids, with one follower per distinct last id, appended to L; 0 when out
 * of memory. */
static int append_context(lists_t *L, const gram_t *g, size_t i, size_t e, int order) {
  const int c = order - 1;
  if (!grow((void **)&L->ctx, &L->cap_ctx, L->n_ctx + 1, sizeof *L->ctx)) return 0;
  context_t *x = &L->ctx[L->n_ctx++];
  memset(x, 0, sizeof *x);
  memcpy(x->ids, g[i].t, sizeof(uint32_t) * (size_t)c);
  x->order = (uint32_t)order;
  x->total = (uint32_t)(e - i);
  x->first = (uint32_t)L->n_fol;
  for (size_t f = i; f < e;) {
    size_t f2 = f;
    while (f2 < e && g[f2].t[c] == g[f].t[c]) f2++;
    if (!grow((void **)&L->fol, &L->cap_fol, L->n_fol + 1, sizeof *L->fol)) return 0;
    L->fol[L->n_fol++] = (deco_ngram_follower_t){.token = g[f].t[c], .count = (uint32_t)(f2 - f)};
    f = f2;
  }
  x->count = (uint32_t)(L->n_fol - x->first);
  return 1;
}

/* The contexts of one order with their followers, appended to L. */
static deco_status_t count_order(const deco_ngram_builder_t *b, int order, lists_t *L) {
  size_t n = count_grams(b, order);
  if (n == 0) return DECO_STATUS_SUCCESS;
  gram_t *g = calloc(n, sizeof *g);
  if (!g) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "n-gram builder: out of host memory (%zu %d-grams)", n, order);
  fill_grams(b, order, g);
  qsort(g, n, sizeof *g, cmp_gram);
  const int c = order - 1;
  size_t i = 0;
  while (i < n) {
    /* One context: the n-grams sharing the first c ids. */
    size_t e = i;
    while (e < n && memcmp(g[e].t, g[i].t, sizeof(uint32_t) * (size_t)c) == 0) e++;
    if (!append_context(L, g, i, e, order)) {
      free(g);
      return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "n-gram builder: out of host memory (%zu contexts)", L->n_ctx);
    }
    i = e;
  }
  free(g);
  return DECO_STATUS_SUCCESS;
}

/* ---- Pruning and the table ---- */

/* A context's place in the pruning order, self-contained for qsort. */
typedef struct rank_key {
  uint32_t total, order;
  uint32_t ids[DECO_NGRAM_CONTEXT];
  uint32_t index;
} rank_key_t;

static int cmp_rank(const void *a, const void *b) {
  const rank_key_t *x = a, *y = b;
  if (x->total != y->total) return x->total > y->total ? -1 : 1; /* frequent first */
  if (x->order != y->order) return x->order < y->order ? -1 : 1; /* short contexts first */
  for (int i = 0; i < DECO_NGRAM_CONTEXT; ++i)
    if (x->ids[i] != y->ids[i]) return x->ids[i] < y->ids[i] ? -1 : 1;
  return 0;
}

static int cmp_u64_fp(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static uint32_t slots_for(size_t contexts) {
  uint32_t s = 1;
  while ((size_t)s < 2 * contexts) s *= 2;
  return s;
}

/* Every order's contexts and followers counted into L. */
static deco_status_t count_contexts(const deco_ngram_builder_t *b, lists_t *L, const char *op) {
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int order = DECO_NGRAM_MIN_ORDER; order <= DECO_NGRAM_MAX_ORDER && st == DECO_STATUS_SUCCESS; ++order)
    st = count_order(b, order, L);
  if (st != DECO_STATUS_SUCCESS) return st;
  if (L->n_ctx > ((size_t)1 << 29))
    return DECO_FAIL(NULL, DECO_STATUS_CAPACITY, "%s: %zu contexts, more than a table holds (2^29)", op, L->n_ctx);
  return DECO_STATUS_SUCCESS;
}

/* The largest prefix of the ranking that fits (the file grows with it):
 * *kept contexts with *kept_fol followers; the contexts past the prefix
 * are marked dropped. */
static deco_status_t prune(lists_t *L, size_t max_bytes, const char *op, size_t *kept_out, size_t *kept_fol_out) {
  rank_key_t *rank = malloc(sizeof *rank * (L->n_ctx ? L->n_ctx : 1));
  if (!rank) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  for (size_t i = 0; i < L->n_ctx; ++i) {
    rank[i].total = L->ctx[i].total;
    rank[i].order = L->ctx[i].order;
    memcpy(rank[i].ids, L->ctx[i].ids, sizeof rank[i].ids);
    rank[i].index = (uint32_t)i;
  }
  qsort(rank, L->n_ctx, sizeof *rank, cmp_rank);
  size_t kept = 0, kept_fol = 0;
  while (kept < L->n_ctx) {
    const size_t f = kept_fol + L->ctx[rank[kept].index].count;
    if (f > UINT32_MAX) break; /* n_followers is a 32-bit field */
    if (deco_ngram_file_bytes(slots_for(kept + 1), f) > max_bytes) break;
    kept_fol = f;
    kept++;
  }
  /* Reuse `order` as a mark: contexts past the prefix are dropped (0). */
  for (size_t i = kept; i < L->n_ctx; ++i) L->ctx[rank[i].index].order = 0;
  free(rank);
  *kept_out = kept;
  *kept_fol_out = kept_fol;
  return DECO_STATUS_SUCCESS;
}

/* A table with the slots of `kept` contexts (all empty) and room for
 * kept_fol followers, or NULL. */
static deco_ngram_table_t *new_table(size_t kept, size_t kept_fol) {
  deco_ngram_table_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->n_slots = slots_for(kept);
  t->slots = calloc(t->n_slots, sizeof *t->slots);
  t->followers = malloc(sizeof *t->followers * (kept_fol ? kept_fol : 1));
  if (!t->slots || !t->followers) {
    deco_ngram_table_destroy(t);
    return NULL;
  }
  return t;
}

/* The kept contexts' fingerprints under seed, set in L and listed in fps;
 * returns how many. */
static size_t fingerprint_kept(lists_t *L, uint64_t seed, uint64_t *fps) {
  size_t n = 0;
  for (size_t i = 0; i < L->n_ctx; ++i) {
    context_t *x = &L->ctx[i];
    if (!x->order) continue;
    int32_t ids[DECO_NGRAM_CONTEXT];
    for (int j = 0; j < DECO_NGRAM_CONTEXT; ++j) ids[j] = (int32_t)x->ids[j];
    x->fp = deco_ngram_fingerprint(seed, (int)x->order, ids);
    fps[n++] = x->fp;
  }
  return n;
}

/* A seed under which the kept contexts' fingerprints are distinct (a
 * clash of 64-bit hashes is unlikely, but then the next seed is tried);
 * fps: scratch for one fingerprint per kept context. */
static deco_status_t pick_seed(lists_t *L, uint64_t *fps, const char *op, uint64_t *seed_out) {
  uint64_t seed = FIRST_SEED;
  for (int tries = 0;; ++tries, ++seed) {
    const size_t n = fingerprint_kept(L, seed, fps);
    qsort(fps, n, sizeof *fps, cmp_u64_fp);
    int clash = 0;
    for (size_t i = 1; i < n && !clash; ++i) clash = fps[i] == fps[i - 1];
    if (!clash) break;
    if (tries == 63) return DECO_FAIL(NULL, DECO_STATUS_INTERNAL, "%s: 64 seeds gave clashing fingerprints", op);
  }
  *seed_out = seed;
  return DECO_STATUS_SUCCESS;
}

/* The kept contexts into t's slots (linear probing from each home) and
 * their followers into t's list, in canonical order: by order, then ids
 * (the order they were counted in). */
static void place_contexts(deco_ngram_table_t *t, const lists_t *L) {
  const uint32_t mask = t->n_slots - 1u;
  uint32_t next = 0;
  for (size_t i = 0; i < L->n_ctx; ++i) {
    const context_t *x = &L->ctx[i];
    if (!x->order) continue;
    uint32_t s = (uint32_t)x->fp & mask;
    while (t->slots[s].fingerprint != 0) s = (s + 1u) & mask;
    t->slots[s] = (deco_ngram_slot_t){
        .fingerprint = x->fp, .first = next, .count = x->count, .total = x->total, .order = x->order};
    memcpy(t->followers + next, L->fol + x->first, sizeof *t->followers * x->count);
    next += x->count;
    t->per_order[x->order - DECO_NGRAM_MIN_ORDER]++;
  }
}

deco_status_t deco_ngram_builder_finish(deco_ngram_builder_t *b, size_t max_bytes, uint64_t tokenizer_hash,
                                        deco_ngram_table_t **out) {
  static const char op[] = "deco_ngram_builder_finish";
  if (!b || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = NULL;
  const size_t smallest = deco_ngram_file_bytes(1, 0);
  if (max_bytes < smallest)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: max_bytes = %zu is below the smallest table (%zu bytes)",
                     op, max_bytes, smallest);
  lists_t L = {0};
  uint64_t *fps = NULL;
  deco_ngram_table_t *t = NULL;
  size_t kept = 0, kept_fol = 0;
  uint64_t seed = 0;
  deco_status_t st = count_contexts(b, &L, op);
  if (st == DECO_STATUS_SUCCESS) st = prune(&L, max_bytes, op, &kept, &kept_fol);
  if (st == DECO_STATUS_SUCCESS) {
    t = new_table(kept, kept_fol);
    fps = malloc(sizeof(uint64_t) * (kept ? kept : 1));
    if (!t || !fps) st = DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  }
  if (st == DECO_STATUS_SUCCESS) st = pick_seed(&L, fps, op, &seed);
  if (st == DECO_STATUS_SUCCESS) {
    t->seed = seed;
    t->vocab_size = b->vocab;
    t->tokenizer_hash = tokenizer_hash;
    t->n_contexts = (uint32_t)kept;
    t->n_followers = (uint32_t)kept_fol;
    t->corpus_tokens = b->tokens;
    t->pruned_contexts = (uint64_t)(L.n_ctx - kept);
    place_contexts(t, &L);
    st = deco_ngram_encode(t);
  }
  free(L.ctx);
  free(L.fol);
  free(fps);
  if (st != DECO_STATUS_SUCCESS) {
    deco_ngram_table_destroy(t);
    return st;
  }
  *out = t;
  return DECO_STATUS_SUCCESS;
}
