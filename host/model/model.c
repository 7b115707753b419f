/* host/model/model.c — a Llama model in a context's memory: loading a
 * llama2.c checkpoint (validated whole, then uploaded and converted to the
 * model dtype), seeded synthetic models generated where they live, and
 * deco_model_load, which tells a llama2.c checkpoint from a GGUF file
 * (gguf_model.c) by its magic; all through one deco_model_config_t (dtype,
 * KV heads, tensor parallelism, the default layer schedule), checked
 * against the architecture first. Weights are stacked per tensor as in
 * llama2.c ([n_layers][rows][cols]) in one allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "deco/comm.h"
#include "model/llama2c.h"
#include "model/model_internal.h"
#include "util/arena.h"
#include "util/sized.h"

/* Synthetic models refuse the CPU backend above this many parameters. */
#define DECO_CPU_MAX_PARAMS ((size_t)1 << 28)

#define N_TENSORS 9

typedef struct tensor_sizes {
  size_t n[N_TENSORS]; /* elements, in deco_weights_t order */
} tensor_sizes_t;

static tensor_sizes_t tensor_sizes(const deco_model_hparams_t *c) {
  size_t L = (size_t)c->n_layers, dim = (size_t)c->dim, hd = (size_t)c->head_dim;
  size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd, hid = (size_t)c->hidden_dim;
  size_t V = (size_t)c->vocab_size;
  tensor_sizes_t s = {.n = {V * dim, L * dim, L * (qd + 2 * kvd) * dim, L * dim * qd, L * dim, L * 2 * hid * dim,
                       L * dim * hid, dim, c->shared_classifier ? 0 : V * dim}};
  return s;
}

size_t deco_hparams_param_count(const deco_model_hparams_t *hp) {
  tensor_sizes_t s = tensor_sizes(hp);
  size_t total = 0;
  for (int i = 0; i < N_TENSORS; ++i) total += s.n[i];
  return total;
}

static void **weight_slot(deco_weights_t *w, int i) {
  void **slots[N_TENSORS] = {&w->token_embedding, &w->rms_att, &w->wqkv, &w->wo,       &w->rms_ffn,
                             &w->w13,             &w->w2,      &w->rms_final, &w->wcls};
  return slots[i];
}

/* Allocates the model and its arena and points every tensor into it. */
/* ---- Layer schedules ---- */

deco_status_t deco_schedule_check(deco_ctx_t *ctx, const deco_layer_schedule_t *s, int n_layers, int *max_group,
                                  const char *op) {
  *max_group = 1;
  if (s->n_groups == 0) return DECO_STATUS_SUCCESS;
  if (s->n_groups < 0 || s->n_groups > n_layers)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_groups = %d outside [0, %d]", op, s->n_groups,
                     n_layers);
  if (s->first == NULL || s->count == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: %s is NULL", op, s->first ? "count" : "first");
  int next = 0; /* the first layer a group may start at */
  for (int g = 0; g < s->n_groups; ++g) {
    const int first = s->first[g], count = s->count[g];
    if (count < 1 || count > DECO_MAX_LAYER_GROUP)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: group %d has %d layers, expected 1..%d", op, g, count,
                       DECO_MAX_LAYER_GROUP);
    if (first < next || first > n_layers - count)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: group %d (layers %d..%d) must start at layer %d or later and end before layer %d "
                       "(groups in increasing order, not overlapping)",
                       op, g, first, first + count - 1, next, n_layers);
    next = first + count;
    if (count > *max_group) *max_group = count;
  }
  return DECO_STATUS_SUCCESS;
}

/* The model keeps its own copy of its default schedule (checked first). */
static deco_status_t copy_schedule(deco_model_t *m, const deco_layer_schedule_t *s) {
  int max_group = 1;
  DECO_TRY(deco_schedule_check(m->ctx, s, m->hp.n_layers, &max_group, "model config: schedule"));
  m->schedule.max_group = max_group;
  if (s->n_groups == 0) return DECO_STATUS_SUCCESS;
  m->schedule.first = malloc(sizeof(int) * (size_t)s->n_groups);
  m->schedule.count = malloc(sizeof(int) * (size_t)s->n_groups);
  if (!m->schedule.first || !m->schedule.count)
    return DECO_FAIL(m->ctx, DECO_STATUS_OUT_OF_MEMORY, "model config: schedule: out of host memory");
  memcpy(m->schedule.first, s->first, sizeof(int) * (size_t)s->n_groups);
  memcpy(m->schedule.count, s->count, sizeof(int) * (size_t)s->n_groups);
  m->schedule.n_groups = s->n_groups;
  return DECO_STATUS_SUCCESS;
}

/* The weights' layout over the arena (one walk: sizes, then pointers). */
static void weights_layout(deco_arena_t *a, deco_weights_t *w, const deco_model_hparams_t *hp, deco_dtype_t dtype) {
  tensor_sizes_t s = tensor_sizes(hp);
  for (int i = 0; i < N_TENSORS; ++i)
    *weight_slot(w, i) = deco_arena_take(a, s.n[i], deco_dtype_size(dtype), DECO_ARENA_ALIGN);
  if (hp->shared_classifier) w->wcls = w->token_embedding;
}

/* Allocates the model and its arena and points every tensor into it; the
 * configuration (validated) is applied. */
deco_status_t deco_model_alloc(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const deco_model_config_t *mc,
                               deco_model_t **out) {
  deco_model_t *m = calloc(1, sizeof *m);
  if (!m) return DECO_FAIL(ctx, DECO_STATUS_OUT_OF_MEMORY, "model: out of host memory");
  m->ctx = ctx;
  m->full = *hp;
  m->dtype = mc->dtype;
  m->comm = mc->comm;
  m->tp_rank = mc->tp_rank;
  m->tp_size = mc->tp_size ? mc->tp_size : 1;
  /* This rank's shapes: the arena holds its slices only. */
  deco_status_t st = deco_shard_plan(ctx, hp, m->tp_size, m->tp_rank, &m->hp, &m->shard, "model");
  if (st == DECO_STATUS_SUCCESS) st = copy_schedule(m, &mc->schedule);
  deco_arena_t a = DECO_ARENA_SIZING;
  weights_layout(&a, &m->w, &m->hp, m->dtype);
  if (st == DECO_STATUS_SUCCESS) st = deco_malloc(ctx, &m->arena, a.bytes);
  /* Zero padding of an FFN width TP does not divide (shard.c). */
  if (st == DECO_STATUS_SUCCESS && m->tp_size > 1) st = deco_memset(ctx, m->arena, 0, a.bytes);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return st;
  }
  m->arena_bytes = a.bytes;
  a = deco_arena_at(m->arena);
  weights_layout(&a, &m->w, &m->hp, m->dtype);
  *out = m;
  return DECO_STATUS_SUCCESS;
}

/* The caller's configuration (NULL: DECO_MODEL_CONFIG_INIT) read and checked
 * against the checkpoint's architecture: the dtype on this backend, the KV
 * heads, tensor parallelism and the layer schedule. */
deco_status_t deco_model_read_config(deco_ctx_t *ctx, const deco_model_config_t *in, deco_model_config_t *mc,
                                    const char *op) {
  static const deco_model_config_t defaults = DECO_MODEL_CONFIG_INIT;
  if (in == NULL) {
    *mc = defaults;
  } else {
    char what[96];
    snprintf(what, sizeof what, "%s: config", op);
    DECO_TRY(deco_sized_read(ctx, mc, in, &defaults, sizeof defaults, what));
  }
  return deco_check_dtype(ctx, mc->dtype, op, "config->dtype");
}

deco_status_t deco_model_check_comm_backend(deco_ctx_t *ctx, const deco_comm_t *comm, const char *name) {
  const deco_comm_backend_t kind = deco_comm_backend(comm);
  const deco_backend_t want = kind == DECO_COMM_NCCL ? DECO_BACKEND_CUDA : DECO_BACKEND_CPU;
  if (deco_ctx_backend(ctx) == want) return DECO_STATUS_SUCCESS;
  return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                   "%s: a %s communicator carries %s buffers; this context's backend is %s (use %s)", name,
                   deco_comm_backend_name(kind), want == DECO_BACKEND_CUDA ? "device" : "host",
                   deco_backend_name(deco_ctx_backend(ctx)), deco_backend_name(want));
}

deco_status_t deco_model_check_config(deco_ctx_t *ctx, const deco_model_config_t *mc, const deco_model_hparams_t *hp,
                                     const char *name) {
  const int tp = mc->tp_size ? mc->tp_size : 1;
  if (tp < 1 || mc->tp_rank < 0 || mc->tp_rank >= tp)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: tensor parallelism rank %d of size %d", name, mc->tp_rank,
                     tp);
  if (tp > 1 && mc->comm == NULL)
    return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: tensor parallelism %d needs a communicator (config->comm)",
                     name, tp);
  if (mc->comm != NULL && (deco_comm_size(mc->comm) != tp || deco_comm_rank(mc->comm) != mc->tp_rank))
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: config says rank %d of %d but the communicator is rank %d of %d", name, mc->tp_rank, tp,
                     deco_comm_rank(mc->comm), deco_comm_size(mc->comm));
  if (mc->comm != NULL) DECO_TRY(deco_model_check_comm_backend(ctx, mc->comm, name));
  deco_model_hparams_t local;
  deco_shard_t shard;
  DECO_TRY(deco_shard_plan(ctx, hp, tp, mc->tp_rank, &local, &shard, name));
  if (mc->n_kv_heads != 0 && mc->n_kv_heads != hp->n_kv_heads) {
    if (mc->n_kv_heads < 1 || mc->n_kv_heads > hp->n_kv_heads || hp->n_heads % mc->n_kv_heads != 0)
      return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                       "%s: n_kv_heads = %d: a compressed model needs 1..%d KV heads dividing n_heads = %d", name,
                       mc->n_kv_heads, hp->n_kv_heads, hp->n_heads);
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "%s: n_kv_heads = %d differs from the checkpoint's %d: the loader does not merge KV heads; "
                     "deco compress writes a checkpoint with fewer (deco/compress.h)",
                     name, mc->n_kv_heads, hp->n_kv_heads);
  }
  int max_group;
  char op[128];
  snprintf(op, sizeof op, "%s: config->schedule", name);
  return deco_schedule_check(ctx, &mc->schedule, hp->n_layers, &max_group, op);
}

/* Uploads n f32 host values to element offset at of dst (model dtype),
 * converting through a staging buffer. */
static deco_status_t upload_tensor(deco_model_t *m, void *dst, size_t at, const float *src, size_t n, void *staging) {
  if (n == 0) return DECO_STATUS_SUCCESS;
  dst = (char *)dst + at * deco_dtype_size(m->dtype);
  if (m->dtype == DECO_DTYPE_F32) return deco_memcpy(m->ctx, dst, src, n * sizeof(float), DECO_COPY_HOST_TO_CTX);
  DECO_TRY(deco_memcpy(m->ctx, staging, src, n * sizeof(float), DECO_COPY_HOST_TO_CTX));
  deco_convert_args_t a = {.in_dtype = DECO_DTYPE_F32, .out_dtype = m->dtype, .n = n, .in = staging, .out = dst};
  return deco_convert(m->ctx, &a);
}

/* The context's last error again, with the model's name in front (an
 * out-of-memory message then says which model did not fit). */
deco_status_t deco_model_fail_naming(deco_ctx_t *ctx, deco_status_t st, const char *name) {
  char msg[DECO_ERROR_CAPACITY];
  snprintf(msg, sizeof msg, "%s", deco_last_error(ctx));
  return DECO_FAIL(ctx, st, "%s: %s", name, msg);
}

deco_status_t deco_model_alloc_named(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const deco_model_config_t *mc,
                                     const char *name, deco_model_t **out) {
  DECO_TRY(deco_model_check_config(ctx, mc, hp, name));
  const deco_status_t st = deco_model_alloc(ctx, hp, mc, out);
  return st == DECO_STATUS_SUCCESS ? st : deco_model_fail_naming(ctx, st, name);
}

deco_status_t deco_model_load_llama2c(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                      deco_model_t **out) {
  static const char op[] = "deco_model_load_llama2c";
  DECO_TRY(deco_model_check_file_args(ctx, path, out, op));
  deco_model_config_t mc;
  DECO_TRY(deco_model_read_config(ctx, config, &mc, op));
  return deco_model_load_mapped(ctx, path, &mc, out, deco_model_load_llama2c_buffer);
}

deco_status_t deco_model_check_file_args(deco_ctx_t *ctx, const char *path, deco_model_t **out, const char *op) {
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, path, op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_load_mapped(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                                     deco_model_t **out, deco_model_buffer_loader_t load) {
  void *data = NULL;
  size_t size = 0;
  DECO_TRY(deco_model_map_file(ctx, path, &data, &size));
  deco_status_t st = load(ctx, data, size, path, config, out);
  deco_model_unmap_file(data, size);
  return st;
}

deco_status_t deco_model_map_file(deco_ctx_t *ctx, const char *path, void **data, size_t *size) {
  int fd = -1;
  *data = NULL;
  *size = 0;
  DECO_TRY(deco_file_open_regular(ctx, path, &fd, size));
  void *p = *size ? mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (*size && p == MAP_FAILED) {
    *size = 0;
    return DECO_FAIL(ctx, DECO_STATUS_IO_ERROR, "%s: cannot map: %s", path, strerror(errno));
  }
  *data = p;
  return DECO_STATUS_SUCCESS;
}

void deco_model_unmap_file(void *data, size_t size) {
  if (data) munmap(data, size);
}

/* ---- Either format, told apart by the magic ---- */

/* 1 when the file starts with GGUF's magic; a shorter file is a llama2.c
 * candidate whose header check explains what is wrong. */
static int is_gguf(const void *data, size_t size) { return size >= 4 && memcmp(data, "GGUF", 4) == 0; }

/* deco_model_load's buffer loader: GGUF or llama2.c by the magic. */
static deco_status_t load_either_buffer(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                        const deco_model_config_t *config, deco_model_t **out) {
  return is_gguf(data, size) ? deco_model_load_gguf_buffer(ctx, data, size, name, config, out)
                             : deco_model_load_llama2c_buffer(ctx, data, size, name, config, out);
}

deco_status_t deco_model_load(deco_ctx_t *ctx, const char *path, const deco_model_config_t *config,
                              deco_model_t **out) {
  DECO_TRY(deco_model_check_file_args(ctx, path, out, "deco_model_load"));
  return deco_model_load_mapped(ctx, path, config, out, load_either_buffer);
}

deco_status_t deco_model_read_hparams(const char *path, deco_model_hparams_t *hparams) {
  if (!path) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_model_read_hparams: path is NULL");
  if (!hparams) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_model_read_hparams: hparams is NULL");
  void *head;
  size_t got, size;
  DECO_TRY(deco_file_read(NULL, path, 4, &head, &got, &size));
  const int gguf = is_gguf(head, got);
  free(head);
  return gguf ? deco_gguf_read_hparams(path, hparams) : deco_llama2c_read_hparams(path, hparams);
}

/* The tensors tensor parallelism splits, layer by layer: this rank's
 * slices only (all of them at TP 1). */
static deco_status_t upload_layer_shards(deco_model_t *m, const deco_model_hparams_t *hp,
                                         const deco_llama2c_weights_t *lw) {
  deco_status_t st = DECO_STATUS_SUCCESS;
  const size_t dim = (size_t)hp->dim, qd = (size_t)hp->n_heads * hp->head_dim;
  const size_t kvd = (size_t)hp->n_kv_heads * hp->head_dim, hid = (size_t)hp->hidden_dim;
  for (int l = 0; l < hp->n_layers && st == DECO_STATUS_SUCCESS; ++l) {
    const float *parts[7] = {lw->wq + l * qd * dim, lw->wk + l * kvd * dim, lw->wv + l * kvd * dim,
                             lw->wo + l * dim * qd, lw->w1 + l * hid * dim, lw->w3 + l * hid * dim,
                             lw->w2 + l * dim * hid};
    for (int j = 0; j < 7 && st == DECO_STATUS_SUCCESS; ++j)
      st = deco_model_upload_shard(m, (deco_shard_tensor_t)j, l, parts[j]);
  }
  return st;
}

/* Every weight of a parsed llama2.c checkpoint into m: whole tensors where
 * the layouts agree (through a staging buffer, kept until the device is
 * done, when converted to another dtype), the stacked groups layer by
 * layer. */
static deco_status_t upload_llama2c_weights(deco_ctx_t *ctx, deco_model_t *m, const deco_model_hparams_t *hp,
                                            const deco_llama2c_weights_t *lw, deco_dtype_t dtype) {
  deco_status_t st = DECO_STATUS_SUCCESS;
  void *staging = NULL;
  tensor_sizes_t s = tensor_sizes(&m->hp); /* the replicated tensors' sizes are the checkpoint's */
  const float *whole[N_TENSORS] = {lw->token_embedding, lw->rms_att, NULL, NULL, lw->rms_ffn,
                                   NULL, NULL, lw->rms_final, lw->wcls};
  if (dtype != DECO_DTYPE_F32) {
    size_t biggest = 0; /* the largest whole tensor (the sliced ones bring their own) */
    for (int i = 0; i < N_TENSORS; ++i)
      if (whole[i] && s.n[i] > biggest) biggest = s.n[i];
    st = deco_malloc(ctx, &staging, biggest * sizeof(float));
  }
  for (int i = 0; i < N_TENSORS && st == DECO_STATUS_SUCCESS; ++i)
    if (whole[i]) st = upload_tensor(m, *weight_slot(&m->w, i), 0, whole[i], s.n[i], staging);
  if (st == DECO_STATUS_SUCCESS) st = upload_layer_shards(m, hp, lw);
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
  deco_free(ctx, staging);
  return st;
}

deco_status_t deco_model_load_llama2c_buffer(deco_ctx_t *ctx, const void *data, size_t size, const char *name,
                                             const deco_model_config_t *config, deco_model_t **out) {
  static const char op[] = "deco_model_load_llama2c_buffer";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  if (data == NULL && size > 0) return DECO_FAIL(ctx, DECO_STATUS_NULL_POINTER, "%s: data is NULL", op);
  deco_model_config_t mc;
  DECO_TRY(deco_model_read_config(ctx, config, &mc, op));
  const deco_dtype_t dtype = mc.dtype;
  if (name == NULL) name = "(buffer)";
  deco_model_hparams_t hp;
  deco_llama2c_weights_t lw;
  deco_status_t st = deco_llama2c_parse(data, size, name, &hp, &lw);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  deco_model_t *m = NULL;
  DECO_TRY(deco_model_alloc_named(ctx, &hp, &mc, name, &m));
  st = upload_llama2c_weights(ctx, m, &hp, &lw, dtype);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return deco_model_fail_naming(ctx, st, name);
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

typedef struct synthetic_entry {
  const char *name;
  deco_model_hparams_t hp;
} synthetic_entry_t;

/* Shapes: tiny is the CLI's default (about 12 MB in f32); the others are the
 * real shapes of Llama 2 7B, Llama 3 8B and SmolLM2-135M, without a
 * vocabulary. All but SmolLM2's follow llama2.c's conventions for BOS and
 * the stop ids. */
#define LLAMA2C_IDS .bos_id = 1, .n_stop_ids = 2, .stop_ids = {1, 2}
static const synthetic_entry_t synthetic_models[] = {
    {"tiny",
     {.dim = 256, .hidden_dim = 688, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .head_dim = 64, .vocab_size = 259,
      .seq_len = 512, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .rope_style = DECO_ROPE_INTERLEAVED,
      .shared_classifier = 1, .builtin_vocab = 1, LLAMA2C_IDS}},
    {"llama2-7b",
     {.dim = 4096, .hidden_dim = 11008, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32, .head_dim = 128,
      .vocab_size = 32000, .seq_len = 4096, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
      .rope_style = DECO_ROPE_INTERLEAVED, .shared_classifier = 0, .builtin_vocab = 0, LLAMA2C_IDS}},
    {"llama3-8b",
     {.dim = 4096, .hidden_dim = 14336, .n_layers = 32, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128,
      .vocab_size = 128256, .seq_len = 8192, .rope_theta = 500000.0f, .norm_eps = 1e-5f,
      .rope_style = DECO_ROPE_HALF_SPLIT, .shared_classifier = 0, .builtin_vocab = 0, LLAMA2C_IDS}},
    /* SmolLM2-135M's shape and special ids (its GGUF: BOS <|im_start|> 1,
     * stops at <|im_end|> 2 and <|endoftext|> 0), for GPU timing at the
     * full shape; 134.5M parameters, so the CPU runs it too. */
    {"smollm2-135m",
     {.dim = 576, .hidden_dim = 1536, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
      .vocab_size = 49152, .seq_len = 8192, .rope_theta = 100000.0f, .norm_eps = 1e-5f,
      .rope_style = DECO_ROPE_INTERLEAVED, .shared_classifier = 1, .builtin_vocab = 0, .bos_id = 1,
      .n_stop_ids = 2, .stop_ids = {2, 0}}},
};

deco_status_t deco_synthetic_hparams(const char *name, deco_model_hparams_t *hparams) {
  if (name == NULL || hparams == NULL)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_synthetic_hparams: %s is NULL", name ? "hparams" : "name");
  for (size_t i = 0; i < sizeof synthetic_models / sizeof synthetic_models[0]; ++i) {
    if (strcmp(name, synthetic_models[i].name) == 0) {
      *hparams = synthetic_models[i].hp;
      return DECO_STATUS_SUCCESS;
    }
  }
  return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                   "unknown synthetic model '%s' (known: tiny, llama2-7b, llama3-8b, smollm2-135m)", name);
}

/* The limits of explicit synthetic shapes: those of a llama2.c header
 * (llama2c.c), except that dim need not be n_heads x head_dim (a rank's
 * shard keeps dim and head_dim with a share of the heads). */
#define SYN_MAX_DIM (1 << 16)
#define SYN_MAX_HIDDEN (1 << 18)
#define SYN_MAX_LAYERS 1024
#define SYN_MAX_HEADS 1024
#define SYN_MAX_VOCAB (1 << 20)
#define SYN_MAX_SEQ_LEN (1 << 20)
#define SYN_MIN_HEAD_DIM 8
#define SYN_MAX_HEAD_DIM 256

static deco_status_t check_int(deco_ctx_t *ctx, const char *label, const char *field, int v, int lo, int hi) {
  if (v < lo || v > hi)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: hparams->%s = %d is outside %d..%d", label, field, v, lo,
                     hi);
  return DECO_STATUS_SUCCESS;
}

/* The layer shapes: widths, depth, heads. */
static deco_status_t check_synthetic_shape(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const char *label) {
  DECO_TRY(check_int(ctx, label, "dim", hp->dim, 1, SYN_MAX_DIM));
  DECO_TRY(check_int(ctx, label, "hidden_dim", hp->hidden_dim, 1, SYN_MAX_HIDDEN));
  DECO_TRY(check_int(ctx, label, "n_layers", hp->n_layers, 1, SYN_MAX_LAYERS));
  DECO_TRY(check_int(ctx, label, "n_heads", hp->n_heads, 1, SYN_MAX_HEADS));
  DECO_TRY(check_int(ctx, label, "n_kv_heads", hp->n_kv_heads, 1, hp->n_heads));
  if (hp->n_heads % hp->n_kv_heads != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: n_heads = %d is not a multiple of n_kv_heads = %d",
                     label, hp->n_heads, hp->n_kv_heads);
  DECO_TRY(check_int(ctx, label, "head_dim", hp->head_dim, SYN_MIN_HEAD_DIM, SYN_MAX_HEAD_DIM));
  if (hp->head_dim % 2 != 0)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: head_dim = %d must be even (RoPE rotates pairs)", label,
                     hp->head_dim);
  return DECO_STATUS_SUCCESS;
}

/* Vocabulary, context, RoPE and norm settings. */
static deco_status_t check_synthetic_numerics(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const char *label) {
  DECO_TRY(check_int(ctx, label, "vocab_size", hp->vocab_size, hp->builtin_vocab ? 259 : 1, SYN_MAX_VOCAB));
  DECO_TRY(check_int(ctx, label, "seq_len", hp->seq_len, 1, SYN_MAX_SEQ_LEN));
  if (!(hp->rope_theta > 0.0f) || !(hp->norm_eps > 0.0f) || hp->rope_theta > 1e30f || hp->norm_eps > 1.0f)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT,
                     "%s: rope_theta = %g and norm_eps = %g: both must be positive and finite, norm_eps at most 1",
                     label, (double)hp->rope_theta, (double)hp->norm_eps);
  if (hp->rope_style != DECO_ROPE_INTERLEAVED && hp->rope_style != DECO_ROPE_HALF_SPLIT)
    return DECO_FAIL(ctx, DECO_STATUS_INVALID_ARGUMENT, "%s: rope_style = %d", label, (int)hp->rope_style);
  return DECO_STATUS_SUCCESS;
}

/* BOS and the stop ids, inside the vocabulary. */
static deco_status_t check_synthetic_ids(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const char *label) {
  DECO_TRY(check_int(ctx, label, "bos_id", hp->bos_id, -1, hp->vocab_size - 1));
  DECO_TRY(check_int(ctx, label, "n_stop_ids", hp->n_stop_ids, 0, DECO_MAX_STOP_IDS));
  for (int i = 0; i < hp->n_stop_ids; ++i)
    DECO_TRY(check_int(ctx, label, "stop_ids[i]", hp->stop_ids[i], 0, hp->vocab_size - 1));
  return DECO_STATUS_SUCCESS;
}

static deco_status_t check_synthetic_hparams(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const char *label) {
  DECO_TRY(check_synthetic_shape(ctx, hp, label));
  DECO_TRY(check_synthetic_numerics(ctx, hp, label));
  return check_synthetic_ids(ctx, hp, label);
}

/* A synthetic model of checked shapes hp, labelled label in messages. */
static deco_status_t create_synthetic(deco_ctx_t *ctx, const deco_model_hparams_t *hp, const char *label,
                                      uint64_t seed, const deco_model_config_t *config, deco_model_t **out,
                                      const char *op) {
  deco_model_config_t mc;
  DECO_TRY(deco_model_read_config(ctx, config, &mc, op));
  const deco_dtype_t dtype = mc.dtype;
  size_t params = deco_hparams_param_count(hp);
  if (ctx->backend == DECO_BACKEND_CPU && params > DECO_CPU_MAX_PARAMS)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "%s has %.2f billion parameters: too big for the CPU backend (use --backend cuda)", label,
                     (double)params / 1e9);
  if (mc.tp_size > 1)
    return DECO_FAIL(ctx, DECO_STATUS_UNSUPPORTED,
                     "%s: synthetic models run at tensor parallelism 1 only (their weights are generated whole)",
                     label);
  DECO_TRY(deco_model_check_config(ctx, &mc, hp, label));
  deco_model_t *m = NULL;
  DECO_TRY(deco_model_alloc(ctx, hp, &mc, &m));
  tensor_sizes_t s = tensor_sizes(hp);
  /* Norm weights are 1; everything else uniform with standard deviation 0.02. */
  const float scale = 0.02f * sqrtf(3.0f);
  deco_status_t st = DECO_STATUS_SUCCESS;
  for (int i = 0; i < N_TENSORS && st == DECO_STATUS_SUCCESS; ++i) {
    if (s.n[i] == 0) continue;
    void **slot = weight_slot(&m->w, i);
    int is_norm = slot == &m->w.rms_att || slot == &m->w.rms_ffn || slot == &m->w.rms_final;
    deco_fill_random_args_t a = {.dtype = dtype, .n = s.n[i], .seed = seed, .tensor = (uint32_t)i, .scale = scale,
                                 .constant = is_norm ? 1.0f : 0.0f, .out = *slot};
    st = deco_fill_random(ctx, &a);
  }
  if (st == DECO_STATUS_SUCCESS) st = deco_ctx_synchronize(ctx);
  if (st != DECO_STATUS_SUCCESS) {
    deco_model_destroy(m);
    return st;
  }
  *out = m;
  return DECO_STATUS_SUCCESS;
}

deco_status_t deco_model_create_synthetic(deco_ctx_t *ctx, const char *name, uint64_t seed,
                                          const deco_model_config_t *config, deco_model_t **out) {
  static const char op[] = "deco_model_create_synthetic";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  deco_model_hparams_t hp;
  deco_status_t st = deco_synthetic_hparams(name, &hp);
  if (st != DECO_STATUS_SUCCESS) return DECO_FAIL(ctx, st, "%s", deco_last_error(NULL));
  char label[128];
  snprintf(label, sizeof label, "synthetic:%s", name);
  return create_synthetic(ctx, &hp, label, seed, config, out, op);
}

deco_status_t deco_model_create_synthetic_hparams(deco_ctx_t *ctx, const deco_model_hparams_t *hparams,
                                                  const char *name, uint64_t seed, const deco_model_config_t *config,
                                                  deco_model_t **out) {
  static const char op[] = "deco_model_create_synthetic_hparams";
  if (ctx == NULL) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ctx is NULL", op);
  DECO_CHECK_PTR(ctx, out, op);
  *out = NULL;
  DECO_CHECK_PTR(ctx, hparams, op);
  char label[128];
  snprintf(label, sizeof label, "synthetic:%s", name ? name : "(hparams)");
  DECO_TRY(check_synthetic_hparams(ctx, hparams, label));
  return create_synthetic(ctx, hparams, label, seed, config, out, op);
}

deco_status_t deco_shard_hparams(const deco_model_hparams_t *full, int tp, deco_model_hparams_t *local) {
  if (full == NULL || local == NULL)
    return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_shard_hparams: %s is NULL", full ? "local" : "full");
  if (tp < 1) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "deco_shard_hparams: tp = %d, expected >= 1", tp);
  deco_shard_t shard;
  return deco_shard_plan(NULL, full, tp, 0, local, &shard, "deco_shard_hparams");
}

void deco_model_destroy(deco_model_t *m) {
  if (m == NULL) return;
  deco_free(m->ctx, m->scratch.block);
  free(m->scratch.meta_image);
  free(m->schedule.first);
  free(m->schedule.count);
  deco_model_free_fused(m);
  /* The context must not keep a workspace that is about to be freed: it
   * gets back the caller's, which this one displaced. */
  deco_model_hold_plan(m, 0); /* a held plan's count on the context */
  deco_ctx_return_workspace(m->ctx, m->workspace);
  deco_free(m->ctx, m->workspace);
  deco_free(m->ctx, m->arena);
  free(m);
}

const deco_model_hparams_t *deco_model_get_hparams(const deco_model_t *m) { return m ? &m->full : NULL; }
deco_dtype_t deco_model_dtype(const deco_model_t *m) { return m ? m->dtype : DECO_DTYPE_F32; }
deco_ctx_t *deco_model_ctx(const deco_model_t *m) { return m ? m->ctx : NULL; }

size_t deco_model_weight_bytes(const deco_model_t *m) {
  return m ? deco_hparams_param_count(&m->hp) * deco_dtype_size(m->dtype) : 0;
}
