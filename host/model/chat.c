/* host/model/chat.c — chat templates without a Jinja engine
 * (include/deco/tokenizer.h). A GGUF's tokenizer.chat_template is cut into
 * text and tags; every tag is normalised (no whitespace but one space
 * between two names, string literals in one quoting, trim markers noted)
 * and the whitespace Hugging Face's renderer drops (trim_blocks,
 * lstrip_blocks, '-' markers) is dropped; what remains must equal a known
 * form tag for tag: ChatML (optionally SmolLM2's default system message,
 * read from the template) or Llama 3. Rendering builds the same text as
 * the template would, as segments: the template's own text (special-token
 * text parsed) and the user's text (not parsed), tokenized together.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/bpe.h"

/* ---- recognition ------------------------------------------------------------ */

typedef struct jtag {
  char kind;       /* 'S' statement, 'E' expression, 'C' comment, 'T' text that stays */
  char *norm;      /* normalised content (malloc'd) */
  int trim_before; /* '{%-' */
  int trim_after;  /* '-%}' */
} jtag_t;

typedef struct jlist {
  jtag_t *a;
  size_t n, cap;
} jlist_t;

static void jlist_free(jlist_t *l) {
  for (size_t i = 0; i < l->n; ++i) free(l->a[i].norm);
  free(l->a);
}

static int jlist_push(jlist_t *l, jtag_t t) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    jtag_t *a = realloc(l->a, cap * sizeof *a);
    if (!a) return -1;
    l->a = a;
    l->cap = cap;
  }
  l->a[l->n++] = t;
  return 0;
}

/* A growable string. */
typedef struct jstr {
  char *s;
  size_t n, cap;
} jstr_t;

static int js_put(jstr_t *b, const char *p, size_t n) {
  if (b->cap - b->n < n + 1) {
    size_t cap = (b->n + n + 1) * 2;
    char *s = realloc(b->s, cap);
    if (!s) return -1;
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = '\0';
  return 0;
}

static int js_ch(jstr_t *b, char c) { return js_put(b, &c, 1); }

static int is_name(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* A string literal's value appended in the canonical quoting: single
 * quotes, with \\, \' and \n escaped. */
static int put_literal(jstr_t *b, const char *v, size_t n) {
  int rc = js_ch(b, '\'');
  for (size_t i = 0; i < n && rc == 0; ++i) {
    if (v[i] == '\\')
      rc = js_put(b, "\\\\", 2);
    else if (v[i] == '\'')
      rc = js_put(b, "\\'", 2);
    else if (v[i] == '\n')
      rc = js_put(b, "\\n", 2);
    else
      rc = js_ch(b, v[i]);
  }
  return rc ? rc : js_ch(b, '\'');
}

/* The escape '\e' at s[j - 1..j] inside a literal, its value appended to
 * v: \n, \t, \r, \\, \' and \" decoded, other escapes kept as written. */
static int put_escape(jstr_t *v, const char *s, size_t j) {
  char e = s[j];
  char d = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
  if (e == 'n' || e == 't' || e == 'r' || e == '\\' || e == '\'' || e == '"') return js_ch(v, d);
  return js_put(v, s + j - 1, 2); /* Python keeps unknown escapes */
}

/* The string literal whose opening quote is s[i], appended to out in the
 * canonical quoting; *next is the index after its closing quote. Returns
 * 0, -1 out of memory, -2 unterminated. */
static int put_string_literal(const char *s, size_t n, size_t i, jstr_t *out, size_t *next) {
  char quote = s[i];
  jstr_t v = {0};
  size_t j = i + 1;
  int rc = 0;
  for (; j < n && s[j] != quote && rc == 0; ++j) {
    if (s[j] == '\\' && j + 1 < n) rc = put_escape(&v, s, ++j);
    else rc = js_ch(&v, s[j]);
  }
  if (rc == 0 && j >= n) rc = -2;
  if (rc == 0) rc = put_literal(out, v.s ? v.s : "", v.n);
  free(v.s);
  *next = j + 1;
  return rc;
}

/* Whitespace before c is kept (as one space) only between two names. */
static int joins_names(const jstr_t *out, char c) {
  return out->n > 0 && is_name(out->s[out->n - 1]) && is_name(c);
}

/* Normalises a tag's inside s[0..n). Returns 0, -1 out of memory, -2 an
 * unterminated literal. */
static int normalise(const char *s, size_t n, jstr_t *out) {
  int space = 0;
  for (size_t i = 0; i < n;) {
    char c = s[i];
    if (is_ws(c)) {
      space = 1;
      ++i;
      continue;
    }
    if (space && joins_names(out, c) && js_ch(out, ' ') != 0) return -1;
    space = 0;
    int rc;
    if (c == '\'' || c == '"') {
      rc = put_string_literal(s, n, i, out, &i);
    } else {
      rc = js_ch(out, c);
      ++i;
    }
    if (rc) return rc;
  }
  if (!out->s && js_put(out, "", 0) != 0) return -1;
  return 0;
}

/* Where the next tag at or after t[i] opens (its '{'); n when none does. */
static size_t find_tag_open(const char *t, size_t n, size_t i) {
  size_t j = i;
  while (j + 1 < n && !(t[j] == '{' && (t[j + 1] == '{' || t[j + 1] == '%' || t[j + 1] == '#'))) ++j;
  return j + 1 >= n ? n : j;
}

/* Where the tag opened by '{' open closes, searching from t[k]: the index
 * of its closing pair outside literals (comments have none), else an index
 * k with k + 1 >= n. */
static size_t find_tag_close(const char *t, size_t n, size_t k, char open) {
  char close = open == '{' ? '}' : open;
  char quote = 0;
  for (; k + 1 < n; ++k) {
    if (quote) {
      if (t[k] == '\\') ++k;
      else if (t[k] == quote) quote = 0;
    } else if (open != '#' && (t[k] == '\'' || t[k] == '"')) {
      quote = t[k];
    } else if (t[k] == close && t[k + 1] == '}') {
      break;
    }
  }
  return k;
}

/* Text between tags, kept as written. */
static int push_text(jlist_t *out, const char *p, size_t n) {
  jstr_t v = {0};
  if (js_put(&v, p, n) != 0 || jlist_push(out, (jtag_t){.kind = 'T', .norm = v.s}) != 0) {
    free(v.s);
    return -1;
  }
  return 0;
}

/* The tag opened by '{' open whose inside is t[a..b): trim markers noted,
 * the rest normalised (a comment keeps no content). */
static int push_tag(const char *t, size_t a, size_t b, char open, jlist_t *out) {
  jtag_t tag = {.kind = open == '{' ? 'E' : open == '%' ? 'S' : 'C'};
  if (a < b && (t[a] == '-' || t[a] == '+')) {
    tag.trim_before = t[a] == '-';
    ++a;
  }
  if (a < b && (t[b - 1] == '-' || t[b - 1] == '+')) {
    tag.trim_after = t[b - 1] == '-';
    --b;
  }
  jstr_t v = {0};
  int rc = tag.kind == 'C' ? js_put(&v, "", 0) : normalise(t + a, b - a, &v);
  if (rc != 0 || jlist_push(out, (tag.norm = v.s, tag)) != 0) {
    free(v.s);
    return rc == -2 ? -2 : -1;
  }
  return 0;
}

/* Cuts tmpl into tags and text; -1 out of memory, -2 malformed. */
static int lex(const char *t, size_t n, jlist_t *out) {
  size_t i = 0;
  while (i < n) {
    size_t j = find_tag_open(t, n, i);
    if (j > i && push_text(out, t + i, j - i) != 0) return -1;
    if (j >= n) break;
    char open = t[j + 1];
    size_t k = find_tag_close(t, n, j + 2, open);
    if (k + 1 >= n) return -2;
    int rc = push_tag(t, j + 2, k, open, out);
    if (rc != 0) return rc;
    i = k + 2;
  }
  return 0;
}

static int is_block(const jtag_t *t) { return t && (t->kind == 'S' || t->kind == 'C'); }

/* trim_blocks: how many bytes of the newline at s[a] (before b) a block
 * tag just before the text removes. */
static size_t block_newline(const char *s, size_t a, size_t b) {
  if (a < b && s[a] == '\n') return 1;
  if (a + 1 < b && s[a] == '\r' && s[a + 1] == '\n') return 2;
  return 0;
}

/* lstrip_blocks: the end of s[a..b) once the blanks from a line's start to
 * the block tag after the text are removed (prev: the tag before it). */
static size_t lstrip_end(const char *s, size_t a, size_t b, const jtag_t *prev) {
  size_t c = b;
  while (c > a && (s[c - 1] == ' ' || s[c - 1] == '\t')) --c;
  int line_start = c > 0 ? s[c - 1] == '\n' : !prev;
  return line_start ? c : b;
}

/* Narrows text t to what the renderer keeps between the tags prev and next
 * (NULL at either end); returns 0, with its content freed, when nothing is
 * left. */
static int keep_text(jtag_t *t, const jtag_t *prev, const jtag_t *next) {
  char *s = t->norm;
  size_t a = 0, b = strlen(s);
  if (prev && prev->trim_after)
    while (a < b && is_ws(s[a])) ++a;
  if (next && next->trim_before)
    while (b > a && is_ws(s[b - 1])) --b;
  if (is_block(prev)) a += block_newline(s, a, b);
  if (is_block(next)) b = lstrip_end(s, a, b, prev);
  if (a >= b) {
    free(s);
    return 0;
  }
  memmove(s, s + a, b - a);
  s[b - a] = '\0';
  return 1;
}

/* Comments print nothing; they matter only for the trimming. */
static void drop_comments(jlist_t *l) {
  size_t k = 0;
  for (size_t i = 0; i < l->n; ++i) {
    if (l->a[i].kind == 'C')
      free(l->a[i].norm);
    else
      l->a[k++] = l->a[i];
  }
  l->n = k;
}

/* Drops the whitespace Hugging Face's renderer drops (trim_blocks,
 * lstrip_blocks, '-' markers) and the comments; text left is kept. Each
 * text is trimmed against its neighbours as the template wrote them. */
static void strip(jlist_t *l) {
  size_t m = 0;
  for (size_t i = 0; i < l->n; ++i) {
    jtag_t *t = &l->a[i];
    const jtag_t *prev = i > 0 ? &l->a[i - 1] : NULL, *next = i + 1 < l->n ? &l->a[i + 1] : NULL;
    if (t->kind != 'T' || keep_text(t, prev, next)) l->a[m++] = *t;
  }
  l->n = m;
  drop_comments(l);
}

/* The known forms, tag for tag ('S' statement, 'E' expression, then the
 * normalised content). "@SYSTEM" stands for SmolLM2's system literal. */
#define CHATML_TURNS                                                             \
  "E'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>'+'\\n'", \
  "Sendfor",                                                                     \
  "Sif add_generation_prompt",                                                   \
  "E'<|im_start|>assistant\\n'",                                                 \
  "Sendif"
static const char *const k_chatml[] = {
    "Sfor message in messages",
    CHATML_TURNS,
    NULL};
static const char *const k_chatml_system[] = {
    "Sfor message in messages",
    "Sif loop.first and messages[0]['role']!='system'",
    "@SYSTEM",
    "Sendif",
    CHATML_TURNS,
    NULL};
#define LLAMA3_BODY                                                                                         \
  "Sset loop_messages=messages", "Sfor message in loop_messages",                                        \
      "Sset content='<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+" \
      "'<|eot_id|>'",                                                                                      \
      "Sif loop.index0==0", "Sset content=bos_token+content", "Sendif", "Econtent", "Sendfor"
static const char *const k_llama3[] = {LLAMA3_BODY, "Sif add_generation_prompt",
                                       "E'<|start_header_id|>assistant<|end_header_id|>\\n\\n'", "Sendif", NULL};
static const char *const k_llama3_always[] = {LLAMA3_BODY, "E'<|start_header_id|>assistant<|end_header_id|>\\n\\n'",
                                              NULL};

/* Decodes a canonical literal '...' (the whole of s) into a malloc'd
 * string; NULL if s is not one literal. */
static char *literal_value(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || s[0] != '\'' || s[n - 1] != '\'') return NULL;
  char *v = malloc(n);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 1; i + 1 < n; ++i) {
    if (s[i] == '\'') { /* an unescaped quote: more than one literal */
      free(v);
      return NULL;
    }
    if (s[i] == '\\' && i + 2 < n) {
      char e = s[++i];
      v[k++] = e == 'n' ? '\n' : e;
    } else {
      v[k++] = s[i];
    }
  }
  v[k] = '\0';
  return v;
}

/* Does l match form? For "@SYSTEM", *system gets the default message. */
static int match(const jlist_t *l, const char *const *form, char **system) {
  size_t i = 0;
  for (; form[i]; ++i) {
    if (i >= l->n) return 0;
    const jtag_t *t = &l->a[i];
    if (strcmp(form[i], "@SYSTEM") == 0) {
      static const char head[] = "<|im_start|>system\n", tail[] = "<|im_end|>\n";
      char *v = t->kind == 'E' ? literal_value(t->norm) : NULL;
      size_t vn = v ? strlen(v) : 0;
      if (!v || vn < sizeof head - 1 + sizeof tail - 1 || memcmp(v, head, sizeof head - 1) != 0 ||
          memcmp(v + vn - (sizeof tail - 1), tail, sizeof tail - 1) != 0) {
        free(v);
        return 0;
      }
      size_t sn = vn - (sizeof head - 1) - (sizeof tail - 1);
      memmove(v, v + sizeof head - 1, sn);
      v[sn] = '\0';
      free(*system);
      *system = v;
      continue;
    }
    if (t->kind != form[i][0] || strcmp(t->norm, form[i] + 1) != 0) return 0;
  }
  return i == l->n;
}

int deco_tok_chat_recognise(const char *tmpl, size_t len, tok_chat_info_t *info) {
  memset(info, 0, sizeof *info);
  info->kind = DECO_CHAT_TEMPLATE_NONE;
  if (!tmpl) return 0;
  size_t k = 0;
  for (size_t i = 0; i < len && tmpl[i] != '\n' && k + 4 < sizeof info->first_line; ++i) {
    unsigned char c = (unsigned char)tmpl[i];
    info->first_line[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (k + 4 >= sizeof info->first_line) memcpy(info->first_line + k, "...", 3), k += 3;
  info->first_line[k] = '\0';
  jlist_t l = {0};
  int rc = lex(tmpl, len, &l);
  if (rc == -1) {
    jlist_free(&l);
    return -1;
  }
  if (rc == 0) {
    strip(&l);
    char *system = NULL;
    if (match(&l, k_chatml, &system)) {
      info->kind = DECO_CHAT_TEMPLATE_CHATML;
    } else if (match(&l, k_chatml_system, &system)) {
      info->kind = DECO_CHAT_TEMPLATE_CHATML;
      info->default_system = system;
      system = NULL;
    } else if (match(&l, k_llama3, &system)) {
      info->kind = DECO_CHAT_TEMPLATE_LLAMA3;
    } else if (match(&l, k_llama3_always, &system)) {
      info->kind = DECO_CHAT_TEMPLATE_LLAMA3;
      info->generation_always = 1;
    }
    free(system);
  }
  jlist_free(&l);
  return 0;
}

void deco_tok_chat_info_free(tok_chat_info_t *info) {
  free(info->default_system);
  info->default_system = NULL;
}

/* ---- the public functions -------------------------------------------------------- */

static const char *const k_names[] = {"auto", "none", "chatml", "llama3"};
enum { N_TEMPLATES = sizeof k_names / sizeof k_names[0] };

const char *deco_chat_template_name(deco_chat_template_t tmpl) {
  return (unsigned)tmpl < N_TEMPLATES ? k_names[tmpl] : "?";
}

deco_status_t deco_chat_template_from_name(const char *name, deco_chat_template_t *out) {
  if (!name || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "deco_chat_template_from_name: NULL argument");
  for (unsigned i = 0; i < N_TEMPLATES; ++i)
    if (strcmp(name, k_names[i]) == 0) {
      *out = (deco_chat_template_t)i;
      return DECO_STATUS_SUCCESS;
    }
  return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT,
                   "chat template '%s' is not one of auto, none, chatml, llama3", name);
}

const char *deco_tokenizer_chat_template(const deco_tokenizer_t *tok, size_t *len) {
  if (len) *len = 0;
  if (!tok || tok->kind == DECO_TOKENIZER_LLAMA2C) return NULL;
  return deco_tok_gguf_chat_template(tok, len);
}

deco_status_t deco_chat_template_resolve(const deco_tokenizer_t *tok, deco_chat_template_t tmpl,
                                         deco_chat_template_t *out) {
  static const char op[] = "deco_chat_template_resolve";
  if (!tok || !out) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: NULL argument", op);
  if ((unsigned)tmpl >= N_TEMPLATES)
    return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: unknown template value %d", op, (int)tmpl);
  *out = tmpl;
  if (tmpl != DECO_CHAT_TEMPLATE_AUTO) return DECO_STATUS_SUCCESS;
  if (tok->kind == DECO_TOKENIZER_LLAMA2C)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "a llama2.c tokenizer has no chat template");
  const tok_chat_info_t *info = deco_tok_gguf_chat_info(tok);
  if (!deco_tok_gguf_chat_template(tok, NULL))
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: the file has no tokenizer.chat_template",
                     deco_tok_gguf_name(tok));
  if (info->kind == DECO_CHAT_TEMPLATE_NONE)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED,
                     "%s: tokenizer.chat_template is not a template deco renders (ChatML, Llama 3); its first line: "
                     "'%s'",
                     deco_tok_gguf_name(tok), info->first_line);
  *out = info->kind;
  return DECO_STATUS_SUCCESS;
}

const char *deco_chat_default_system(const deco_tokenizer_t *tok) {
  if (!tok || tok->kind == DECO_TOKENIZER_LLAMA2C) return NULL;
  return deco_tok_gguf_chat_info(tok)->default_system;
}

int32_t deco_chat_end_token(const deco_tokenizer_t *tok, deco_chat_template_t tmpl) {
  if (!tok) return -1;
  deco_chat_template_t k;
  if (tmpl == DECO_CHAT_TEMPLATE_AUTO) {
    if (tok->kind == DECO_TOKENIZER_LLAMA2C) return -1;
    k = deco_tok_gguf_chat_info(tok)->kind;
  } else {
    k = tmpl;
  }
  if (k == DECO_CHAT_TEMPLATE_CHATML) return deco_tokenizer_find(tok, "<|im_end|>", 10);
  if (k == DECO_CHAT_TEMPLATE_LLAMA3) return deco_tokenizer_find(tok, "<|eot_id|>", 10);
  return -1;
}

/* Python's str.isspace() for a code point (what Jinja's trim strips). */
static int py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static uint32_t cp_of(const unsigned char *s, size_t k) {
  if (k == 1) return s[0];
  if (k == 2) return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
  if (k == 3) return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* Jinja's | trim on s[0..*n): *s and *n narrowed. Ill-formed bytes are not
 * whitespace. */
static void trim(const char **s, size_t *n) {
  const unsigned char *u = (const unsigned char *)*s;
  size_t a = 0, b = *n;
  while (a < b) {
    size_t sub;
    int inc;
    size_t k = deco_utf8_sequence(u + a, b - a, &sub, &inc);
    if (!k || !py_space(cp_of(u + a, k))) break;
    a += k;
  }
  while (b > a) {
    size_t q = b - 1, steps = 0;
    while (q > a && (u[q] & 0xC0) == 0x80 && steps < 3) --q, ++steps;
    size_t sub;
    int inc;
    size_t k = deco_utf8_sequence(u + q, b - q, &sub, &inc);
    if (k != b - q || !py_space(cp_of(u + q, k))) break;
    b = q;
  }
  *s += a;
  *n = b - a;
}

#define SEG_T(str) ((tok_segment_t){.text = (str), .len = strlen(str), .id = -1, .parse_special = 1})
#define SEG_U(str, n) ((tok_segment_t){.text = (str), .len = (n), .id = -1, .parse_special = 0})

/* ChatML's segments: the system turn (the caller's message, else def, the
 * template's default, if any), the user turn, the generation prompt when
 * asked. Returns their count (at most 7). */
static int chatml_segments(tok_segment_t *seg, const char *system, const char *def, const char *prompt,
                           int add_generation_prompt) {
  int n = 0;
  if (system) {
    seg[n++] = SEG_T("<|im_start|>system\n");
    seg[n++] = SEG_U(system, strlen(system));
    seg[n++] = SEG_T("<|im_end|>\n");
  } else if (def) {
    seg[n++] = SEG_T("<|im_start|>system\n");
    seg[n++] = SEG_T(def);
    seg[n++] = SEG_T("<|im_end|>\n");
  }
  seg[n++] = SEG_T("<|im_start|>user\n");
  seg[n++] = SEG_U(prompt, strlen(prompt));
  seg[n++] = SEG_T("<|im_end|>\n");
  if (add_generation_prompt) seg[n++] = SEG_T("<|im_start|>assistant\n");
  return n;
}

/* Llama 3's segments: BOS (when the vocabulary has one), the system and
 * user turns (contents | trim; a NULL system message has no turn), the
 * generation prompt when asked. Returns their count (at most 12). */
static int llama3_segments(tok_segment_t *seg, int32_t bos, const char *system, const char *prompt,
                           int generation_prompt) {
  int n = 0;
  if (bos >= 0) seg[n++] = (tok_segment_t){.text = "", .len = 0, .id = bos, .parse_special = 0};
  const char *roles[2] = {"system", "user"};
  const char *content[2] = {system, prompt};
  for (int m = 0; m < 2; ++m) {
    if (!content[m]) continue;
    const char *c = content[m];
    size_t cn = strlen(c);
    trim(&c, &cn);
    seg[n++] = SEG_T("<|start_header_id|>");
    seg[n++] = SEG_T(roles[m]);
    seg[n++] = SEG_T("<|end_header_id|>\n\n");
    seg[n++] = SEG_U(c, cn);
    seg[n++] = SEG_T("<|eot_id|>");
  }
  if (generation_prompt) seg[n++] = SEG_T("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return n;
}

deco_status_t deco_chat_render(const deco_tokenizer_t *tok, deco_chat_template_t tmpl, const char *system,
                               const char *prompt, int add_generation_prompt, int32_t *ids, int max_ids, int *n_ids) {
  static const char op[] = "deco_chat_render";
  if (!n_ids) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: n_ids is NULL", op);
  *n_ids = 0;
  if (!tok || !prompt) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: tok or prompt is NULL", op);
  if (!ids && max_ids > 0) return DECO_FAIL(NULL, DECO_STATUS_NULL_POINTER, "%s: ids is NULL", op);
  if (max_ids < 0) return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: max_ids = %d is negative", op, max_ids);
  deco_chat_template_t k;
  DECO_TRY(deco_chat_template_resolve(tok, tmpl, &k));
  if (k == DECO_CHAT_TEMPLATE_NONE) {
    if (system)
      return DECO_FAIL(NULL, DECO_STATUS_INVALID_ARGUMENT, "%s: a system message needs a chat template", op);
    return deco_tokenizer_tokenize(tok, prompt, strlen(prompt), DECO_TOKENIZE_ADD_SPECIAL, ids, max_ids, n_ids);
  }
  if (tok->kind == DECO_TOKENIZER_LLAMA2C)
    return DECO_FAIL(NULL, DECO_STATUS_UNSUPPORTED, "%s: a llama2.c tokenizer has no chat template", op);
  /* The default system message and the first Llama 3 release's constant
   * generation prompt come with the model's own template only. */
  const tok_chat_info_t *info = deco_tok_gguf_chat_info(tok);
  const int own = tmpl == DECO_CHAT_TEMPLATE_AUTO;
  tok_segment_t seg[16];
  const int n = k == DECO_CHAT_TEMPLATE_CHATML
                    ? chatml_segments(seg, system, own ? info->default_system : NULL, prompt, add_generation_prompt)
                    : llama3_segments(seg, deco_tokenizer_special(tok, DECO_TOKEN_BOS), system, prompt,
                                      add_generation_prompt || (own && info->generation_always));
  tok_vec_t v = {0};
  deco_status_t s = deco_tok_gguf_encode_segments(tok, seg, n, 0, &v);
  if (s == DECO_STATUS_SUCCESS) s = tok_vec_deliver(&v, op, "chat", ids, max_ids, n_ids);
  free(v.a);
  return s;
}
