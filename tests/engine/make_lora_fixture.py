#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Makes the LoRA fixture: a PEFT LoRA adapter (r 8, alpha 16, every linear of every block) trained
for a few hundred steps on the shipped calibration prompts (instruction-shaped text, unlike the
model's pre-training corpus, so the adapter visibly changes the model), plus the reference the
engine test holds qforge to: float32 logits of stock transformers + peft on fixed prompts.

    python3 tests/engine/make_lora_fixture.py examples/models/tiny-llama \
        examples/data/calibration.jsonl examples/adapters/tiny-llama-lora tests/engine/data/lora_reference.safetensors

CPU, about a minute. Deterministic (seeded); rerun only to change the fixture.
"""
import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

PROMPTS = ["Summarize the following text in one sentence.\n\nAnd God said, Let there be light",
           "def parse(path):\n    with open(path) as f:",
           "Explain the difference between a list and a tuple in Python."]


def main(model_dir, calib, out_dir, ref_path, steps=300, seq=128):
    torch.manual_seed(0)
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                     "down_proj"])
    model = get_peft_model(model, cfg)
    texts = []
    for line in open(calib):
        j = json.loads(line)
        texts.append(j["instruction"] + ("\n\n" + j["input"] if j.get("input") else ""))
    stream = [i for t in texts for i in tok.encode(t).ids]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(stream) - seq - 1, (8,))
        batch = torch.tensor([stream[s:s + seq] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f}", file=sys.stderr)
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    ref = {}
    with torch.no_grad():
        for n, p in enumerate(PROMPTS):
            ids = tok.encode(p).ids
            ref[f"prompt{n}.ids"] = torch.tensor(ids, dtype=torch.int32)
            ref[f"prompt{n}.logits"] = model(torch.tensor([ids])).logits[0].float().contiguous()
    save_file(ref, ref_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
