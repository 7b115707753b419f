/* host/draft/model_draft.c — drafts from a model: a separate checkpoint
 * with the target's vocabulary, or the target restricted to a list of its
 * layers (a view sharing its weights, deco_model_create_view). Chains and
 * top-w trees, greedy or sampled (deco/spec.h, "Model drafts").
 *
 * Per sequence the drafter keeps the draft's own paged KV cache (committed
 * tokens) and the pending ids (emitted, not yet in that cache; the last
 * one is the root). A round builds a draft-local tree: the pending ids as
 * a chain ending at the root, then the drafted levels below the root; each
 * level is one tree forward of the draft over every node above the
 * frontier (their K/V lands at slot len + node), whose logits give the
 * frontier's children; a chain commits each level's nodes ahead, so that
 * the next level forwards its one new node only (taken back at observe:
 * rewind_round). After verification the accepted path of forwarded
 * nodes is compacted and committed in the draft cache; the rest (an
 * accepted leaf, the bonus) is pending for the next round's first forward.
 *
 * A chain (width 1, no layer-parallel grouping; greedy, or sampled with
 * its q rows in d_q) also drafts inside the device-resident step
 * (draft_device): K draft forwards of at most two tokens whose batches
 * deco_draft_chain writes in context memory from the step's state, so the
 * step stays capturable. The chain's accepted path is a prefix, so the
 * draft cache needs no compaction there: each round rewrites the K/V of the id before
 * the root and of the root, then of each draft it forwards, and holds
 * exact K/V below len - 1 when the next round starts (deco/spec_step.h).
 * So does a deterministic top-w tree, with a fixed shape (tree_shape: the
 * budget spread over the levels by rank sums, not the host loop's tree
 * ranked by probabilities): one
 * tree forward per level over prev and the nodes above it, deco_topk_rows
 * and deco_draft_chain's tree mode for the children; its accepted path is
 * compacted in the draft cache by observe_device, which keeps the chain's
 * invariant.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "deco/philox.h"
#include "deco/spec.h"
#include "deco/select.h"
#include "deco/spec_step.h"
#include "draft/drafter.h"
#include "draft/model_draft_mutant.h"
#include "spec/draft_chain_common.h"
#include "util/arena.h"
#include "util/sized.h"

int deco_model_draft_mutant = 0;

#define DRAFT_PAGE 16
#define DRAFT_MAX_WIDTH 16
#define DRAFT_FLUSH 64                 /* pending ids forwarded causally beyond this */

typedef struct draft_seq {
  int active;
  int dseq;                            /* handle in the draft cache */
  /* A round queues at most the root, DECO_TREE_MAX_NODES - 1 accepted ids
   * and the bonus: one more than a tree's nodes. */
  int32_t pending[DECO_TREE_MAX_NODES + 1];
  int n_pending;
  /* The last round's draft-local tree. */
  int32_t tok[DECO_TREE_MAX_NODES], par[DECO_TREE_MAX_NODES];
  int n, n_pre, n_fwd;                 /* nodes, pending chain length, nodes forwarded */
  int n_committed;                     /* calibrating: chain nodes committed after the first level */
  int round_len;                       /* the draft cache's length when the last draft began */
  deco_draft_kind_t kind;
  int device;                          /* device rounds ran since begin (the host state waits for observe_host) */
} draft_seq_t;

/* The device-resident draft's context block: prev, the draft forward's
 * batch and shape (cap = 2 tokens for a chain, n + 1 for a tree of n
 * nodes), the block-table row of the sequence begun last, and a tree's
 * shape and top-W ids. */
typedef struct chain_block {
  int32_t *prev;                       /* [1] */
  int32_t *tokens, *positions, *parents; /* [cap] each */
  int32_t *q_indptr;                   /* [2] */
  int32_t *kv_lens, *prefix_lens;      /* [1] each */
  int32_t *table;                      /* [P] */
  int32_t *shape;                      /* [n] a tree's parents (tree only) */
  int32_t *topk;                       /* [cap][W] (tree only) */
} chain_block_t;

typedef struct model_drafter {
  deco_drafter_t base;
  deco_model_draft_config_t cfg;
  int *layers;                         /* the config's list, copied */
  deco_model_t *target, *dm;           /* dm: the draft (owned when a view) */
  int owns_dm;
  int vocab;
  /* The draft model dm runs by default the drafting schedule (with
   * layer_parallel > 1 its middle layers grouped, so that the plan sizes
   * the groups); exact is the sequential one (each layer alone), which
   * prefills and, when calibrating, re-runs the accepted ids. */
  deco_layer_schedule_t exact, par;
  int *exact_first, *exact_count, *par_first, *par_count;
  int calibrate;
  int planned;
  deco_kv_cache_t *kc;
  float *d_logits;                     /* context [256][V] */
  float *d_q;                          /* context [256][V]: q rows by target node */
  float *h_logits;                     /* host [256][V] */
  float *h_q;                          /* host [V] */
  int32_t *d_ints, *h_ints;            /* path [256] | accept_len | prefix | table [P] */
  size_t ints_bytes;
  draft_seq_t *seqs;
  int n_seqs;
  long forwards;                       /* draft forwards run (deco_drafter_model_forwards) */
  long tokens;                         /* tokens in them (deco_drafter_model_tokens) */
  /* The device-resident draft (chain_len K > 0 when the drafter is one):
   * a chain of K drafts, or (tree_width W > 1) the fixed top-W tree of
   * max_nodes nodes and depth K. */
  int chain_len;
  int tree_width;                      /* 0: a chain */
  int32_t chain_parents[DECO_TREE_MAX_NODES]; /* the fixed tree: -1, 0, 1, ..., K - 1 for a chain */
  char host_only[128];                 /* why it is not device-resident */
  void *chain_mem;
  chain_block_t cb;
  int chain_seq;                       /* the sequence whose row cb.table holds, or -1 */
  int chain_slots;                     /* the slots its draft cache reserved */
  const deco_spec_state_t *chain_state; /* the step's state while a device-resident run drafts, else NULL */
  int chain_steps;
} model_drafter_t;

static const deco_drafter_ops_t model_ops;

/* ---- Configuration ---- */

/* The config's integer fields within their ranges, in two groups checked
 * in this order. The draft's shape and drawing: */
static deco_status_t check_shape_ranges(deco_ctx_t *ctx, const deco_model_draft_config_t *c, const char *op) {
  DECO_CHECK_RANGE(ctx, c->draft_len, 1, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(ctx, c->width, 1, DRAFT_MAX_WIDTH, op);
  DECO_CHECK_RANGE(ctx, c->max_nodes, 0, DECO_TREE_MAX_NODES - 1, op);
  DECO_CHECK_RANGE(ctx, c->sample_siblings, 0, 1, op);
  return DECO_STATUS_SUCCESS;
}

/* Its sizes and the layer-parallel switches: */
static deco_status_t check_size_ranges(deco_ctx_t *ctx, const deco_model_draft_config_t *c, const char *op) {
  DECO_CHECK_RANGE(ctx, c->max_len, 0, 1 << 24, op);
  DECO_CHECK_RANGE(ctx, c->max_seqs, 0, 1 << 16, op);
  DECO_CHECK_RANGE(ctx, c->layer_parallel, 0, DECO_MAX_LAYER_GROUP, op);
  DECO_CHECK_RANGE(ctx, c->no_calibrate, 0, 1, op);
  return DECO_STATUS_SUCCESS;
}

static deco_status_t read_config(deco_ctx_t *ctx, const deco_model_draft_config_t *in, deco_model_draft_config_t *c,
                                 const char *op) {
  static const deco_model_draft_config_t defaults = DECO_MODEL_DRAFT_CONFIG_INIT;
  char what[96];
  snprintf(what, sizeof what, "%s: config", op);
  DECO_TRY(deco_sized_read(ctx, c, in, &defaults, sizeof *c, what));
  DECO_TRY(check_shape_ranges(ctx, c, op));
  DECO_TRY(check_size_ranges(ctx, c, op));
  if (!(c->temperature >= 0.0f) || !isfinite(c->temperature))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: temperature %g is not a finite value >= 0", op,
                     (double)c->temperature);
  if (c->max_nodes == 0) {
    const int n = c->draft_len * c->width;
    c->max_nodes = n < DECO_TREE_MAX_NODES - 1 ? n : DECO_TREE_MAX_NODES - 1;
  }
  if (c->max_seqs == 0) c->max_seqs = 1;
  return DECO_STATUS_SUCCESS;
}

/* The layer list as a schedule of one-layer groups on a view of target. */
static deco_status_t make_view(model_drafter_t *md, const char *op) {
  deco_ctx_t *ctx = deco_model_ctx(md->target);
  const int L = deco_model_get_hparams(md->target)->n_layers, n = md->cfg.n_layers;
  if (n < 1 || !md->cfg.layers)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: no draft model and an empty layer list", op);
  if (n > L)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: %d layers listed, the target has %d", op, n, L);
  for (int i = 0; i < n; ++i) {
    const int l = md->cfg.layers[i];
    if (l < 0 || l >= L)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: layer %d outside the target's [0, %d)", op, l, L);
    if (i > 0 && l <= md->cfg.layers[i - 1])
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: layers must be listed once each, in increasing order (%d after %d)", op, l,
                       md->cfg.layers[i - 1]);
  }
  md->layers = malloc(sizeof(int) * (size_t)n);
  md->exact_count = malloc(sizeof(int) * (size_t)n);
  if (!md->layers || !md->exact_count) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  for (int i = 0; i < n; ++i) {
    md->layers[i] = md->cfg.layers[i];
    md->exact_count[i] = 1;
  }
  md->cfg.layers = md->layers;
  md->exact = (deco_layer_schedule_t){.n_groups = n, .first = md->layers, .count = md->exact_count};
  return DECO_STATUS_SUCCESS;
}

/* The layer-parallel schedule over the draft's layers (the list of a
 * view, or every layer of a separate draft): the first and last run alone;
 * the middle ones in groups of N within each run of consecutive layers. */
static deco_status_t make_parallel(model_drafter_t *md, const char *op) {
  deco_ctx_t *ctx = deco_model_ctx(md->target);
  const int N = md->cfg.layer_parallel;
  const int n = md->cfg.layers ? md->cfg.n_layers : deco_model_get_hparams(md->dm)->n_layers;
  md->par = md->exact;
  if (N <= 1) return DECO_STATUS_SUCCESS;
  if (N > n - 2)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: layer_parallel %d is more than the draft's %d middle layers (its first and last run alone)",
                     op, N, n - 2 > 0 ? n - 2 : 0);
  md->par_first = malloc(sizeof(int) * (size_t)n);
  md->par_count = malloc(sizeof(int) * (size_t)n);
  if (!md->par_first || !md->par_count) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  int g = 0;
  for (int i = 0; i < n;) {
    const int l = md->cfg.layers ? md->cfg.layers[i] : i;
    int len = 1;
    if (i > 0 && i < n - 1)
      while (len < N && i + len < n - 1 && (md->cfg.layers ? md->cfg.layers[i + len] : i + len) == l + len) len++;
    md->par_first[g] = l;
    md->par_count[g++] = len;
    i += len;
  }
  md->par = (deco_layer_schedule_t){.n_groups = g, .first = md->par_first, .count = md->par_count};
  md->calibrate = !md->cfg.no_calibrate;
  return DECO_STATUS_SUCCESS;
}

/* ---- Plan: the draft cache and every buffer, once ---- */

/* The forward's token capacity of the device-resident draft. */
static int chain_cap(const model_drafter_t *md) { return md->tree_width > 1 ? md->base.max_nodes + 1 : 2; }

static void chain_layout(deco_arena_t *a, chain_block_t *b, int P, int cap, int n, int W) {
  const size_t w = sizeof(int32_t);
  b->prev = deco_arena_take(a, 1, w, w);
  b->tokens = deco_arena_take(a, (size_t)cap, w, w);
  b->positions = deco_arena_take(a, (size_t)cap, w, w);
  b->q_indptr = deco_arena_take(a, 2, w, w);
  b->parents = deco_arena_take(a, (size_t)cap, w, w);
  b->kv_lens = deco_arena_take(a, 1, w, w);
  b->prefix_lens = deco_arena_take(a, 1, w, w);
  b->table = deco_arena_take(a, (size_t)P, w, w);
  b->shape = W > 1 ? deco_arena_take(a, (size_t)n, w, w) : NULL;
  b->topk = W > 1 ? deco_arena_take(a, (size_t)cap * (size_t)W, w, w) : NULL;
}

/* The top-W ids of the rows of the last draft forward (a tree's level). */
static deco_topk_rows_args_t tree_topk_args(const model_drafter_t *md) {
  return (deco_topk_rows_args_t){.n_rows = chain_cap(md), .vocab = md->vocab, .k = md->tree_width,
                                 .dtype = DECO_DTYPE_F32, .logits = md->d_logits,
                                 .row_count = md->cb.q_indptr + 1, .ids = md->cb.topk, .values = NULL};
}

/* What the plan allocates, freed (a failed plan leaves nothing behind, so
 * a retry starts afresh). */
static void release_plan(model_drafter_t *md) {
  deco_ctx_t *ctx = deco_model_ctx(md->target);
  deco_kv_cache_destroy(md->kc);
  deco_free(ctx, md->d_logits);
  deco_free(ctx, md->d_q);
  deco_free(ctx, md->d_ints);
  deco_free(ctx, md->chain_mem);
  free(md->h_logits);
  free(md->h_q);
  free(md->h_ints);
  md->kc = NULL;
  md->d_logits = md->d_q = md->h_logits = md->h_q = NULL;
  md->d_ints = md->h_ints = NULL;
  md->chain_mem = NULL;
}

static deco_status_t plan_buffers(model_drafter_t *md, deco_ctx_t *ctx);

static deco_status_t model_plan(deco_drafter_t *d, deco_model_t *m, const deco_draft_observation_t *proto,
                                size_t *ws) {
  (void)proto;
  model_drafter_t *md = (model_drafter_t *)d;
  deco_ctx_t *ctx = deco_model_ctx(m);
  d->ctx = ctx;
  if (m != md->target)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "model drafter: planned for a model it was not made for");
  if (!md->planned) {
    const deco_status_t st = plan_buffers(md, ctx);
    if (st != DECO_STATUS_SUCCESS) {
      release_plan(md);
      return st;
    }
  }
  /* A device-resident tree's top-W selection runs in the step. */
  if (md->tree_width > 1 && ws) {
    const deco_topk_rows_args_t ta = tree_topk_args(md);
    const size_t t = deco_topk_rows_workspace_size(ctx, &ta);
    if (t > *ws) *ws = t;
  }
  return DECO_STATUS_SUCCESS;
}

/* The context a draft sequence covers: the config's max_len (0: the
 * draft's whole context), at most the draft's seq_len. */
static int draft_max_len(const model_drafter_t *md) {
  const deco_model_hparams_t *hp = deco_model_get_hparams(md->dm);
  int max_len = md->cfg.max_len ? md->cfg.max_len : hp->seq_len;
  if (max_len > hp->seq_len) max_len = hp->seq_len;
  return max_len;
}

/* The device-resident draft's context block (chain_layout) for block-table
 * rows of P pages, with the forwards' fixed parents: a tree's shape, or a
 * chain's two tokens. */
static deco_status_t plan_chain(model_drafter_t *md, deco_ctx_t *ctx, int P) {
  const int cap = chain_cap(md), n = md->base.max_nodes, W = md->tree_width;
  deco_arena_t a = DECO_ARENA_SIZING;
  chain_layout(&a, &md->cb, P, cap, n, W);
  DECO_TRY(deco_malloc(ctx, &md->chain_mem, a.bytes));
  a = deco_arena_at(md->chain_mem);
  chain_layout(&a, &md->cb, P, cap, n, W);
  static const int32_t chain2[2] = {-1, 0};
  if (W > 1) /* the forwards' parents come from deco_draft_chain's start */
    return deco_memcpy(ctx, md->cb.shape, md->chain_parents, sizeof(int32_t) * (size_t)n, DECO_COPY_HOST_TO_CTX);
  return deco_memcpy(ctx, md->cb.parents, chain2, sizeof chain2, DECO_COPY_HOST_TO_CTX);
}

static deco_status_t plan_buffers(model_drafter_t *md, deco_ctx_t *ctx) {
  const int reserve = draft_max_len(md) + DECO_TREE_MAX_NODES;
  const int pages = (reserve + DRAFT_PAGE - 1) / DRAFT_PAGE;
  DECO_TRY(deco_kv_cache_create(md->dm, DRAFT_PAGE, pages * md->cfg.max_seqs, md->cfg.max_seqs, &md->kc));
  const deco_forward_plan_t fp = {.max_tokens = DECO_TREE_MAX_NODES, .max_seqs = 1, .causal = 1, .tree = 1,
                                  .workspace_bytes = 0};
  DECO_TRY(deco_model_plan(md->dm, md->kc, &fp, NULL));

  const size_t rows = (size_t)DECO_TREE_MAX_NODES * md->vocab;
  DECO_TRY(deco_malloc(ctx, (void **)&md->d_logits, sizeof(float) * rows));
  DECO_TRY(deco_malloc(ctx, (void **)&md->d_q, sizeof(float) * rows));
  md->h_logits = calloc(rows, sizeof(float));
  md->h_q = calloc((size_t)md->vocab, sizeof(float));
  const int P = deco_kv_cache_max_pages(md->kc);
  md->ints_bytes = sizeof(int32_t) * (size_t)(DECO_TREE_MAX_NODES + 2 + P);
  DECO_TRY(deco_malloc(ctx, (void **)&md->d_ints, md->ints_bytes));
  md->h_ints = calloc(1, md->ints_bytes);
  if (!md->h_logits || !md->h_q || !md->h_ints)
    return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "model drafter: out of host memory");
  /* q rows no draw writes (leaves) stay zero. */
  DECO_TRY(deco_memcpy(ctx, md->d_q, md->h_logits, sizeof(float) * rows, DECO_COPY_HOST_TO_CTX));
  if (md->chain_len > 0) DECO_TRY(plan_chain(md, ctx, P));
  md->planned = 1;
  return DECO_STATUS_SUCCESS;
}

/* ---- Sequences ---- */

static draft_seq_t *seq_of(model_drafter_t *md, int seq) {
  return seq >= 0 && seq < md->n_seqs && md->seqs[seq].active ? &md->seqs[seq] : NULL;
}

/* Forwards the pending ids but the root causally (committing them), in
 * forwards of at most 256 ids. */
static deco_status_t flush_pending(model_drafter_t *md, draft_seq_t *s) {
  while (s->n_pending > 1) {
    int n = s->n_pending - 1;
    if (n > DECO_TREE_MAX_NODES) n = DECO_TREE_MAX_NODES;
    const deco_forward_args_t fa = {.n_seqs = 1, .seqs = &s->dseq, .n_new = &n, .tokens = s->pending,
                                    .embeds = NULL, .parents = NULL, .logits_mode = DECO_LOGITS_LAST,
                                    .logits = md->d_logits, .schedule = &md->exact};
    DECO_TRY(deco_forward(md->dm, md->kc, &fa));
    md->forwards++;
    md->tokens += n;
    memmove(s->pending, s->pending + n, sizeof(int32_t) * (size_t)(s->n_pending - n));
    s->n_pending -= n;
  }
  return DECO_STATUS_SUCCESS;
}

/* Room for the sequences up to seq (the new ones not begun). */
static deco_status_t grow_seqs(model_drafter_t *md, int seq) {
  if (seq < md->n_seqs) return DECO_STATUS_SUCCESS;
  draft_seq_t *grown = realloc(md->seqs, sizeof(draft_seq_t) * (size_t)(seq + 1));
  if (!grown) return DECO_FAIL(md->base.ctx, DECO_STATUS_OUT_OF_MEMORY, "model drafter: out of host memory");
  memset(grown + md->n_seqs, 0, sizeof(draft_seq_t) * (size_t)(seq + 1 - md->n_seqs));
  md->seqs = grown;
  md->n_seqs = seq + 1;
  return DECO_STATUS_SUCCESS;
}

static deco_status_t model_begin(deco_drafter_t *d, deco_model_t *m, int seq, const int32_t *ids, int n) {
  model_drafter_t *md = (model_drafter_t *)d;
  d->ctx = deco_model_ctx(m);
  if (!md->planned || m != md->target)
    return DECO_FAIL(d->ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "model drafter: begin before the plan, or with a model it was not made for");
  DECO_TRY(grow_seqs(md, seq));
  draft_seq_t *s = &md->seqs[seq];
  if (s->active) DECO_TRY(deco_kv_cache_release(md->kc, s->dseq));
  s->active = 0;
  const int max_len = draft_max_len(md);
  DECO_TRY(deco_kv_cache_admit(md->kc, max_len + DECO_TREE_MAX_NODES, &s->dseq));
  s->active = 1;
  s->n = s->n_fwd = s->n_pre = s->n_committed = 0;
  s->n_pending = 0;
  s->device = 0;
  /* The ids in chunks: all but the root are forwarded causally. */
  for (int i = 0; i < n; ++i) {
    if (s->n_pending == DECO_TREE_MAX_NODES) DECO_TRY(flush_pending(md, s));
    s->pending[s->n_pending++] = ids[i];
  }
  DECO_TRY(flush_pending(md, s));
  if (md->chain_len == 0) return DECO_STATUS_SUCCESS;
  /* A device-resident run may follow: the sequence's block-table row and
   * prev (the id before the root) in context memory. */
  md->chain_state = NULL;
  md->chain_seq = seq;
  md->chain_slots = max_len + DECO_TREE_MAX_NODES;
  const int32_t prev = n >= 2 ? ids[n - 2] : -1;
  DECO_TRY(deco_kv_cache_block_table(md->kc, &s->dseq, 1, md->cb.table));
  return deco_memcpy(d->ctx, md->cb.prev, &prev, sizeof prev, DECO_COPY_HOST_TO_CTX);
}

/* ---- Drafting ---- */

/* While a host round is in flight (s->n > 0), its draft levels may have
 * committed nodes ahead of acceptance (a chain's): the draft cache back to
 * the length the round began at, plus the pending ids calibration committed
 * when keep_committed (at observe; a draft again forwards them again). */
static deco_status_t rewind_round(model_drafter_t *md, draft_seq_t *s, int keep_committed) {
  if (s->n == 0) return DECO_STATUS_SUCCESS;
  if (!keep_committed) s->n_committed = 0;
  return deco_kv_cache_truncate(md->kc, s->dseq, s->round_len + s->n_committed);
}

/* A candidate child: parent node, rank among its siblings, token, score. */
typedef struct candidate {
  int parent, rank;
  int32_t token;
  double score;
} candidate_t;

static int by_score(const void *a, const void *b) {
  const candidate_t *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  return x->rank - y->rank;
}

static int by_parent(const void *a, const void *b) {
  const candidate_t *x = a, *y = b;
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  return x->rank - y->rank;
}

/* q = softmax(row / temperature), or the point mass at the argmax of a row
 * with a NaN or no finite maximum (the draft is then that id, and q what it
 * was drawn from): deco_draft_chain's reference computes q the same way. */
static void softmax_t(const float *row, int V, float temperature, float *q) {
  deco_draft_chain_softmax(row, V, deco_draft_chain_argmax(row, V), temperature, q);
}

/* A host round's working state (model_draft_host): the draft-local tree
 * grows level by level in s->tok and s->par; cand holds the children the
 * current level chose. */
typedef struct host_round {
  model_drafter_t *md;
  draft_seq_t *s;
  int root;                            /* the root's node: pending ids [0, root] are the chain down to it */
  int sampled_kind;                    /* the drafts are verified as draws: their q rows go to d_q */
  int sampled;                         /* the children are drawn from q (else the top w) */
  int budget, depth;                   /* nodes and levels left to draft */
  int f0, f1;                          /* the frontier: nodes [f0, f1) */
  double pathlp[DECO_TREE_MAX_NODES];  /* a node's path log-probability below the root */
  candidate_t cand[DECO_TREE_MAX_NODES * DRAFT_MAX_WIDTH];
  int n_cand;
} host_round_t;

/* The round's kind and limits, and the pending ids as a chain ending at
 * the root (the first frontier). */
static void start_round(host_round_t *rd, model_drafter_t *md, draft_seq_t *s) {
  const deco_model_draft_config_t *c = &md->cfg;
  const int np = s->n_pending;
  const int seq_len = deco_model_get_hparams(md->dm)->seq_len;
  rd->md = md;
  rd->s = s;
  rd->root = np - 1;
  s->round_len = deco_kv_cache_seq_len(md->kc, s->dseq);
  /* The test-only wrong rule: top-w drafts verified as draws from q. */
  const int mutant = deco_model_draft_mutant == DECO_MODEL_DRAFT_MUTANT_TOP_AS_SAMPLED;
  rd->sampled_kind = c->temperature > 0.0f && (c->width == 1 || c->sample_siblings || mutant);
  rd->sampled = rd->sampled_kind && !mutant;
  s->kind = !rd->sampled_kind ? DECO_DRAFT_DETERMINISTIC : c->width == 1 ? DECO_DRAFT_CHAIN
                                                                         : DECO_DRAFT_TREE_WITHOUT_REPLACEMENT;
  s->n = np;
  s->n_pre = np;
  s->n_fwd = 0;
  s->n_committed = 0;
  for (int j = 0; j < np; ++j) {
    s->tok[j] = s->pending[j];
    s->par[j] = j - 1;
  }
  rd->budget = c->max_nodes;
  if (rd->budget > DECO_TREE_MAX_NODES - np) rd->budget = DECO_TREE_MAX_NODES - np;
  rd->depth = c->draft_len;
  if (rd->depth > seq_len - s->round_len - np) rd->depth = seq_len - s->round_len - np; /* every position < seq_len */
  rd->pathlp[rd->root] = 0;
  rd->f0 = rd->root;
  rd->f1 = np;
}

/* One level's tree forward of every node above the frontier that is not
 * committed yet; the frontier's rows of logits land in h_logits.
 *
 * Calibration: the pending chain (the accepted ids, whose K/V the last
 * round wrote approximately, and the bonus as the root) is the first
 * level's forward, run with the sequential schedule: the one pass that
 * rewrites their K/V exactly also gives the root's logits, the first
 * draft level. The chain is then committed and the deeper levels forward
 * only the drafted nodes, under the grouped schedule; a tree of width > 1
 * keeps its root as the top of those forwards (one root per tree), so its
 * K/V is recomputed there and it runs again next round.
 *
 * A chain's levels each add one node below the last: the nodes a level
 * forwarded are committed ahead (rewind_round takes them back at
 * observe), so the next level forwards its one new node against them as
 * prefix. A tree re-forwards every node above its frontier (its nodes are
 * not a prefix). */
static deco_status_t forward_level(host_round_t *rd, int level) {
  model_drafter_t *md = rd->md;
  draft_seq_t *s = rd->s;
  const int calibrating = md->calibrate && level == 1;
  /* Nodes of this round already committed in the draft cache. */
  const int skip = deco_kv_cache_seq_len(md->kc, s->dseq) - s->round_len;
  int n = s->n - skip;
  int32_t lpar[DECO_TREE_MAX_NODES]; /* parents local to a forward that skips the committed chain */
  for (int j = 0; j < n; ++j) lpar[j] = s->par[skip + j] < skip ? -1 : s->par[skip + j] - skip;
  /* The frontier is the forward's last f1 - f0 nodes (levels are
   * appended in order): only their rows of logits. */
  const deco_forward_args_t fa = {.n_seqs = 1, .seqs = &s->dseq, .n_new = &n, .tokens = s->tok + skip,
                                  .embeds = NULL, .parents = lpar, .logits_mode = DECO_LOGITS_TAIL,
                                  .logits = md->d_logits, .schedule = calibrating ? &md->exact : NULL,
                                  .n_tail = rd->f1 - rd->f0};
  DECO_TRY(deco_forward(md->dm, md->kc, &fa));
  md->forwards++;
  md->tokens += n;
  s->n_fwd = s->n;
  DECO_TRY(deco_memcpy(md->base.ctx, md->h_logits, md->d_logits, sizeof(float) * (size_t)(rd->f1 - rd->f0) * md->vocab,
                       DECO_COPY_CTX_TO_HOST));
  if (calibrating) {
    /* Every pending id is final: their exact K/V is committed. */
    s->n_committed = md->cfg.width > 1 ? rd->root : rd->root + 1;
    return deco_kv_cache_commit(md->kc, s->dseq, s->n_committed);
  }
  if (md->cfg.width == 1) return deco_kv_cache_commit(md->kc, s->dseq, n);
  return DECO_STATUS_SUCCESS;
}

/* q of frontier node f (softmax of its row of logits) in h_q, and in d_q's
 * row of its node in the target's tree. */
static deco_status_t store_q(host_round_t *rd, int f) {
  model_drafter_t *md = rd->md;
  const int V = md->vocab;
  softmax_t(md->h_logits + (size_t)(f - rd->f0) * V, V, md->cfg.temperature, md->h_q);
  return deco_memcpy(md->base.ctx, md->d_q + (size_t)(f - rd->root) * V, md->h_q, sizeof(float) * (size_t)V,
                     DECO_COPY_HOST_TO_CTX);
}

/* Top-w children of every frontier node, best path probability first,
 * this level's share of the budget; kept in parent and rank order. */
static deco_status_t top_w_children(host_round_t *rd, int level) {
  model_drafter_t *md = rd->md;
  const int V = md->vocab;
  rd->n_cand = 0;
  for (int f = rd->f0; f < rd->f1; ++f) {
    int32_t ids[DRAFT_MAX_WIDTH];
    double lp[DRAFT_MAX_WIDTH];
    const int k = deco_draft_top_w(md->h_logits + (size_t)(f - rd->f0) * V, V, md->cfg.width, ids, lp);
    if (rd->sampled_kind) DECO_TRY(store_q(rd, f));
    for (int r = 0; r < k; ++r)
      rd->cand[rd->n_cand++] =
          (candidate_t){.parent = f, .rank = r, .token = ids[r], .score = rd->pathlp[f] + lp[r]};
  }
  int share = (rd->budget + (rd->depth - level)) / (rd->depth - level + 1);
  if (share < 1) share = 1;
  if (share > rd->n_cand) share = rd->n_cand;
  qsort(rd->cand, (size_t)rd->n_cand, sizeof *rd->cand, by_score);
  rd->n_cand = share;
  qsort(rd->cand, (size_t)rd->n_cand, sizeof *rd->cand, by_parent);
  return DECO_STATUS_SUCCESS;
}

/* Each frontier node's children drawn from its q (siblings without
 * replacement), in node order until the budget is spent. */
static deco_status_t drawn_children(host_round_t *rd) {
  const deco_model_draft_config_t *c = &rd->md->cfg;
  const int V = rd->md->vocab;
  const uint32_t root_pos = (uint32_t)(rd->s->round_len + rd->root);
  rd->n_cand = 0;
  for (int f = rd->f0; f < rd->f1 && rd->n_cand < rd->budget; ++f) {
    DECO_TRY(store_q(rd, f));
    const int tnode = f - rd->root; /* the node's index in the target's tree */
    int32_t taken[DRAFT_MAX_WIDTH];
    for (int r = 0; r < c->width && rd->n_cand < rd->budget; ++r) {
      const float u = deco_philox_uniform(c->seed, root_pos, DECO_DRAFT_CHAIN_STREAM, (uint32_t)tnode, (uint32_t)r);
      const int32_t x = deco_draft_chain_draw(rd->md->h_q, V, taken, r, u);
      if (x < 0) break;
      taken[r] = x;
      rd->cand[rd->n_cand++] = (candidate_t){.parent = f, .rank = r, .token = x, .score = 0};
    }
  }
  return DECO_STATUS_SUCCESS;
}

/* The chosen children appended as the next level: the new frontier. */
static void append_level(host_round_t *rd) {
  draft_seq_t *s = rd->s;
  rd->f0 = s->n;
  for (int i = 0; i < rd->n_cand; ++i) {
    s->tok[s->n] = rd->cand[i].token;
    s->par[s->n] = rd->cand[i].parent;
    rd->pathlp[s->n] = rd->cand[i].score;
    s->n++;
  }
  rd->f1 = s->n;
  rd->budget -= rd->n_cand;
}

static deco_status_t model_draft_host(deco_drafter_t *d, int seq, int32_t *tokens, int32_t *parents, int *n_nodes) {
  model_drafter_t *md = (model_drafter_t *)d;
  draft_seq_t *s = seq_of(md, seq);
  if (!s) return DECO_FAIL(d->ctx, DECO_STATUS_INVALID_ARGUMENT, "model drafter: sequence %d was not begun", seq);
  DECO_TRY(rewind_round(md, s, 0)); /* a draft again without an observation between */
  host_round_t rd;
  start_round(&rd, md, s);
  for (int level = 1; level <= rd.depth && rd.budget > 0 && rd.f1 > rd.f0; ++level) {
    DECO_TRY(forward_level(&rd, level));
    DECO_TRY(rd.sampled ? drawn_children(&rd) : top_w_children(&rd, level));
    append_level(&rd);
  }
  /* The target's tree: the root and what hangs below it. */
  const int root = rd.root;
  *n_nodes = s->n - root;
  for (int j = root; j < s->n; ++j) {
    tokens[j - root] = s->tok[j];
    parents[j - root] = j == root ? -1 : s->par[j] - root;
  }
  return DECO_STATUS_SUCCESS;
}

/* ---- Drafting inside the device-resident step ---- */

static deco_draft_chain_args_t chain_args(const model_drafter_t *md, int stage, int32_t *chain) {
  return (deco_draft_chain_args_t){.stage = stage,
                                   .draft_len = md->chain_len,
                                   .steps = md->chain_steps,
                                   .max_slots = md->chain_slots,
                                   .vocab = md->vocab,
                                   .state = md->chain_state,
                                   .logits = md->d_logits,
                                   .chain = chain,
                                   .prev = md->cb.prev,
                                   .path = NULL,
                                   .accept_len = NULL,
                                   .tokens = md->cb.tokens,
                                   .positions = md->cb.positions,
                                   .q_indptr = md->cb.q_indptr,
                                   .kv_lens = md->cb.kv_lens,
                                   .prefix_lens = md->cb.prefix_lens,
                                   .temperature = md->cfg.temperature,
                                   .seed = md->cfg.seed,
                                   .q = md->d_q,
                                   .width = md->tree_width,
                                   .n_nodes = md->tree_width > 1 ? md->base.max_nodes : 0,
                                   .shape = md->cb.shape,
                                   .topk = md->cb.topk,
                                   .fparents = md->cb.parents};
}

/* K draft forwards, each followed by deco_draft_chain (the argmax, or a
 * draw whose q lands in d_q's row of the node, into the chain; the next
 * forward's batch); enqueued only. A tree: forward l runs prev and every
 * node above level l, then deco_topk_rows of its rows gives the level's
 * children (deco_draft_chain scatters them by parent and rank). */
static deco_status_t model_draft_device(deco_drafter_t *d, const deco_draft_device_args_t *a) {
  model_drafter_t *md = (model_drafter_t *)d;
  deco_ctx_t *ctx = d->ctx;
  if (a->n_trees != 1 || !a->seqs || !a->state)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "model drafter: a device draft needs one sequence, its handle and the step's state");
  draft_seq_t *s = seq_of(md, a->seqs[0]);
  if (!s || a->seqs[0] != md->chain_seq)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "model drafter: sequence %d is not the one begun last; a device draft follows its begin",
                     a->seqs[0]);
  /* A tree's compaction reads slots up to len + n - 1 (len <= steps). */
  const int reach = md->tree_width > 1 ? a->steps + md->base.max_nodes : a->steps;
  if (reach > md->chain_slots)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "model drafter: %d steps, but the draft cache reserves %d slots per sequence (max_len)", a->steps,
                     md->chain_slots);
  s->device = 1;
  md->chain_state = a->state;
  md->chain_steps = a->steps;
  deco_draft_chain_args_t ca = chain_args(md, DECO_DRAFT_CHAIN_START, a->tokens);
  DECO_TRY(deco_draft_chain(ctx, &ca));
  const deco_topk_rows_args_t ta = tree_topk_args(md);
  const deco_forward_device_args_t fa = {.n_seqs = 1,
                                         .n_tokens = chain_cap(md),
                                         .tokens = md->cb.tokens,
                                         .positions = md->cb.positions,
                                         .q_indptr = md->cb.q_indptr,
                                         .kv_lens = md->cb.kv_lens,
                                         .prefix_lens = md->cb.prefix_lens,
                                         .parents = md->cb.parents,
                                         .block_table = md->cb.table,
                                         .logits = md->d_logits,
                                         .embeds = NULL,
                                         .schedule = NULL};
  for (int l = 1; l <= md->chain_len; ++l) {
    DECO_TRY(deco_forward_device(md->dm, md->kc, &fa));
    md->forwards++;
    md->tokens += fa.n_tokens;
    if (md->tree_width > 1) DECO_TRY(deco_topk_rows(ctx, &ta));
    ca.stage = l;
    DECO_TRY(deco_draft_chain(ctx, &ca));
  }
  return DECO_STATUS_SUCCESS;
}

/* After acceptance: a tree's draft cache compacted along the accepted
 * path (the target's rule, from the root's slot len), then prev <- the id
 * at the next round's len - 1. Nothing outside a device-resident run (the
 * host engine verifies too). */
static deco_status_t model_observe_device(deco_drafter_t *d, const deco_draft_observation_t *o) {
  model_drafter_t *md = (model_drafter_t *)d;
  if (!md->chain_state) return DECO_STATUS_SUCCESS;
  if (o->n_trees != 1 || o->n_nodes != md->base.max_nodes)
    return DECO_FAIL(d->ctx, DECO_STATUS_INTERNAL, "model drafter: observed %d trees of %d nodes, drafted 1 of %d",
                     o->n_trees, o->n_nodes, md->base.max_nodes);
  if (md->tree_width > 1) {
    const deco_kv_cache_compact_args_t ka = {.n_seqs = 1, .block_table = md->cb.table,
                                             .prefix_lens = &md->chain_state->len, .path = o->verdict.path,
                                             .accept_len = o->verdict.accept_len};
    DECO_TRY(deco_kv_cache_compact(md->kc, &ka));
  }
  deco_draft_chain_args_t ca = chain_args(md, DECO_DRAFT_CHAIN_OBSERVE, (int32_t *)o->tokens);
  ca.path = o->verdict.path;
  ca.accept_len = o->verdict.accept_len;
  return deco_draft_chain(d->ctx, &ca);
}

/* The end of a device-resident run: the host state catches up. The draft
 * cache holds exact K/V below the final len - 2 at least, and the emitted
 * ids (stop ids cut them short) cover at most that len: the begin's
 * committed ids, the root and emitted[0..n) are positions 0..len0 + n; all
 * but the last two are committed, the rest is pending. */
static deco_status_t chain_catch_up(model_drafter_t *md, draft_seq_t *s, const int32_t *emitted, int n) {
  const int len0 = deco_kv_cache_seq_len(md->kc, s->dseq);
  int c = len0 + n - 2;
  if (c < len0) c = len0;
  int np = 0;
  for (int p = c; p <= len0 + n; ++p) s->pending[np++] = p == len0 ? s->pending[0] : emitted[p - len0 - 1];
  s->n_pending = np;
  s->n = s->n_fwd = s->n_pre = s->n_committed = 0;
  s->device = 0;
  md->chain_state = NULL;
  return deco_kv_cache_commit(md->kc, s->dseq, c - len0);
}

/* A sampled chain's device drafts: the chain rule with d_q (node l - 1's
 * row is the distribution of draft l), once d_q exists. */
static void model_device_probs(const deco_drafter_t *d, deco_draft_kind_t *kind, const float **q) {
  const model_drafter_t *md = (const model_drafter_t *)d;
  const int sampled = md->chain_len > 0 && md->tree_width <= 1 && md->cfg.temperature > 0.0f && md->d_q;
  *kind = sampled ? DECO_DRAFT_CHAIN : DECO_DRAFT_DETERMINISTIC;
  *q = sampled ? md->d_q : NULL;
}

static deco_status_t model_draft_probs(deco_drafter_t *d, int seq, deco_draft_kind_t *kind, const float **q) {
  model_drafter_t *md = (model_drafter_t *)d;
  draft_seq_t *s = seq_of(md, seq);
  if (!s) return DECO_FAIL(d->ctx, DECO_STATUS_INVALID_ARGUMENT, "model drafter: sequence %d was not begun", seq);
  *kind = s->kind;
  *q = s->kind == DECO_DRAFT_DETERMINISTIC ? NULL : md->d_q;
  return DECO_STATUS_SUCCESS;
}

/* The draft-local nodes of the emitted ids: the pending chain down to the
 * root, then the child that matches each accepted draft (the bonus, the
 * last id, is no node). */
static deco_status_t accepted_path(model_drafter_t *md, const draft_seq_t *s, const int32_t *emitted, int n,
                                   int32_t *path, int *n_path) {
  int np = 0;
  for (int j = 0; j < s->n_pre; ++j) path[np++] = j;
  int cur = s->n_pre - 1;
  for (int i = 0; i < n - 1; ++i) {
    int next = -1;
    for (int j = cur + 1; j < s->n && next < 0; ++j)
      if (s->par[j] == cur && s->tok[j] == emitted[i]) next = j;
    if (next < 0)
      return DECO_FAIL(md->base.ctx, DECO_STATUS_INTERNAL,
                       "model drafter: accepted id %d is not a child of draft node %d", emitted[i], cur);
    path[np++] = next;
    cur = next;
  }
  *n_path = np;
  return DECO_STATUS_SUCCESS;
}

/* The first k nodes of the path, forwarded this round, moved to the
 * draft cache's slots len.. (the target's compaction rule, run on the
 * draft's cache); nothing moves when they already sit there. */
static deco_status_t compact_path(model_drafter_t *md, draft_seq_t *s, const int32_t *path, int k) {
  deco_ctx_t *ctx = md->base.ctx;
  int identity = 1;
  for (int i = 0; i < k; ++i) identity &= path[i] == i;
  if (identity) return DECO_STATUS_SUCCESS;
  const int len = deco_kv_cache_seq_len(md->kc, s->dseq);
  int32_t *h = md->h_ints;
  memcpy(h, path, sizeof(int32_t) * (size_t)k);
  h[DECO_TREE_MAX_NODES] = k;
  h[DECO_TREE_MAX_NODES + 1] = len;
  DECO_TRY(deco_memcpy(ctx, md->d_ints, h, sizeof(int32_t) * (DECO_TREE_MAX_NODES + 2), DECO_COPY_HOST_TO_CTX));
  int32_t *table = md->d_ints + DECO_TREE_MAX_NODES + 2;
  DECO_TRY(deco_kv_cache_block_table(md->kc, &s->dseq, 1, table));
  const deco_kv_cache_compact_args_t ca = {.n_seqs = 1, .block_table = table,
                                           .prefix_lens = md->d_ints + DECO_TREE_MAX_NODES + 1,
                                           .path = md->d_ints, .accept_len = md->d_ints + DECO_TREE_MAX_NODES};
  return deco_kv_cache_compact(md->kc, &ca);
}

/* How many nodes of the accepted path stay committed in the draft cache
 * (*k); the rest runs again as pending ids. */
static deco_status_t commit_path(model_drafter_t *md, draft_seq_t *s, const int32_t *path, int n_path, int *k) {
  if (s->n_committed > 0) {
    /* Calibrating: the chain is in the cache (a tree's root aside); the
     * accepted drafts (grouped, approximate K/V) and the bonus run again,
     * sequentially. */
    *k = s->n_committed;
    return DECO_STATUS_SUCCESS;
  }
  int kept = 0;
  while (!md->calibrate && kept < n_path && path[kept] < s->n_fwd) kept++; /* calibrating: no level ran */
  *k = kept;
  if (kept == 0) return DECO_STATUS_SUCCESS;
  DECO_TRY(compact_path(md, s, path, kept));
  return deco_kv_cache_commit(md->kc, s->dseq, kept);
}

/* The accepted drafts and the bonus: the accepted path of forwarded nodes
 * is compacted and committed in the draft cache; the rest is pending. */
static deco_status_t model_observe_host(deco_drafter_t *d, int seq, const int32_t *emitted, int n) {
  model_drafter_t *md = (model_drafter_t *)d;
  deco_ctx_t *ctx = d->ctx;
  draft_seq_t *s = seq_of(md, seq);
  if (!s) return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "model drafter: sequence %d was not begun", seq);
  DECO_TRY(rewind_round(md, s, 1)); /* the rules below decide what stays */
  if (s->device) return chain_catch_up(md, s, emitted, n);
  if (n < 1) return DECO_STATUS_SUCCESS;
  if (s->n == 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "model drafter: sequence %d observed %d ids with no draft since the last observation or begin", seq,
                     n);
  int32_t path[DECO_TREE_MAX_NODES];
  int n_path, k;
  DECO_TRY(accepted_path(md, s, emitted, n, path, &n_path));
  DECO_TRY(commit_path(md, s, path, n_path, &k));
  int np = 0;
  for (int i = k; i < n_path; ++i) s->pending[np++] = s->tok[path[i]];
  s->pending[np++] = emitted[n - 1];
  s->n_pending = np;
  s->n = s->n_fwd = s->n_pre = s->n_committed = 0;
  return s->n_pending > DRAFT_FLUSH ? flush_pending(md, s) : DECO_STATUS_SUCCESS;
}

static void model_end(deco_drafter_t *d, int seq, int keep) {
  model_drafter_t *md = (model_drafter_t *)d;
  for (int s = 0; s < md->n_seqs; ++s) {
    if ((keep ? s == seq : s != seq) || !md->seqs[s].active) continue;
    (void)deco_kv_cache_release(md->kc, md->seqs[s].dseq); /* an admitted handle: cannot fail */
    md->seqs[s].active = 0;
  }
}

/* With config.max_len below the draft's context (near whose end the host
 * loop drafts less), a sequence's draft cache reserves max_len + 256
 * slots. The host loop's draft of N nodes (root excluded: a chain's
 * min(draft_len, max_nodes), a tree's max_nodes) writes up to slot
 * steps - 2 + N, the device chain up to steps - 1; the device tree's
 * compaction reads up to steps + n - 1 for its shape's n nodes (root
 * included). */
static int model_max_steps(const deco_drafter_t *d) {
  const model_drafter_t *md = (const model_drafter_t *)d;
  const deco_model_draft_config_t *c = &md->cfg;
  if (c->max_len <= 0 || c->max_len >= deco_model_get_hparams(md->dm)->seq_len) return 0;
  const int chain = c->draft_len < c->max_nodes ? c->draft_len : c->max_nodes;
  const int nodes = md->tree_width > 1 ? d->max_nodes : c->width == 1 ? chain : c->max_nodes;
  return c->max_len + DECO_TREE_MAX_NODES - nodes;
}

static void model_destroy(deco_drafter_t *d) {
  model_drafter_t *md = (model_drafter_t *)d;
  release_plan(md);
  if (md->owns_dm) deco_model_destroy(md->dm);
  free(md->layers);
  free(md->exact_count);
  free(md->par_first);
  free(md->par_count);
  free(md->seqs);
  free(md);
}

static const deco_drafter_ops_t model_ops = {
    .name = "model",
    .plan = model_plan,
    .begin = model_begin,
    .end = model_end,
    .max_steps = model_max_steps,
    .draft_host = model_draft_host,
    .draft_device = model_draft_device,
    .observe_device = model_observe_device,
    .observe_host = model_observe_host,
    .destroy = model_destroy,
    .draft_probs = model_draft_probs,
    .device_probs = model_device_probs,
};

/* The fixed top-W tree of a device-resident drafter: the host drafter's
 * level-by-level rule with a static score. Level l (1..draft_len) takes
 * ceil(budget left / levels left) children, at most W per node, those of
 * the smallest rank sum (the ranks along the path from the root, the
 * child's own included; ties: the earlier parent, then the lower rank),
 * laid out by parent and rank, so the shape is breadth first, each node's
 * children are its ranks 0..k - 1, and the rank-0 path reaches the full
 * depth whenever the budget allows one node per level. Its depth. */
static int tree_shape(const deco_model_draft_config_t *c, int32_t *par, int *n_nodes) {
  int cost[DECO_TREE_MAX_NODES], taken[DECO_TREE_MAX_NODES];
  int n = 1, f0 = 0, f1 = 1, depth = 0, budget = c->max_nodes;
  par[0] = -1;
  cost[0] = 0;
  for (int level = 1; level <= c->draft_len && budget > 0 && f1 > f0; ++level) {
    const int left = c->draft_len - level + 1;
    const int share = (budget + left - 1) / left;
    for (int f = f0; f < f1; ++f) taken[f] = 0;
    int got = 0;
    for (; got < share; ++got) {
      int best = -1;
      for (int f = f0; f < f1; ++f)
        if (taken[f] < c->width && (best < 0 || cost[f] + taken[f] < cost[best] + taken[best])) best = f;
      if (best < 0) break;
      taken[best]++;
    }
    for (int f = f0; f < f1; ++f)
      for (int r = 0; r < taken[f]; ++r) {
        par[n] = f;
        cost[n++] = cost[f] + r;
      }
    budget -= got;
    f0 = f1;
    f1 = n;
    depth = level;
  }
  *n_nodes = n;
  return depth;
}

/* A chain, deterministic or sampled, drafts on the device too
 * (device_resident, the fixed chain of K = min(draft_len, max_nodes)
 * drafts), and so does a deterministic top-W tree (tree_shape); other
 * drafts say why they stay on the host. */
static void chain_shape(model_drafter_t *md) {
  const deco_model_draft_config_t *c = &md->cfg;
  const int K = c->draft_len < c->max_nodes ? c->draft_len : c->max_nodes;
  if (c->layer_parallel > 1)
    snprintf(md->host_only, sizeof md->host_only, "layer-parallel drafting, layer_parallel %d, calibrates there",
             c->layer_parallel);
  else if (c->width > 1 && c->temperature > 0.0f && c->sample_siblings)
    snprintf(md->host_only, sizeof md->host_only,
             "a tree of width %d with sampled siblings: only top-w trees draft on the device", c->width);
  else if (c->width > 1 && c->max_nodes > DECO_TREE_MAX_NODES - 2)
    snprintf(md->host_only, sizeof md->host_only, "a tree of %d drafts: at most %d draft on the device",
             c->max_nodes, DECO_TREE_MAX_NODES - 2);
  else if (c->width > 1) {
    /* max_nodes becomes the shape's size, which the host loop's trees
     * never exceed: they take the same share per level (or, near the end
     * of the context, fewer levels and a smaller budget) of at most W
     * children per node. */
    int n;
    md->chain_len = tree_shape(c, md->chain_parents, &n);
    md->tree_width = c->width;
    md->base.max_nodes = n;
    md->base.device_resident = 1;
    md->base.shape_parents = md->chain_parents;
    return;
  } else if (K > DECO_TREE_MAX_NODES - 2)
    snprintf(md->host_only, sizeof md->host_only, "a chain of %d drafts: at most %d draft on the device", K,
             DECO_TREE_MAX_NODES - 2);
  else {
    md->chain_len = K;
    for (int j = 0; j <= K; ++j) md->chain_parents[j] = j - 1;
    md->base.max_nodes = K + 1;
    md->base.device_resident = 1;
    md->base.shape_parents = md->chain_parents;
    return;
  }
  md->base.host_only = md->host_only;
}

deco_status_t deco_drafter_create_model(deco_model_t *target, deco_model_t *draft,
                                        const deco_model_draft_config_t *config, deco_drafter_t **out) {
  static const char op[] = "deco_drafter_create_model";
  if (!target || !config || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  deco_ctx_t *ctx = deco_model_ctx(target);
  *out = NULL;
  model_drafter_t *md = calloc(1, sizeof *md);
  if (!md) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "%s: out of host memory", op);
  md->target = target;
  md->vocab = deco_model_get_hparams(target)->vocab_size;
  md->base = (deco_drafter_t){.ops = &model_ops, .max_nodes = 1, .device_resident = 0, .shape_parents = NULL,
                              .host_only = NULL, .ctx = ctx};
  md->chain_seq = -1;
  deco_status_t st = read_config(ctx, config, &md->cfg, op);
  if (st == DECO_STATUS_SUCCESS && md->cfg.target_tokenizer_hash && md->cfg.draft_tokenizer_hash &&
      md->cfg.target_tokenizer_hash != md->cfg.draft_tokenizer_hash)
    st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the draft's tokenizer differs from the target's", op);
  if (st == DECO_STATUS_SUCCESS && draft) {
    if (md->cfg.n_layers != 0)
      st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: a draft model and a layer list are exclusive", op);
    else if (deco_model_ctx(draft) != ctx)
      st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the draft model lives in another context", op);
    else if (deco_model_get_hparams(draft)->vocab_size != md->vocab)
      st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: the draft's vocabulary has %d ids, the target's %d", op,
                     deco_model_get_hparams(draft)->vocab_size, md->vocab);
    else if (deco_model_get_hparams(draft)->seq_len < deco_model_get_hparams(target)->seq_len)
      st = DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: the draft's context (%d positions) is shorter than the target's (%d)", op,
                     deco_model_get_hparams(draft)->seq_len, deco_model_get_hparams(target)->seq_len);
    md->dm = draft;
    md->cfg.layers = NULL;
    md->exact = (deco_layer_schedule_t)DECO_LAYER_SCHEDULE_INIT; /* every layer alone */
  } else if (st == DECO_STATUS_SUCCESS) {
    st = make_view(md, op);
    md->dm = target;
  }
  /* The draft model: a view of the target or of the separate draft that
   * runs the drafting schedule by default (a separate draft without
   * layer_parallel runs as it is). */
  if (st == DECO_STATUS_SUCCESS) st = make_parallel(md, op);
  if (st == DECO_STATUS_SUCCESS && (md->cfg.layers || md->par.n_groups)) {
    deco_model_t *base = md->dm;
    md->dm = NULL;
    st = deco_model_create_view(base, &md->par, &md->dm);
    md->owns_dm = st == DECO_STATUS_SUCCESS;
  }
  if (st != DECO_STATUS_SUCCESS) {
    model_destroy(&md->base);
    return st;
  }
  md->base.max_nodes = md->cfg.max_nodes + 1;
  chain_shape(md);
  *out = &md->base;
  return DECO_STATUS_SUCCESS;
}

deco_model_t *deco_drafter_model(const deco_drafter_t *d) {
  return d && d->ops == &model_ops ? ((const model_drafter_t *)d)->dm : NULL;
}

deco_kv_cache_t *deco_drafter_model_cache(const deco_drafter_t *d, int seq, int *draft_seq) {
  if (!d || d->ops != &model_ops || !draft_seq) return NULL;
  model_drafter_t *md = (model_drafter_t *)d;
  draft_seq_t *s = seq_of(md, seq);
  if (!s) return NULL;
  *draft_seq = s->dseq;
  return md->kc;
}

long deco_drafter_model_forwards(const deco_drafter_t *d) {
  return d && d->ops == &model_ops ? ((const model_drafter_t *)d)->forwards : -1;
}

long deco_drafter_model_tokens(const deco_drafter_t *d) {
  return d && d->ops == &model_ops ? ((const model_drafter_t *)d)->tokens : -1;
}
