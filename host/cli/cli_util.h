/* host/cli/cli_util.h — what several `deco` commands share: the common
 * pieces of reading options, reading a whole
 * input file, id arrays read from id lines or encoded from text, telling a
 * GGUF file by its magic, and the rank a launcher
 * (mpirun, srun) gave this process for the commands that run once.
 */
#ifndef DECO_CLI_UTIL_H
#define DECO_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "deco/deco.h"

/* 1 when --help or -h is among a command's options argv[0..argc): the
 * command then prints its usage, whatever else is there. */
int deco_cli_asks_help(int argc, char **argv);

/* The value of the option argv[*i], the next word (*i is stepped onto it);
 * NULL after "OPT needs a value" when argv ends there. */
const char *deco_cli_option_value(int argc, char **argv, int *i);

/* The words an option takes: names[k] stands for values[k]; expected
 * lists them as a message reads them ("cpu or cuda"). */
typedef struct deco_cli_words {
  const char *const *names;
  const int *values;
  int n;
  const char *expected;
} deco_cli_words_t;

/* --backend (cpu, cuda: deco_backend_t) and --dtype (f32, bf16: deco_dtype_t). */
extern const deco_cli_words_t deco_cli_backend_words, deco_cli_dtype_words;

/* v, one of the words' names, as its value; -1 after "opt: 'v' is not
 * EXPECTED". */
int deco_cli_parse_word(const char *opt, const char *v, const deco_cli_words_t *words, int *out);

/* The options whose value is kept as given (a path, a text): names[k]'s
 * value goes to *fields[k]. The field of option a, or NULL when a is none
 * of the n names. */
const char **deco_cli_text_field(const char *a, const char *const *names, const char **const *fields, int n);

/* The backend a command runs on: the one asked for (set), else CUDA when a
 * device exists, else the CPU. */
deco_backend_t deco_cli_backend_or_default(int set, deco_backend_t asked);

/* The dtype on backend: the one asked for (set), else bf16 on CUDA and f32 on
 * the CPU, which runs f32 only. 0, or -1 after "--dtype: ...". */
int deco_cli_dtype_for(deco_backend_t backend, int set, deco_dtype_t asked, deco_dtype_t *dtype);

/* A context on backend with threads CPU threads per op (0: the default);
 * NULL after "--backend NAME: why" or "--threads: why". */
deco_ctx_t *deco_cli_ctx_create(deco_backend_t backend, int threads);

/* Closes stdout once a command has written it (usage, version, a run's
 * output): rc, or DECO_EXIT_BAD_INPUT after "stdout: <reason>" when rc is
 * DECO_EXIT_OK and the flush or close fails for any reason but a reader that
 * went away (docs/CLI.md, "Output that cannot be written"). */
int deco_cli_close_stdout(int rc);

/* path opened read-only without blocking, and close-on-exec, when it is a
 * regular file (a FIFO or a device is refused at once, never waited on);
 * *st its stat. The descriptor, or -1, after "cannot open PATH: why" or
 * "cannot read PATH: not a regular file" when report is set. */
struct stat;
int deco_cli_open_regular(const char *path, int report, struct stat *st);

/* A whole regular file (a FIFO or a device is refused at once, never waited
 * on), with a NUL after it, *size its length; NULL after the message. */
char *deco_cli_read_file(const char *path, size_t *size);

/* A growable array of ids; the zero value is empty. */
typedef struct deco_cli_ids {
  int32_t *v;
  size_t n, cap;
} deco_cli_ids_t;

/* Appends ids[0..n) to b; -1 after "path: out of memory". */
int deco_cli_ids_append(deco_cli_ids_t *b, const int32_t *ids, size_t n, const char *path);

/* Appends the ids of text[0..len) encoded whole by the prompt rule
 * (DECO_TOKENIZE_ADD_SPECIAL) with tok; -1 after "path: error". */
struct deco_tokenizer;
int deco_cli_ids_encode(deco_cli_ids_t *b, const struct deco_tokenizer *tok, const char *text, size_t len,
                        const char *path);

/* Parses text[0..size) (the bytes of the file path, as deco_cli_read_file
 * gives them) in the --print-ids format, one sequence per line: decimal ids
 * below vocab, one space between them. For each non-empty line calls
 * line(user, ids, n, line_number), which returns 0 or -1 after its own
 * message. A malformed line (a NUL byte included), an id out of the
 * vocabulary, or a line of more than INT_MAX ids ends it with a message
 * naming path:line. Modifies text. 0 or -1. */
int deco_cli_read_id_lines(const char *path, char *text, size_t size, int vocab,
                           int (*line)(void *user, const int32_t *ids, int n, int line_number), void *user);

/* 1 when path is a regular file starting with "GGUF", 0 when it is a
 * regular file that does not; -1 after the message when it cannot be read
 * or is not a regular file. */
int deco_cli_is_gguf(const char *path);

/* FNV-1a 64 of a tokenizer's token list (each token's length, text and
 * type, in id order): the tokenizer hash of a GGUF model, whose tokenizer
 * is no separate file. Never 0 (0 means unknown to the n-gram table). */
uint64_t deco_cli_tokenizer_hash(const struct deco_tokenizer *tok);

/* The launcher's environment (deco_comm_env_read): 1 when a launcher
 * started this process, 0 when none did, -1 after "launcher environment:
 * why" when a variable of one is malformed (a usage error: the run cannot
 * tell whether it is one rank of several). */
struct deco_comm_env;
int deco_cli_launch_env(struct deco_comm_env *env);

/* Whether this process runs a command other than generate, which runs on
 * rank 0 of a launch only: -1 when it does (no launch, rank 0, or the
 * command's options argv[0..argc) ask for --help, which wins wherever it
 * stands, as generate's does); else the exit status to end with at once:
 * DECO_EXIT_OK, without output, on a rank R > 0 of several, or
 * DECO_EXIT_USAGE after deco_cli_launch_env's message. */
int deco_cli_launch_exit(int argc, char **argv);

#endif
