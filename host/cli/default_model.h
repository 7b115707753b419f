/* host/cli/default_model.h — the model `deco generate` runs when no --model
 * or --synthetic is given: stories260K and its tokenizer (data/models/),
 * embedded in the binary at build time.
 */
#ifndef DECO_CLI_DEFAULT_MODEL_H
#define DECO_CLI_DEFAULT_MODEL_H

#include <stddef.h>

/* The name the stats line and messages use for each file. */
#define DECO_DEFAULT_MODEL_NAME "stories260K.bin"
#define DECO_DEFAULT_TOKENIZER_NAME "tok512.bin"

/* The bytes of each file (64-byte aligned) and their count. */
const void *deco_default_model(size_t *size);
const void *deco_default_tokenizer(size_t *size);

#endif
