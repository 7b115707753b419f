/* host/cli/cli_util.h — what several `deco` commands share: reading a whole
 * input file, telling a GGUF file by its magic, and the rank a launcher
 * (mpirun, srun) gave this process for the commands that run once.
 */
#ifndef DECO_CLI_UTIL_H
#define DECO_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A whole regular file (a FIFO or a device is refused at once, never waited
 * on), with a NUL after it, *size its length; NULL after the message. */
char *deco_cli_read_file(const char *path, size_t *size);

/* 1 when path is a regular file starting with "GGUF", 0 when it is a
 * regular file that does not; -1 after the message when it cannot be read
 * or is not a regular file. */
int deco_cli_is_gguf(const char *path);

/* FNV-1a 64 of a tokenizer's token list (each token's length, text and
 * type, in id order): the tokenizer hash of a GGUF model, whose tokenizer
 * is no separate file. Never 0 (0 means unknown to the n-gram table). */
struct deco_tokenizer;
uint64_t deco_cli_tokenizer_hash(const struct deco_tokenizer *tok);

/* 1 when a launcher started this process as rank R > 0 of several
 * (deco_comm_env_read): the commands other than generate run on rank 0
 * only, and the others exit 0 at once without output. */
int deco_cli_launch_follower(void);

#endif
