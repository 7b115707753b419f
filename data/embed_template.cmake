# Generates host/spec/recycle_template_default.c, the built-in copy of the
# official Token Recycling template, from data/fixtures/token_recycling_template_80.txt:
#   cmake -P data/embed_template.cmake        (from the repository root)
set(in data/fixtures/token_recycling_template_80.txt)
set(out host/spec/recycle_template_default.c)
file(READ ${in} text)
string(LENGTH "${text}" n)
# One C string piece per line; the file holds digits, commas and newlines only.
if(NOT text MATCHES "^[0-9,\n]*$")
  message(FATAL_ERROR "${in}: only digits, commas and newlines can be embedded")
endif()
string(REGEX REPLACE "\n" "\\\\n\"\n    \"" body "${text}")
file(WRITE ${out}
"/* Generated from ${in} by data/embed_template.cmake; do not edit. */
#include <stddef.h>

const char deco_recycle_template_default_text[] =
    \"${body}\";
const size_t deco_recycle_template_default_len = ${n};
")
