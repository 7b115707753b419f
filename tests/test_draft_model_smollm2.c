/* tests/test_draft_model_smollm2.c — model drafts on SmolLM2-135M (the Q4_1
 * GGUF as the target, label model: the files live in models-cache/, fetched
 * by scripts/install-deps.sh --models): greedy speculative decoding with a
 * separate 3-layer draft (the mini file) and a layer-subset tree equals
 * plain greedy decoding id for id through the CLI; the target as its own
 * draft commits K + 1 ids per full step.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/testutil.h"

#define PROMPT "1,504,3145,282,253,1345"

Test(draft_model_smollm2, greedy_equals_plain_for_every_draft, .timeout = 900) {
  const char *target = deco_test_model_file("SmolLM2-135M-Instruct.Q4_1.gguf");
  const char *mini = deco_test_model_file("SmolLM2-135M-mini.gguf");
  deco_test_run_t plain, r;
  DECO_TEST_RUN_CLI(&plain, "generate", "--model", target, "--prompt-ids", PROMPT, "--temperature", "0",
                    "--ignore-eos", "--print-ids", "--steps", "30", "--backend", "cpu");
  cr_assert_eq(plain.status, 0, "%s", plain.err);
  const char *const configs[][6] = {
      {"--draft-model", mini, NULL},
      {"--draft-layers", "0-3,26-29", "--draft-width", "2", NULL},
  };
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; ++i) {
    const char *argv[32] = {"generate", "--model", target, "--prompt-ids", PROMPT, "--temperature", "0",
                            "--ignore-eos", "--print-ids", "--steps", "30", "--backend", "cpu", "--spec", "draft"};
    int n = 15;
    for (int j = 0; configs[i][j]; ++j) argv[n++] = configs[i][j];
    argv[n] = NULL;
    cr_assert_eq(deco_test_run_cli(argv, &r), 0);
    cr_assert_eq(r.status, 0, "config %zu: %s", i, r.err);
    cr_assert_str_eq(r.out, plain.out, "config %zu", i);
    fprintf(stderr, "config %zu: %s\n", i, deco_test_last_line(r.err));
    deco_test_run_free(&r);
  }
  DECO_TEST_RUN_CLI(&r, "generate", "--model", target, "--prompt-ids", PROMPT, "--temperature", "0", "--ignore-eos",
                    "--print-ids", "--steps", "30", "--backend", "cpu", "--spec", "draft", "--draft-model", target);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, plain.out);
  /* 25 ids after the 6-id prompt: 5 full steps of K + 1 = 5. */
  cr_assert_eq(deco_test_stat(r.err, "forwards="), 5, "%s", r.err);
  deco_test_run_free(&r);
  deco_test_run_free(&plain);
}
