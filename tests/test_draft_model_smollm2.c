/* tests/test_draft_model_smollm2.c — model drafts on SmolLM2-135M (the Q4_1
 * GGUF as the target, label model: the files live in models-cache/, fetched
 * by scripts/install-deps.sh --models): greedy speculative decoding with a
 * separate 3-layer draft (the mini file) and a layer-subset tree equals
 * plain greedy decoding id for id through the CLI; the target as its own
 * draft commits K + 1 ids per full step. Greedy chains of the mini draft,
 * of a layer subset and of the target itself drafted inside the
 * device-resident step (the CPU backend's twins) decode what the host loop
 * decodes, ids and stats, and so do sampled chains at T = 0.7 (a vocabulary
 * of 49152 ids through deco_draft_chain's draws). Deterministic top-w trees
 * drafted inside the device-resident step (their fixed shape) decode plain
 * greedy's ids, and the target as its own draft commits depth + 1 per
 * full step.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
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

static void generate(deco_model_t *m, deco_drafter_t *d, int device, float T, const int32_t *prompt, int n_prompt,
                     deco_test_capture_t *cap, deco_generate_stats_t *st) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = 40;
  c.temperature = T;
  c.seed = 2024;
  c.ignore_eos = 1;
  c.drafter = d;
  c.device_resident = device;
  deco_test_generate(m, prompt, n_prompt, c, cap, st);
}

/* SmolLM2-135M (Q4_1), the target, and its 3-layer mini copy, a separate draft. */
static void load_target_and_mini(deco_ctx_t *ctx, deco_model_t **m, deco_model_t **mini) {
  cr_assert_eq(deco_model_load(ctx, deco_test_model_file("SmolLM2-135M-Instruct.Q4_1.gguf"), NULL, m),
               DECO_STATUS_SUCCESS, "%s", deco_last_error(ctx));
  cr_assert_eq(deco_model_load(ctx, deco_test_model_file("SmolLM2-135M-mini.gguf"), NULL, mini), DECO_STATUS_SUCCESS,
               "%s", deco_last_error(ctx));
}

Test(draft_model_smollm2, device_loop_chains_equal_the_host_loop, .timeout = 900) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m, *mini;
  load_target_and_mini(ctx, &m, &mini);
  const int32_t prompt[] = {1, 504, 3145, 282, 253, 1345};
  static const int layers[] = {0, 1, 2, 3, 26, 27, 28, 29};
  static deco_test_capture_t plain, host, dev;
  deco_generate_stats_t sp, sh, sd;
  generate(m, NULL, 0, 0.0f, prompt, 6, &plain, &sp);
  for (int run = 0; run < 6; ++run) { /* the mini draft, a layer subset, the target itself; greedy, sampled */
    const int source = run % 3;
    const float T = run < 3 ? 0.0f : 0.7f;
    deco_model_draft_config_t dc =
        deco_test_draft_config(source == 1 ? layers : NULL, source == 1 ? 8 : 0, 4, 1, 0, 64);
    dc.temperature = T;
    dc.seed = 77 + (uint64_t)run;
    deco_drafter_t *d = deco_test_model_drafter(m, source == 0 ? mini : source == 2 ? m : NULL, &dc);
    cr_assert_eq(deco_drafter_device_resident(d), 1);
    generate(m, d, 0, T, prompt, 6, &host, &sh);
    generate(m, d, 1, T, prompt, 6, &dev, &sd);
    fprintf(stderr, "%s chain K=4, T=%g: host loop %d tokens in %d forwards, device loop %d in %d\n",
            source == 0 ? "mini draft" : source == 1 ? "layers 0-3,26-29" : "the target", (double)T, sh.tokens,
            sh.forwards, sd.tokens, sd.forwards);
    char what[64];
    snprintf(what, sizeof what, "source %d T=%g: host vs device loop", source, (double)T);
    deco_test_same_run(what, &host, &sh, &dev, &sd);
    deco_drafter_destroy(d);
    if (T > 0.0f) continue;
    cr_assert_eq(memcmp(dev.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n), 0, "source %d: not plain greedy",
                 source);
    if (source == 2) cr_assert_eq(sd.forwards, 7, "35 ids in steps of K + 1 = 5");
  }
  deco_model_destroy(mini);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}

Test(draft_model_smollm2, device_loop_trees_equal_plain_greedy) {
  deco_ctx_t *ctx = deco_test_cpu_ctx();
  deco_model_t *m, *mini;
  load_target_and_mini(ctx, &m, &mini);
  const int32_t prompt[] = {1, 504, 3145, 282, 253, 1345};
  static const int layers[] = {0, 1, 2, 3, 26, 27, 28, 29};
  static deco_test_capture_t plain, dev;
  deco_generate_stats_t sp, sd;
  generate(m, NULL, 0, 0.0f, prompt, 6, &plain, &sp);
  for (int source = 0; source < 3; ++source) { /* the mini draft, a layer subset, the target itself */
    /* Depth 4, width 2, 12 drafts: levels of 2, 4, 3 and 3 nodes. */
    const deco_model_draft_config_t dc =
        deco_test_draft_config(source == 1 ? layers : NULL, source == 1 ? 8 : 0, 4, 2, 12, 64);
    deco_drafter_t *d = deco_test_model_drafter(m, source == 0 ? mini : source == 2 ? m : NULL, &dc);
    cr_assert_eq(deco_drafter_device_resident(d), 1);
    cr_assert_eq(deco_drafter_max_nodes(d), 13);
    generate(m, d, 1, 0.0f, prompt, 6, &dev, &sd);
    fprintf(stderr, "%s, top-2 tree of 12 drafts on the device loop: %d tokens in %d forwards\n",
            source == 0 ? "mini draft" : source == 1 ? "layers 0-3,26-29" : "the target", sd.tokens, sd.forwards);
    cr_assert_eq(dev.n, plain.n);
    cr_assert_eq(memcmp(dev.ids, plain.ids, sizeof(int32_t) * (size_t)plain.n), 0, "source %d: not plain greedy",
                 source);
    if (source == 2) cr_assert_eq(sd.forwards, 7, "35 ids in steps of depth + 1 = 5");
    deco_drafter_destroy(d);
  }
  deco_model_destroy(mini);
  deco_model_destroy(m);
  deco_ctx_destroy(ctx);
}
