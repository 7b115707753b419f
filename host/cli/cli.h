/* host/cli/cli.h — the `deco` command line: parsed options (docs/CLI.md) and the
 * generate command.
 */
#ifndef DECO_CLI_H
#define DECO_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "deco/deco.h"

/* Exit statuses of docs/CLI.md. */
#define DECO_EXIT_OK 0
#define DECO_EXIT_BAD_INPUT 1
#define DECO_EXIT_USAGE 2
/* deco_cli_parse's answer to --help / -h after the command (not an exit status). */
#define DECO_CLI_HELP (-1)

/* --spec: which drafter (deco_drafter_create_*) the run uses, if any. */
typedef enum deco_cli_spec {
  DECO_CLI_SPEC_NONE = 0,
  DECO_CLI_SPEC_LOOKUP = 1,
  DECO_CLI_SPEC_RECYCLE = 2,
  DECO_CLI_SPEC_DRAFT = 3     /* a draft model or a layer subset of the target */
} deco_cli_spec_t;

typedef struct deco_cli_options {
  const char *model_path;     /* NULL with synthetic NULL: the built-in stories260K */
  const char *synthetic;      /* synthetic model name, or NULL */
  const char *tokenizer_path;
  const char *prompt;
  int32_t *prompt_ids;        /* parsed --prompt-ids, malloc'd */
  int n_prompt_ids;
  int steps;
  int steps_set;              /* --steps given (else 256, cut to the model's seq_len) */
  float temperature;
  float top_p;
  uint64_t seed;
  int backend_set;
  deco_backend_t backend;
  int dtype_set;
  deco_dtype_t dtype;
  int ignore_eos;
  int print_ids;
  deco_cli_spec_t spec;
  int draft_len;
  int draft_len_set;          /* --draft-len given (model drafts default to 4, lookup to 10) */
  const char *draft_model;    /* --draft-model FILE */
  int *draft_layers;          /* --draft-layers, sorted, malloc'd */
  int n_draft_layers;
  int draft_width;            /* --draft-width (1: a chain) */
  int layer_parallel;         /* --layer-parallel N (0: off) */
  int no_calibrate;           /* --no-calibrate */
  int tree_nodes;             /* 0: the mode's default */
  const char *tree_template;
  int recycle_k;
  int recycle_k_set;
  const char *recycle_state;
  int compare_ar;
  int threads;                /* --threads: CPU threads per op, 0 = OpenMP's default */
  int tp;                     /* --tp: tensor-parallel ranks (0: not given) */
  int comm_set;               /* --comm given */
  deco_comm_backend_t comm;   /* --comm threads|mpi|nccl */
  int chat;                   /* --chat: the prompt as one user turn of the chat template */
  const char *system;         /* --system: the chat's system message, or NULL */
  int chat_template_set;
  deco_chat_template_t chat_template; /* --chat-template (DECO_CHAT_TEMPLATE_AUTO by default) */
  int superpose;              /* --superpose K: drafts by superposed decoding, 0 = off */
  const char *ngram_path;     /* --ngram TABLE */
  int superpose_m;            /* --superpose-m (DECO_SUPERPOSE_DEFAULT_M) */
  float superpose_temp;       /* --superpose-temp (DECO_SUPERPOSE_DEFAULT_TEMPERATURE) */
  float ngram_alpha;          /* --ngram-alpha (DECO_SUPERPOSE_DEFAULT_ALPHA) */
  int superpose_m_set, superpose_temp_set, ngram_alpha_set;
} deco_cli_options_t;

/* Parses argv after the command name. On a usage error prints the
 * `deco: error:` line and returns DECO_EXIT_USAGE; DECO_CLI_HELP when
 * --help or -h is among the options; 0 on success. */
int deco_cli_parse(int argc, char **argv, deco_cli_options_t *o);

/* Runs `deco generate`; returns the exit status. */
int deco_cli_generate(const deco_cli_options_t *o);

/* Runs `deco ngram ...` (argv after "ngram"); returns the exit status. */
int deco_cli_ngram(int argc, char **argv);

/* Runs `deco tokenize ...` (argv after "tokenize"; cmd_tokenize.c), stdout
 * flushed and closed; returns the exit status. */
int deco_cli_tokenize(int argc, char **argv);

/* Runs `deco eval ...` (argv after "eval"; cmd_eval.c); returns the exit
 * status. Writes no stdout but --help. */
int deco_cli_eval(int argc, char **argv);

/* Runs `deco compress ...` (argv after "compress"; cmd_compress.c): KV-head
 * compression; returns the exit status. */
int deco_cli_compress(int argc, char **argv);
/* The usage text of `deco generate`. */
void deco_cli_usage(FILE *f);

/* Prints "deco: error: <formatted>" on stderr. A thread that sets
 * deco_cli_quiet (a tensor-parallel rank) prints nothing; the message is
 * kept in deco_cli_last_error either way. */
void deco_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern _Thread_local int deco_cli_quiet;
extern _Thread_local char deco_cli_last_error[1024];

#endif
