/* host/model/llama2c.h — library-private: parsing and validation of a
 * llama2.c checkpoint held in memory (the loader maps the file; the fuzzer
 * feeds buffers). Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size (negative = separate classifier), seq_len), then
 * fp32 tensors in llama2.c order, the legacy RoPE tables (seq_len x
 * head_dim/2, twice) which are skipped, then the classifier if separate.
 */
#ifndef DECO_HOST_LLAMA2C_H
#define DECO_HOST_LLAMA2C_H

#include <stddef.h>

#include "deco/model.h"

#define DECO_LLAMA2C_HEADER_BYTES 28

/* Pointers into the parsed buffer, shapes as [rows][cols]. */
typedef struct deco_llama2c_weights {
  const float *token_embedding; /* [vocab][dim] */
  const float *rms_att;         /* [n_layers][dim] */
  const float *wq;              /* [n_layers][n_heads * head_dim][dim] */
  const float *wk;              /* [n_layers][n_kv_heads * head_dim][dim] */
  const float *wv;              /* [n_layers][n_kv_heads * head_dim][dim] */
  const float *wo;              /* [n_layers][dim][n_heads * head_dim] */
  const float *rms_ffn;         /* [n_layers][dim] */
  const float *w1;              /* [n_layers][hidden_dim][dim] */
  const float *w2;              /* [n_layers][dim][hidden_dim] */
  const float *w3;              /* [n_layers][hidden_dim][dim] */
  const float *rms_final;       /* [dim] */
  const float *wcls;            /* [vocab][dim]; == token_embedding when shared */
} deco_llama2c_weights_t;

/* Validates the header (each field in range, head_dim even and in 8..256,
 * n_kv_heads dividing n_heads) and the exact size, then every weight is
 * checked finite. name (the path) starts every message, e.g.
 * "model.bin: header says dim=64 but file is 300000 bytes, expected 1056540".
 * Messages go to deco_last_error(NULL). Returns DECO_STATUS_BAD_FORMAT for
 * invalid content. */
deco_status_t deco_llama2c_parse(const void *data, size_t size, const char *name, deco_model_hparams_t *hparams,
                                 deco_llama2c_weights_t *weights);

/* Checks the header alone against a file size (no weights needed). */
deco_status_t deco_llama2c_parse_header(const void *header, size_t header_bytes, size_t file_size,
                                        const char *name, deco_model_hparams_t *hparams);

#endif
