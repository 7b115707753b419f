/* fuzz/fuzz_template.c — libFuzzer target for Token Recycling's tree
 * template text (--tree-template): parse; a success must be a valid tree of
 * at most 256 nodes, breadth first, whose paths (read back through parent
 * and rank) print as a text that parses to the same tree; a failure must be
 * BAD_FORMAT with a message naming the file. The k check runs with k taken
 * from the first byte. Seeds: make_corpus.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deco/deco.h"

static const char kName[] = "fuzz-template.txt";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy: reads past the end hit ASan's redzone. */
  char *text = malloc(size ? size : 1);
  if (!text) abort();
  if (size) memcpy(text, data, size);
  deco_tree_template_t t;
  deco_status_t s = deco_tree_template_parse(text, size, kName, &t);
  free(text);
  if (s != DECO_STATUS_SUCCESS) {
    if (s != DECO_STATUS_BAD_FORMAT) abort();
    if (strncmp(deco_last_error(NULL), kName, sizeof kName - 1) != 0) abort();
    return 0;
  }
  if (t.n_nodes < 2 || t.n_nodes > DECO_TREE_MAX_NODES) abort();
  if (deco_tree_validate(t.parent, t.n_nodes) != DECO_STATUS_SUCCESS) abort();
  int32_t depth[DECO_TREE_MAX_NODES];
  if (deco_tree_depths(t.parent, t.n_nodes, depth) != DECO_STATUS_SUCCESS) abort();
  int max_rank = 0;
  for (int j = 1; j < t.n_nodes; ++j) {
    if (depth[j] < depth[j - 1] || t.rank[j] < 0) abort();
    if (t.rank[j] > max_rank) max_rank = t.rank[j];
  }
  if (depth[t.n_nodes - 1] != t.max_depth || max_rank != t.max_rank) abort();
  /* Print the paths and parse them again. */
  char *again = malloc((size_t)t.n_nodes * DECO_TREE_MAX_NODES * 8 + 1);
  if (!again) abort();
  size_t len = 0;
  for (int j = 1; j < t.n_nodes; ++j) {
    int32_t path[DECO_TREE_MAX_NODES];
    int n = 0;
    for (int v = j; v > 0; v = t.parent[v]) path[n++] = t.rank[v];
    for (int i = n - 1; i >= 0; --i) len += (size_t)sprintf(again + len, i == n - 1 ? "%d" : ",%d", (int)path[i]);
    again[len++] = '\n';
  }
  deco_tree_template_t u;
  if (deco_tree_template_parse(again, len, "again", &u) != DECO_STATUS_SUCCESS) abort();
  if (memcmp(&t, &u, sizeof t) != 0) abort();
  free(again);
  const int k = size ? 1 + data[0] % DECO_RECYCLE_MAX_K : 1;
  s = deco_tree_template_check_k(&t, k, kName);
  if ((s == DECO_STATUS_SUCCESS) != (t.max_rank < k)) abort();
  return 0;
}
