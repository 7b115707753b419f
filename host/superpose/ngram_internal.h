/* host/superpose/ngram_internal.h — library-private: the n-gram table's
 * decoded form, shared by its file code (ngram_table.c) and its builder
 * (ngram_build.c).
 */
#ifndef DECO_HOST_SUPERPOSE_NGRAM_INTERNAL_H
#define DECO_HOST_SUPERPOSE_NGRAM_INTERNAL_H

#include "deco/superpose.h"

#define DECO_NGRAM_SLOT_BYTES 24
#define DECO_NGRAM_FOLLOWER_BYTES 8

struct deco_ngram_table {
  int vocab_size;
  uint64_t seed;
  uint64_t tokenizer_hash;
  uint32_t n_slots;
  uint32_t n_contexts;
  uint32_t n_followers;
  uint64_t corpus_tokens;
  uint64_t pruned_contexts;
  uint32_t per_order[DECO_NGRAM_N_ORDERS];
  deco_ngram_slot_t *slots;         /* [n_slots] host */
  deco_ngram_follower_t *followers; /* [n_followers] host */
  unsigned char *image;             /* the file's bytes */
  size_t image_bytes;
};

/* Bytes of a file of n_slots slots and n_followers followers. */
size_t deco_ngram_file_bytes(uint32_t n_slots, uint64_t n_followers);
/* Writes t->image from the decoded fields (checksum included). */
deco_status_t deco_ngram_encode(deco_ngram_table_t *t);

#endif
