#!/usr/bin/env python3
"""transformers generate at batch 1 on a checkpoint (bf16, eager attention, greedy): the baseline
beside `grpst run` on the Qwen3-MoE rows of docs/moe-cuda.md.

    python3 scripts/gpu/moe_transformers_baseline.py CHECKPOINT_DIR [--new-tokens 64]

Decode tok/s is the difference between two generate calls of different lengths from the same
prompt, so the prefill and the first token are left out, as grpst run's decode figure leaves them.
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.bfloat16, device_map="cuda", attn_implementation="eager")
    model.eval()
    ids = torch.tensor([[151644, 872, 198, 7985, 264, 1293, 3364, 911, 264, 25105, 13, 151645, 198, 151644, 77091, 198]], device="cuda")

    def timed(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    timed(2)  # warm-up
    short, long = timed(1), timed(1 + args.new_tokens)
    print(json.dumps({"decode_tok_s": args.new_tokens / (long - short), "new_tokens": args.new_tokens,
                      "device": torch.cuda.get_device_name(0)}), flush=True)


if __name__ == "__main__":
    main()
