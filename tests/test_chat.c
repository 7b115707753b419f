/* tests/test_chat.c — chat templates: the renderings of
 * data/fixtures/tokenizer/chat.txt (each template rendered by jinja2 and
 * tokenized by llama.cpp, scripts/text/make_fixtures.py): SmolLM2's own
 * template recognised from its GGUF (no system message, a system message,
 * an empty prompt, user text holding special-token text) and Llama 3's on
 * the llama-bpe vocabulary; then recognition on vocabularies made here:
 * both Llama 3 forms, ChatML written other ways, templates that are not
 * recognised (an error quoting the first line), the NONE template and the
 * llama2.c kind.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "deco/deco.h"
#include "test_bpe_vocab.h"

static deco_tokenizer_t *load_vocab_path(const char *path) {
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_load_gguf(path, &t), DECO_STATUS_SUCCESS, "%s: %s", path, deco_last_error(NULL));
  return t;
}

static int32_t *render(const deco_tokenizer_t *t, deco_chat_template_t k, const char *system, const char *prompt,
                       int gen, int *n) {
  int cap = (int)(3 * (strlen(prompt) + (system ? strlen(system) : 0)) + 512);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
  deco_status_t s = deco_chat_render(t, k, system, prompt, gen, ids, cap, n);
  cr_assert_eq(s, DECO_STATUS_SUCCESS, "render: %s", deco_last_error(NULL));
  return ids;
}

Test(chat, jinja_and_llama_cpp_renderings) {
  size_t size;
  char *data = deco_test_read_file(deco_test_data_file("fixtures/tokenizer/chat.txt"), &size);
  cr_assert_not_null(data);
  int cases = 0, matched = 0;
  char *save = NULL;
  char name[128] = "", vocab[256] = "", tmpl[32] = "", *system = NULL, *prompt = NULL;
  int32_t want[4096];
  int n_want = 0;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    if (strncmp(line, "case ", 5) == 0) {
      snprintf(name, sizeof name, "%s", line + 5);
    } else if (strncmp(line, "vocab ", 6) == 0) {
      snprintf(vocab, sizeof vocab, "%s", line + 6);
    } else if (strncmp(line, "template ", 9) == 0) {
      snprintf(tmpl, sizeof tmpl, "%s", line + 9);
    } else if (strncmp(line, "system ", 7) == 0 || strcmp(line, "system") == 0) {
      system = strcmp(line + 7, "-") == 0 ? NULL : deco_test_unhex(line + 7);
    } else if (strncmp(line, "prompt", 6) == 0) {
      prompt = deco_test_unhex(line[6] ? line + 7 : "");
    } else if (strncmp(line, "ids", 3) == 0) {
      n_want = 0;
      for (char *p = line + 3; *p;) want[n_want++] = (int32_t)strtol(p, &p, 10);
    } else if (strcmp(line, "end") == 0) {
      char rel[300];
      snprintf(rel, sizeof rel, "fixtures/tokenizer/%s", vocab);
      const char *path = strncmp(vocab, "models:", 7) == 0 ? deco_test_model_file(vocab + 7) : deco_test_data_file(rel);
      deco_tokenizer_t *t = load_vocab_path(path);
      deco_chat_template_t k;
      cr_assert_eq(deco_chat_template_from_name(tmpl, &k), DECO_STATUS_SUCCESS);
      int n;
      int32_t *ids = render(t, k, system, prompt, 1, &n);
      int same = n == n_want && memcmp(ids, want, sizeof(int32_t) * (size_t)n) == 0;
      if (!same) {
        fprintf(stderr, "chat case %s: %d ids, expected %d\n  got:", name, n, n_want);
        for (int i = 0; i < n; ++i) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n  expected:");
        for (int i = 0; i < n_want; ++i) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
      }
      matched += same;
      ++cases;
      free(ids);
      deco_tokenizer_destroy(t);
      free(system);
      free(prompt);
      system = prompt = NULL;
    }
  }
  printf("chat: %d of %d renderings matched\n", matched, cases);
  cr_assert_eq(cases, 9);
  cr_assert_eq(matched, cases);
  free(data);
}

Test(chat, smollm2_template_recognised) {
  deco_tokenizer_t *t = load_vocab_path(deco_test_model_file("SmolLM2-135M-Instruct.Q4_1.gguf"));
  deco_chat_template_t k;
  cr_assert_eq(deco_chat_template_resolve(t, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_SUCCESS);
  cr_assert_eq(k, DECO_CHAT_TEMPLATE_CHATML);
  cr_assert_str_eq(deco_chat_default_system(t), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  cr_assert_eq(deco_chat_end_token(t, DECO_CHAT_TEMPLATE_AUTO), 2);
  size_t len;
  cr_assert_not_null(deco_tokenizer_chat_template(t, &len));
  cr_assert_gt(len, 100);
  /* Forcing chatml drops the default system message; no generation prompt
   * without add_generation_prompt. */
  int n1, n2, n3;
  int32_t *a = render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "Hi", 1, &n1);
  int32_t *b = render(t, DECO_CHAT_TEMPLATE_CHATML, NULL, "Hi", 1, &n2);
  int32_t *c = render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "Hi", 0, &n3);
  cr_assert_lt(n2, n1);
  cr_assert(memcmp(a + (n1 - n2), b, sizeof(int32_t) * (size_t)n2) == 0, "the default system message is a prefix");
  cr_assert(n3 == n1 - 4 && memcmp(a, c, sizeof(int32_t) * (size_t)n3) == 0); /* <|im_start|> assistant \n */
  free(a);
  free(b);
  free(c);
  /* NONE: the prompt rule; a system message then is an error. */
  int32_t ids[64], plain[64];
  int n, m;
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_NONE, NULL, "Hello world", 1, ids, 64, &n), DECO_STATUS_SUCCESS);
  cr_assert_eq(deco_tokenizer_tokenize(t, "Hello world", 11, DECO_TOKENIZE_ADD_SPECIAL, plain, 64, &m),
               DECO_STATUS_SUCCESS);
  cr_assert(n == m && memcmp(ids, plain, sizeof(int32_t) * (size_t)n) == 0);
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_NONE, "sys", "x", 1, ids, 64, &n), DECO_STATUS_INVALID_ARGUMENT);
  /* Capacity: the count needed comes back. */
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "Hi", 1, ids, 3, &n), DECO_STATUS_CAPACITY);
  cr_assert_eq(n, n1);
  deco_tokenizer_destroy(t);
}

static deco_tokenizer_t *tiny_with_template(const char *tmpl) {
  tvocab_t v;
  tv_tiny(&v);
  v.bos = tv_id(&v, "<|begin_of_text|>");
  v.chat_template = tmpl;
  gbuf_t b = tv_write(&v);
  deco_tokenizer_t *t = NULL;
  cr_assert_eq(deco_tokenizer_load_gguf_buffer(b.p, b.n, "tiny.gguf", &t), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  free(b.p);
  tv_free(&v);
  return t;
}

static char *fixture_text(const char *rel) {
  size_t n;
  char *s = deco_test_read_file(deco_test_data_file(rel), &n);
  cr_assert_not_null(s);
  s = realloc(s, n + 1);
  s[n] = '\0';
  return s;
}

Test(chat, llama3_forms) {
  char *first = fixture_text("fixtures/tokenizer/llama3-first.jinja");
  char *cond = fixture_text("fixtures/tokenizer/llama3.jinja");
  deco_tokenizer_t *tf = tiny_with_template(first), *tc = tiny_with_template(cond);
  deco_chat_template_t k;
  cr_assert_eq(deco_chat_template_resolve(tf, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_SUCCESS, "%s",
               deco_last_error(NULL));
  cr_assert_eq(k, DECO_CHAT_TEMPLATE_LLAMA3);
  cr_assert_eq(deco_chat_template_resolve(tc, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_SUCCESS);
  cr_assert_eq(k, DECO_CHAT_TEMPLATE_LLAMA3);
  cr_assert_null(deco_chat_default_system(tc));
  cr_assert_eq(deco_chat_end_token(tc, DECO_CHAT_TEMPLATE_AUTO), deco_tokenizer_find(tc, "<|eot_id|>", 10));
  int n1, n2, n3, n4;
  int32_t *a = render(tc, DECO_CHAT_TEMPLATE_AUTO, " sys ", "ab c\n", 1, &n1);
  int32_t *b = render(tc, DECO_CHAT_TEMPLATE_LLAMA3, " sys ", "ab c\n", 1, &n2);
  int32_t *c = render(tc, DECO_CHAT_TEMPLATE_AUTO, " sys ", "ab c\n", 0, &n3);
  int32_t *d = render(tf, DECO_CHAT_TEMPLATE_AUTO, " sys ", "ab c\n", 0, &n4);
  cr_assert(n1 == n2 && memcmp(a, b, sizeof(int32_t) * (size_t)n1) == 0);
  cr_assert_eq(a[0], deco_tokenizer_special(tc, DECO_TOKEN_BOS));
  cr_assert(n3 < n1 && memcmp(c, a, sizeof(int32_t) * (size_t)n3) == 0, "the generation prompt ends it");
  /* The first release writes the generation prompt whatever is asked. */
  cr_assert(n4 == n1 && memcmp(d, a, sizeof(int32_t) * (size_t)n1) == 0);
  free(a);
  free(b);
  free(c);
  free(d);
  deco_tokenizer_destroy(tf);
  deco_tokenizer_destroy(tc);
  free(first);
  free(cond);
}

/* ChatML as other files write it: trim markers, double quotes, line breaks
 * that trim_blocks and lstrip_blocks remove, a comment. */
Test(chat, chatml_written_other_ways) {
  static const char *const forms[] = {
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      "{%- for message in messages -%}\n  {{- \"<|im_start|>\" + message[\"role\"] + \"\\n\" + message[\"content\"] + "
      "\"<|im_end|>\" + \"\\n\" -}}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n  {{- "
      "\"<|im_start|>assistant\\n\" -}}\n{%- endif -%}\n",
      "{# ChatML #}\n{% for message in messages %}\n{{'<|im_start|>'+message['role']+'\\n'+message['content']+"
      "'<|im_end|>'+'\\n'}}{% endfor %}\n{% if add_generation_prompt %}\n{{'<|im_start|>assistant\\n'}}"
      "{% endif %}\n",
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nBe \\'nice\\'.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\\n' }}{% endif %}",
  };
  deco_tokenizer_t *ref = tiny_with_template(forms[0]);
  int n0;
  int32_t *want = render(ref, DECO_CHAT_TEMPLATE_CHATML, NULL, "abc", 1, &n0);
  for (size_t f = 0; f < sizeof forms / sizeof forms[0]; ++f) {
    deco_tokenizer_t *t = tiny_with_template(forms[f]);
    deco_chat_template_t k;
    cr_assert_eq(deco_chat_template_resolve(t, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_SUCCESS, "form %zu: %s", f,
                 deco_last_error(NULL));
    cr_assert_eq(k, DECO_CHAT_TEMPLATE_CHATML);
    int n;
    int32_t *ids = render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "abc", 1, &n);
    if (f < 3) {
      cr_assert_null(deco_chat_default_system(t));
      cr_assert(n == n0 && memcmp(ids, want, sizeof(int32_t) * (size_t)n) == 0, "form %zu renders differently", f);
    } else {
      cr_assert_str_eq(deco_chat_default_system(t), "Be 'nice'.");
      cr_assert_gt(n, n0);
    }
    free(ids);
    deco_tokenizer_destroy(t);
  }
  free(want);
  deco_tokenizer_destroy(ref);
}

Test(chat, unrecognised_templates) {
  static const char *const forms[] = {
      /* text outside tags */
      "System: {% for message in messages %}{{ message['content'] }}{% endfor %}",
      /* ChatML with a tool block */
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if tools %}{{ tools }}{% endif %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\\n' }}{% endif %}",
      /* a newline kept between an expression and a block */
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}\n{% endfor %}",
      /* unterminated */
      "{% for message in messages %}{{ 'abc }}",
  };
  for (size_t f = 0; f < sizeof forms / sizeof forms[0]; ++f) {
    deco_tokenizer_t *t = tiny_with_template(forms[f]);
    deco_chat_template_t k;
    cr_assert_eq(deco_chat_template_resolve(t, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_UNSUPPORTED);
    const char *msg = deco_last_error(NULL);
    char first[40];
    snprintf(first, sizeof first, "%.30s", forms[f]);
    cr_assert(strstr(msg, "tiny.gguf") && strstr(msg, "first line") && strstr(msg, first), "%s", msg);
    int32_t ids[8];
    int n;
    cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "x", 1, ids, 8, &n), DECO_STATUS_UNSUPPORTED);
    cr_assert_eq(deco_chat_end_token(t, DECO_CHAT_TEMPLATE_AUTO), -1);
    /* A template can still be forced. */
    cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_CHATML, NULL, "x", 1, NULL, 0, &n), DECO_STATUS_CAPACITY);
    cr_assert_gt(n, 3);
    deco_tokenizer_destroy(t);
  }
  /* No template at all. */
  tvocab_t v;
  tv_tiny(&v);
  gbuf_t b = tv_write(&v);
  deco_tokenizer_t *t;
  cr_assert_eq(deco_tokenizer_load_gguf_buffer(b.p, b.n, "none.gguf", &t), DECO_STATUS_SUCCESS);
  deco_chat_template_t k;
  cr_assert_eq(deco_chat_template_resolve(t, DECO_CHAT_TEMPLATE_AUTO, &k), DECO_STATUS_UNSUPPORTED);
  cr_assert(strstr(deco_last_error(NULL), "has no tokenizer.chat_template"));
  cr_assert_null(deco_tokenizer_chat_template(t, NULL));
  deco_tokenizer_destroy(t);
  free(b.p);
  tv_free(&v);
}

Test(chat, names_and_llama2c) {
  for (int i = 0; i < 4; ++i) {
    deco_chat_template_t k;
    cr_assert_eq(deco_chat_template_from_name(deco_chat_template_name((deco_chat_template_t)i), &k),
                 DECO_STATUS_SUCCESS);
    cr_assert_eq((int)k, i);
  }
  deco_chat_template_t k;
  cr_assert_eq(deco_chat_template_from_name("jinja", &k), DECO_STATUS_INVALID_ARGUMENT);
  cr_assert_str_eq(deco_chat_template_name((deco_chat_template_t)9), "?");
  cr_assert_str_eq(deco_chat_template_name((deco_chat_template_t)-1), "?");
  deco_tokenizer_t *t;
  cr_assert_eq(deco_tokenizer_create_bytes(&t), DECO_STATUS_SUCCESS);
  DECO_TEST_REFUSED_NAMING(NULL, deco_chat_template_resolve(t, (deco_chat_template_t)9, &k),
                           DECO_STATUS_INVALID_ARGUMENT, NULL, "unknown template value 9");
  int32_t ids[16];
  int n;
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_AUTO, NULL, "hi", 1, ids, 16, &n), DECO_STATUS_UNSUPPORTED);
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_CHATML, NULL, "hi", 1, ids, 16, &n), DECO_STATUS_UNSUPPORTED);
  cr_assert_eq(deco_chat_render(t, DECO_CHAT_TEMPLATE_NONE, NULL, "hi", 1, ids, 16, &n), DECO_STATUS_SUCCESS);
  cr_assert(n == 4 && ids[0] == 1 && ids[1] == ' ' + 3 && ids[2] == 'h' + 3 && ids[3] == 'i' + 3); /* run.c's rule */
  cr_assert_eq(deco_chat_end_token(t, DECO_CHAT_TEMPLATE_AUTO), -1);
  cr_assert_null(deco_tokenizer_chat_template(t, NULL));
  deco_tokenizer_destroy(t);
}

/* deco_chat_render's refusals, in order, with their statuses and exact
 * messages; *n_ids is 0 after each one before the capacity check, which
 * reports the count needed. */
Test(chat, render_refusals) {
  deco_tokenizer_t *t = tiny_with_template(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
  deco_tokenizer_t *bytes;
  cr_assert_eq(deco_tokenizer_create_bytes(&bytes), DECO_STATUS_SUCCESS);
  const deco_chat_template_t cm = DECO_CHAT_TEMPLATE_CHATML, au = DECO_CHAT_TEMPLATE_AUTO;
  int32_t ids[64];
  int n = 7;
  deco_test_refused(NULL, deco_chat_render(t, cm, NULL, "x", 1, ids, 64, NULL), DECO_STATUS_NULL_POINTER,
                    "deco_chat_render: n_ids is NULL");
  deco_test_refused(NULL, deco_chat_render(NULL, cm, NULL, "x", 1, ids, 64, &n), DECO_STATUS_NULL_POINTER,
                    "deco_chat_render: tok or prompt is NULL");
  cr_assert_eq(n, 0);
  n = 7;
  deco_test_refused(NULL, deco_chat_render(t, cm, NULL, NULL, 1, ids, 64, &n), DECO_STATUS_NULL_POINTER,
                    "deco_chat_render: tok or prompt is NULL");
  cr_assert_eq(n, 0);
  deco_test_refused(NULL, deco_chat_render(t, cm, NULL, "x", 1, NULL, 1, &n), DECO_STATUS_NULL_POINTER,
                    "deco_chat_render: ids is NULL");
  deco_test_refused(NULL, deco_chat_render(t, cm, NULL, "x", 1, ids, -1, &n), DECO_STATUS_INVALID_ARGUMENT,
                    "deco_chat_render: max_ids = -1 is negative");
  deco_test_refused(NULL, deco_chat_render(t, (deco_chat_template_t)9, NULL, "x", 1, ids, 64, &n),
                    DECO_STATUS_INVALID_ARGUMENT, "deco_chat_template_resolve: unknown template value 9");
  deco_test_refused(NULL, deco_chat_render(t, DECO_CHAT_TEMPLATE_NONE, "sys", "x", 1, ids, 64, &n),
                    DECO_STATUS_INVALID_ARGUMENT, "deco_chat_render: a system message needs a chat template");
  deco_test_refused(NULL, deco_chat_render(bytes, au, NULL, "x", 1, ids, 64, &n), DECO_STATUS_UNSUPPORTED,
                    "a llama2.c tokenizer has no chat template");
  deco_test_refused(NULL, deco_chat_render(bytes, DECO_CHAT_TEMPLATE_LLAMA3, NULL, "x", 1, ids, 64, &n),
                    DECO_STATUS_UNSUPPORTED, "deco_chat_render: a llama2.c tokenizer has no chat template");
  /* The count needed comes back with the capacity refusal, for both forms. */
  const deco_chat_template_t forms[2] = {cm, DECO_CHAT_TEMPLATE_LLAMA3};
  for (int f = 0; f < 2; ++f) {
    int need;
    cr_assert_eq(deco_chat_render(t, forms[f], "s", "x", 1, ids, 64, &need), DECO_STATUS_SUCCESS, "%s",
                 deco_last_error(NULL));
    char want[128];
    snprintf(want, sizeof want, "deco_chat_render: the chat encodes to %d ids but max_ids is %d", need, need - 1);
    deco_test_refused(NULL, deco_chat_render(t, forms[f], "s", "x", 1, ids, need - 1, &n), DECO_STATUS_CAPACITY,
                      want);
    cr_assert_eq(n, need);
  }
  deco_tokenizer_destroy(bytes);
  deco_tokenizer_destroy(t);
}
