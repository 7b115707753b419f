/* host/spec/lookup.c — prompt-lookup drafts (PLD, Saxena 2023; CopySpec,
 * 2025): earlier occurrences of the history's last n tokens propose what
 * followed them; the proposals, newest first, are merged into a trie rooted
 * at the last token, within a node budget.
 * history [n_history] ids; output tokens/parents [<= max_nodes + 1].
 */
#include <string.h>

#include "core/internal.h"
#include "deco/spec.h"

/* Child of node with token t, or -1. */
static int find_child(const int32_t *tokens, const int32_t *parents, int n, int node, int32_t t) {
  for (int j = node + 1; j < n; ++j)
    if (parents[j] == node && tokens[j] == t) return j;
  return -1;
}

deco_status_t deco_lookup_draft(const int32_t *history, int n_history, const deco_lookup_config_t *c,
                                int32_t *tokens, int32_t *parents, int *n_nodes) {
  static const char op[] = "deco_lookup_draft";
  if (!history || !c || !tokens || !parents || !n_nodes)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  DECO_CHECK_RANGE(NULL, n_history, 1, 1 << 30, op);
  DECO_CHECK_RANGE(NULL, c->min_ngram, 1, 64, op);
  DECO_CHECK_RANGE(NULL, c->max_ngram, c->min_ngram, 64, op);
  DECO_CHECK_RANGE(NULL, c->draft_len, 1, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(NULL, c->max_nodes, 0, DECO_TREE_MAX_NODES - 1, op);
  const int cap = c->max_nodes + 1;
  int n = 1;
  tokens[0] = history[n_history - 1];
  parents[0] = -1;
  for (int ng = c->max_ngram; ng >= c->min_ngram; --ng) {
    if (ng >= n_history) continue; /* no earlier occurrence can exist */
    const int32_t *suffix = history + n_history - ng;
    int found = 0;
    /* Occurrence at i, followed by history[i + ng]; newest first. */
    for (int i = n_history - 1 - ng; i >= 0 && n < cap; --i) {
      if (memcmp(history + i, suffix, sizeof(int32_t) * (size_t)ng) != 0) continue;
      found = 1;
      int start = i + ng, len = n_history - start;
      if (len > c->draft_len) len = c->draft_len;
      int node = 0;
      for (int k = 0; k < len; ++k) {
        int child = find_child(tokens, parents, n, node, history[start + k]);
        if (child < 0) {
          if (n == cap) break;
          child = n++;
          tokens[child] = history[start + k];
          parents[child] = node;
        }
        node = child;
      }
    }
    if (found) break;
  }
  *n_nodes = n;
  return DECO_STATUS_SUCCESS;
}
