/* host/model/model_internal.h — library-private layout of a model, its KV
 * cache and the forward's scratch buffers, shared by model.c, kv_cache.c and
 * forward.c.
 */
#ifndef DECO_HOST_MODEL_INTERNAL_H
#define DECO_HOST_MODEL_INTERNAL_H

#include "core/internal.h"
#include "deco/attention.h"
#include "deco/model.h"

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

/* Forward scratch in context memory, grown to the largest batch seen. */
typedef struct deco_forward_scratch {
  int max_tokens;
  int max_seqs;
  int max_pages;     /* block-table row length of the meta block */
  int last_pages;    /* row length the last forward used */
  float *x;          /* [T][dim] f32 residual stream */
  void *xb;          /* [T][dim] normalised input of a sublayer */
  void *qkv;         /* [T][q_dim + 2 kv_dim]: one GEMM's q | k | v per token */
  void *att;         /* [T][n_heads*head_dim] */
  void *proj;        /* [T][dim] output of wo or w2 */
  void *h13;         /* [T][2 hidden]: one GEMM's gate | up per token */
  void *h;           /* [T][hidden] SwiGLU output */
  int32_t *meta;     /* device: tokens[T] positions[T] rows[T] q_indptr[S+1] kv_lens[S] prefix[S] parents[T] tree_indptr[S+1] block_table[S][P] */
  int32_t *meta_host;
  size_t meta_count;
} deco_forward_scratch_t;

/* All-reduce hook for tensor parallelism: called on a [n_tokens][dim]
 * buffer after the attention output projection and after the FFN down
 * projection. NULL (tensor parallelism 1) means no-op. */
typedef deco_status_t (*deco_allreduce_fn)(void *user, void *buf, size_t n_elems, deco_dtype_t dtype);

struct deco_model {
  deco_ctx_t *ctx;
  deco_model_config_t cfg;
  deco_dtype_t dtype;
  void *arena; /* every weight, one allocation */
  size_t arena_bytes;
  deco_weights_t w;
  deco_forward_scratch_t scratch;
  deco_allreduce_fn allreduce;
  void *allreduce_user;
  void *workspace; /* scratch for ops that need it, lent to the context */
  size_t workspace_bytes;
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

/* Makes the context's workspace at least bytes, growing the model's own
 * scratch and lending it to the context when the current one is smaller. */
deco_status_t deco_model_ensure_workspace(deco_model_t *model, size_t bytes);

/* Device views of the last forward's batch: prefix lengths [n_seqs] and
 * block-table rows [n_seqs][*max_pages], valid until the next forward. */
void deco_forward_last_batch(const deco_model_t *model, const int32_t **prefix_lens, const int32_t **block_table,
                             int *max_pages);

/* Parameter count of a configuration (weights only). */
size_t deco_config_param_count(const deco_model_config_t *cfg);

#endif
