#!/usr/bin/env python3
"""Hugging Face transformers baseline for bench:gpu, on a Qwen3-8B-shaped model with random
weights made on the GPU (no download): greedy generate at batch 1 and batch 64, bf16, eager
attention (the configuration of the reference figures in the CUDA issue), 128 prompt tokens and
128 new tokens per sequence; then batch 64 again at the served benchmark's workload (1,024 prompt
tokens, 512 new: the same request shape as bench:gpu's 64-way serving, so that the two rates
compare like for like; --no-served-workload leaves it out).

    python3 scripts/gpu/transformers_baseline.py OUT.json [--save-dir DIR]

With --save-dir the same random model is also written as a Hugging Face checkpoint (safetensors,
bf16) for `grpst build` and the served benchmark.
"""
import argparse
import json
import time

import torch
import transformers
from transformers import Qwen3Config, Qwen3ForCausalLM

# The shape the other GPU scripts use (this folder is on the path when the script runs).
from random_checkpoint import SHAPES

QWEN3_8B = SHAPES["qwen3-8b"]


def timed_generate(model, batch, prompt_len, new_tokens):
    gen = torch.Generator(device="cuda").manual_seed(batch)
    ids = torch.randint(0, 151000, (batch, prompt_len), device="cuda", generator=gen)
    mask = torch.ones_like(ids)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    model.generate(ids, attention_mask=mask, **{**kw, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, attention_mask=mask, **kw)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    produced = (out.shape[1] - prompt_len) * batch
    return {"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new_tokens, "seconds": dt,
            "output_tok_s": produced / dt}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--save-dir")
    ap.add_argument("--attn", default="eager")
    ap.add_argument("--no-served-workload", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = Qwen3Config(**QWEN3_8B, torch_dtype="bfloat16")
    cfg._attn_implementation = args.attn
    torch.set_default_dtype(torch.bfloat16)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(cfg)
    model.eval()
    torch.cuda.synchronize()
    made = time.perf_counter() - t0
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "transformers": transformers.__version__, "attention": args.attn,
              "model": "Qwen3-8B shape, random bf16 weights", "init_seconds": made, "runs": []}
    # The checkpoint first, and the results after each run: a run cut short by the caller's
    # timeout still leaves the served benchmark its checkpoint and the runs before it.
    if args.save_dir:
        t0 = time.perf_counter()
        model.save_pretrained(args.save_dir, safe_serialization=True)
        result["save_seconds"] = time.perf_counter() - t0
    with torch.inference_mode():
        runs = [(1, 128, 128), (64, 128, 128)] + ([] if args.no_served_workload else [(64, 1024, 512)])
        for b, prompt_len, new_tokens in runs:
            r = timed_generate(model, b, prompt_len, new_tokens)
            print(json.dumps(r), flush=True)
            result["runs"].append(r)
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
