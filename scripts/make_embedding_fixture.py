#!/usr/bin/env python3
"""Reference embeddings for grpst's embedding tests, recorded with Hugging Face transformers.

For each tiny checkpoint and each reference prompt of test/fixtures/refs-<checkpoint>.json, the
base model's last_hidden_state at the prompt's last token (the output of the final RMSNorm,
what the LM head reads, before any normalization), computed in fp32 on CPU:

    python3 scripts/make_embedding_fixture.py --checkpoints .cache/fixtures --out test/fixtures/embeddings-tiny.json

The checkpoints are the ones the tests write (test/helpers/fixtures.ts checkpoint()); their
weight digests must match the references', which this script checks.
"""
import argparse
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures")
NAMES = ["tiny-a", "tiny-b"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", required=True, help="folder holding tiny-a/, tiny-b/ as the tests write them")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    import transformers

    torch.manual_seed(0)
    out = {"torch": torch.__version__, "transformers": transformers.__version__, "dtype": "float32", "device": "cpu", "checkpoints": {}}
    for name in NAMES:
        refs = json.load(open(os.path.join(FIXTURES, f"refs-{name}.json")))
        ckpt = os.path.join(args.checkpoints, name)
        stamp = open(os.path.join(ckpt, "weights.sha256")).read().strip()
        if stamp != refs["weights_sha256"]:
            raise SystemExit(f"{ckpt}: weights digest {stamp} is not the references' {refs['weights_sha256']}")
        model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
        model.eval()
        prompts = []
        with torch.no_grad():
            for p in refs["prompts"]:
                ids = torch.tensor([p["prompt_ids"]])
                hidden = model.model(ids, use_cache=False).last_hidden_state[0, -1].float()
                prompts.append({"name": p["name"], "prompt_ids": p["prompt_ids"], "last_hidden": [float(x) for x in hidden]})
        out["checkpoints"][name] = {"weights_sha256": refs["weights_sha256"], "prompts": prompts}
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: {sum(len(c['prompts']) for c in out['checkpoints'].values())} vectors")


if __name__ == "__main__":
    main()
