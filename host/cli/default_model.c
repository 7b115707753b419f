/* host/cli/default_model.c — stories260K.bin and tok512.bin embedded with
 * the assembler's .incbin (paths from the build: DECO_DEFAULT_MODEL_FILE,
 * DECO_DEFAULT_TOKENIZER_FILE), so a copied or installed `deco` needs no
 * data folder. Each blob is followed by an end label; size = end - start.
 */
#include "cli/default_model.h"

#if !defined(DECO_DEFAULT_MODEL_FILE) || !defined(DECO_DEFAULT_TOKENIZER_FILE)
#error "the build must define DECO_DEFAULT_MODEL_FILE and DECO_DEFAULT_TOKENIZER_FILE"
#endif

/* 64-byte alignment: the checkpoint parser reads the file as floats. */
#define DECO_EMBED(sym, file)                                   \
  __asm__(".section .rodata\n"                                  \
          ".balign 64\n"                                        \
          ".type " #sym ", @object\n" #sym ":\n"                \
          ".incbin \"" file "\"\n" #sym "_end:\n"               \
          ".byte 0\n"                                           \
          ".previous\n")

DECO_EMBED(deco_embedded_model, DECO_DEFAULT_MODEL_FILE);
DECO_EMBED(deco_embedded_tokenizer, DECO_DEFAULT_TOKENIZER_FILE);

extern const unsigned char deco_embedded_model[], deco_embedded_model_end[];
extern const unsigned char deco_embedded_tokenizer[], deco_embedded_tokenizer_end[];

const void *deco_default_model(size_t *size) {
  *size = (size_t)(deco_embedded_model_end - deco_embedded_model);
  return deco_embedded_model;
}

const void *deco_default_tokenizer(size_t *size) {
  *size = (size_t)(deco_embedded_tokenizer_end - deco_embedded_tokenizer);
  return deco_embedded_tokenizer;
}
