/* tests/test_lookup.c — prompt-lookup draft trees: n-gram fallback 3 → 2 → 1,
 * newest match first, trie merging of shared prefixes, draft length and node
 * budget, continuations clipped at the end of the history. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/testutil.h"

static int draft(const int32_t *h, int n, int draft_len, int max_nodes, int32_t *tok, int32_t *par) {
  deco_lookup_config_t c = {.size = sizeof(deco_lookup_config_t), .max_ngram = 3, .min_ngram = 1,
                            .draft_len = draft_len, .max_nodes = max_nodes};
  int out = -1;
  cr_assert_eq(deco_lookup_draft(h, n, &c, tok, par, &out), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(deco_tree_validate(par, out), DECO_STATUS_SUCCESS, "%s", deco_last_error(NULL));
  cr_assert_eq(tok[0], h[n - 1], "node 0 is the last token");
  return out;
}

Test(lookup, no_match_gives_the_root_alone) {
  int32_t h[4] = {5, 6, 7, 8}, tok[33], par[33];
  cr_assert_eq(draft(h, 4, 10, 32, tok, par), 1);
  int32_t one[1] = {9};
  cr_assert_eq(draft(one, 1, 10, 32, tok, par), 1);
}

Test(lookup, trigram_match_proposes_its_continuation) {
  /* ... 1 2 3 4 5 ... 1 2 3 : the 3-gram matches once -> chain 4 5 6 1 2 3 */
  int32_t h[9] = {1, 2, 3, 4, 5, 6, 1, 2, 3}, tok[33], par[33];
  int n = draft(h, 9, 10, 32, tok, par);
  int32_t expect[7] = {3, 4, 5, 6, 1, 2, 3};
  cr_assert_eq(n, 7);
  for (int i = 0; i < 7; ++i) {
    cr_assert_eq(tok[i], expect[i], "node %d", i);
    cr_assert_eq(par[i], i - 1);
  }
  /* draft_len 2 keeps the first two */
  cr_assert_eq(draft(h, 9, 2, 32, tok, par), 3);
  cr_assert_eq(tok[2], 5);
}

Test(lookup, falls_back_to_shorter_ngrams_only_when_longer_ones_fail) {
  /* Last 3 (8 2 3) never occurred; last 2 (2 3) did, twice. The unigram 3
   * also occurred but must not be used. */
  int32_t h[10] = {2, 3, 7, 2, 3, 9, 3, 4, 8, 2};
  int32_t hh[11];
  memcpy(hh, h, sizeof h);
  hh[10] = 3; /* history ends ... 8 2 3 */
  int32_t tok[33], par[33];
  int n = draft(hh, 11, 1, 32, tok, par);
  /* bigram (2 3) occurrences at 3 (-> 9) and 0 (-> 7), newest first */
  cr_assert_eq(n, 3);
  cr_assert_eq(tok[1], 9);
  cr_assert_eq(tok[2], 7);
  cr_assert_eq(par[1], 0);
  cr_assert_eq(par[2], 0);
}

Test(lookup, trie_merges_shared_prefixes_newest_first) {
  /* 3-gram (1 2 3) earlier at 0 -> 4 5 6 and at 7 -> 4 5 9: shared 4 5. */
  int32_t h[17] = {1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 9, 0, 1, 2, 3};
  int32_t tok[33], par[33];
  int n = draft(h, 17, 3, 32, tok, par);
  /* newest (at 7): 4 5 9 as nodes 1 2 3; then (at 0): 4 5 shared, 6 new under node 2 */
  cr_assert_eq(n, 5);
  int32_t et[5] = {3, 4, 5, 9, 6}, ep[5] = {-1, 0, 1, 2, 2};
  for (int i = 0; i < 5; ++i) {
    cr_assert_eq(tok[i], et[i], "token of node %d", i);
    cr_assert_eq(par[i], ep[i], "parent of node %d", i);
  }
  /* The node budget cuts the older proposal. */
  cr_assert_eq(draft(h, 17, 3, 3, tok, par), 4);
}

Test(lookup, continuation_clipped_at_history_end) {
  /* 7 7 7 7: the 3-gram (7 7 7) occurs at 0, followed by one token. */
  int32_t h[4] = {7, 7, 7, 7}, tok[33], par[33];
  int n = draft(h, 4, 10, 32, tok, par);
  cr_assert_eq(n, 2);
  cr_assert_eq(tok[1], 7);
}

Test(lookup, bad_arguments) {
  int32_t h[3] = {1, 2, 3}, tok[4], par[4];
  int n;
  deco_lookup_config_t c = {.size = sizeof(deco_lookup_config_t), .max_ngram = 3, .min_ngram = 1, .draft_len = 10,
                            .max_nodes = 300};
  cr_assert_eq(deco_lookup_draft(h, 3, &c, tok, par, &n), DECO_STATUS_INVALID_ARGUMENT);
  c.max_nodes = 3;
  c.min_ngram = 4;
  cr_assert_eq(deco_lookup_draft(h, 3, &c, tok, par, &n), DECO_STATUS_INVALID_ARGUMENT);
  c.min_ngram = 1;
  cr_assert_eq(deco_lookup_draft(h, 0, &c, tok, par, &n), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(deco_lookup_draft(NULL, 3, &c, tok, par, &n), DECO_STATUS_NULL_POINTER);
}
