/* deco/tokenizer.h — llama2.c's tokenizer.bin: load, encode and decode
 * exactly as its run.c does (BOS, the dummy-prefix space, code-point lookup
 * with byte fallback id = byte + 3, then repeated best-score pair merges).
 *
 * File format: int32 max_token_length, then vocab_size records of
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
DECO_API void deco_tokenizer_destroy(deco_tokenizer_t *tok);
DECO_API int deco_tokenizer_vocab_size(const deco_tokenizer_t *tok);

/* Encodes text (NUL-terminated) as run.c's encode(): bos/eos add ids 1 / 2.
 * Writes at most max_ids ids; *n_ids gets the count. Fails with
 * DECO_STATUS_CAPACITY when max_ids (>= strlen(text) + 3 always suffices)
 * is too small. */
DECO_API deco_status_t deco_tokenizer_encode(const deco_tokenizer_t *tok, const char *text, int bos,
                                             int eos, int32_t *ids, int max_ids, int *n_ids);

/* What run.c prints for token after prev: decode() (leading space dropped
 * after BOS, "<0xXX>" pieces turned into the byte) then safe_printf()
 * (a single unprintable byte prints nothing). Returns the bytes to print,
 * "" for nothing; *len gets their count. Never NULL; ids out of range give "". */
DECO_API const char *deco_tokenizer_decode(const deco_tokenizer_t *tok, int prev, int token, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* DECO_TOKENIZER_H */
