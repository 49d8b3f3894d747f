# SPDX-License-Identifier: MIT
# Writes <model>.decode.jsonl beside this script: for each line of the fixture's
# tokenizer_golden.jsonl, what HF `tokenizers` decodes its ids to, with and without
# skip_special_tokens. To keep the file small a decoded text equal to the input is written as
# true, one that is the input after some prefix (the BOS text) as {"prefix": ...}. Run: python3 make_decode_golden.py /path/to/fixtures/models
import json
import sys
from pathlib import Path
from tokenizers import Tokenizer

root = Path(sys.argv[1])
for model in ["tiny-llama", "tiny-qwen3", "small-llama"]:
    tok = Tokenizer.from_file(str(root / model / "tokenizer.json"))
    with open(Path(__file__).parent / f"{model}.decode.jsonl", "w") as out:
        for line in open(root / model / "tokenizer_golden.jsonl"):
            g = json.loads(line)
            row = {}
            for key, skip in (("keep", False), ("skip", True)):
                d = tok.decode(g["ids"], skip_special_tokens=skip)
                t = g["text"]
                if d == t:
                    row[key] = True
                elif t and d.endswith(t):
                    row[key] = {"prefix": d[: len(d) - len(t)]}
                else:
                    row[key] = d
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
