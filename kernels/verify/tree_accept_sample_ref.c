/* kernels/verify/tree_accept_sample_ref.c — reference lossless stochastic
 * acceptance over a ragged batch of draft trees (Leviathan et al. / Chen et
 * al. for chains; SpecInfer and recursive rejection sampling, Jeon et al.
 * 2024, for sibling drafts). logits [n_nodes][vocab] f32, draft_probs
 * [n_nodes][vocab] (q at each parent), tokens [n_nodes], parent [n_nodes].
 *
 * The exact rule the CUDA kernel reproduces (sums here in fp64, in id order):
 *  target at node v: m = max logit, c = log2(e)/T (fp32), w(y) = exp2f((l_y -
 *    m) * c) (fp32). Tokens rank by (logit desc, id asc) — -0 equals +0.
 *    top-k keeps the first k ranks (0 or k >= V: all). top-p walks the kept
 *    ranks, keeping rank r while W_before(r) < top_p * S_k, W_before = sum of
 *    w over the ranks before r, S_k = sum over the top-k set (so the top-1
 *    always stays). The support is a prefix of the ranks; S = sum of w over it;
 *    p(y) = w(y) / S on the support, 0 elsewhere.
 *  children of v are tried in increasing node index; child c with token x
 *    (x outside [0, V): rejected, nothing updated) is accepted iff
 *    u * q(x) < p(x), u = deco_philox_uniform(seed, offset, b, c, 0), in fp64.
 *  DETERMINISTIC (q = point mass): the current distribution is w on the
 *    support minus the rejected set X, total W_X = S - sum_{x in X} w(x)
 *    (scalar updates, in rejection order); p(x) = w(x) / W_X (0 if W_X <= 0).
 *  CHAIN, TREE_WITH/WITHOUT_REPLACEMENT: r_0 = p. Trial i uses q_i = q (with
 *    replacement) or q with the earlier rejected tokens zeroed and divided by
 *    D_i = 1 - sum of their q (without; q_i = 0 once D_i <= 0), scalar. On its
 *    rejection Z_i = sum_y max(0, r_{i-1}(y) - q_i(y)) (a pass over the row);
 *    r_i = max(0, r_{i-1} - q_i) / Z_i elementwise, or r_i = r_{i-1} when
 *    Z_i <= 0 (only rounding can cause that). CHAIN demands <= 1 child per
 *    node here (the GPU treats CHAIN as WITH_REPLACEMENT and does not check).
 *  bonus at the last accepted node v when no child is accepted (or v is a
 *    leaf): weights omega = the current distribution (w on the support, or
 *    with X removed, or r_k), Omega = their sum, u = deco_philox_uniform(seed,
 *    offset, b, v, 1); bonus = smallest id with cumulative weight > u * Omega
 *    (increasing id); if none, the largest id of positive weight; if Omega
 *    <= 0, the top-ranked token.
 *  a row holding a NaN or an infinity ends the walk at its node: no child is
 *    tried, bonus = the row's largest logit (lowest id, NaN skipped; 0 if
 *    every logit is NaN), nonfinite[b] = 1 + that node (else 0).
 * Output: path[b][0..accept_len) (then -1 up to DECO_TREE_MAX_NODES),
 * accept_len[b], bonus[b], nonfinite[b] if asked. Malformed trees fail with
 * a message.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/op_impl.h"
#include "deco/philox.h"
#include "verify/accept_common.h"
#include "verify/accept_mutant.h"
#include "verify/tree_ref_util.h"

/* ---- test-only broken rules (verify/accept_mutant.h); 0 = the rule above ---- */
int deco_accept_mutant = DECO_ACCEPT_CORRECT;

/* The target at one node: the weights, and which tokens are in the support. */
typedef struct target {
  float *w;           /* [V] fp32 weights */
  unsigned char *in;  /* [V] 1 = in the top-k / top-p support */
  double S;           /* sum of w over the support */
  int top;            /* top-ranked token */
} target_t;

static _Thread_local const float *g_sort_logits; /* qsort has no context argument */

static int rank_cmp(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  uint32_t ka = deco_float_key(g_sort_logits[a]), kb = deco_float_key(g_sort_logits[b]);
  if (ka != kb) return ka > kb ? -1 : 1;
  return a < b ? -1 : (a > b);
}

static void build_target(const float *logits, int V, float temperature, int top_k, float top_p, int *order,
                         target_t *t) {
  int top = 0;
  for (int y = 1; y < V; ++y)
    if (logits[y] > logits[top]) top = y;
  float m = logits[top];
  float c = DECO_ACCEPT_LOG2E / temperature;
  for (int y = 0; y < V; ++y) t->w[y] = deco_accept_weight(logits[y], m, c);
  t->top = top;
  int k = (top_k > 0 && top_k < V) ? top_k : V;
  if (k == V && !(top_p < 1.0f)) {
    double S = 0.0;
    for (int y = 0; y < V; ++y) {
      t->in[y] = 1;
      S += t->w[y];
    }
    t->S = S;
    return;
  }
  for (int y = 0; y < V; ++y) order[y] = y;
  g_sort_logits = logits;
  qsort(order, (size_t)V, sizeof(int), rank_cmp);
  double Sk = 0.0;
  for (int r = 0; r < k; ++r) Sk += t->w[order[r]];
  int keep = k;
  if (top_p < 1.0f) {
    double W = 0.0, bound = (double)top_p * Sk;
    keep = 0;
    for (int r = 0; r < k && W < bound; ++r) {
      W += t->w[order[r]];
      keep = r + 1;
    }
  }
  memset(t->in, 0, (size_t)V);
  double S = 0.0;
  for (int r = 0; r < keep; ++r) {
    t->in[order[r]] = 1;
    S += t->w[order[r]];
  }
  t->S = S;
}

/* Picks the bonus from weights omega[V] by inverse CDF in id order. */
static int draw_bonus(const double *omega, int V, double u, int fallback) {
  double total = 0.0;
  for (int y = 0; y < V; ++y) total += omega[y];
  if (!(total > 0.0)) return fallback;
  double thr = u * total, cum = 0.0;
  int last = fallback;
  for (int y = 0; y < V; ++y) {
    if (omega[y] > 0.0) last = y;
    cum += omega[y];
    if (cum > thr) return y;
  }
  return last;
}

typedef struct scratch {
  target_t t;
  int *order;
  double *r;     /* current residual r_i (non-deterministic kinds) */
  double *omega; /* bonus weights */
  unsigned char *excl; /* without replacement: tokens zeroed in q */
  int32_t children[DECO_TREE_MAX_NODES];
} scratch_t;

/* One tree's walk: what the trials and the bonus at each of its nodes read. */
typedef struct walk {
  const deco_tree_accept_sample_args_t *a;
  scratch_t *s;
  const int32_t *tokens; /* the tree's tokens (local node indices) */
  uint64_t seed;
  uint32_t offset;
  int b;                 /* the tree */
  int node0;             /* its first node in the batch */
  int V;
  int kind;              /* a->draft_kind */
  int without;           /* TREE_WITHOUT_REPLACEMENT */
} walk_t;

/* What the trials at one node carry from a rejected child to the next, and
 * on to the bonus. */
typedef struct trials {
  double WX;    /* DETERMINISTIC: total weight after removing X */
  double D;     /* WITHOUT: normaliser of q_i */
  int rejected; /* a residual update was applied (non-deterministic kinds) */
} trials_t;

/* Before v's first child: nothing removed, D = 1, and r_0 = p (the target
 * on its support) for the non-deterministic kinds. */
static void begin_trials(const walk_t *w, trials_t *tr) {
  scratch_t *s = w->s;
  tr->WX = s->t.S;
  tr->D = 1.0;
  tr->rejected = 0;
  memset(s->excl, 0, (size_t)w->V);
  if (w->kind != DECO_DRAFT_DETERMINISTIC)
    for (int y = 0; y < w->V; ++y) s->r[y] = s->t.in[y] ? (double)s->t.w[y] / s->t.S : 0.0;
}

/* DETERMINISTIC: accepts token x iff u < p(x) = w(x) / W_X; a rejected x in
 * the support leaves it (unless the test-only NO_RESIDUAL rule is on). */
static int try_deterministic(scratch_t *s, trials_t *tr, int x, double u) {
  double px = (s->t.in[x] && !s->excl[x] && tr->WX > 0.0) ? (double)s->t.w[x] / tr->WX : 0.0;
  if (u < px) return 1;
  if (s->t.in[x] && !s->excl[x] && deco_accept_mutant != DECO_ACCEPT_MUTANT_NO_RESIDUAL) {
    s->excl[x] = 1;
    tr->WX -= s->t.w[x];
  }
  return 0;
}

/* After a rejection: r <- max(0, r - q_i) / Z, Z = the sum of the positive
 * parts (r kept when Z <= 0); q_i = q * qscale with the excluded tokens at 0. */
static void subtract_draft(scratch_t *s, const float *q, int V, double qscale) {
  double Z = 0.0;
  for (int y = 0; y < V; ++y) {
    double d = s->r[y] - (s->excl[y] ? 0.0 : (double)q[y] * qscale);
    Z += d > 0.0 ? d : 0.0;
  }
  if (Z > 0.0) {
    for (int y = 0; y < V; ++y) {
      double d = s->r[y] - (s->excl[y] ? 0.0 : (double)q[y] * qscale);
      s->r[y] = d > 0.0 ? d / Z : 0.0;
    }
  }
}

/* CHAIN and TREE_WITH/WITHOUT_REPLACEMENT: accepts token x iff
 * u * q_i(x) < r(x); on a rejection r becomes the residual and, without
 * replacement, x leaves q (D shrinks by its q). */
static int try_residual(const walk_t *w, trials_t *tr, const float *q, int x, double u) {
  scratch_t *s = w->s;
  double qscale = w->without ? (tr->D > 0.0 ? 1.0 / tr->D : 0.0) : 1.0;
  double qx = s->excl[x] ? 0.0 : (double)q[x] * qscale;
  if (u * qx < s->r[x]) return 1;
  subtract_draft(s, q, w->V, qscale);
  if (w->without && !s->excl[x]) {
    tr->D -= q[x];
    s->excl[x] = 1;
  }
  tr->rejected = 1;
  return 0;
}

/* Tries v's children in increasing index (a token outside [0, V) is
 * rejected with no draw and no update); returns the first one accepted, or
 * -1 with tr holding what the rejections left. The target is s->t. */
static int try_children(const walk_t *w, const int32_t *parent, int n, int v, trials_t *tr) {
  scratch_t *s = w->s;
  const float *q = w->kind == DECO_DRAFT_DETERMINISTIC ? NULL : w->a->draft_probs + (size_t)(w->node0 + v) * w->V;
  int n_children = deco_tree_ref_children(parent, n, v, s->children);
  begin_trials(w, tr);
  for (int j = 0; j < n_children; ++j) {
    int c = s->children[j];
    int x = w->tokens[c];
    if (x < 0 || x >= w->V) continue;
    double u = deco_philox_uniform(w->seed, w->offset, (uint32_t)w->b, (uint32_t)c, 0);
    int ok = w->kind == DECO_DRAFT_DETERMINISTIC ? try_deterministic(s, tr, x, u) : try_residual(w, tr, q, x, u);
    if (ok) return c;
  }
  return -1;
}

/* The bonus at v, where no child was accepted: drawn from the current
 * distribution (w on the support; without X for DETERMINISTIC; the residual
 * after a rejection of the other kinds). */
static int draw_node_bonus(const walk_t *w, int v, int rejected) {
  const deco_tree_accept_sample_args_t *a = w->a;
  scratch_t *s = w->s;
  const int V = w->V;
  if (deco_accept_mutant == DECO_ACCEPT_MUTANT_BONUS_ROOT && v != 0) { /* test-only broken rule */
    build_target((const float *)a->logits + (size_t)w->node0 * V, V, a->temperature, a->top_k, a->top_p, s->order,
                 &s->t);
    memset(s->excl, 0, (size_t)V);
    rejected = 0;
  }
  for (int y = 0; y < V; ++y) {
    if (w->kind == DECO_DRAFT_DETERMINISTIC) s->omega[y] = (s->t.in[y] && !s->excl[y]) ? (double)s->t.w[y] : 0.0;
    else if (rejected) s->omega[y] = s->r[y];
    else s->omega[y] = s->t.in[y] ? (double)s->t.w[y] : 0.0;
  }
  double u = deco_philox_uniform(w->seed, w->offset, (uint32_t)w->b, (uint32_t)v, 1);
  return draw_bonus(s->omega, V, u, s->t.top);
}

/* Walks tree b from its root; returns accept_len, writes path[], *bonus and
 * *nonfinite (1 + the node whose row held a NaN or an infinity: the walk
 * ends there, the bonus is that row's largest logit; else 0). */
static int walk_tree(const deco_tree_accept_sample_args_t *a, int b, const int32_t *parent, int n, scratch_t *s,
                     int32_t *path, int32_t *bonus, int32_t *nonfinite) {
  const int node0 = a->tree.tree_indptr[b];
  const walk_t w = {.a = a,
                    .s = s,
                    .tokens = a->tokens + node0,
                    .seed = *a->seed,
                    .offset = *a->offset,
                    .b = b,
                    .node0 = node0,
                    .V = a->vocab,
                    .kind = a->draft_kind,
                    .without = a->draft_kind == DECO_DRAFT_TREE_WITHOUT_REPLACEMENT};
  int v = 0, len = 0;
  path[len++] = 0;
  *nonfinite = 0;
  for (;;) {
    const float *lrow = (const float *)a->logits + (size_t)(node0 + v) * w.V;
    if (!deco_tree_ref_row_finite(lrow, w.V)) { /* no distribution to sample from */
      *nonfinite = v + 1;
      *bonus = deco_tree_ref_argmax(lrow, w.V);
      return len;
    }
    build_target(lrow, w.V, a->temperature, a->top_k, a->top_p, s->order, &s->t);
    trials_t tr;
    int accepted = try_children(&w, parent, n, v, &tr);
    if (accepted < 0) {
      *bonus = draw_node_bonus(&w, v, tr.rejected);
      return len;
    }
    v = accepted;
    path[len++] = v;
  }
}

/* CHAIN allows at most one child per node: the first node of a tree found
 * to share its parent with an earlier one (scanning later nodes against
 * earlier ones) is refused. */
static deco_status_t check_chain_trees(const deco_exec_t *exec, const deco_tree_batch_t *tb, const char *op) {
  for (int b = 0; b < tb->n_trees; ++b) {
    const int32_t *par = tb->parent + tb->tree_indptr[b];
    int n = tb->tree_indptr[b + 1] - tb->tree_indptr[b];
    for (int c = 2; c < n; ++c)
      for (int d = 1; d < c; ++d)
        if (par[d] == par[c])
          return DECO_EXEC_FAIL(exec, DECO_STATUS_INVALID_ARGUMENT,
                                "%s: draft_kind CHAIN but node %d of tree %d has several children (%d and %d)", op,
                                par[c], b, d, c);
  }
  return DECO_STATUS_SUCCESS;
}

/* The walk's per-token arrays for a vocabulary of V; 0 when one is
 * missing (free_scratch frees what was allocated). */
static int alloc_scratch(scratch_t *s, size_t V) {
  s->t.w = malloc(V * sizeof(float));
  s->t.in = malloc(V);
  s->order = malloc(V * sizeof(int));
  s->r = malloc(V * sizeof(double));
  s->omega = malloc(V * sizeof(double));
  s->excl = malloc(V);
  return s->t.w && s->t.in && s->order && s->r && s->omega && s->excl;
}

static void free_scratch(scratch_t *s) {
  free(s->t.w);
  free(s->t.in);
  free(s->order);
  free(s->r);
  free(s->omega);
  free(s->excl);
}

/* Walks every tree of the batch in order, writing its outputs. */
static void walk_trees(const deco_tree_accept_sample_args_t *a, scratch_t *s) {
  const deco_tree_batch_t *tb = &a->tree;
  for (int b = 0; b < tb->n_trees; ++b) {
    int32_t *path = a->out.path + (size_t)b * DECO_TREE_MAX_NODES;
    for (int i = 0; i < DECO_TREE_MAX_NODES; ++i) path[i] = -1;
    int n = tb->tree_indptr[b + 1] - tb->tree_indptr[b];
    int32_t nonfinite;
    a->out.accept_len[b] = walk_tree(a, b, tb->parent + tb->tree_indptr[b], n, s, path, &a->out.bonus[b], &nonfinite);
    if (a->out.nonfinite) a->out.nonfinite[b] = nonfinite;
  }
}

deco_status_t deco_tree_accept_sample_ref(const deco_exec_t *exec, const deco_tree_accept_sample_args_t *a) {
  static const char op[] = "deco_tree_accept_sample";
  const deco_tree_batch_t *tb = &a->tree;
  DECO_TRY(deco_tree_ref_check_batch(exec, tb, op));
  if (a->draft_kind == DECO_DRAFT_CHAIN) DECO_TRY(check_chain_trees(exec, tb, op));
  const size_t V = (size_t)a->vocab;
  scratch_t s;
  deco_status_t st = DECO_STATUS_SUCCESS;
  if (alloc_scratch(&s, V)) walk_trees(a, &s);
  else st = DECO_EXEC_FAIL(exec, DECO_STATUS_OUT_OF_MEMORY, "%s: no host memory for vocab %zu", op, V);
  free_scratch(&s);
  return st;
}
