/* host/cli/main.c — `deco`: the command-line front end (docs/CLI.md).
 *   deco generate [options]     generate text or ids with a model
 *   deco tokenize [options]     ids of a text, or the text of ids (cmd_tokenize.c)
 *   deco eval [options]         perplexity, and KL against a reference (cmd_eval.c)
 *   deco compress [options]     KV-head compression, MHA -> GQA (cmd_compress.c)
 *   deco ngram build|info ...   n-gram tables for superposed decoding (cmd_ngram.c)
 *   deco --help | --version
 */
#define _POSIX_C_SOURCE 200809L
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_util.h"

void deco_cli_usage(FILE *f) {
  fputs("usage: deco generate [options]\n"
        "       deco tokenize --help   ids of a text, or text of ids\n"
        "       deco ngram --help      n-gram tables for superposed decoding\n"
        "       deco eval --help       perplexity of a model, KL and top-1 agreement against a reference\n"
        "       deco compress --help   KV-head compression (MHA -> GQA) of a checkpoint\n"
        "       deco --version\n"
        "  --model FILE          llama2.c checkpoint or GGUF file (default: stories260K, built in)\n"
        "  --synthetic NAME      tiny | llama2-7b | llama3-8b | smollm2-135m (seeded random weights)\n"
        "  --tokenizer FILE      llama2.c tokenizer.bin (default with the built-in model: tok512; not with GGUF)\n"
        "  --prompt TEXT         prompt text (llama2.c: BOS, dummy-prefix space, merges; GGUF: the file's tokenizer)\n"
        "  --prompt-ids CSV      prompt as decimal ids, used verbatim\n"
        "  --steps N             forward positions including the prompt (256)\n"
        "  --temperature T       0 = greedy (1.0)\n"
        "  --top-p P             nucleus sampling when T > 0; 1 disables (0.9)\n"
        "  --seed S              Philox key (42)\n"
        "  --backend cpu|cuda    default: cuda when a device exists\n"
        "  --dtype f32|bf16      cpu: f32; cuda: bf16 by default\n"
        "  --ignore-eos          do not stop at the model's stop ids (llama2.c: 1, 2)\n"
        "  --print-ids           print ids instead of text\n"
        "  --spec none|lookup|recycle|draft   draft source for speculative decoding (none)\n"
        "  --draft-len N         longest chain a lookup match proposes (10); model drafts' depth (4)\n"
        "  --tree-nodes N        most draft nodes per step, root excluded (lookup 32, recycle 80,\n"
        "                        draft: draft-len x draft-width)\n"
        "  --draft-model FILE    draft: a model with the target's vocabulary\n"
        "  --draft-layers LIST   draft: the target's layers, e.g. 0-2,4\n"
        "  --draft-width W       draft: top-W children per node (1: a chain)\n"
        "  --layer-parallel N    draft: the draft's middle layers in parallel groups of N (EasySpec)\n"
        "  --no-calibrate        with --layer-parallel: keep the approximate draft K/V\n"
        "  --tree-template FILE  recycle: rank paths, one per line\n"
        "  --recycle-k K         recycle: candidates kept per token, 1-16 (8)\n"
        "  --recycle-state FILE  recycle: table loaded if present, saved at exit\n"
        "  --compare-ar          also time plain decoding and report speedup=\n"
        "  --threads N           cpu: threads per op, 1-1024 (OpenMP's default: one per core)\n"
        "  --tp N                tensor parallelism over N ranks (under mpirun/srun: the world size)\n"
        "  --comm threads|mpi|nccl   the ranks' communicator (threads: N threads of this process)\n"
        "  --chat                GGUF: the prompt as a user turn of the model's chat template; prints the reply\n"
        "  --system TEXT         with --chat: the system message (default: the template's own, if any)\n"
        "  --chat-template NAME  with --chat: auto (the file's), chatml, llama3 or none\n"
        "  --superpose K         K drafts, 1-16, from one run by superposed decoding\n"
        "  --ngram TABLE         superpose: n-gram table (deco ngram build); not needed with --ngram-alpha 0\n"
        "  --superpose-m M       superpose: candidates per draft and step, 1-16 (9)\n"
        "  --superpose-temp T    superpose: temperature of the candidates' softmax, > 0 (0.06)\n"
        "  --ngram-alpha A       superpose: weight of the n-grams in [0, 1], 0 = off (0.54)\n",
        f);
}

int main(int argc, char **argv) {
  setlocale(LC_ALL, "C");
  /* A closed pipe is an EPIPE from write, handled where stdout is written,
   * never a signal (docs/CLI.md). */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    deco_cli_usage(stderr);
    return DECO_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    deco_cli_usage(stdout);
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("deco %s\n", deco_version_string());
    return deco_cli_close_stdout(DECO_EXIT_OK);
  }
  if (strcmp(argv[1], "ngram") == 0) return deco_cli_ngram(argc - 2, argv + 2); /* writes no stdout but --help */
  if (strcmp(argv[1], "eval") == 0) return deco_cli_eval(argc - 2, argv + 2); /* writes no stdout but --help */
  if (strcmp(argv[1], "compress") == 0) return deco_cli_compress(argc - 2, argv + 2); /* writes no stdout but --help */
  if (strcmp(argv[1], "tokenize") == 0) return deco_cli_tokenize(argc - 2, argv + 2); /* closes stdout itself */
  if (strcmp(argv[1], "generate") != 0) {
    deco_cli_error("unknown command '%s' (see deco --help)", argv[1]);
    return DECO_EXIT_USAGE;
  }
  deco_cli_options_t o;
  int rc = deco_cli_parse(argc - 2, argv + 2, &o);
  if (rc == DECO_CLI_HELP) {
    deco_cli_usage(stdout);
    rc = DECO_EXIT_OK;
  } else if (rc == 0) {
    rc = deco_cli_generate(&o);
  }
  /* What only closing reveals is an error too. */
  rc = deco_cli_close_stdout(rc);
  free(o.prompt_ids);
  free(o.draft_layers);
  return rc;
}
