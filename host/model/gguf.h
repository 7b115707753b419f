/* host/model/gguf.h — library-private: parsing and validation of a GGUF file
 * (ggml's model format, versions 2 and 3, little-endian) held in memory: the
 * loader maps the file, the fuzzer and the tests hand in buffers. Layout: a
 * 24-byte header (magic "GGUF", uint32 version, uint64 tensor count, uint64
 * metadata count), the metadata (key, value type, value), the tensor table
 * (name, dims with ne[0] the contiguous one, ggml type, offset), padding to
 * general.alignment (default 32), then the tensor data.
 *
 * RoPE pairing of GGUF llama tensors: interleaved, DECO_ROPE_INTERLEAVED
 * (pairs (2j, 2j+1) of each head), not the half split of Hugging Face's
 * Llama code. Evidence, from the llama.cpp sources vendored in the
 * llama-cpp-python 0.3.36 source package on PyPI:
 *  - llama.cpp's converter (conversion/llama.py, LlamaModel.modify_tensors)
 *    permutes q_proj and k_proj of Hugging Face checkpoints with
 *    LlamaModel.permute: each head's rows are viewed as [2][head_dim/2] and
 *    the two axes swapped, so row i of the first half (HF's pair partner of
 *    row i + head_dim/2) becomes row 2i and its partner row 2i+1. Hugging
 *    Face's half-split pairs (i, i + head_dim/2) thus become adjacent pairs
 *    (2i, 2i+1) in the GGUF file.
 *  - src/llama-model.cpp, llama_model_rope_type(): LLM_ARCH_LLAMA returns
 *    LLAMA_ROPE_TYPE_NORM, "a normal RoPE, operating on pairs of consecutive
 *    head values" (NEOX, the half split, is used by other architectures);
 *    ggml's CPU rope (ggml-cpu/ops.cpp, rotate_pairs) rotates elements
 *    (i, i+1) in NORM mode and (i, i + n_dims/2) in NEOX mode.
 *  - Measured (data/README.md): scripts/gguf/reference.py, a float64 forward
 *    rotating interleaved pairs, agrees with llama.cpp's logits on the
 *    all-F32 copy of SmolLM2-135M to 3e-5 at 144 positions, every argmax
 *    equal; rotating half-split pairs instead, it differs by up to 25 and
 *    41 of 64 argmaxes change.
 * So a GGUF llama model runs with rope_style DECO_ROPE_INTERLEAVED, exactly
 * like a llama2.c checkpoint (whose exporter applies the same permutation).
 */
#ifndef DECO_HOST_GGUF_H
#define DECO_HOST_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "deco/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DECO_GGUF_HEADER_BYTES 24
#define DECO_GGUF_DEFAULT_ALIGNMENT 32

/* Limits: far above any released model (Llama 3 405B has 1138 tensors,
 * vocabularies reach 262144 strings, chat templates tens of KB) and far
 * below what could overflow the 64-bit size arithmetic. */
#define DECO_GGUF_MAX_TENSORS 65536u
#define DECO_GGUF_MAX_KV 65536u
#define DECO_GGUF_MAX_KEY 1024u          /* bytes of a metadata key */
#define DECO_GGUF_MAX_STRING (1u << 24)  /* bytes of a metadata string */
#define DECO_GGUF_MAX_ARRAY (1u << 24)   /* elements of a metadata array */
#define DECO_GGUF_MAX_NAME 64            /* ggml's GGML_MAX_NAME: 63 bytes + NUL */
#define DECO_GGUF_MAX_DIMS 4
#define DECO_GGUF_MAX_ELEMENTS (1ull << 48) /* elements of one tensor */
#define DECO_GGUF_MAX_ALIGNMENT 65536u

/* Metadata value types, as written in the file. */
typedef enum deco_gguf_value_type {
  DECO_GGUF_VAL_UINT8 = 0,
  DECO_GGUF_VAL_INT8 = 1,
  DECO_GGUF_VAL_UINT16 = 2,
  DECO_GGUF_VAL_INT16 = 3,
  DECO_GGUF_VAL_UINT32 = 4,
  DECO_GGUF_VAL_INT32 = 5,
  DECO_GGUF_VAL_FLOAT32 = 6,
  DECO_GGUF_VAL_BOOL = 7,
  DECO_GGUF_VAL_STRING = 8,
  DECO_GGUF_VAL_ARRAY = 9,
  DECO_GGUF_VAL_UINT64 = 10,
  DECO_GGUF_VAL_INT64 = 11,
  DECO_GGUF_VAL_FLOAT64 = 12
} deco_gguf_value_type_t;

/* The ggml tensor types deco reads (ids as written in the file). Every
 * other type ggml defines is parsed (its block size is known, so the file
 * layout is still checked) but refused by deco_gguf_llama_hparams by name. */
typedef enum deco_gguf_type {
  DECO_GGUF_F32 = 0,
  DECO_GGUF_F16 = 1,
  DECO_GGUF_Q4_0 = 2,  /* blocks of 32: f16 d, 16 bytes of nibbles; x = d * (q - 8) */
  DECO_GGUF_Q4_1 = 3,  /* blocks of 32: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m */
  DECO_GGUF_Q8_0 = 8,  /* blocks of 32: f16 d, 32 int8; x = d * q */
  DECO_GGUF_BF16 = 30
} deco_gguf_type_t;

#define DECO_GGUF_QK 32 /* elements per block of Q4_0, Q4_1, Q8_0 */
#define DECO_GGUF_Q4_0_BYTES 18
#define DECO_GGUF_Q4_1_BYTES 20
#define DECO_GGUF_Q8_0_BYTES 34

/* One metadata entry; pointers into the parsed buffer. */
typedef struct deco_gguf_kv {
  const char *key;            /* printable ASCII, not NUL-terminated */
  uint32_t key_len;
  uint32_t type;              /* deco_gguf_value_type_t */
  uint32_t elem_type;         /* arrays: the element type; else == type */
  uint64_t count;             /* arrays: elements; else 1 */
  const unsigned char *value; /* the value's bytes (strings: the uint64 length first; arrays: the first element) */
  uint64_t value_bytes;
} deco_gguf_kv_t;

/* A string inside the buffer (not NUL-terminated). */
typedef struct deco_gguf_str {
  const char *s;
  uint64_t len;
} deco_gguf_str_t;

typedef struct deco_gguf_tensor {
  char name[DECO_GGUF_MAX_NAME]; /* NUL-terminated copy, printable ASCII */
  uint32_t type;                 /* ggml type id */
  uint32_t n_dims;               /* 1..4 */
  uint64_t dims[DECO_GGUF_MAX_DIMS]; /* ne[0] (contiguous) first; 1 beyond n_dims */
  uint64_t n_elements;
  uint64_t offset;               /* from the start of the data section */
  uint64_t n_bytes;
  const unsigned char *data;     /* into the buffer; no alignment promised */
} deco_gguf_tensor_t;

typedef struct deco_gguf {
  char *name;                    /* copy of the name messages start with */
  const unsigned char *base;
  size_t size;
  uint32_t version;              /* 2 or 3 */
  uint32_t alignment;            /* general.alignment, or 32 */
  uint64_t data_offset;          /* start of the data section in the file */
  uint64_t n_kv;
  deco_gguf_kv_t *kv;            /* file order */
  uint64_t n_tensors;
  deco_gguf_tensor_t *tensors;   /* file order (offsets increase) */
  uint32_t *kv_sorted;           /* indices by key, for lookups */
  uint32_t *tensor_sorted;       /* indices by name */
} deco_gguf_t;

/* Parses and validates a whole GGUF file held in memory: the header (magic,
 * version 2 or 3, counts within the limits and within the bytes left),
 * every metadata entry (key length, printable ASCII key, no duplicate key,
 * value type, string and array lengths against the limits and the bytes
 * left, bool values 0 or 1, arrays of arrays refused, general.alignment a
 * uint32 power of two in 8..65536), every tensor (name length, printable
 * ASCII name, no duplicate, 1..4 dims each >= 1 with a product within
 * 2^48, a ggml type with a known block size, ne[0] a multiple of the block,
 * offset a multiple of the alignment), then the data: each tensor inside
 * the file, in file order, none overlapping the previous. Sizes are
 * computed in 64 bits with overflow checks; nothing is read before its
 * length is checked against the bytes left. name (the path) starts every
 * message, which names the field: "m.gguf: tensor 3 ('blk.0.attn_k.weight')
 * dims[1]: ...". Messages go to deco_last_error(NULL). Returns
 * DECO_STATUS_BAD_FORMAT for invalid content; *out is zeroed then and needs
 * no deco_gguf_free. The buffer must outlive *out. */
deco_status_t deco_gguf_parse(const void *data, size_t size, const char *name, deco_gguf_t *out);
void deco_gguf_free(deco_gguf_t *g);

/* "Q4_K", "F32", ...; NULL for an id ggml does not define. */
const char *deco_gguf_type_name(uint32_t type);
/* Elements and bytes of one block of a ggml type; 0 if unknown. */
int deco_gguf_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* 1 for the six types deco reads: F32, F16, BF16, Q8_0, Q4_0, Q4_1. */
int deco_gguf_type_supported(uint32_t type);
/* "uint32", "string", "array", ...; "?" for an unknown id. */
const char *deco_gguf_value_type_name(uint32_t type);

/* Lookups (binary search); NULL when absent. */
const deco_gguf_kv_t *deco_gguf_find_kv(const deco_gguf_t *g, const char *key);
const deco_gguf_tensor_t *deco_gguf_find_tensor(const deco_gguf_t *g, const char *name);

/* Typed getters. A missing key or a value of another type is
 * DECO_STATUS_BAD_FORMAT with a message naming the file and the key.
 * Integer getters take any integer type whose value fits the result;
 * deco_gguf_get_f32 takes float32, or float64 within float's range. */
deco_status_t deco_gguf_get_u32(const deco_gguf_t *g, const char *key, uint32_t *out);
deco_status_t deco_gguf_get_i32(const deco_gguf_t *g, const char *key, int32_t *out);
deco_status_t deco_gguf_get_i64(const deco_gguf_t *g, const char *key, int64_t *out);
deco_status_t deco_gguf_get_f32(const deco_gguf_t *g, const char *key, float *out);
deco_status_t deco_gguf_get_bool(const deco_gguf_t *g, const char *key, int *out);
deco_status_t deco_gguf_get_string(const deco_gguf_t *g, const char *key, deco_gguf_str_t *out);
/* An array's element type and length. */
deco_status_t deco_gguf_get_array(const deco_gguf_t *g, const char *key, uint32_t *elem_type, uint64_t *count);
/* Copies out an array whose length is at most cap: strings (pointers into
 * the buffer), integers of any integer element type, floats (float32 or
 * float64 elements, converted). *count gets the length. */
deco_status_t deco_gguf_get_strings(const deco_gguf_t *g, const char *key, deco_gguf_str_t *out, uint64_t cap,
                                    uint64_t *count);
deco_status_t deco_gguf_get_ints(const deco_gguf_t *g, const char *key, int64_t *out, uint64_t cap,
                                 uint64_t *count);
deco_status_t deco_gguf_get_floats(const deco_gguf_t *g, const char *key, float *out, uint64_t cap,
                                   uint64_t *count);

/* The tensors of a Llama model. */
typedef enum deco_gguf_role {
  DECO_GGUF_TOKEN_EMBD = 0, /* token_embd.weight   [dim, vocab] */
  DECO_GGUF_OUTPUT_NORM,    /* output_norm.weight  [dim] */
  DECO_GGUF_OUTPUT,         /* output.weight       [dim, vocab]; absent: tied to token_embd */
  DECO_GGUF_ATTN_NORM,      /* blk.N.attn_norm.weight   [dim] */
  DECO_GGUF_ATTN_Q,         /* blk.N.attn_q.weight      [dim, n_heads * head_dim] */
  DECO_GGUF_ATTN_K,         /* blk.N.attn_k.weight      [dim, n_kv_heads * head_dim] */
  DECO_GGUF_ATTN_V,         /* blk.N.attn_v.weight      [dim, n_kv_heads * head_dim] */
  DECO_GGUF_ATTN_OUTPUT,    /* blk.N.attn_output.weight [n_heads * head_dim, dim] */
  DECO_GGUF_FFN_NORM,       /* blk.N.ffn_norm.weight    [dim] */
  DECO_GGUF_FFN_GATE,       /* blk.N.ffn_gate.weight    [dim, hidden] */
  DECO_GGUF_FFN_UP,         /* blk.N.ffn_up.weight      [dim, hidden] */
  DECO_GGUF_FFN_DOWN,       /* blk.N.ffn_down.weight    [hidden, dim] */
  DECO_GGUF_N_ROLES
} deco_gguf_role_t;

/* Derives a Llama configuration from general.architecture (must be
 * "llama") and the llama.* metadata: embedding_length (dim),
 * feed_forward_length (hidden), block_count, attention.head_count,
 * attention.head_count_kv (default head_count), context_length (seq_len),
 * rope.freq_base (default 10000), attention.layer_norm_rms_epsilon,
 * rope.dimension_count (default head_dim; must equal head_dim),
 * attention.key_length/value_length (if present, head_dim), vocab_size (if
 * present; else token_embd's rows), with tokenizer.ggml.tokens' length
 * equal to the vocabulary when present; RoPE scaling other than none and
 * mixtures of experts are refused. Then every tensor: exactly the set
 * above (an unknown name, a layer past block_count or a missing tensor is
 * an error naming it), each shape equal to the one the metadata implies,
 * each type one of the six deco reads (others refused by name). Sets
 * rope_style = DECO_ROPE_INTERLEAVED (see the top of this file),
 * shared_classifier = no output.weight, builtin_vocab = 0, bos_id =
 * tokenizer.ggml.bos_token_id (-1 when absent), stop ids = eos_token_id,
 * eot_token_id and the id of the token "<|endoftext|>" in
 * tokenizer.ggml.tokens, each when present and once (ids checked inside the
 * vocabulary); BOS is not a stop id. */
deco_status_t deco_gguf_llama_hparams(const deco_gguf_t *g, deco_model_hparams_t *hparams);
/* The tensor of a role (layer: 0..n_layers-1 for per-layer roles, ignored
 * otherwise); NULL when absent. */
const deco_gguf_tensor_t *deco_gguf_llama_tensor(const deco_gguf_t *g, deco_gguf_role_t role, int layer);

/* Checks that every value of a tensor of a supported type is finite (for
 * the block types: every scale, which bounds the values); the message names
 * the tensor and the element or block. DECO_STATUS_BAD_FORMAT otherwise,
 * DECO_STATUS_UNSUPPORTED for a type deco does not read. */
deco_status_t deco_gguf_check_finite(const deco_gguf_t *g, const deco_gguf_tensor_t *t);

/* Block dequantisation, as ggml and the gguf package define it (the
 * arithmetic lives in kernels/quant/quant_block.h, shared with the
 * deco_dequant op). The 16 bytes qs of a 4-bit block hold element j
 * (j < 16) in the low nibble of qs[j] and element j + 16 in its high nibble. d*q is exact in fp32 (an
 * 11-bit mantissa times an integer below 2^8), so Q4_0 and Q8_0 round once,
 * and Q4_1's fmaf(d, q, m) rounds once like the package's (d*q) + m: every
 * value is bitwise equal to the gguf package's dequantisers. */
void deco_gguf_dequant_q4_0(const unsigned char block[DECO_GGUF_Q4_0_BYTES], float out[DECO_GGUF_QK]);
void deco_gguf_dequant_q4_1(const unsigned char block[DECO_GGUF_Q4_1_BYTES], float out[DECO_GGUF_QK]);
void deco_gguf_dequant_q8_0(const unsigned char block[DECO_GGUF_Q8_0_BYTES], float out[DECO_GGUF_QK]);
/* n consecutive elements of a tensor of one of the six types (n a multiple
 * of the block size), from src (any alignment) to out. Returns 0, or -1 for
 * another type or a partial block. F16 and BF16 convert exactly. */
int deco_gguf_dequant(uint32_t type, const void *src, uint64_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif /* DECO_HOST_GGUF_H */
