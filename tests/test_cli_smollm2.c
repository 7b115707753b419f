/* tests/test_cli_smollm2.c — `deco generate` on the full SmolLM2-135M-Instruct
 * Q4_1 file (label model: models-cache/): a chat turn answered greedily,
 * printed as the reply alone, stopped at the template's end token
 * (<|im_end|>, neither printed nor counted), the same under --spec lookup
 * and --spec recycle (CPU exact).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

#define SMOL "SmolLM2-135M-Instruct.Q4_1.gguf"

Test(cli_smollm2, chat_reply_stops_at_the_end_token, .timeout = 300) {
  const char *m = deco_test_model_file(SMOL);
  const char *specs[] = {"none", "lookup", "recycle"};
  for (int k = 0; k < 3; ++k) {
    deco_test_run_t r;
    DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--chat", "--prompt", "What is the capital of France?",
                      "--temperature", "0", "--steps", "120", "--spec", specs[k], "--backend", "cpu");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "The capital of France is Paris.\n", "--spec %s", specs[k]);
    cr_assert(strstr(deco_test_last_line(r.err), "stats: tokens=7 ") != NULL, "%s", r.err);
    deco_test_run_free(&r);
  }
  /* The id line: the templated prompt, the reply, no <|im_end|> (2). */
  deco_test_run_t r;
  DECO_TEST_RUN_CLI(&r, "generate", "--model", m, "--chat", "--prompt", "What is the capital of France?",
                    "--temperature", "0", "--steps", "120", "--print-ids", "--backend", "cpu");
  cr_assert_eq(r.status, 0, "%s", r.err);
  const char *reply = " 1 520 9531 198 504 3575 282 4649 314 7042 30\n";
  const size_t n = strlen(r.out), k = strlen(reply);
  cr_assert(n > k && strcmp(r.out + n - k, reply) == 0, "%s", r.out);
  deco_test_run_free(&r);
}
