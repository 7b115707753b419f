/* fuzz/fuzz_cli.c — libFuzzer target for the file paths of `deco generate`:
 * the input is written to a file, which the first byte hands to one of the
 * CLI's file options (--model, --tokenizer, --tree-template with --spec
 * recycle, --recycle-state with --spec recycle), and the CLI's own parse and
 * generate run in-process on the CPU backend (a few positions, ids to
 * /dev/null). Any exit status is fine; a crash, a leak, a sanitizer report
 * or a hang is not. The second byte picks greedy or sampled decoding.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static char g_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Ids and text go nowhere; diagnostics stay on stderr (libFuzzer's log). */
  int null = open("/dev/null", O_WRONLY);
  if (null < 0 || dup2(null, 1) < 0) abort();
  close(null);
  const char *tmp = getenv("TMPDIR");
  snprintf(g_path, sizeof g_path, "%s/deco-fuzz-cli-%ld.bin", tmp && *tmp ? tmp : "/tmp", (long)getpid());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const int which = data[0] % 4, sampled = data[1] & 1;
  FILE *f = fopen(g_path, "wb");
  if (!f) abort();
  if (size > 2 && fwrite(data + 2, 1, size - 2, f) != size - 2) abort();
  if (fclose(f) != 0) abort();
  char *argv[24];
  int n = 0;
  static char o_model[] = "--model", o_tok[] = "--tokenizer", o_tmpl[] = "--tree-template",
              o_state[] = "--recycle-state", o_spec[] = "--spec", v_recycle[] = "recycle", o_steps[] = "--steps",
              v_steps[] = "6", o_backend[] = "--backend", v_cpu[] = "cpu", o_temp[] = "--temperature", v_zero[] = "0",
              v_hot[] = "0.8", o_prompt[] = "--prompt", v_prompt[] = "Once", o_ids[] = "--print-ids";
  switch (which) {
  case 0: argv[n++] = o_model, argv[n++] = g_path, argv[n++] = o_ids; break;
  case 1: argv[n++] = o_tok, argv[n++] = g_path, argv[n++] = o_prompt, argv[n++] = v_prompt; break;
  case 2: argv[n++] = o_spec, argv[n++] = v_recycle, argv[n++] = o_tmpl, argv[n++] = g_path, argv[n++] = o_ids; break;
  default: argv[n++] = o_spec, argv[n++] = v_recycle, argv[n++] = o_state, argv[n++] = g_path, argv[n++] = o_ids; break;
  }
  argv[n++] = o_steps, argv[n++] = v_steps, argv[n++] = o_backend, argv[n++] = v_cpu;
  argv[n++] = o_temp, argv[n++] = sampled ? v_hot : v_zero;
  argv[n] = NULL;
  deco_cli_options_t o;
  int rc = deco_cli_parse(n, argv, &o);
  if (rc != 0) abort(); /* the arguments themselves are always valid */
  rc = deco_cli_generate(&o);
  free(o.prompt_ids);
  if (rc != DECO_EXIT_OK && rc != DECO_EXIT_BAD_INPUT) abort();
  fflush(stdout);
  clearerr(stdout);
  unlink(g_path);
  return 0;
}
