/* tests/test_superpose_ngram.c — superposed decoding's n-gram tables
 * (deco/superpose.h): the builder against a naive count of every order,
 * pruning to a size cap (the most frequent contexts kept), the lookup op
 * against a naive interpolation, the file's round trip and every way a
 * foreign or corrupt file is refused (naming the file and the field), and
 * `deco ngram build` (--ids, --text, bad input).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/randtree.h"
#include "common/testutil.h"

/* A corpus of n_seq sequences of random lengths over a small vocabulary,
 * skewed so that contexts repeat. */
typedef struct corpus {
  int n_seq;
  int32_t *ids[64];
  int len[64];
} corpus_t;

static void make_corpus(corpus_t *c, uint64_t seed, int n_seq, int vocab, int max_len) {
  uint64_t rng = seed;
  c->n_seq = n_seq;
  for (int s = 0; s < n_seq; ++s) {
    c->len[s] = deco_test_rng_int(&rng, 0, max_len);
    c->ids[s] = malloc(sizeof(int32_t) * (size_t)(c->len[s] + 1));
    for (int i = 0; i < c->len[s]; ++i) {
      const int a = deco_test_rng_int(&rng, 0, vocab - 1), b = deco_test_rng_int(&rng, 0, vocab - 1);
      c->ids[s][i] = a < b ? a : b; /* low ids more often */
    }
  }
}

static void free_corpus(corpus_t *c) {
  for (int s = 0; s < c->n_seq; ++s) free(c->ids[s]);
}

/* c(ctx, token) and c(ctx) by scanning the corpus. */
static void naive_counts(const corpus_t *c, int order, const int32_t *ctx, int32_t token, uint32_t *count,
                         uint32_t *total) {
  *count = *total = 0;
  for (int s = 0; s < c->n_seq; ++s)
    for (int i = 0; i + order <= c->len[s]; ++i) {
      if (memcmp(c->ids[s] + i, ctx, sizeof(int32_t) * (size_t)(order - 1)) != 0) continue;
      (*total)++;
      if (c->ids[s][i + order - 1] == token) (*count)++;
    }
}

static deco_ngram_table_t *build(const corpus_t *c, int vocab, size_t max_bytes) {
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(vocab, &b), DECO_STATUS_SUCCESS);
  for (int s = 0; s < c->n_seq; ++s)
    cr_assert_eq(deco_ngram_builder_add(b, c->ids[s], c->len[s]), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_table_t *t;
  cr_assert_eq(deco_ngram_builder_finish(b, max_bytes, 0x1234, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_builder_destroy(b);
  return t;
}

/* One timeout for the whole suite: Criterion 2.4 leaks a little when a
 * suite mixes timeouts (ASan then fails the CI stage). */
TestSuite(ngram, .timeout = 180);

Test(ngram, builder_matches_naive_counts) {
  corpus_t c;
  const int V = 12;
  make_corpus(&c, 7, 40, V, 60);
  deco_ngram_table_t *t = build(&c, V, DECO_NGRAM_DEFAULT_MAX_BYTES);
  deco_ngram_info_t info;
  cr_assert_eq(deco_ngram_table_info(t, &info), DECO_STATUS_SUCCESS);
  cr_assert_eq(info.pruned_contexts, 0);
  long long tokens = 0;
  for (int s = 0; s < c.n_seq; ++s) tokens += c.len[s];
  cr_assert_eq((long long)info.corpus_tokens, tokens);
  /* Every n-gram of the corpus, and the same contexts followed by every id. */
  uint64_t rng = 99;
  long checked = 0;
  for (int order = DECO_NGRAM_MIN_ORDER; order <= DECO_NGRAM_MAX_ORDER; ++order) {
    long distinct = 0;
    for (int s = 0; s < c.n_seq; ++s)
      for (int i = 0; i + order <= c.len[s]; ++i) {
        const int32_t *ctx = c.ids[s] + i;
        /* Count distinct contexts once: at their first occurrence. */
        int first = 1;
        for (int s2 = 0; s2 <= s && first; ++s2)
          for (int i2 = 0; i2 + order <= c.len[s2] && (s2 < s || i2 < i); ++i2)
            if (memcmp(c.ids[s2] + i2, ctx, sizeof(int32_t) * (size_t)(order - 1)) == 0) {
              first = 0;
              break;
            }
        distinct += first;
        const int32_t token = deco_test_rng_int(&rng, 0, 1) ? ctx[order - 1] : deco_test_rng_int(&rng, 0, V - 1);
        uint32_t n, tot, n2, tot2;
        cr_assert_eq(deco_ngram_table_counts(t, order, ctx, token, &n, &tot), DECO_STATUS_SUCCESS);
        naive_counts(&c, order, ctx, token, &n2, &tot2);
        cr_assert(n == n2 && tot == tot2, "order %d, sequence %d at %d, token %d: table %u/%u, naive %u/%u", order, s,
                  i, token, n, tot, n2, tot2);
        checked++;
      }
    cr_assert_eq((long)info.contexts_per_order[order - DECO_NGRAM_MIN_ORDER], distinct, "order %d: %u vs %ld contexts",
                 order, info.contexts_per_order[order - DECO_NGRAM_MIN_ORDER], distinct);
  }
  /* Contexts that never occur (ids outside the corpus' skew are rare; id V-1
   * repeated is all but absent) give 0 / 0. */
  for (int trial = 0; trial < 200; ++trial) {
    int32_t ctx[5];
    const int order = deco_test_rng_int(&rng, DECO_NGRAM_MIN_ORDER, DECO_NGRAM_MAX_ORDER);
    for (int i = 0; i < 5; ++i) ctx[i] = deco_test_rng_int(&rng, 0, V - 1);
    uint32_t n, tot, n2, tot2;
    cr_assert_eq(deco_ngram_table_counts(t, order, ctx, 3, &n, &tot), DECO_STATUS_SUCCESS);
    naive_counts(&c, order, ctx, 3, &n2, &tot2);
    cr_assert(n == n2 && tot == tot2, "random context, order %d: table %u/%u, naive %u/%u", order, n, tot, n2, tot2);
  }
  cr_assert_gt(checked, 1000);
  /* n-grams never span two sequences: the pair (last of one, first of the next). */
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(V, &b), DECO_STATUS_SUCCESS);
  const int32_t s1[] = {4, 5}, s2[] = {6, 7};
  cr_assert_eq(deco_ngram_builder_add(b, s1, 2), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_builder_add(b, s2, 2), DECO_STATUS_SUCCESS);
  deco_ngram_table_t *t2;
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t2), DECO_STATUS_SUCCESS);
  uint32_t n, tot;
  const int32_t five = 5;
  cr_assert_eq(deco_ngram_table_counts(t2, 2, &five, 6, &n, &tot), DECO_STATUS_SUCCESS);
  cr_assert(n == 0 && tot == 0, "an n-gram across two sequences was counted");
  const int32_t bad[] = {3, 12};
  cr_assert_eq(deco_ngram_builder_add(b, bad, 2), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "ids[1] = 12") != NULL, "%s", deco_last_error(NULL));
  deco_ngram_table_destroy(t2);
  deco_ngram_builder_destroy(b);
  deco_ngram_table_destroy(t);
  free_corpus(&c);
}

Test(ngram, pruning_keeps_the_most_frequent_contexts) {
  corpus_t c;
  const int V = 20;
  make_corpus(&c, 3, 30, V, 80);
  deco_ngram_table_t *full = build(&c, V, DECO_NGRAM_DEFAULT_MAX_BYTES);
  deco_ngram_info_t fi, pi;
  deco_ngram_table_info(full, &fi);
  const size_t cap = fi.file_bytes / 3;
  deco_ngram_table_t *pruned = build(&c, V, cap);
  deco_ngram_table_info(pruned, &pi);
  cr_assert_leq(pi.file_bytes, cap);
  cr_assert_gt(pi.pruned_contexts, 0);
  cr_assert_eq(pi.n_contexts + pi.pruned_contexts, fi.n_contexts);
  /* Every kept context has its full counts; no dropped context was more
   * frequent than a kept one. */
  uint32_t min_kept = UINT32_MAX, max_dropped = 0;
  for (int order = DECO_NGRAM_MIN_ORDER; order <= DECO_NGRAM_MAX_ORDER; ++order)
    for (int s = 0; s < c.n_seq; ++s)
      for (int i = 0; i + order <= c.len[s]; ++i) {
        uint32_t n, tot, n2, tot2;
        deco_ngram_table_counts(pruned, order, c.ids[s] + i, c.ids[s][i + order - 1], &n, &tot);
        deco_ngram_table_counts(full, order, c.ids[s] + i, c.ids[s][i + order - 1], &n2, &tot2);
        if (tot) {
          cr_assert(n == n2 && tot == tot2, "a kept context lost counts");
          if (tot < min_kept) min_kept = tot;
        } else if (tot2 > max_dropped) {
          max_dropped = tot2;
        }
      }
  cr_assert_leq(max_dropped, min_kept, "a context seen %u times was dropped, one seen %u times kept", max_dropped,
                min_kept);
  /* Below the smallest possible table: refused. */
  deco_ngram_builder_t *b;
  deco_ngram_table_t *t;
  cr_assert_eq(deco_ngram_builder_create(V, &b), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_builder_finish(b, 100, 0, &t), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert(strstr(deco_last_error(NULL), "max_bytes") != NULL);
  /* The tiniest cap gives an empty, valid table. */
  cr_assert_eq(deco_ngram_builder_add(b, c.ids[0], c.len[0]), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_ngram_builder_finish(b, 128, 0, &t), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_info_t ti;
  deco_ngram_table_info(t, &ti);
  cr_assert_eq(ti.n_contexts, 0);
  size_t n;
  const void *bytes = deco_ngram_table_bytes(t, &n);
  deco_ngram_table_t *back;
  cr_assert_eq(deco_ngram_table_load_buffer(bytes, n, "empty", V, 0, &back), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  deco_ngram_table_destroy(back);
  deco_ngram_table_destroy(t);
  deco_ngram_builder_destroy(b);
  deco_ngram_table_destroy(full);
  deco_ngram_table_destroy(pruned);
  free_corpus(&c);
}

/* P_ng by the definition, from raw counts. */
static double naive_prob(const corpus_t *c, const int32_t *hist, int hist_len, int32_t token, const float *lambda) {
  double p = 0.0;
  for (int order = DECO_NGRAM_MIN_ORDER; order <= DECO_NGRAM_MAX_ORDER; ++order) {
    if (order - 1 > hist_len) continue;
    uint32_t n, tot;
    naive_counts(c, order, hist + hist_len - (order - 1), token, &n, &tot);
    if (tot == 0 || n == 0) continue;
    const double q = (double)n / (double)tot;
    const double w = (double)lambda[order - DECO_NGRAM_MIN_ORDER] * q;
    p = p + w;
  }
  return p;
}

Test(ngram, lookup_op_matches_naive_interpolation) {
  corpus_t c;
  const int V = 10;
  make_corpus(&c, 11, 30, V, 50);
  deco_ngram_table_t *t = build(&c, V, DECO_NGRAM_DEFAULT_MAX_BYTES);
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_ngram_device_t *dev;
  cr_assert_eq(deco_ngram_device_create(ctx, t, &dev), DECO_STATUS_SUCCESS);
  /* Drafts: 3 per group, 7 groups; contexts drawn from the corpus (seen)
   * or at random (mostly unseen), of every length 0..5. */
  enum { K = 3, G = 7, R = K * G, M = 5 };
  int32_t cx[R][5], len[R], cands[G][M];
  uint64_t rng = 5;
  for (int r = 0; r < R; ++r) {
    len[r] = r % 6;
    const int s = deco_test_rng_int(&rng, 0, c.n_seq - 1);
    const int from_corpus = r % 2 == 0 && c.len[s] >= 5;
    const int at = from_corpus ? deco_test_rng_int(&rng, 0, c.len[s] - 5) : 0;
    for (int i = 0; i < 5; ++i) cx[r][i] = from_corpus ? c.ids[s][at + i] : deco_test_rng_int(&rng, 0, V - 1);
  }
  for (int g = 0; g < G; ++g)
    for (int j = 0; j < M; ++j) cands[g][j] = (g + 3 * j) % V;
  double probs[R][M];
  deco_ngram_lookup_args_t a = DECO_NGRAM_LOOKUP_ARGS_INIT;
  a.table = deco_ngram_device_view(dev);
  a.n_rows = R;
  a.rows_per_group = K;
  a.m = M;
  a.ctx = &cx[0][0];
  a.ctx_len = len;
  a.cands = &cands[0][0];
  const float lambda[5] = {0.01f, 0.04f, 0.15f, 0.18f, 0.12f};
  memcpy(a.lambda, lambda, sizeof lambda);
  a.probs = &probs[0][0];
  cr_assert_eq(deco_ngram_lookup(ctx, &a), DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  int hits = 0, misses = 0;
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < M; ++j) {
      const double want = naive_prob(&c, cx[r] + 5 - len[r], len[r], cands[r / K][j], lambda);
      cr_assert(probs[r][j] == want, "draft %d (context of %d ids), candidate %d: %.17g, naive %.17g", r, len[r],
                cands[r / K][j], probs[r][j], want);
      hits += want > 0;
      misses += want == 0;
    }
  cr_assert_gt(hits, 10, "too few seen contexts to test anything");
  cr_assert_gt(misses, 10, "too few unseen contexts");
  /* A short context never reads past what it has: length 0 is always 0. */
  for (int j = 0; j < M; ++j) cr_assert_eq(probs[0][j], 0.0);
  /* Bad arguments. */
  a.rows_per_group = 2;
  cr_assert_eq(deco_ngram_lookup(ctx, &a), DECO_STATUS_INVALID_ARGUMENT);
  deco_ngram_device_destroy(dev);
  deco_ngram_table_destroy(t);
  deco_ctx_destroy(ctx);
  free_corpus(&c);
}

/* ---- The file ---- */

static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void wr32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v) {
  wr32(p, (uint32_t)v);
  wr32(p + 4, (uint32_t)(v >> 32));
}
static void fix_checksum(unsigned char *p, size_t n) { wr64(p + n - 8, deco_ngram_hash_bytes(p, n - 8)); }

/* Loading a corrupted copy must fail as a bad format with a message
 * naming the buffer's name and `field`. */
static void expect_refused(const unsigned char *img, size_t n, int vocab, uint64_t tok, const char *field) {
  deco_ngram_table_t *t = NULL;
  DECO_TEST_REFUSED_NAMING(NULL, deco_ngram_table_load_buffer(img, n, "bad.ngram", vocab, tok, &t),
                           DECO_STATUS_BAD_FORMAT, NULL, "bad.ngram", field);
  cr_assert_null(t);
}

static int find_slot(const unsigned char *img, int want_occupied) {
  const uint32_t S = rd32(img + 28);
  for (uint32_t s = 0; s < S; ++s) {
    const unsigned char *q = img + 96 + 24 * (size_t)s;
    const int occupied = rd32(q) != 0 || rd32(q + 4) != 0;
    if (occupied == want_occupied) return (int)s;
  }
  return -1;
}

Test(ngram, file_round_trip_and_corruptions) {
  corpus_t c;
  const int V = 9;
  make_corpus(&c, 21, 20, V, 40);
  deco_ngram_table_t *t = build(&c, V, DECO_NGRAM_DEFAULT_MAX_BYTES);
  size_t n;
  const unsigned char *bytes = deco_ngram_table_bytes(t, &n);
  /* Save (temporary file + rename, nothing else left in the folder), load, same bytes. */
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/ngram_rt", deco_test_tmpdir());
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/t.ngram", dir);
  cr_assert_eq(deco_ngram_table_save(t, path), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_ngram_table_save(t, path), DECO_STATUS_SUCCESS, "overwriting: %s", deco_last_error(NULL));
  DIR *d = opendir(dir);
  int entries = 0;
  for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
  closedir(d);
  cr_assert_eq(entries, 1, "a temporary file was left beside the table");
  deco_ngram_table_t *back;
  cr_assert_eq(deco_ngram_table_load(path, V, 0x1234, &back), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  size_t n2;
  const void *b2 = deco_ngram_table_bytes(back, &n2);
  cr_assert(n2 == n && memcmp(b2, bytes, n) == 0, "the loaded table differs from the saved one");
  deco_ngram_table_destroy(back);
  /* Foreign tables. */
  cr_assert_eq(deco_ngram_table_load(path, V + 1, 0, &back), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "vocab_size") && strstr(deco_last_error(NULL), path));
  cr_assert_eq(deco_ngram_table_load(path, V, 0x9999, &back), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "tokenizer_hash"));
  cr_assert_eq(deco_ngram_table_load(path, V, 0, &back), DECO_STATUS_SUCCESS, "hash 0 skips the check");
  deco_ngram_table_destroy(back);
  /* Not a regular file: refused at once. */
  char fifo[600];
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(deco_ngram_table_load(fifo, V, 0, &back), DECO_STATUS_IO_ERROR);
  cr_assert(strstr(deco_last_error(NULL), "not a regular file"));
  cr_assert_neq(deco_ngram_table_save(t, fifo), DECO_STATUS_SUCCESS, "saved over a FIFO");
  unlink(fifo);
  /* A file whose size disagrees with its header: refused from the header. */
  unsigned char *img = malloc(n + 64);
  memcpy(img, bytes, n);
  memset(img + n, 0, 64);
  cr_assert_eq(deco_test_write_file(path, img, n + 64), 0);
  cr_assert_eq(deco_ngram_table_load(path, V, 0, &back), DECO_STATUS_BAD_FORMAT);
  cr_assert(strstr(deco_last_error(NULL), "oversized") && strstr(deco_last_error(NULL), path), "%s",
            deco_last_error(NULL));
  expect_refused(img, n - 1, V, 0, "truncated");
  expect_refused(img, 50, V, 0, "truncated");
  /* Header fields. */
  struct {
    size_t at;
    uint32_t value;
    const char *field;
  } header[] = {{0, 0x4e4f4345u, "magic"},  {8, 2, "version"},       {12, 64, "header_bytes"},
                {16, 1000, "vocab_size"}, {20, 1, "orders"},         {28, 3, "n_slots"},
                {48, 1u << 30, "n_contexts"}, {92, 1, "reserved"}};
  for (size_t i = 0; i < sizeof header / sizeof header[0]; ++i) {
    memcpy(img, bytes, n);
    wr32(img + header[i].at, header[i].value);
    fix_checksum(img, n);
    expect_refused(img, n, V, 0, header[i].field);
  }
  /* The checksum itself. */
  memcpy(img, bytes, n);
  img[n / 2] ^= 0x10;
  expect_refused(img, n, V, 0, "checksum");
  /* The body, with a valid checksum: each failure is found by validation. */
  const uint32_t S = rd32(bytes + 28);
  const size_t fol0 = 96 + 24 * (size_t)S;
  const int occ = find_slot(bytes, 1), empty = find_slot(bytes, 0);
  cr_assert(occ >= 0 && empty >= 0);
  unsigned char *slot = img + 96 + 24 * (size_t)occ;
  memcpy(img, bytes, n);
  wr32(slot + 20, 9);
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "order");
  memcpy(img, bytes, n);
  wr32(slot + 16, rd32(slot + 16) + 1);
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "total");
  memcpy(img, bytes, n);
  wr32(slot + 12, 0);
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "count 0");
  memcpy(img, bytes, n);
  wr32(slot + 8, rd32(bytes + 52));
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "followers");
  memcpy(img, bytes, n);
  wr32(img + fol0, (uint32_t)V); /* the first follower's id */
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "vocab_size");
  /* Moving a context to an empty slot that follows an empty slot, away
   * from its home: a probe never gets there. */
  {
    const unsigned char *orig = bytes + 96 + 24 * (size_t)occ;
    const uint64_t fp = (uint64_t)rd32(orig) | (uint64_t)rd32(orig + 4) << 32;
    int dst = -1;
    for (uint32_t e = 0; e < S && dst < 0; ++e) {
      const unsigned char *q = bytes + 96 + 24 * (size_t)e, *prev = bytes + 96 + 24 * (size_t)((e + S - 1) % S);
      if (!rd32(q) && !rd32(q + 4) && !rd32(prev) && !rd32(prev + 4) && e != ((uint32_t)fp & (S - 1))) dst = (int)e;
    }
    cr_assert_geq(dst, 0, "no empty slot after an empty slot");
    memcpy(img, bytes, n);
    memcpy(img + 96 + 24 * (size_t)dst, orig, 24);
    memset(img + 96 + 24 * (size_t)occ, 0, 24);
    fix_checksum(img, n);
    expect_refused(img, n, V, 0, "reachable");
  }
  /* An empty slot that is not all zero. */
  memcpy(img, bytes, n);
  wr32(img + 96 + 24 * (size_t)empty + 12, 1);
  fix_checksum(img, n);
  expect_refused(img, n, V, 0, "empty slot");
  /* Followers of a context out of order. */
  int done_order = 0;
  for (uint32_t s = 0; s < S && !done_order; ++s) {
    const unsigned char *q = bytes + 96 + 24 * (size_t)s;
    if (rd32(q + 12) < 2) continue;
    memcpy(img, bytes, n);
    const size_t f = fol0 + 8 * (size_t)rd32(q + 8);
    const uint32_t t0 = rd32(img + f), t1 = rd32(img + f + 8);
    wr32(img + f, t1);
    wr32(img + f + 8, t0);
    fix_checksum(img, n);
    expect_refused(img, n, V, 0, "increase");
    done_order = 1;
  }
  cr_assert(done_order, "no context with two followers to reorder");
  free(img);
  unlink(path);
  rmdir(dir);
  deco_ngram_table_destroy(t);
  free_corpus(&c);
}

/* ---- The CLI ---- */

static char *tmp_file(const char *name, const char *text) {
  static char paths[8][600];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 600, "%s/%s", deco_test_tmpdir(), name);
  if (text) cr_assert_eq(deco_test_write_file(p, text, strlen(text)), 0);
  return p;
}

Test(ngram, cli_build_from_ids_and_text) {
  const char *ids = tmp_file("corpus.ids", "1 403 407 261 378\n1 403 407 261 376 298\n\n1 403 407 300\n");
  const char *out = tmp_file("corpus.ngram", NULL);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids, "--out", out);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_eq(r.out[0], '\0', "stdout must stay empty");
  cr_assert(strstr(r.err, "ngram: corpus_tokens=15 ") != NULL, "%s", r.err);
  deco_test_run_free(&r);
  /* The same table as the library builds with the built-in tokenizer's hash. */
  size_t tok_n;
  void *tok = deco_test_read_file(deco_test_data_file("models/tok512.bin"), &tok_n);
  const uint64_t h = deco_ngram_hash_bytes(tok, tok_n);
  deco_ngram_table_t *cli;
  cr_assert_eq(deco_ngram_table_load(out, 512, h, &cli), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(512, &b), DECO_STATUS_SUCCESS);
  const int32_t s1[] = {1, 403, 407, 261, 378}, s2[] = {1, 403, 407, 261, 376, 298}, s3[] = {1, 403, 407, 300};
  deco_ngram_builder_add(b, s1, 5);
  deco_ngram_builder_add(b, s2, 6);
  deco_ngram_builder_add(b, s3, 4);
  deco_ngram_table_t *lib;
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, h, &lib), DECO_STATUS_SUCCESS);
  size_t n1, n2;
  const void *b1 = deco_ngram_table_bytes(cli, &n1), *b2 = deco_ngram_table_bytes(lib, &n2);
  cr_assert(n1 == n2 && memcmp(b1, b2, n1) == 0, "the CLI's table differs from the library's");
  deco_ngram_table_destroy(cli);
  deco_ngram_table_destroy(lib);
  deco_ngram_builder_destroy(b);

  /* --text: each line encoded as --prompt is. */
  const char *text = tmp_file("corpus.txt", "Once upon a time there was a cat.\n\nThe cat sat.\n");
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--text", text, "--out", out, "--max-bytes", "100000");
  cr_assert_eq(r.status, 0, "%s", r.err);
  deco_tokenizer_t *tk;
  cr_assert_eq(deco_tokenizer_load_buffer(tok, tok_n, "tok512.bin", 512, &tk), DECO_STATUS_SUCCESS);
  int32_t e1[64], e2[64];
  int m1, m2;
  deco_tokenizer_encode(tk, "Once upon a time there was a cat.", 1, 0, e1, 64, &m1);
  deco_tokenizer_encode(tk, "The cat sat.", 1, 0, e2, 64, &m2);
  char want[64];
  snprintf(want, sizeof want, "corpus_tokens=%d ", m1 + m2);
  cr_assert(strstr(r.err, want) != NULL, "expected %s in: %s", want, r.err);
  deco_test_run_free(&r);
  deco_ngram_table_t *tt;
  cr_assert_eq(deco_ngram_table_load(out, 512, h, &tt), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  uint32_t cnt, tot;
  deco_ngram_table_counts(tt, 2, &e2[1], e2[2], &cnt, &tot); /* "The" -> its successor, seen in both lines? */
  cr_assert_geq(cnt, 1);
  deco_ngram_table_destroy(tt);
  deco_tokenizer_destroy(tk);
  free(tok);
}

Test(ngram, cli_bad_input) {
  const char *ids = tmp_file("ok.ids", "1 2 3\n");
  const char *out = tmp_file("bad.ngram", NULL);
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids);
  cr_assert_eq(r.status, 2, "no --out: %s", r.err);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids, "--text", ids, "--out", out);
  cr_assert_eq(r.status, 2);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids, "--out", out, "--max-bytes", "12k");
  cr_assert_eq(r.status, 2);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--bogus", "1");
  cr_assert_eq(r.status, 2);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "frobnicate");
  cr_assert_eq(r.status, 2);
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "--help");
  cr_assert(r.status == 0 && strstr(r.out, "deco ngram build"), "%s", r.out);
  deco_test_run_free(&r);
  /* Bad files: exit 1, the file and the line named, nothing written. */
  struct {
    const char *text, *expect;
  } bad[] = {{"1 2 3\n4  5\n", ":2:"}, {"1 2 x\n", ":1:"}, {"1 2 512\n", "id 512 >= vocab 512"},
             {"1 99999999999999999999\n", ">= vocab"}, {" 1 2\n", ":1:"}, {"1 2 \n", ":1:"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    const char *p = tmp_file("bad.ids", bad[i].text);
    unlink(out);
    DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", p, "--out", out);
    cr_assert_eq(r.status, 1, "%s: %s", bad[i].text, r.err);
    cr_assert(strstr(r.err, "deco: error: ") && strstr(r.err, bad[i].expect) && strstr(r.err, "bad.ids"), "%s", r.err);
    cr_assert_neq(access(out, F_OK), 0, "a table was written from a bad corpus");
    deco_test_run_free(&r);
  }
  /* A NUL byte is no end of the file: malformed ids, and text the
   * llama2.c tokenizer refuses, each naming the line. */
  static const char nul_ids[] = "1 2 3 4\0garbage\n5 6 7 8 9\n", nul_text[] = "Once upon\0 a time\nThe end\n";
  char p[600], q[600]; /* not from tmp_file's ring, which holds out */
  snprintf(p, sizeof p, "%s/nul.ids", deco_test_tmpdir());
  snprintf(q, sizeof q, "%s/nul.txt", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(p, nul_ids, sizeof nul_ids - 1), 0);
  cr_assert_eq(deco_test_write_file(q, nul_text, sizeof nul_text - 1), 0);
  unlink(out);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", p, "--out", out);
  deco_test_cli_error(&r, 1, "nul.ids:1: a NUL byte at column 8");
  deco_test_run_free(&r);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--text", q, "--out", out);
  deco_test_cli_error(&r, 1, "nul.txt:1: ");
  deco_test_run_free(&r);
  cr_assert_neq(access(out, F_OK), 0, "a table was written from a bad corpus");
  char fifo[600];
  snprintf(fifo, sizeof fifo, "%s/ngram.fifo", deco_test_tmpdir());
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", fifo, "--out", out);
  cr_assert(r.status == 1 && strstr(r.err, "not a regular file"), "%s", r.err);
  deco_test_run_free(&r);
  unlink(fifo);
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids, "--out", out, "--max-bytes", "50");
  cr_assert(r.status == 1 && strstr(r.err, "max_bytes"), "%s", r.err);
  deco_test_run_free(&r);
  /* --text with a model file but no tokenizer. */
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--model", deco_test_data_file("models/stories260K.bin"), "--text", ids,
                    "--out", out);
  cr_assert(r.status == 1 && strstr(r.err, "--tokenizer"), "%s", r.err);
  deco_test_run_free(&r);
  /* Into a folder that does not exist. */
  DECO_TEST_RUN_CLI(&r, "ngram", "build", "--ids", ids, "--out", "/nonexistent-dir/x.ngram");
  cr_assert(r.status == 1 && strstr(r.err, "/nonexistent-dir/x.ngram"), "%s", r.err);
  deco_test_run_free(&r);
}

/* A header that claims a huge table, in a sparse file of exactly the size
 * it implies (2^31 slots of 24 bytes: 48 GiB, a few KiB on disk): refused
 * from the header alone, before the rest is read or allocated. */
Test(ngram, a_huge_claimed_table_is_refused_from_its_header, .timeout = 30) {
  unsigned char h[DECO_NGRAM_HEADER_BYTES + 8] = {0};
  memcpy(h, DECO_NGRAM_MAGIC, 8);
  const uint32_t fields[] = {DECO_NGRAM_VERSION, DECO_NGRAM_HEADER_BYTES, 512, DECO_NGRAM_MIN_ORDER,
                             DECO_NGRAM_MAX_ORDER, 1u << 31};
  memcpy(h + 8, fields, sizeof fields); /* offsets 8..31, little-endian as the format */
  char path[600];
  snprintf(path, sizeof path, "%s/huge.ngram", deco_test_tmpdir());
  cr_assert_eq(deco_test_write_file(path, h, sizeof h), 0);
  const off_t claimed = DECO_NGRAM_HEADER_BYTES + (off_t)(1u << 31) * 24 + 8;
  cr_assert_eq(truncate(path, claimed), 0, "a sparse file of %lld bytes in %s", (long long)claimed, path);
  deco_ngram_table_t *t = NULL;
  char want[700];
  snprintf(want, sizeof want, "%s: n_slots: 2147483648 is not a power of two in [1, 2^30]", path);
  deco_test_refused(NULL, deco_ngram_table_load(path, 512, 0, &t), DECO_STATUS_BAD_FORMAT, want);
  cr_assert_null(t);
  unlink(path);
}

/* An id outside the builder's vocabulary, below or above it: the first one
 * is named and nothing is added. */
Test(ngram, builder_names_the_first_out_of_vocabulary_id) {
  deco_ngram_builder_t *b;
  cr_assert_eq(deco_ngram_builder_create(100, &b), DECO_STATUS_SUCCESS);
  int32_t ids[4] = {3, 100, -1, 7};
  deco_test_refused(NULL, deco_ngram_builder_add(b, ids, 4), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_ngram_builder_add: ids[1] = 100 outside [0, vocab_size = 100)");
  ids[1] = 99;
  deco_test_refused(NULL, deco_ngram_builder_add(b, ids, 4), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_ngram_builder_add: ids[2] = -1 outside [0, vocab_size = 100)");
  ids[2] = 0;
  cr_assert_eq(deco_ngram_builder_add(b, ids, 4), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  deco_ngram_table_t *t;
  cr_assert_eq(deco_ngram_builder_finish(b, DECO_NGRAM_DEFAULT_MAX_BYTES, 0, &t), DECO_STATUS_SUCCESS);
  deco_ngram_info_t info;
  cr_assert_eq(deco_ngram_table_info(t, &info), DECO_STATUS_SUCCESS);
  cr_assert_eq(info.corpus_tokens, 4, "only the accepted call's ids are counted");
  deco_ngram_table_destroy(t);
  deco_ngram_builder_destroy(b);
}
