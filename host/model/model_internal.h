/* host/model/model_internal.h — library-private layout of a model, its KV
 * cache and the forward's scratch buffers, shared by model.c, kv_cache.c and
 * forward.c only. Other host modules use deco/model.h and
 * model/model_access.h.
 */
#ifndef DECO_HOST_MODEL_INTERNAL_H
#define DECO_HOST_MODEL_INTERNAL_H

#include "core/internal.h"
#include "deco/attention.h"
#include "deco/model.h"
#include "model/model_access.h"

/* Weights stacked per tensor ([n_layers][rows][cols], llama2.c's order) in
 * one allocation, with the projections that share an input stacked per
 * layer, so that a one-token step reads each group with one GEMM:
 * wqkv holds a layer's wq rows, then its wk rows, then its wv rows; w13 its
 * w1 (gate) rows, then its w3 (up) rows. Multi-token batches use the same
 * tensors as three / two sub-blocks. */
typedef struct deco_weights {
  void *token_embedding; /* [vocab][dim] */
  void *rms_att;         /* [n_layers][dim] */
  void *wqkv;            /* [n_layers][n_heads*head_dim + 2*n_kv_heads*head_dim][dim] */
  void *wo;              /* [n_layers][dim][n_heads*head_dim] */
  void *rms_ffn;         /* [n_layers][dim] */
  void *w13;             /* [n_layers][2*hidden][dim] */
  void *w2;              /* [n_layers][dim][hidden] */
  void *rms_final;       /* [dim] */
  void *wcls;            /* [vocab][dim]; == token_embedding when shared */
} deco_weights_t;

/* The batch as the kernels read it (int32, context memory; a host image of
 * the same block is filled and uploaded in one copy by deco_forward). */
typedef struct deco_forward_meta {
  int32_t *tokens;      /* [T] */
  int32_t *positions;   /* [T] */
  int32_t *q_indptr;    /* [S + 1] */
  int32_t *kv_lens;     /* [S] */
  int32_t *prefix;      /* [S] committed slots */
  int32_t *parents;     /* [T] local parents (a causal batch: j - 1) */
  int32_t *block_table; /* [S][P] */
  /* The fused layer group's virtual batch (empty unless the model has fused
   * groups): layer i of a group, sequence s is virtual sequence i·S + s, its
   * tokens virtual tokens i·T + t, its block-table row the real one with
   * every page offset by i·n_pages (pages of the group's i-th layer counted
   * from the group's first layer's pool). */
  int32_t *g_q_indptr;  /* [G·S + 1] */
  int32_t *g_kv_lens;   /* [G·S] */
  int32_t *g_prefix;    /* [G·S] */
  int32_t *g_positions; /* [G·T] */
  int32_t *g_parents;   /* [G·T] */
  int32_t *g_table;     /* [G·S][P] */
} deco_forward_meta_t;

/* A layer group that runs fused (docs/DESIGN.md, "Fused layer groups"):
 * the Q/K/V rows of layers first .. first + count - 1 with each layer's
 * attention-norm weight folded in, [count][qkv_dim][dim], so that one
 * weightless RMSNorm of the group input feeds one batched GEMM. */
typedef struct deco_fused_group {
  int first, count;
  void *wqkv; /* in deco_fused_t.block */
} deco_fused_group_t;

typedef struct deco_fused {
  int n_groups;
  deco_fused_group_t *groups; /* host */
  int max_group;              /* the largest fused group (0: none) */
  void *block;                /* context memory: ones [dim], then every group's wqkv */
  size_t bytes;
  void *ones;                 /* [dim] model dtype: the weightless RMSNorm's weight */
} deco_fused_t;

/* Forward scratch in context memory: one allocation carved by
 * forward.c's layout, grown to the largest batch planned or seen. */
typedef struct deco_forward_scratch {
  int max_tokens;    /* T capacity */
  int max_seqs;      /* S capacity */
  int max_pages;     /* P: block-table row length of the meta block */
  int max_group;     /* layers per group the attention outputs have room for */
  void *block;       /* the allocation */
  size_t block_bytes;
  float *x;          /* [T][dim] f32 residual stream */
  void *xb;          /* [T][dim] normalised input of a sublayer */
  void *qkv;         /* [T][q_dim + 2 kv_dim]: one GEMM's q | k | v per token */
  void *att;         /* [T][n_heads*head_dim] */
  void *proj;        /* [T][dim] output of wo or w2 */
  void *h13;         /* [T][2 hidden]: one GEMM's gate | up per token */
  void *h;           /* [T][hidden] SwiGLU output */
  void *group_att;   /* [max_group][T][dim]: a layer group's attention outputs */
  int fused_group;   /* G of the fused buffers below and of meta's g_ arrays (0: none) */
  void *g_qkv;       /* [G][T][q_dim + 2 kv_dim]: a fused group's Q/K/V, layer-major */
  void *g_att;       /* [G][T][n_heads*head_dim] */
  deco_forward_meta_t meta;      /* in block */
  deco_forward_meta_t meta_host; /* the same layout in meta_image */
  void *meta_image;              /* host memory */
  size_t meta_bytes;
} deco_forward_scratch_t;

/* This rank's slice of the checkpoint under tensor parallelism (Megatron's
 * layout, docs/DESIGN.md "Tensor parallelism"): query heads q_head0 ..
 * q_head0 + hp.n_heads - 1, KV heads kv_head0 .. kv_head0 + hp.n_kv_heads - 1
 * (replicated when TP exceeds the KV heads), FFN columns hid0 .. hid0 +
 * hid_real - 1 of the checkpoint, the shard's remaining hp.hidden_dim -
 * hid_real columns zero. TP 1: everything, from 0. */
typedef struct deco_shard {
  int q_head0;
  int kv_head0;
  int hid0;
  int hid_real;
} deco_shard_t;

/* A validated layer schedule, owned. */
typedef struct deco_schedule_copy {
  int n_groups; /* 0: every layer alone */
  int *first;
  int *count;
  int max_group;
} deco_schedule_copy_t;

struct deco_model {
  deco_ctx_t *ctx;
  /* hp: the shapes this rank runs (its heads and FFN columns; every shape
   * of the checkpoint at TP 1); full: the checkpoint's, which
   * deco_model_get_hparams reports. */
  deco_model_hparams_t hp;
  deco_model_hparams_t full;
  deco_shard_t shard;
  deco_dtype_t dtype;
  void *arena; /* every weight, one allocation */
  size_t arena_bytes;
  deco_weights_t w;
  deco_forward_scratch_t scratch;
  deco_schedule_copy_t schedule; /* the model's default */
  deco_fused_t fused; /* fused layer groups (views with groups; empty otherwise) */
  deco_comm_t *lp_comm; /* groups across ranks (deco_model_create_view_ranks; NULL: one rank) */
  int lp_rank, lp_size;
  deco_comm_t *comm; /* tensor parallelism: the all-reduces after wo and w2 (NULL at TP 1) */
  int tp_rank, tp_size;
  void *workspace; /* scratch for ops that need it, lent to the context */
  size_t workspace_bytes;
  int plan_held; /* deco_model_hold_plan: scratch and workspace must not grow */
};

struct deco_kv_cache {
  deco_model_t *model;
  int page_size;
  int n_pages;
  int max_seqs;
  int max_pages_per_seq;
  size_t layer_elems;  /* elements of one layer's pool: n_pages*page_size*kv_dim */
  void *k;             /* [n_layers][n_pages][page_size][n_kv_heads][head_dim] */
  void *v;
  int *free_pages;     /* stack of free page ids */
  int n_free;
  int *active;         /* [max_seqs] */
  int *len;            /* [max_seqs] committed tokens */
  int *n_seq_pages;    /* [max_seqs] pages reserved */
  int32_t *pages;      /* [max_seqs][max_pages_per_seq] host block table */
};

/* One layer's paged view of the cache, block table rows supplied by the caller. */
deco_paged_kv_t deco_kv_cache_layer_view(const deco_kv_cache_t *cache, int layer, const int32_t *block_table,
                                         int max_pages);

/* Checks a schedule against n_layers (op names the caller in messages);
 * *max_group gets its largest group. */
deco_status_t deco_schedule_check(deco_ctx_t *ctx, const deco_layer_schedule_t *s, int n_layers, int *max_group,
                                  const char *op);

/* The shard of rank of tp: its shapes (*local) and where they start in the
 * checkpoint; fails naming the head counts and TP when TP does not divide
 * the query heads, or neither divides the other for the KV heads. */
deco_status_t deco_shard_plan(deco_ctx_t *ctx, const deco_model_hparams_t *full, int tp, int rank,
                              deco_model_hparams_t *local, deco_shard_t *shard, const char *name);

/* Uploads rows row0 .. row0 + rows - 1, columns col0 .. col0 + cols - 1 of
 * the f32 host matrix src (src_cols per row) to dst (model dtype) at element
 * offset at, as rows of dst_cols elements (columns past cols untouched:
 * zero padding). */
deco_status_t deco_model_upload_block(deco_model_t *m, void *dst, size_t at, size_t dst_cols, const float *src,
                                      size_t src_cols, size_t row0, size_t rows, size_t col0, size_t cols);

/* The tensors tensor parallelism splits. */
typedef enum deco_shard_tensor {
  DECO_SHARD_WQ, /* [n_heads*head_dim][dim]: this rank's query heads (rows) */
  DECO_SHARD_WK, /* [n_kv_heads*head_dim][dim]: its KV heads (rows) */
  DECO_SHARD_WV,
  DECO_SHARD_WO, /* [dim][n_heads*head_dim]: its query heads (columns) */
  DECO_SHARD_W1, /* [hidden][dim]: its FFN columns (rows), zero-padded */
  DECO_SHARD_W3,
  DECO_SHARD_W2  /* [dim][hidden]: its FFN columns, zero-padded */
} deco_shard_tensor_t;
/* Uploads this rank's slice of layer l's tensor t, given the checkpoint's
 * whole f32 host matrix of that layer. */
deco_status_t deco_model_upload_shard(deco_model_t *m, deco_shard_tensor_t t, int l, const float *src);

/* Builds the fused weights of every group of more than one layer in the
 * model's schedule (host/model/fused_group.c); frees them on failure. */
deco_status_t deco_model_fuse_groups(deco_model_t *m);
/* The fused group starting at layer first with count layers, or NULL. */
const deco_fused_group_t *deco_model_fused_group(const deco_model_t *m, int first, int count);
void deco_model_free_fused(deco_model_t *m);

/* Parameter count of an architecture (weights only). */
size_t deco_hparams_param_count(const deco_model_hparams_t *hp);

/* What every loader shares (model.c). The caller's configuration (NULL:
 * DECO_MODEL_CONFIG_INIT) read, its dtype checked on the context's
 * backend; op names the loader in messages. */
deco_status_t deco_model_read_config(deco_ctx_t *ctx, const deco_model_config_t *in, deco_model_config_t *mc,
                                    const char *op);
/* NCCL carries device buffers, the threads and MPI communicators host ones:
 * a communicator's ranks run on the CUDA or the CPU backend accordingly (as
 * the CLI pairs them); anything else fails naming both. */
deco_status_t deco_model_check_comm_backend(deco_ctx_t *ctx, const deco_comm_t *comm, const char *name);
/* The configuration against the checkpoint's architecture (KV heads,
 * tensor parallelism, the layer schedule, the communicator's backend); name
 * starts every message. */
deco_status_t deco_model_check_config(deco_ctx_t *ctx, const deco_model_config_t *mc, const deco_model_hparams_t *hp,
                                     const char *name);
/* The model and its weight arena (deco_weights_t pointers set, contents
 * undefined), the configuration applied. */
deco_status_t deco_model_alloc(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const deco_model_config_t *mc,
                               deco_model_t **out);
/* The context's last error again with name in front; returns st. */
deco_status_t deco_model_fail_naming(deco_ctx_t *ctx, deco_status_t st, const char *name);
/* deco_model_check_config, then deco_model_alloc, whose failure names the
 * checkpoint: every loader's first steps. */
deco_status_t deco_model_alloc_named(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const deco_model_config_t *mc,
                                     const char *name, deco_model_t **out);
/* Maps a regular file read-only (a FIFO or a device is refused at once);
 * *data is NULL for an empty file. Unmap with deco_model_unmap_file. */
deco_status_t deco_model_map_file(deco_ctx_t *ctx, const char *path, void **data, size_t *size);
void deco_model_unmap_file(void *data, size_t size);
/* A model loader from bytes: deco_model_load_*_buffer. */
typedef deco_status_t (*deco_model_buffer_loader_t)(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                                    const deco_model_config_t *config, deco_model_t **out);
/* What a loader from a file checks first, as op: ctx, path and out not
 * NULL; then *out = NULL. */
deco_status_t deco_model_check_file_args(deco_ctx_t *ctx, const char *path, deco_model_t **out, const char *op);
/* The rest of a loader from a file: path mapped (deco_model_map_file),
 * load(ctx, its bytes, path, config, out), the file unmapped; load's status. */
deco_status_t deco_model_load_mapped(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                     deco_model_t **out, deco_model_buffer_loader_t load);

#endif
