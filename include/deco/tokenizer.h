/* deco/tokenizer.h — text in and out, one handle for every vocabulary deco
 * reads:
 *  - llama2.c's tokenizer.bin (and the synthetic models' byte vocabulary):
 *    encoded exactly as its run.c does (BOS, the dummy-prefix space,
 *    code-point lookup with byte fallback id = byte + 3, then repeated
 *    best-score pair merges);
 *  - GGUF vocabularies, encoded as llama.cpp's llama_tokenize does:
 *    tokenizer.ggml.model "gpt2" (byte-level BPE: merges applied by rank, the
 *    pre-tokenizer named by tokenizer.ggml.pre run by PCRE2) and "llama"
 *    (SentencePiece scores, byte fallback <0xXX>).
 * Decoding never splits a UTF-8 character across outputs (the streaming
 * decoder holds an incomplete tail back), and chat templates recognised from
 * a GGUF's Jinja text (ChatML, Llama 3) render to ids.
 *
 * tokenizer.bin format: int32 max_token_length, then vocab_size records of
 * (float32 score, int32 length, length bytes). The vocabulary size is not in
 * the file; it comes from the model.
 */
#ifndef DECO_TOKENIZER_H
#define DECO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "deco/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deco_tokenizer deco_tokenizer_t;

/* Which rules a tokenizer follows. */
typedef enum deco_tokenizer_kind {
  DECO_TOKENIZER_LLAMA2C = 0, /* tokenizer.bin or the byte vocabulary: run.c's rules */
  DECO_TOKENIZER_BPE = 1,     /* GGUF tokenizer.ggml.model "gpt2": byte-level BPE with merge ranks */
  DECO_TOKENIZER_SPM = 2      /* GGUF tokenizer.ggml.model "llama": SentencePiece scores */
} deco_tokenizer_kind_t;

/* ---- llama2.c -------------------------------------------------------------- */

/* Loads path for a model of vocab_size tokens; the file must hold exactly
 * vocab_size records. On failure deco_last_error(NULL) names the file and
 * the field. */
DECO_API deco_status_t deco_tokenizer_load(const char *path, int vocab_size, deco_tokenizer_t **out);
/* Same, from a buffer; name is used in messages. */
DECO_API deco_status_t deco_tokenizer_load_buffer(const void *data, size_t size, const char *name,
                                                  int vocab_size, deco_tokenizer_t **out);
/* The built-in byte vocabulary of the synthetic models: 259 ids, 0 <unk>,
 * 1 <s>, 2 </s>, then id b + 3 is the single raw byte b. */
DECO_API deco_status_t deco_tokenizer_create_bytes(deco_tokenizer_t **out);

/* ---- GGUF ------------------------------------------------------------------ *
 * The vocabulary of a GGUF file's metadata (the tensors are not read; a
 * vocabulary-only file loads too): tokenizer.ggml.model "gpt2" or "llama",
 * .tokens (unique, valid UTF-8; an empty one is renamed "[EMPTY_<id>]" as
 * llama.cpp does), .token_type (optional; when present exactly one int32 per
 * token), .merges ("gpt2": required, each "A B" with A, B and AB in the
 * vocabulary), .scores ("llama": optional, finite), .pre ("gpt2"; absent:
 * "default"), bos/eos/eot/eom_token_id (each inside the vocabulary),
 * unknown/padding_token_id (one outside keeps its default, as in
 * llama.cpp: unknown 0 for "llama", else none; a "gpt2" vocabulary that
 * names no BOS or EOS has none, where llama.cpp takes id 11), add_bos_token,
 * add_eos_token, add_space_prefix and tokenizer.chat_template. Pre-tokenizers ("gpt2" only; llama.cpp's names):
 * "gpt-2", "phi-2", "mpt", "olmo" (GPT-2's pattern); "starcoder", "smollm",
 * "refact", "codeshell" (every digit alone, then GPT-2's); "llama3",
 * "llama-v3", "llama-bpe", "falcon3" (Llama 3's; whole words found in the
 * vocabulary skip the merges; BOS added unless add_bos_token says
 * otherwise); "qwen2", "stablelm2" (Qwen2's); "default". Any other name is
 * refused by name. "gpt2" vocabularies need PCRE2 at build time
 * (DECO_STATUS_UNSUPPORTED without it). On failure deco_last_error(NULL)
 * names the file and the key. */
DECO_API deco_status_t deco_tokenizer_load_gguf(const char *path, deco_tokenizer_t **out);
DECO_API deco_status_t deco_tokenizer_load_gguf_buffer(const void *data, size_t size, const char *name,
                                                       deco_tokenizer_t **out);

/* ---- any kind -------------------------------------------------------------- */

DECO_API void deco_tokenizer_destroy(deco_tokenizer_t *tok);
DECO_API int deco_tokenizer_vocab_size(const deco_tokenizer_t *tok);
DECO_API deco_tokenizer_kind_t deco_tokenizer_kind(const deco_tokenizer_t *tok);
/* The pre-tokenizer's name as loaded ("smollm", "llama-bpe", "default", ...);
 * "" for SentencePiece and llama2.c vocabularies. */
DECO_API const char *deco_tokenizer_pre(const deco_tokenizer_t *tok);

typedef enum deco_special_token {
  DECO_TOKEN_BOS = 0,
  DECO_TOKEN_EOS = 1,
  /* End of turn: tokenizer.ggml.eot_token_id, else the first of
   * <|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>,
   * <|end_of_text|>, <EOT> in the vocabulary (llama.cpp's list). */
  DECO_TOKEN_EOT = 2,
  DECO_TOKEN_EOM = 3, /* end of message: eom_token_id, else <|eom_id|> */
  DECO_TOKEN_UNK = 4,
  DECO_TOKEN_PAD = 5
} deco_special_token_t;
/* The id of a special token, -1 when the vocabulary has none. llama2.c:
 * BOS 1, EOS 2, UNK 0, the others -1. GGUF: the metadata's ids, with
 * llama.cpp's defaults where a key is absent ("llama": BOS 1, EOS 2, UNK 0). */
DECO_API int32_t deco_tokenizer_special(const deco_tokenizer_t *tok, deco_special_token_t which);
/* Whether tokenizing with DECO_TOKENIZE_ADD_SPECIAL adds BOS / EOS:
 * tokenizer.ggml.add_bos_token / add_eos_token, else llama.cpp's default for
 * the model and pre-tokenizer; llama2.c: BOS yes, EOS no. */
DECO_API int deco_tokenizer_add_bos(const deco_tokenizer_t *tok);
DECO_API int deco_tokenizer_add_eos(const deco_tokenizer_t *tok);

/* Token types of GGUF (tokenizer.ggml.token_type). */
typedef enum deco_token_type {
  DECO_TOKEN_TYPE_UNDEFINED = 0,
  DECO_TOKEN_TYPE_NORMAL = 1,
  DECO_TOKEN_TYPE_UNKNOWN = 2,
  DECO_TOKEN_TYPE_CONTROL = 3,
  DECO_TOKEN_TYPE_USER_DEFINED = 4,
  DECO_TOKEN_TYPE_UNUSED = 5,
  DECO_TOKEN_TYPE_BYTE = 6
} deco_token_type_t;
/* A token's type as the rules treat it: the file's, except that tokens
 * llama.cpp recognises by their text as end of generation or end of turn
 * (<|im_end|>, <|eot_id|>, <|endoftext|>, ...) are CONTROL. llama2.c: id 0
 * UNKNOWN, 1-2 CONTROL, others NORMAL. -1 for an id out of range. */
DECO_API int deco_tokenizer_token_type(const deco_tokenizer_t *tok, int32_t id);
/* The vocabulary's text of a token, as stored (byte-level characters for
 * BPE, "▁" for SentencePiece spaces); NULL for an id out of range. */
DECO_API const char *deco_tokenizer_token_text(const deco_tokenizer_t *tok, int32_t id, size_t *len);
/* The id whose stored text is exactly text[0..len), -1 if none. */
DECO_API int32_t deco_tokenizer_find(const deco_tokenizer_t *tok, const char *text, size_t len);

/* Flags of deco_tokenizer_tokenize. */
#define DECO_TOKENIZE_ADD_SPECIAL 1u   /* BOS / EOS where deco_tokenizer_add_bos / _add_eos say so */
#define DECO_TOKENIZE_PARSE_SPECIAL 2u /* text of control and unknown tokens becomes those tokens */

/* The GGUF prompt rule: llama.cpp's llama_tokenize(text, len, add_special,
 * parse_special). Without PARSE_SPECIAL, special-token text the text holds
 * (<|im_end|>) is encoded as plain text; user-defined tokens are always
 * split off first, as llama.cpp does. Text is bytes, any of them: invalid
 * UTF-8 is read as llama.cpp reads it (each byte that starts no well-formed
 * sequence becomes U+FFFD; overlong forms and surrogates are decoded as
 * they stand), except that a 4-byte form above U+10FFFF, where llama.cpp
 * aborts, is U+FFFD per byte too. llama2.c vocabularies: run.c's encode
 * with bos = ADD_SPECIAL and eos = 0 (PARSE_SPECIAL has no effect; a NUL
 * byte in the text is refused). Writes at most max_ids ids; 4 * len + 8
 * always suffice (each byte of the text is at most 3 ids, and a
 * SentencePiece vocabulary gives each piece of text between user-defined
 * tokens a 3-byte space prefix). With too few, fails with
 * DECO_STATUS_CAPACITY and sets *n_ids to the count needed. */
DECO_API deco_status_t deco_tokenizer_tokenize(const deco_tokenizer_t *tok, const char *text, size_t len,
                                               unsigned flags, int32_t *ids, int max_ids, int *n_ids);

/* Encodes text (NUL-terminated) as run.c's encode(): bos/eos add ids 1 / 2.
 * Writes at most max_ids ids; *n_ids gets the count. With too few (>=
 * strlen(text) + 3 always suffices for llama2.c vocabularies), fails with
 * DECO_STATUS_CAPACITY and sets *n_ids to the count needed, as
 * deco_tokenizer_tokenize does. GGUF vocabularies:
 * deco_tokenizer_tokenize without special parsing, with the vocabulary's
 * BOS and EOS ids where asked (and present). */
DECO_API deco_status_t deco_tokenizer_encode(const deco_tokenizer_t *tok, const char *text, int bos,
                                             int eos, int32_t *ids, int max_ids, int *n_ids);

/* What run.c prints for token after prev: decode() (leading space dropped
 * after BOS, "<0xXX>" pieces turned into the byte) then safe_printf()
 * (a single unprintable byte prints nothing). Returns the bytes to print,
 * "" for nothing; *len gets their count. Never NULL; ids out of range give "".
 * GGUF vocabularies: the token's bytes (prev is not used; control and
 * unknown tokens give ""). The bytes may hold NUL. */
DECO_API const char *deco_tokenizer_decode(const deco_tokenizer_t *tok, int prev, int token, size_t *len);

/* Flags of deco_tokenizer_detokenize and the streaming decoder. */
#define DECO_DETOKENIZE_SPECIAL 1u    /* GGUF: print control and unknown tokens' text (default: nothing) */
#define DECO_DETOKENIZE_VALID_UTF8 2u /* each ill-formed UTF-8 subsequence becomes U+FFFD (Unicode's
                                       * "maximal subpart" practice), an unfinished one at the end too */
#define DECO_DETOKENIZE_CONTINUATION 4u /* the ids continue earlier text (a prompt's): SentencePiece's first
                                         * token keeps its leading space, as every later one does */

/* The text of ids, concatenated: GGUF BPE maps byte-level characters back
 * to bytes (a character outside GPT-2's 256 is copied as it stands), byte
 * tokens <0xXX> give their byte, SentencePiece turns "▁" into a space and,
 * when the vocabulary adds a space prefix, drops one leading space of the
 * first token that is not a control token (not with
 * DECO_DETOKENIZE_CONTINUATION); unused and undefined tokens give nothing. No
 * clean-up of spaces before punctuation, so
 * detokenize(tokenize(s)) == s for valid UTF-8 s without special text.
 * llama2.c: what `deco generate` prints for the id line: each id after the
 * first contributes deco_tokenizer_decode(previous id, id). Writes at most
 * max_bytes bytes (no NUL is added); with too few, fails with
 * DECO_STATUS_CAPACITY and sets *n_bytes to the count needed. */
DECO_API deco_status_t deco_tokenizer_detokenize(const deco_tokenizer_t *tok, const int32_t *ids, int n_ids,
                                                 unsigned flags, char *text, size_t max_bytes, size_t *n_bytes);

/* Streaming decoding: feed ids one at a time, get the text they complete.
 * A token that ends inside a UTF-8 character leaves that character's first
 * bytes held back until the character is complete (or can no longer be);
 * the concatenation of every push and the final flush equals
 * deco_tokenizer_detokenize of the same ids with the same flags. The
 * tokenizer must outlive the decoder. */
typedef struct deco_text_decoder deco_text_decoder_t;
DECO_API deco_status_t deco_text_decoder_create(const deco_tokenizer_t *tok, unsigned flags,
                                                deco_text_decoder_t **out);
/* *text (valid until the next call on dec) gets the bytes now complete,
 * *len their count (0 is common). An id out of range is
 * DECO_STATUS_INVALID_ARGUMENT and changes nothing. */
DECO_API deco_status_t deco_text_decoder_push(deco_text_decoder_t *dec, int32_t id, const char **text,
                                              size_t *len);
/* The held-back tail (with VALID_UTF8: U+FFFD for an unfinished character);
 * the decoder starts afresh afterwards. */
DECO_API deco_status_t deco_text_decoder_flush(deco_text_decoder_t *dec, const char **text, size_t *len);
DECO_API void deco_text_decoder_destroy(deco_text_decoder_t *dec);

/* ---- chat templates -------------------------------------------------------- *
 * No Jinja engine: the GGUF's tokenizer.chat_template is recognised when,
 * tags normalised (whitespace outside string literals, quote style, the
 * '-' trim markers; text between tags that Hugging Face's trim_blocks and
 * lstrip_blocks remove), it is one of:
 *  - ChatML: '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'
 *    per message, then '<|im_start|>assistant\n' if add_generation_prompt;
 *    optionally with SmolLM2's default system message (a first message
 *    '<|im_start|>system\n' SYSTEM '<|im_end|>\n' when messages[0] is not
 *    a system message; SYSTEM is read from the template);
 *  - Llama 3 (Meta-Llama-3-*-Instruct): bos_token, then per message
 *    '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
 *    (content | trim) + '<|eot_id|>', then
 *    '<|start_header_id|>assistant<|end_header_id|>\n\n' (if
 *    add_generation_prompt, or always in the first release's form).
 * Rendering tokenizes the template's own text with special parsing and the
 * system and user text without it (special-token text typed by a user stays
 * text), adjacent text encoded as one piece, nothing added around it
 * (BOS only where the template writes bos_token): the ids of the Jinja
 * rendering tokenized by llama.cpp with parse_special, for text free of
 * special-token text. */
typedef enum deco_chat_template {
  DECO_CHAT_TEMPLATE_AUTO = 0,  /* the GGUF's own template, recognised */
  DECO_CHAT_TEMPLATE_NONE = 1,  /* no template: the prompt alone, with ADD_SPECIAL */
  DECO_CHAT_TEMPLATE_CHATML = 2, /* ChatML without a default system message */
  DECO_CHAT_TEMPLATE_LLAMA3 = 3 /* Llama 3, add_generation_prompt honoured */
} deco_chat_template_t;

/* "auto", "none", "chatml", "llama3"; "?" for other values (never NULL). */
DECO_API const char *deco_chat_template_name(deco_chat_template_t tmpl);
/* The inverse (exact names); DECO_STATUS_INVALID_ARGUMENT otherwise. */
DECO_API deco_status_t deco_chat_template_from_name(const char *name, deco_chat_template_t *out);
/* tokenizer.chat_template as stored; NULL when the file has none. */
DECO_API const char *deco_tokenizer_chat_template(const deco_tokenizer_t *tok, size_t *len);
/* What AUTO means for tok: CHATML or LLAMA3. DECO_STATUS_UNSUPPORTED, with
 * a message quoting the template's first line, when the template is absent
 * or not one of the forms above. Other values are returned as given. */
DECO_API deco_status_t deco_chat_template_resolve(const deco_tokenizer_t *tok, deco_chat_template_t tmpl,
                                                  deco_chat_template_t *out);
/* The default system message of tok's recognised template (NUL-terminated,
 * owned by tok); NULL when it has none. */
DECO_API const char *deco_chat_default_system(const deco_tokenizer_t *tok);
/* Renders one user turn: system (NULL: none given, so the template's
 * default applies; "" is an empty system message) and prompt, then the
 * generation prompt if add_generation_prompt. NONE: prompt alone as
 * deco_tokenizer_tokenize(ADD_SPECIAL) (system must be NULL). llama2.c
 * vocabularies take NONE only. Ids and capacity as deco_tokenizer_tokenize. */
DECO_API deco_status_t deco_chat_render(const deco_tokenizer_t *tok, deco_chat_template_t tmpl, const char *system,
                                        const char *prompt, int add_generation_prompt, int32_t *ids, int max_ids,
                                        int *n_ids);
/* The id that ends the assistant's turn: <|im_end|> (ChatML), <|eot_id|>
 * (Llama 3), each looked up by text; -1 when absent, for NONE or when AUTO
 * cannot be resolved. */
DECO_API int32_t deco_chat_end_token(const deco_tokenizer_t *tok, deco_chat_template_t tmpl);

#ifdef __cplusplus
}
#endif
#endif /* DECO_TOKENIZER_H */
