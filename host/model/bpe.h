/* host/model/bpe.h — library-private: what lies behind deco_tokenizer_t
 * (include/deco/tokenizer.h). One handle, a kind and a table of operations:
 * llama2.c's tokenizer.bin (tokenizer.c) or a GGUF vocabulary (bpe.c: the
 * byte-level BPE and SentencePiece encoders, llama.cpp's special-token
 * split), with the regex pre-tokenizers in bpe_pretok.c and the chat
 * templates in chat.c. Only host/model/tokenizer.c, bpe*.c and chat*.c
 * include this.
 */
#ifndef DECO_HOST_BPE_H
#define DECO_HOST_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "deco/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable list of ids. */
typedef struct tok_vec {
  int32_t *a;
  size_t n, cap;
} tok_vec_t;
/* 0, or -1 when out of memory. */
int tok_vec_push(tok_vec_t *v, int32_t id);
/* Copies v into ids[0..max_ids) or fails with DECO_STATUS_CAPACITY; *n_ids
 * gets the count either way. Messages read "op: the what encodes to ...".
 * v stays the caller's. */
deco_status_t tok_vec_deliver(const tok_vec_t *v, const char *op, const char *what, int32_t *ids, int max_ids,
                              int *n_ids);

/* Where a streaming decode stands (tokenizer.c's decoder and detokenize
 * share it, so both produce the same bytes). */
typedef struct tok_piece_state {
  int32_t prev;  /* the previous id (llama2.c's decode(prev, id)) */
  int n;         /* ids seen */
  int stripped;  /* SentencePiece: the prefix space is behind us */
} tok_piece_state_t;

typedef struct tok_ops {
  void (*destroy)(deco_tokenizer_t *t);
  /* The ids of text (deco_tokenizer_tokenize's contract), appended to out. */
  deco_status_t (*tokenize)(const deco_tokenizer_t *t, const char *text, size_t len, unsigned flags, tok_vec_t *out);
  /* The bytes id adds to a decode in state st (updated); never NULL. */
  const char *(*piece)(const deco_tokenizer_t *t, tok_piece_state_t *st, int32_t id, unsigned flags, size_t *len);
  int32_t (*special)(const deco_tokenizer_t *t, deco_special_token_t which);
  int (*token_type)(const deco_tokenizer_t *t, int32_t id);
  const char *(*token_text)(const deco_tokenizer_t *t, int32_t id, size_t *len);
  int32_t (*find)(const deco_tokenizer_t *t, const char *text, size_t len);
} tok_ops_t;

typedef struct tok_llama2c tok_llama2c_t;
typedef struct tok_gguf tok_gguf_t;

struct deco_tokenizer {
  deco_tokenizer_kind_t kind;
  const tok_ops_t *ops;
  int vocab_size;
  tok_llama2c_t *l2; /* DECO_TOKENIZER_LLAMA2C */
  tok_gguf_t *g;     /* DECO_TOKENIZER_BPE, DECO_TOKENIZER_SPM */
};

/* ---- bpe.c: GGUF vocabularies ---------------------------------------------- */

extern const tok_ops_t deco_tok_gguf_ops;

/* A piece of text to encode: text[0..len) split at special-token text when
 * parse_special (user-defined tokens always), or, with id >= 0, that token
 * itself. Adjacent text of consecutive segments is encoded as one piece. */
typedef struct tok_segment {
  const char *text;
  size_t len;
  int32_t id;
  int parse_special;
} tok_segment_t;
/* Encodes segments in order (BOS/EOS where the vocabulary adds them if
 * add_special), appending to out. */
deco_status_t deco_tok_gguf_encode_segments(const deco_tokenizer_t *t, const tok_segment_t *segs, int n_segs,
                                            int add_special, tok_vec_t *out);
int deco_tok_gguf_add_bos(const deco_tokenizer_t *t);
int deco_tok_gguf_add_eos(const deco_tokenizer_t *t);
const char *deco_tok_gguf_pre(const deco_tokenizer_t *t);
const char *deco_tok_gguf_chat_template(const deco_tokenizer_t *t, size_t *len);
/* The file name messages start with. */
const char *deco_tok_gguf_name(const deco_tokenizer_t *t);

/* ---- chat.c ---------------------------------------------------------------- */

/* What a GGUF's Jinja chat template was recognised as. */
typedef struct tok_chat_info {
  deco_chat_template_t kind; /* CHATML, LLAMA3, or NONE when absent or not recognised */
  char *default_system;      /* malloc'd, NUL-terminated; NULL when none */
  int generation_always;     /* Llama 3's first release: the generation prompt is unconditional */
  char first_line[96];       /* the template's first line, printable (for the message) */
} tok_chat_info_t;
/* Recognises a template (NULL/0: none). Returns -1 only when out of memory. */
int deco_tok_chat_recognise(const char *tmpl, size_t len, tok_chat_info_t *info);
void deco_tok_chat_info_free(tok_chat_info_t *info);
/* The info of a GGUF tokenizer (bpe.c keeps it). */
const tok_chat_info_t *deco_tok_gguf_chat_info(const deco_tokenizer_t *t);

/* ---- bpe_pretok.c: the regex pre-tokenizers ------------------------------- */

typedef struct tok_pretok tok_pretok_t;
typedef struct tok_span {
  size_t off, len;
} tok_span_t;
typedef struct tok_spans {
  tok_span_t *a;
  size_t n, cap;
} tok_spans_t;

/* What a pre-tokenizer name implies beside its regexes (llama.cpp). */
typedef struct tok_pretok_info {
  int ignore_merges; /* a word found whole in the vocabulary skips the merges */
  int add_bos;       /* the default of add_bos_token */
} tok_pretok_info_t;
/* Compiles the regexes of pre (llama.cpp's name). DECO_STATUS_UNSUPPORTED
 * for an unknown name or a build without PCRE2; the message starts with
 * name. */
deco_status_t deco_tok_pretok_create(const char *pre, const char *name, tok_pretok_t **out, tok_pretok_info_t *info);
void deco_tok_pretok_destroy(tok_pretok_t *p);
/* Splits subject[0..len) (well-formed UTF-8) into consecutive spans that
 * cover it: each regex in turn splits every span of the previous one into
 * its matches and the text between them. */
deco_status_t deco_tok_pretok_split(const tok_pretok_t *p, const char *subject, size_t len, tok_spans_t *out);

/* ---- tokenizer.c: UTF-8 helpers ------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s[0..n) (Unicode table 3-7),
 * or 0 when none starts there; *sub gets the length of the maximal subpart
 * (>= 1) an ill-formed one spans, *incomplete 1 when s ends inside a
 * sequence that could still be completed. */
size_t deco_utf8_sequence(const unsigned char *s, size_t n, size_t *sub, int *incomplete);

#ifdef __cplusplus
}
#endif
#endif /* DECO_HOST_BPE_H */
