/* host/draft/lookup.c — prompt-lookup drafts (PLD, Saxena 2023; CopySpec,
 * 2025): earlier occurrences of the history's last n tokens propose what
 * followed them; the proposals, newest first, are merged into a trie rooted
 * at the last token, within a node budget. The drafter keeps each
 * sequence's history (prompt, then every emitted id it observes) and drafts
 * on the host.
 * history [n_history] ids; output tokens/parents [<= max_nodes + 1].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "deco/spec.h"
#include "draft/drafter.h"
#include "util/sized.h"

/* Child of node with token t, or -1. */
static int find_child(const int32_t *tokens, const int32_t *parents, int n, int node, int32_t t) {
  for (int j = node + 1; j < n; ++j)
    if (parents[j] == node && tokens[j] == t) return j;
  return -1;
}

/* The caller's config (its size read) with every field checked. */
static deco_status_t read_config(const deco_lookup_config_t *in, deco_lookup_config_t *c, const char *op) {
  static const deco_lookup_config_t defaults = DECO_LOOKUP_CONFIG_INIT;
  char what[64];
  snprintf(what, sizeof what, "%s: config", op);
  DECO_TRY(deco_sized_read(NULL, c, in, &defaults, sizeof *c, what));
  DECO_CHECK_RANGE(NULL, c->min_ngram, 1, 64, op);
  DECO_CHECK_RANGE(NULL, c->max_ngram, c->min_ngram, 64, op);
  DECO_CHECK_RANGE(NULL, c->draft_len, 1, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(NULL, c->max_nodes, 0, DECO_TREE_MAX_NODES - 1, op);
  return DECO_STATUS_SUCCESS;
}

/* The draft trie being built: node 0 is the root, at most cap nodes. */
typedef struct trie {
  int32_t *tokens, *parents;
  int n, cap;
} trie_t;

/* Adds the path ids[0..len) below the root, sharing the nodes of an
 * existing prefix, until the trie is full. */
static void trie_add(trie_t *t, const int32_t *ids, int len) {
  int node = 0;
  for (int k = 0; k < len; ++k) {
    int child = find_child(t->tokens, t->parents, t->n, node, ids[k]);
    if (child < 0) {
      if (t->n == t->cap) break;
      child = t->n++;
      t->tokens[child] = ids[k];
      t->parents[child] = node;
    }
    node = child;
  }
}

/* Each earlier occurrence of the history's last ng ids (ng < n_history),
 * newest first, adds what followed it (at most draft_len ids) while the
 * trie has room. Returns 1 if there was any occurrence. */
static int add_ngram_matches(trie_t *t, const int32_t *history, int n_history, int ng, int draft_len) {
  const int32_t *suffix = history + n_history - ng;
  int found = 0;
  /* Occurrence at i, followed by history[i + ng]; newest first. */
  for (int i = n_history - 1 - ng; i >= 0 && t->n < t->cap; --i) {
    if (memcmp(history + i, suffix, sizeof(int32_t) * (size_t)ng) != 0) continue;
    found = 1;
    int start = i + ng, len = n_history - start;
    if (len > draft_len) len = draft_len;
    trie_add(t, history + start, len);
  }
  return found;
}

deco_status_t deco_lookup_draft(const int32_t *history, int n_history, const deco_lookup_config_t *config,
                                int32_t *tokens, int32_t *parents, int *n_nodes) {
  static const char op[] = "deco_lookup_draft";
  if (!history || !config || !tokens || !parents || !n_nodes)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  DECO_CHECK_RANGE(NULL, n_history, 1, 1 << 30, op);
  deco_lookup_config_t cfg;
  DECO_TRY(read_config(config, &cfg, op));
  const deco_lookup_config_t *c = &cfg;
  trie_t t = {.tokens = tokens, .parents = parents, .n = 1, .cap = c->max_nodes + 1};
  tokens[0] = history[n_history - 1];
  parents[0] = -1;
  /* The longest n-gram with any earlier occurrence supplies the draft. */
  for (int ng = c->max_ngram; ng >= c->min_ngram; --ng) {
    if (ng >= n_history) continue; /* no earlier occurrence can exist */
    if (add_ngram_matches(&t, history, n_history, ng, c->draft_len)) break;
  }
  *n_nodes = t.n;
  return DECO_STATUS_SUCCESS;
}

/* ---- The drafter ---- */

typedef struct history {
  int32_t *ids;
  int n, cap;
} history_t;

typedef struct lookup_drafter {
  deco_drafter_t base;
  deco_lookup_config_t cfg;
  history_t *seqs; /* [n_seqs], by sequence handle */
  int n_seqs;
} lookup_drafter_t;

static deco_status_t append(deco_drafter_t *d, history_t *h, const int32_t *ids, int n) {
  if (h->n + n > h->cap) {
    int cap = h->cap ? h->cap : 256;
    while (cap < h->n + n) cap *= 2;
    int32_t *grown = realloc(h->ids, sizeof(int32_t) * (size_t)cap);
    if (!grown) return DECO_FAIL(d->ctx, DECO_STATUS_OUT_OF_MEMORY, "prompt lookup: out of host memory");
    h->ids = grown;
    h->cap = cap;
  }
  memcpy(h->ids + h->n, ids, sizeof(int32_t) * (size_t)n);
  h->n += n;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t lookup_plan(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                                 size_t *ws) {
  d->ctx = deco_model_ctx(m); /* where its failures are reported */
  return DECO_STATUS_SUCCESS;
}

static deco_status_t lookup_begin(deco_drafter_t *d, deco_model_t *m, int seq, const int32_t *ids, int n) {
  lookup_drafter_t *l = (lookup_drafter_t *)d;
  d->ctx = deco_model_ctx(m);
  if (seq >= l->n_seqs) {
    history_t *grown = realloc(l->seqs, sizeof(history_t) * (size_t)(seq + 1));
    if (!grown) return DECO_FAIL(d->ctx, DECO_STATUS_OUT_OF_MEMORY, "prompt lookup: out of host memory");
    memset(grown + l->n_seqs, 0, sizeof(history_t) * (size_t)(seq + 1 - l->n_seqs));
    l->seqs = grown;
    l->n_seqs = seq + 1;
  }
  l->seqs[seq].n = 0;
  return append(d, &l->seqs[seq], ids, n);
}

static history_t *history_of(lookup_drafter_t *l, int seq) {
  return seq >= 0 && seq < l->n_seqs && l->seqs[seq].n > 0 ? &l->seqs[seq] : NULL;
}

static deco_status_t lookup_draft_host(deco_drafter_t *d, int seq, int32_t *tokens, int32_t *parents, int *n) {
  lookup_drafter_t *l = (lookup_drafter_t *)d;
  history_t *h = history_of(l, seq);
  if (!h) return DECO_FAIL(d->ctx, DECO_STATUS_INVALID_ARGUMENT, "prompt lookup: sequence %d was not begun", seq);
  deco_status_t st = deco_lookup_draft(h->ids, h->n, &l->cfg, tokens, parents, n);
  return st == DECO_STATUS_SUCCESS ? st : DECO_FAIL(d->ctx, st, "%s", deco_last_error(NULL));
}

static deco_status_t lookup_observe_host(deco_drafter_t *d, int seq, const int32_t *emitted, int n) {
  history_t *h = history_of((lookup_drafter_t *)d, seq);
  if (!h) return DECO_FAIL(d->ctx, DECO_STATUS_INVALID_ARGUMENT, "prompt lookup: sequence %d was not begun", seq);
  return append(d, h, emitted, n);
}

/* Lets go of seq's history (keep: of every other sequence's). */
static void lookup_end(deco_drafter_t *d, int seq, int keep) {
  lookup_drafter_t *l = (lookup_drafter_t *)d;
  for (int s = 0; s < l->n_seqs; ++s) {
    if (keep ? s == seq : s != seq) continue;
    free(l->seqs[s].ids);
    l->seqs[s] = (history_t){.ids = NULL, .n = 0, .cap = 0};
  }
}

static void lookup_destroy(deco_drafter_t *d) {
  lookup_drafter_t *l = (lookup_drafter_t *)d;
  for (int i = 0; i < l->n_seqs; ++i) free(l->seqs[i].ids);
  free(l->seqs);
  free(l);
}

static const deco_drafter_ops_t lookup_ops = {
    .name = "lookup",
    .plan = lookup_plan,
    .begin = lookup_begin,
    .draft_host = lookup_draft_host,
    .draft_device = NULL,
    .observe_device = NULL,
    .observe_host = lookup_observe_host,
    .end = lookup_end,
    .destroy = lookup_destroy,
};

deco_status_t deco_drafter_create_lookup(const deco_lookup_config_t *config, deco_drafter_t **out) {
  static const char op[] = "deco_drafter_create_lookup";
  if (!config || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  *out = NULL;
  lookup_drafter_t *l = calloc(1, sizeof *l);
  if (!l) return DECO_FAIL(NULL, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  deco_status_t st = read_config(config, &l->cfg, op);
  if (st != DECO_STATUS_SUCCESS) {
    free(l);
    return st;
  }
  l->base = (deco_drafter_t){.ops = &lookup_ops, .max_nodes = l->cfg.max_nodes + 1, .device_resident = 0,
                             .shape_parents = NULL, .ctx = NULL};
  *out = &l->base;
  return DECO_STATUS_SUCCESS;
}
