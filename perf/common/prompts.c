/* perf/common/prompts.c — see prompts.h. */
#define _POSIX_C_SOURCE 200809L
#include "common/prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void deco_perf_die(const char *what, const char *why) {
  fprintf(stderr, "bench: %s: %s\n", what, why);
  exit(1);
}

deco_generate_config_t deco_perf_generate_config(int steps, float temperature, float top_p, uint64_t seed) {
  deco_generate_config_t c = DECO_GENERATE_CONFIG_INIT;
  c.steps = steps;
  c.ignore_eos = 1; /* all steps positions, EOS or not */
  c.temperature = temperature;
  c.top_p = top_p;
  c.seed = seed;
  return c;
}

double deco_perf_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int deco_perf_is_gguf(const char *path) {
  FILE *f = fopen(path, "rb");
  char magic[4] = {0};
  const int gguf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
  if (f) fclose(f);
  return gguf;
}

static uint64_t fnv1a64(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

int deco_perf_read_prompts(const char *path, const deco_tokenizer_t *tok, deco_perf_encoding_t enc, int max_per_kind,
                           deco_perf_prompt_t *p, uint64_t *hash) {
  FILE *f = fopen(path, "rb");
  if (!f) deco_perf_die(path, "cannot open");
  static char text[1 << 20];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = '\0';
  *hash = fnv1a64(text, len);
  int n = 0;
  for (char *line = strtok(text, "\n"); line && n < DECO_PERF_MAX_PROMPTS; line = strtok(NULL, "\n")) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = '\0';
    int same = 0;
    for (int i = 0; i < n; ++i) same += strcmp(p[i].kind, line) == 0;
    if (max_per_kind > 0 && same >= max_per_kind) continue;
    snprintf(p[n].kind, sizeof p[n].kind, "%.31s", line);
    const char *t = tab + 1;
    deco_status_t st;
    if (enc == DECO_PERF_ENCODE_CHAT)
      st = deco_chat_render(tok, DECO_CHAT_TEMPLATE_AUTO, NULL, t, 1, p[n].ids, DECO_PERF_PROMPT_IDS, &p[n].n);
    else if (enc == DECO_PERF_ENCODE_GGUF)
      st = deco_tokenizer_tokenize(tok, t, strlen(t), DECO_TOKENIZE_ADD_SPECIAL, p[n].ids, DECO_PERF_PROMPT_IDS,
                                   &p[n].n);
    else
      st = deco_tokenizer_encode(tok, t, 1, 0, p[n].ids, DECO_PERF_PROMPT_IDS, &p[n].n);
    if (st != DECO_STATUS_SUCCESS) deco_perf_die(path, deco_last_error(NULL));
    n++;
  }
  return n;
}

deco_perf_tally_t *deco_perf_tally_for(deco_perf_tally_t *t, int *n, const char *kind) {
  for (int i = 0; i < *n; ++i)
    if (strcmp(t[i].kind, kind) == 0) return &t[i];
  memset(&t[*n], 0, sizeof t[*n]);
  snprintf(t[*n].kind, sizeof t[*n].kind, "%.31s", kind);
  return &t[(*n)++];
}
