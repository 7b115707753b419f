/* deco/recycle.h — Token Recycling (Luo et al. 2024): a train-free draft
 * source that keeps, for every token, the top-k tokens that last followed it
 * (an adjacency matrix M[vocab][k] of token ids), drafts by filling a static
 * tree template of rank paths from that matrix, and after each verification
 * writes the top-k of every tree node's raw logits back into M.
 *
 * One step on the device, graph-capturable:
 *   deco_recycle_draft   roots + template + M  -> draft tokens [B][n]
 *   (tree forward, acceptance: deco/tree.h)
 *   deco_topk_rows       logits [n_nodes][V]    -> top-k ids [n_nodes][k]
 *                        (a general op: deco/select.h, included here)
 *   deco_recycle_update  tokens + top-k ids     -> M
 *
 * The ops' argument structs have DECO_<NAME>_INIT macros of designated
 * initialisers: pointers NULL, counts 0 (to be set), k = DECO_RECYCLE_DEFAULT_K.
 */
#ifndef DECO_RECYCLE_H
#define DECO_RECYCLE_H

#include "deco/core.h"
#include "deco/select.h"
#include "deco/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_RECYCLE_MAX_K 16     /* candidates kept per token, 1..16 (= DECO_TOPK_MAX_K: rows of deco_topk_rows) */
#define DECO_RECYCLE_DEFAULT_K 8  /* the paper's k */

/* ---- Tree templates -------------------------------------------------------
 * A template file lists rank paths, one per line, comma-separated decimal
 * ranks from the root ("0,1" = the root's rank-0 child's rank-1 child),
 * breadth first (non-decreasing length) with every proper prefix listed
 * earlier; no empty lines, no duplicates, at most 255 paths; a final newline
 * is optional and a CR before a newline is ignored. Node j >= 1 of the tree
 * is the path on line j; node 0 is the root. Errors (DECO_STATUS_BAD_FORMAT,
 * DECO_STATUS_IO_ERROR for a file that cannot be read) are recorded for
 * deco_last_error(NULL) and name the file and the line. */

typedef struct deco_tree_template {
  int n_nodes;                          /* root included: paths + 1, 2..256 */
  int max_rank;                         /* largest rank of any path */
  int max_depth;                        /* longest path */
  int32_t parent[DECO_TREE_MAX_NODES];  /* parent[0] = -1, topological (breadth-first) order */
  int32_t rank[DECO_TREE_MAX_NODES];    /* rank[j] = the last rank of node j's path, rank[0] = -1 */
} deco_tree_template_t;

/* Parses len bytes of text; name (may be NULL) is used in messages. */
DECO_API deco_status_t deco_tree_template_parse(const char *text, size_t len, const char *name,
                                                deco_tree_template_t *out);
DECO_API deco_status_t deco_tree_template_load(const char *path, deco_tree_template_t *out);
/* The official 80-node template of the authors' code (widths by depth
 * 8/21/25/15/8/3), built into the library (data/fixtures/token_recycling_template_80.txt). */
DECO_API deco_status_t deco_tree_template_default(deco_tree_template_t *out);
/* Fails (DECO_STATUS_INVALID_ARGUMENT, naming name and the line) when a rank
 * is >= k: the template needs more candidates per token than the table has. */
DECO_API deco_status_t deco_tree_template_check_k(const deco_tree_template_t *tmpl, int k, const char *name);

/* ---- The table -------------------------------------------------------------
 * int32 M[vocab][k] in the context's memory, zero-filled at creation, ids in
 * [0, vocab). Shared by the requests of a process; the ops below read and
 * write it on the context's stream. Failures are recorded on the context
 * (deco_last_error(ctx)). */

typedef struct deco_recycler deco_recycler_t;

/* 1 <= vocab <= 2^24, 1 <= k <= DECO_RECYCLE_MAX_K. */
DECO_API deco_status_t deco_recycler_create(deco_ctx_t *ctx, int vocab, int k, deco_recycler_t **out);
DECO_API void deco_recycler_destroy(deco_recycler_t *r);
/* Context pointer to int32 [vocab][k]; NULL for r == NULL. */
DECO_API int32_t *deco_recycler_table(deco_recycler_t *r);
DECO_API int deco_recycler_vocab(const deco_recycler_t *r);
DECO_API int deco_recycler_k(const deco_recycler_t *r);
/* Zero-fills the table (a cold start). */
DECO_API deco_status_t deco_recycler_reset(deco_recycler_t *r);

/* State file (little-endian), 32 + 4·vocab·k bytes:
 *   0  char[8]  magic "DECORECY"
 *   8  uint32   version (1)
 *  12  uint32   vocab
 *  16  uint32   k
 *  20  uint32   flags (0)
 *  24  int32    table[vocab][k]
 *  24 + 4·vocab·k  uint64  FNV-1a 64 of all preceding bytes
 * Save writes a temporary file beside path and renames it over path, so path
 * holds either its old content or the whole new file. Load validates the
 * whole file (magic, version, flags, vocab and k against the recycler's,
 * size, checksum, every id in [0, vocab)) before it touches the table; a
 * failure leaves the table unchanged (DECO_STATUS_BAD_FORMAT for content,
 * DECO_STATUS_IO_ERROR when the file cannot be read or written), with a
 * message naming the file and the field. */
#define DECO_RECYCLE_STATE_MAGIC "DECORECY"
#define DECO_RECYCLE_STATE_VERSION 1
#define DECO_RECYCLE_STATE_HEADER_BYTES 24
DECO_API deco_status_t deco_recycler_save(deco_recycler_t *r, const char *path);
DECO_API deco_status_t deco_recycler_load(deco_recycler_t *r, const char *path);
/* The same from a buffer in host memory; name (may be NULL) for messages. */
DECO_API deco_status_t deco_recycler_load_buffer(deco_recycler_t *r, const void *data, size_t size, const char *name);

/* ---- Ops ------------------------------------------------------------------- */

/* Drafts B trees from one template: tokens[b][0] = roots[b] and, for node
 * j >= 1 in index order, tokens[b][j] = table[tokens[b][parent[j]]][rank[j]].
 * parent/rank: the template's arrays (deco_tree_template_t) copied to context
 * memory. Malformed input (a parent outside [0, j), a rank outside [0, k), a
 * root or table entry outside [0, vocab)): the reference fails with a
 * message; the CUDA kernel writes -1 for every node whose parent token is
 * outside [0, vocab) or whose parent/rank is invalid. */
typedef struct deco_recycle_draft_args {
  int n_trees;              /* B >= 1 */
  int n_nodes;              /* n: template nodes, root included, 1..256 */
  const int32_t *roots;     /* [B] the last committed token of each request */
  const int32_t *parent;    /* [n] template parents, parent[0] = -1 */
  const int32_t *rank;      /* [n] template ranks, rank[0] ignored */
  const int32_t *table;     /* [vocab][k] */
  int vocab;
  int k;                    /* 1..DECO_RECYCLE_MAX_K */
  int32_t *tokens;          /* [B][n] out */
} deco_recycle_draft_args_t;
#define DECO_RECYCLE_DRAFT_ARGS_INIT                                                                   \
  {.n_trees = 0, .n_nodes = 0, .roots = NULL, .parent = NULL, .rank = NULL, .table = NULL, .vocab = 0, \
   .k = DECO_RECYCLE_DEFAULT_K, .tokens = NULL}
DECO_API deco_status_t deco_recycle_draft(deco_ctx_t *ctx, const deco_recycle_draft_args_t *args);

/* Token Recycling's update: for every node j of the batch in flat order
 * (requests in order, each tree breadth first), table[tokens[j]] <- topk[j];
 * when several nodes carry the same token the last one in that order wins
 * (what writing them one after another would leave). Nodes are
 * [tree_indptr[0], tree_indptr[B]); the roots are nodes too. Malformed input
 * (a token or an id outside [0, vocab), tree_indptr not non-decreasing within
 * [0, n_nodes]): the reference fails with a message; the CUDA kernel ignores
 * nodes whose token is out of range and does not write a row holding an id
 * out of range. The CUDA path needs a workspace of vocab int32
 * (deco_recycle_update_workspace_size). */
typedef struct deco_recycle_update_args {
  int n_trees;                 /* B >= 1 */
  int n_nodes;                 /* capacity >= tree_indptr[B] */
  const int32_t *tree_indptr;  /* [B + 1] context memory */
  const int32_t *tokens;       /* [n_nodes] each node's token (roots included) */
  const int32_t *topk;         /* [n_nodes][k] from deco_topk_rows of the nodes' logits */
  int32_t *table;              /* [vocab][k] */
  int vocab;
  int k;                       /* 1..DECO_RECYCLE_MAX_K */
} deco_recycle_update_args_t;
#define DECO_RECYCLE_UPDATE_ARGS_INIT                                                                        \
  {.n_trees = 0, .n_nodes = 0, .tree_indptr = NULL, .tokens = NULL, .topk = NULL, .table = NULL, .vocab = 0, \
   .k = DECO_RECYCLE_DEFAULT_K}
/* 0 on the CPU, and for arguments the op would refuse (deco/core.h). */
DECO_API size_t deco_recycle_update_workspace_size(deco_ctx_t *ctx, const deco_recycle_update_args_t *args);
DECO_API deco_status_t deco_recycle_update(deco_ctx_t *ctx, const deco_recycle_update_args_t *args);

#ifdef __cplusplus
}
#endif
#endif /* DECO_RECYCLE_H */
