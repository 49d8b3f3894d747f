# SPDX-License-Identifier: MIT
# Writes onig_classes.json: for each pattern, the code points (as [first, last] ranges) that the
# Oniguruma inside Hugging Face `tokenizers` matches as a one-character string. The tokenizer test
# compares PCRE2's translation of each pattern against these sets, and unicode_extra.hpp lists what
# PCRE2's older Unicode tables lack. Run: python3 make_onig_classes.py (needs `tokenizers`).
import json
import tokenizers
from tokenizers import Regex, pre_tokenizers

PATTERNS = [r"\s", r"\S", r"\w", r"\d", r"[^\s\p{L}\p{N}]", r"[^\r\n\p{L}\p{N}]", r"(?i:s)",
            r"(?i:k)"]
for p in ["L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P",
          "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl",
          "Zp", "Han", "Hiragana", "Katakana", "Hangul", "Latin", "Cyrillic", "Greek", "Arabic",
          "Thai"]:
    PATTERNS.append(r"\p{%s}" % p)

cps = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
text = "".join(map(chr, cps))
out = {"tokenizers": tokenizers.__version__, "classes": {}}
for p in PATTERNS:
    # "removed" keeps the pieces that do not match; offsets count characters.
    unmatched = bytearray(len(cps))
    for _, (a, b) in pre_tokenizers.Split(Regex(p), "removed").pre_tokenize_str(text):
        unmatched[a:b] = b"\x01" * (b - a)
    ranges = []
    for i, c in enumerate(cps):
        if unmatched[i]:
            continue
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    out["classes"][p] = ranges
with open("onig_classes.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
