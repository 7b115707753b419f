/* deco/tree.h — draft trees and their verification: tree attention over the
 * paged KV cache, greedy and lossless stochastic acceptance. Compaction of
 * the accepted path's KV (deco_kv_compact) is an op of the KV cache, in
 * deco/kv.h, which this header includes (through deco/attention.h).
 *
 * A tree is a parent array in topological order (parent[i] < i), parent[0] =
 * -1; node 0 is the root (the last committed token, whose K/V is not cached
 * yet). A batch of trees is ragged: tree b owns the flat nodes
 * [tree_indptr[b], tree_indptr[b+1]) and its parent entries are local
 * indices. With a committed prefix of L tokens, node i's K/V is in slot
 * L + i and its RoPE position is L + depth(i). Depths and the ancestor mask
 * are derived from the parent array inside the kernels: no dense mask.
 *
 * Siblings are ordered by node index: acceptance tries children in
 * increasing index order, and among equally long greedy paths the one with
 * the smallest node index at each depth wins.
 *
 * Every argument struct has a DECO_<NAME>_INIT macro of designated
 * initialisers: pointers NULL, counts 0 (to be set), strides 0 (dense),
 * dtypes f32, and the defaults a field's comment names.
 */
#ifndef DECO_TREE_H
#define DECO_TREE_H

#include "deco/attention.h"
#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_TREE_MAX_NODES 256

/* ---- Host helpers (plain C, no context; messages via deco_last_error(NULL)) ---- */

/* Checks that parent[0..n) is a tree as above (1 <= n <= 256). */
DECO_API deco_status_t deco_tree_validate(const int32_t *parent, int n_nodes);
/* depth[i] = number of edges from the root (depth[0] = 0). */
DECO_API deco_status_t deco_tree_depths(const int32_t *parent, int n_nodes, int32_t *depth);
/* positions[i] = prefix_len + depth(i). */
DECO_API deco_status_t deco_tree_positions(const int32_t *parent, int n_nodes, int prefix_len, int32_t *positions);

/* Builds a tree from rank paths (Token Recycling templates): path j (of
 * n_paths) is ranks[offsets[j] .. offsets[j+1]) from the root, e.g. {0,1} =
 * the root's rank-0 child's rank-1 child. Paths must come breadth first
 * (non-decreasing length) with every proper prefix listed earlier. Output:
 * n_paths + 1 nodes, node j + 1 = path j; parent[] and rank[] (rank[0] = -1)
 * of capacity n_paths + 1. */
DECO_API deco_status_t deco_tree_from_rank_paths(const int32_t *ranks, const int32_t *offsets, int n_paths,
                                                 int32_t *parent, int32_t *rank);

/* Builds a parent array from first-child / next-sibling lists (sgl-kernel's
 * retrive_next_token / retrive_next_sibling, TensorRT-LLM), -1 = none, node 0
 * the root. The output is in breadth-first order (children in list order):
 * order[k] = input index of output node k, parent[] in output indices. Every
 * node must be reachable exactly once. */
DECO_API deco_status_t deco_tree_from_child_sibling(const int32_t *first_child, const int32_t *next_sibling,
                                                    int n_nodes, int32_t *parent, int32_t *order);

/* ---- Device-side description of a ragged batch of trees ---- */

typedef struct deco_tree_batch {
  int n_trees;                 /* B >= 1 */
  int n_nodes;                 /* capacity: >= tree_indptr[B]; grid sizes come from it */
  const int32_t *tree_indptr;  /* [B + 1] context memory */
  const int32_t *parent;       /* [n_nodes] local parent indices, -1 at each root */
} deco_tree_batch_t;
#define DECO_TREE_BATCH_INIT {.n_trees = 0, .n_nodes = 0, .tree_indptr = NULL, .parent = NULL}

/* ---- Tree attention ---- */

/* Node i of tree b attends to slots 0..L_b-1 of its sequence and to the
 * slots L_b + j of its ancestors j and itself; all of these K/V must be in
 * the cache (deco_kv_append with kv_lens = L_b + n_b writes node j to L_b + j).
 *   out[i][h] = softmax(scale * q[i][h] · K) · V  over those slots, GQA group
 * h / (n_heads / n_kv_heads). Row b of cache.block_table belongs to tree b.
 * Rows of nodes outside every tree's range are never written. Device-side
 * values that do not hold: the CUDA op skips a tree whose node range is
 * unusable (decreasing, negative, over 256 nodes or past n_nodes; its rows
 * stay unwritten), writes NaN rows for a tree with a bad parent array or a
 * prefix length outside [0, block-table capacity - n_b], and NaN in the
 * rows that attend to a slot without a page. The CPU twin refuses with
 * DECO_STATUS_INVALID_ARGUMENT naming the tree: bad ranges, parents and
 * prefix lengths before writing anything, a missing page when it meets it
 * (the trees before it written). */
typedef struct deco_tree_attention_args {
  deco_paged_kv_t cache;
  deco_tree_batch_t tree;
  const int32_t *prefix_lens;  /* [B] L_b, context memory */
  int n_heads;
  float scale;
  const void *q;               /* [n_nodes][n_heads][head_dim] cache.dtype */
  void *out;                   /* [n_nodes][n_heads][head_dim] cache.dtype */
  int q_stride;                /* elements between nodes in q: 0 = n_heads * head_dim, else >= that */
} deco_tree_attention_args_t;
/* scale 0 must be set (the op refuses it). */
#define DECO_TREE_ATTENTION_ARGS_INIT                                                                           \
  {.cache = DECO_PAGED_KV_INIT, .tree = DECO_TREE_BATCH_INIT, .prefix_lens = NULL, .n_heads = 0, .scale = 0.0f, \
   .q = NULL, .out = NULL, .q_stride = 0}
/* 0 on the CPU, and for arguments the op would refuse (deco/core.h). */
DECO_API size_t deco_tree_attention_workspace_size(deco_ctx_t *ctx, const deco_tree_attention_args_t *args);
DECO_API deco_status_t deco_tree_attention(deco_ctx_t *ctx, const deco_tree_attention_args_t *args);
/* Name of the kernel path deco_tree_attention picks for these arguments,
 * for benches and logs: "ref" (CPU), "generic", "mma-w4" or "mma-w8" (mma.sync
 * tensor cores, head dim 64/128, f16/bf16), with "+splitN" when the KV is
 * split N ways; "none" for an empty batch, "invalid" for bad arguments. The
 * CUDA names live in one thread-local buffer shared with
 * deco_attention_path: valid until the next call of either on the same
 * thread. */
DECO_API const char *deco_tree_attention_path(deco_ctx_t *ctx, const deco_tree_attention_args_t *args);

/* ---- Acceptance ---- */

/* Output of verification, per tree b (context memory):
 *   path[b][0 .. accept_len[b])  accepted node indices (local), root first;
 *   accept_len[b] >= 1           nodes on the path including the root;
 *   bonus[b]                     token drawn at the last accepted node.
 *   nonfinite[b]                 optional (NULL: not reported): 0, or 1 + the
 *                                smallest node whose logits row the decision
 *                                read holds a NaN or an infinity.
 * Tokens committed by the step = the accepted drafts plus the bonus.
 * A malformed tree in device memory (which the CPU backend rejects with a
 * message) gets accept_len[b] = 0 and bonus[b] = -1 on the CUDA backend.
 * Logits that are not finite mean the model's output is unusable: the
 * caller stops (the outputs stay in range, but carry no meaning). */
typedef struct deco_tree_verify_out {
  int32_t *path;        /* [B][DECO_TREE_MAX_NODES] */
  int32_t *accept_len;  /* [B] */
  int32_t *bonus;       /* [B] */
  int32_t *nonfinite;   /* [B] or NULL */
} deco_tree_verify_out_t;
#define DECO_TREE_VERIFY_OUT_INIT {.path = NULL, .accept_len = NULL, .bonus = NULL, .nonfinite = NULL}

/* Greedy: a[i] = argmax(logits[i]) (ties -> lowest id); node c with parent p
 * matches if tokens[c] == a[p]; accept the longest root path of matching
 * nodes (ties: smallest node index at each depth); bonus = a[last]. */
typedef struct deco_tree_accept_greedy_args {
  deco_tree_batch_t tree;
  const int32_t *tokens;       /* [n_nodes] each node's token (the root's is ignored) */
  deco_dtype_t logits_dtype;   /* f32 or bf16 */
  const void *logits;          /* [n_nodes][vocab] target logits */
  int vocab;
  deco_tree_verify_out_t out;
} deco_tree_accept_greedy_args_t;
#define DECO_TREE_ACCEPT_GREEDY_ARGS_INIT                                                                    \
  {.tree = DECO_TREE_BATCH_INIT, .tokens = NULL, .logits_dtype = DECO_DTYPE_F32, .logits = NULL, .vocab = 0, \
   .out = DECO_TREE_VERIFY_OUT_INIT}
/* 0: acceptance needs no workspace (nor for refused arguments, deco/core.h). */
DECO_API size_t deco_tree_accept_greedy_workspace_size(deco_ctx_t *ctx, const deco_tree_accept_greedy_args_t *args);
DECO_API deco_status_t deco_tree_accept_greedy(deco_ctx_t *ctx, const deco_tree_accept_greedy_args_t *args);

/* How the drafts were made; decides which rule is lossless. */
typedef enum deco_draft_kind {
  /* (c) deterministic drafts (templates, lookup, top-k trees): q is a point
   * mass; accept child x with probability p(x), else p <- norm(p, x zeroed). */
  DECO_DRAFT_DETERMINISTIC = 0,
  /* (a) a chain (at most one child per node) drawn from q. */
  DECO_DRAFT_CHAIN = 1,
  /* (b) siblings drawn i.i.d. from q at their parent. */
  DECO_DRAFT_TREE_WITH_REPLACEMENT = 2,
  /* (b) siblings drawn from q at their parent without replacement. */
  DECO_DRAFT_TREE_WITHOUT_REPLACEMENT = 3
} deco_draft_kind_t;

/* Lossless stochastic acceptance (Leviathan et al.; Chen et al.; SpecInfer /
 * recursive rejection sampling). At node p, the target distribution is
 * softmax(logits[p] / temperature) restricted to its top_k tokens (0 = all)
 * and then to its top-p nucleus (1 = all; ties by lower id), renormalised.
 * Children c of p are tried in index order: accept tokens[c] = x when
 * u * q_p(x) < p(x) (q_p = draft_probs[p], or the point mass for
 * DETERMINISTIC); on rejection p <- norm(max(0, p - q_p)) and, without
 * replacement, q_p <- norm(q_p with x zeroed). When no child is accepted
 * (or p is a leaf), the bonus is drawn from the current p at p.
 * Uniforms: Philox4x32-10, key *seed, counter (*offset, b, node, draw) with
 * draw 0 for the accept test of child `node` and draw 1 for the bonus drawn
 * at `node`; CPU and GPU make the same draws. */
typedef struct deco_tree_accept_sample_args {
  deco_tree_batch_t tree;
  const int32_t *tokens;        /* [n_nodes] */
  deco_dtype_t logits_dtype;    /* f32 or bf16 */
  const void *logits;           /* [n_nodes][vocab] target logits */
  int vocab;
  float temperature;            /* > 0 */
  int top_k;                    /* 0 = off */
  float top_p;                  /* (0, 1], 1 = off */
  deco_draft_kind_t draft_kind;
  const float *draft_probs;     /* [n_nodes][vocab] q at each node; NULL for DETERMINISTIC */
  const uint64_t *seed;         /* [1] context memory */
  const uint32_t *offset;       /* [1] context memory */
  deco_tree_verify_out_t out;
} deco_tree_accept_sample_args_t;
/* Plain sampling of the target: temperature 1, top_k 0 and top_p 1 (off),
 * deterministic drafts. */
#define DECO_TREE_ACCEPT_SAMPLE_ARGS_INIT                                                                       \
  {.tree = DECO_TREE_BATCH_INIT, .tokens = NULL, .logits_dtype = DECO_DTYPE_F32, .logits = NULL, .vocab = 0,    \
   .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .draft_kind = DECO_DRAFT_DETERMINISTIC, .draft_probs = NULL, \
   .seed = NULL, .offset = NULL, .out = DECO_TREE_VERIFY_OUT_INIT}
/* 0: acceptance needs no workspace (nor for refused arguments, deco/core.h). */
DECO_API size_t deco_tree_accept_sample_workspace_size(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *args);
DECO_API deco_status_t deco_tree_accept_sample(deco_ctx_t *ctx, const deco_tree_accept_sample_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_TREE_H */
