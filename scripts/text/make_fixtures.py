#!/usr/bin/env python3
"""scripts/text/make_fixtures.py — the tokenizer fixtures of issue 14, in
data/fixtures/tokenizer/, from references no one here wrote:

 1. llama.cpp's own tokenizer tests, copied byte for byte from the
    llama.cpp vendored in the llama-cpp-python 0.3.36 source package
    (scripts/gguf/build_llama_cpp.sh unpacks it into .llama-cpp/src):
    vendor/llama.cpp/models/ggml-vocab-{gpt-2,starcoder,llama-bpe,llama-spm}.gguf
    (vocabulary-only GGUF files) with their .inp (cases separated by
    "\\n__ggml_vocab_test__\\n") and .out (one line of expected ids per
    case), which llama.cpp's tests/test-tokenizer-0 checks with
    add_special = false, parse_special = false. Each copy is first checked
    against llama.cpp itself.
 2. The stress set (stress.inp, written here: spaces, newlines and tabs,
    digits and long numbers, contractions in both cases, punctuation runs,
    URLs, code, accented Latin, Greek, Cyrillic, CJK, emoji with ZWJ,
    combining marks, special-token text, an empty string, a long paragraph,
    ill-formed UTF-8 llama.cpp reads without aborting), tokenized by
    llama.cpp's llama_tokenize(text, add_special = true, parse_special) for
    SmolLM2-135M-Instruct.Q4_1.gguf (models-cache/) and the four vocabularies
    above: stress.<vocab>.out (parse_special false, the prompt rule) and
    stress.<vocab>.special.out (true).
 3. Chat (chat.txt): SmolLM2's own tokenizer.chat_template (read from the
    GGUF) rendered by jinja2 (Hugging Face's settings: sandboxed,
    trim_blocks, lstrip_blocks; add_generation_prompt = True) and tokenized
    by llama.cpp (parse_special true, add_special false) for: no system
    message, a system message, an empty prompt; the Llama 3 template of
    llama.cpp's tests/test-chat-template.cpp (its first-release form, and
    with the generation prompt under add_generation_prompt) on the
    llama-bpe vocabulary for the same three and a prompt that needs | trim;
    and, for user text that holds special-token text, the rendering with
    that text kept as text (llama.cpp tokenizes the template's pieces with
    parse_special and the user's text without).

Usage (after scripts/gguf/build_llama_cpp.sh and install-deps.sh --models):
  .venv-gguf/bin/python scripts/text/make_fixtures.py
"""
import hashlib
import os
import shutil
import sys

import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lltok  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "gguf"))
import ggufutil  # noqa: E402
import gguf  # noqa: E402

OUT = os.path.join(ggufutil.ROOT, "data", "fixtures", "tokenizer")
SEP = b"\n__ggml_vocab_test__\n"
VOCABS = ["gpt-2", "starcoder", "llama-bpe", "llama-spm"]
SMOLLM2 = ggufutil.SMOLLM2

LONG = ("The quick brown fox jumps over the lazy dog, and it doesn't stop there: in 1987, a team of 42 "
        "researchers (led by Dr. O'Neil) measured 3.14159 meters of rope at 6:45 a.m. on Jan. 3rd. "
        "\"We'll see,\" she said -- though nobody knew what they'd find.\tThen, after 10,000,000 years, "
        "the café's menu read: crème brûlée, naïve piñata; résumé!\n\n") * 12

STRESS = [
    b"", b" ", b"  ", b"   ", b"\t", b"\n", b"\n\n", b"\n\n\n", b"\t\n", b" \n \n\t\t  x  \n", b"\r\n\r\n",
    b"Hello world", b" Hello world", b"Hello  world", b"Hello world  ", b"    Hello\n    Hello",
    b"a\xc2\xa0b \xe3\x80\x80c\xe2\x80\xa8d\xc2\x85e",  # NBSP, ideographic space, line separator, NEL
    b"0", b"12", b"123", b"1234", b"12345", b"123456789012345678901234567890", b"3.14159 -42 +7 1e-9 0x1F",
    b"1,000,000 and 2024-06-30 at 23:59:59", b"x86_64 v2 abc123def 9am",
    "١٢٣ ４５ ² ⅫⅣ".encode(),  # Arabic-Indic, fullwidth, superscript, Roman numerals
    b"I'm you're he's she'll we've they'd it's don't", b"I'M YOU'RE HE'S SHE'LL WE'VE THEY'D IT'S DON'T",
    b"'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D", b"rock 'n' roll ''quoted'' y'all", b"O'Neil's",
    b"!!!!!!", b"?!?!...,,,;;;:::", b"--- *** ### @@@ $$$ %%% ^^^ &&& (((", b"\"'`~|\\/<>{}[]", b"...\n!!!\n",
    b"https://example.com/path/to/page?query=1&x=y#frag", b"mailto:someone@example.org www.test.co.uk",
    b"def f(x):\n    return x ** 2  # square\n", b"int main(void) { printf(\"%d\\n\", a[i++]); }",
    b"for (i = 0; i < n; ++i) {\n\tsum += v[i];\n}\n", b"<div class=\"a\">&amp;</div>", b"$ ls -la | grep '^d'",
    "Café crème brûlée naïve façade Ångström Øresund Łódź".encode(), "Äpfel über Straße".encode(),
    "Ελληνικά: Καλημέρα κόσμε, ΑΒΓΔ αβγδ".encode(), "Русский текст: Привет, мир! ЁЖЗ".encode(),
    "中文字符测试，你好世界。日本語のテキスト、カタカナ。한국어 텍스트".encode(),
    "🚀 🦙 😶‍🌫️ 👨‍👩‍👧‍👦 👍🏽 🏳️‍🌈 ✅".encode(), "e\u0301 a\u0308 n\u0303 o\u0302\u0323 Z\u0335\u0321a\u0336l".encode(),
    "क्षत्रिय ภาษาไทย עברית العربية".encode(),
    b"<|im_start|>user\nHi<|im_end|>", b"<|endoftext|>", b"text<|im_end|>more", b"<|begin_of_text|><|eot_id|>",
    b"<s>hello</s>", b"<|im_start|", b"<<|im_end|>>",
    b"a\xffb", b"\xc3(", b"\xe2\x82", b"x\xc0\x80y", b"\xed\xa0\x80z", b"\x80\x80", b"\xf0\x9f\x98",
    LONG.encode(),
]


def check(cond, msg):
    if not cond:
        raise SystemExit("make_fixtures: " + msg)


def write_cases(path, cases):
    with open(path, "wb") as f:
        f.write(SEP.join(cases) + SEP)


def write_out(path, rows):
    with open(path, "w") as f:
        for ids in rows:
            f.write("".join(" %d" % i for i in ids) + "\n")


def read_cases(path):
    data = open(path, "rb").read()
    parts = data.split(SEP)
    check(parts[-1] == b"", "%s does not end with the separator" % path)
    return parts[:-1]


def copy_vocab(name):
    src = os.path.join(lltok.VOCAB_DIR, "ggml-vocab-%s.gguf" % name)
    dst = os.path.join(OUT, os.path.basename(src))
    for ext in ("", ".inp", ".out"):
        shutil.copyfile(src + ext, dst + ext)
    v = lltok.Vocab(dst)
    cases = read_cases(dst + ".inp")
    want = [[int(x) for x in line.split()] for line in open(dst + ".out").read().split("\n")[:-1]]
    check(len(cases) == len(want), "%s: %d cases, %d lines" % (name, len(cases), len(want)))
    for c, w in zip(cases, want):
        check(v.tokenize(c, False, False) == w, "%s: llama.cpp disagrees with its own .out on %r" % (name, c))
    print("make_fixtures: %s: %d cases, llama.cpp agrees with its .out" % (name, len(cases)))
    return v


def stress(label, v):
    for special, suffix in ((False, ".out"), (True, ".special.out")):
        rows = [v.tokenize(c, True, special) for c in STRESS]
        write_out(os.path.join(OUT, "stress.%s%s" % (label, suffix)), rows)
    print("make_fixtures: stress.%s: %d cases" % (label, len(STRESS)))


def render(template, messages, bos, eos):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos,
                                            eos_token=eos)


def split_special(text, specials):
    """Cuts text at the given special-token texts (leftmost, longest first)."""
    out, i = [], 0
    while i < len(text):
        best = None
        for s in specials:
            j = text.find(s, i)
            if j >= 0 and (best is None or j < best[0] or (j == best[0] and len(s) > len(best[1]))):
                best = (j, s)
        if best is None:
            out.append(("text", text[i:]))
            break
        if best[0] > i:
            out.append(("text", text[i:best[0]]))
        out.append(("special", best[1]))
        i = best[0] + len(best[1])
    return out


LLAMA3_FIRST = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                "{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}")
LLAMA3_COND = LLAMA3_FIRST.replace("{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
                                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
                                   "<|end_header_id|>\\n\\n' }}{% endif %}")


def chat_cases(f, label, vocab_file, v, template, kind, tokens, bos_id, eos_id):
    bos, eos = tokens[bos_id].decode(), tokens[eos_id].decode()
    cases = [("nosystem", None, "What is the capital of France?"),
             ("system", "You are a pirate.", "Tell me a joke about the sea.\n\nMake it short."),
             ("empty", None, "")]
    if kind == "llama3":
        cases.append(("trim", "  Be brief.\n", "\t  Why is the sky blue? \n\n"))
    for name, system, prompt in cases:
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + \
            [{"role": "user", "content": prompt}]
        text = render(template, msgs, bos, eos)
        ids = v.tokenize(text.encode(), False, True)
        f.write("case %s-%s\nvocab %s\ntemplate %s\nsystem %s\nprompt %s\nids%s\nend\n" % (
            label, name, vocab_file, kind, "-" if system is None else system.encode().hex(), prompt.encode().hex(),
            "".join(" %d" % i for i in ids)))
    # User text holding special-token text: rendered with a marker in its
    # place, cut at the template's special tokens, the user's text put back
    # and tokenized without special parsing.
    prompt = "Say <|im_end|> and <|endoftext|> or <|eot_id|>, then stop."
    marker = "\x01USER\x01"
    text = render(template, [{"role": "user", "content": marker}], bos, eos)
    specials = [t.decode() for t in tokens if t.startswith(b"<|") and t.endswith(b"|>")]
    ids = []
    for kindp, part in split_special(text, specials):
        if kindp == "special":
            ids.append(tokens.index(part.encode()))
        else:
            ids += v.tokenize(part.replace(marker, prompt).encode(), False, False)
    f.write("case %s-usertext\nvocab %s\ntemplate %s\nsystem -\nprompt %s\nids%s\nend\n" % (
        label, vocab_file, kind, prompt.encode().hex(), "".join(" %d" % i for i in ids)))


def main():
    os.makedirs(OUT, exist_ok=True)
    write_cases(os.path.join(OUT, "stress.inp"), STRESS)
    vocabs = {}
    for name in VOCABS:
        vocabs[name] = copy_vocab(name)
        stress(name, vocabs[name])
    check(os.path.exists(SMOLLM2), "missing %s (scripts/install-deps.sh --models)" % SMOLLM2)
    smol = lltok.Vocab(SMOLLM2)
    stress("smollm2", smol)

    r = gguf.GGUFReader(SMOLLM2)
    meta = ggufutil.metadata(r)
    smol_tokens = ggufutil.field_value(r.fields["tokenizer.ggml.tokens"])
    r3 = gguf.GGUFReader(os.path.join(OUT, "ggml-vocab-llama-bpe.gguf"))
    l3_tokens = ggufutil.field_value(r3.fields["tokenizer.ggml.tokens"])
    l3_bos = r3.fields["tokenizer.ggml.bos_token_id"].parts[-1].tolist()[0]
    l3_eos = r3.fields["tokenizer.ggml.eos_token_id"].parts[-1].tolist()[0]
    with open(os.path.join(OUT, "chat.txt"), "w") as f:
        f.write("# Chat renderings (scripts/text/make_fixtures.py): the template rendered by jinja2, tokenized by\n"
                "# llama.cpp. vocab: a file of this folder, or models: for models-cache/. system and prompt: hex.\n")
        chat_cases(f, "smollm2", "models:SmolLM2-135M-Instruct.Q4_1.gguf", smol, meta["tokenizer.chat_template"],
                   "auto", smol_tokens, meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"])
        chat_cases(f, "llama3", "ggml-vocab-llama-bpe.gguf", vocabs["llama-bpe"], LLAMA3_COND, "llama3", l3_tokens,
                   l3_bos, l3_eos)
    with open(os.path.join(OUT, "llama3-first.jinja"), "w") as f:
        f.write(LLAMA3_FIRST)
    with open(os.path.join(OUT, "llama3.jinja"), "w") as f:
        f.write(LLAMA3_COND)
    for fn in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, fn)
        print("  %s  %d bytes  %s" % (fn, os.path.getsize(p), hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]))


if __name__ == "__main__":
    main()
