#!/usr/bin/env python3
"""Transformers references for grpst's block-scaled FP8 fixture (test/fixtures/refs-tiny-b-fp8.json).

The fixture checkpoint is written by grpst's TypeScript (tiny-b's linears in e4m3 with
weight_scale_inv in [32, 64] blocks, partial blocks at the edges):

    npx tsx test/helpers/fp8-checkpoint.ts /tmp/tiny-b-fp8
    python3 scripts/make_fp8_fixture.py --checkpoint /tmp/tiny-b-fp8 --out test/fixtures/refs-tiny-b-fp8.json

It reads that folder as it is and records, in fp32 on CPU, the same per-prompt data as
make_fixtures.py (prompt logprobs, top-5 at the end, 24 greedy tokens with their margins) twice:

  prompts               w = e4m3(weight) * weight_scale_inv computed in fp32 and rounded to bf16,
                        as transformers' FP8 loader stores it when it dequantizes on a CPU into the
                        checkpoint's bf16 model; the model then run in fp32. grpst's runtime computes
                        float linears with bf16 weights, so this is what its engines must match.
  prompts_fp32_weights  the same products kept in fp32 (one rounding): the FP8 model exactly, to
                        show what the bf16 rounding of the weights costs

How the dequantization is done: transformers loads FP8 checkpoints on a CPU only by dequantizing
them at load (FineGrainedFP8Config dequantize=True, forced without a GPU), and that loader
(integrations/finegrained_fp8.py, Fp8Dequantize._dequantize_one) derives the block from the scale
grid as rows // grid_rows, so it refuses shapes that leave a partial block, or misreads them when
the division happens to be exact. FP8Linear itself sizes the grid with ceil(out / bo) and
ceil(in / bi), and its backward's _dequantize_fp8_weight repeats each scale over its block and cuts
the last one short: that is the format's convention, and vLLM's. So this script dequantizes with
that convention itself (torch), checks every weight bit for bit against transformers'
_dequantize_fp8_weight, and against Fp8Dequantize on the weights whose shapes divide the block;
then writes a plain checkpoint and runs transformers' Qwen3 on it.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import prompts_for, reference_for_prompt  # noqa: E402

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} without any library, so nothing is converted on the way."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[a:b])
    return out


def read_checkpoint(folder):
    index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
    tensors = {}
    for f in sorted(set(index["weight_map"].values())):
        tensors.update(read_safetensors(os.path.join(folder, f)))
    return tensors


def digest(tensors):
    # The same as fp8Digest in test/helpers/fp8-checkpoint.ts.
    h = hashlib.sha256()
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        h.update(f"{name}\n{dtype}\n{json.dumps(shape, separators=(',', ':'))}\n".encode())
        h.update(raw)
    return h.hexdigest()


def to_torch(torch, dtype, shape, raw):
    kinds = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F8_E4M3": torch.float8_e4m3fn}
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(kinds[dtype]).reshape(shape)


def dequantize(torch, w8, scale_inv, block):
    """w[i, j] = e4m3(w8[i, j]) * scale_inv[i // bo, j // bi], in fp32; the grid is ceil-sized."""
    rows, cols = w8.shape
    bo, bi = block
    s = scale_inv.to(torch.float32).repeat_interleave(bo, dim=0)[:rows].repeat_interleave(bi, dim=1)[:, :cols]
    return w8.to(torch.float32) * s


def check_against_transformers(torch, name, w8, scale_inv, block, ours):
    from transformers.integrations import finegrained_fp8 as tf

    theirs = tf._dequantize_fp8_weight(w8.clone(), scale_inv, list(block), torch.float32)
    if not torch.equal(theirs, ours):
        sys.exit(f"{name}: differs from transformers' _dequantize_fp8_weight")
    rows, cols = w8.shape
    if rows % block[0] == 0 and cols % block[1] == 0:
        loader = tf.Fp8Dequantize(None)._dequantize_one(w8, scale_inv, output_dtype=torch.float32)
        if not torch.equal(loader, ours):
            sys.exit(f"{name}: differs from transformers' Fp8Dequantize")
        return "same as _dequantize_fp8_weight and Fp8Dequantize"
    try:
        loader = tf.Fp8Dequantize(None)._dequantize_one(w8, scale_inv, output_dtype=torch.float32)
    except ValueError:
        return "same as _dequantize_fp8_weight (partial blocks: Fp8Dequantize refuses the shape)"
    same = torch.equal(loader, ours)
    return f"same as _dequantize_fp8_weight (partial blocks: Fp8Dequantize {'agrees' if same else 'misreads them'})"


def write_plain(torch, folder, out_dir, tensors, weights):
    from safetensors.torch import save_file

    plain = {}
    for name, (dtype, shape, raw) in tensors.items():
        if name.endswith("_scale_inv"):
            continue
        plain[name] = weights[name] if name in weights else to_torch(torch, dtype, shape, raw).clone()
    save_file(plain, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    config = json.load(open(os.path.join(folder, "config.json")))
    del config["quantization_config"]
    json.dump(config, open(os.path.join(out_dir, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(folder, f)):
            shutil.copy(os.path.join(folder, f), os.path.join(out_dir, f))


def references(torch, model_dir, tok):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    out = []
    for p in prompts_for(tok):
        r = reference_for_prompt(torch, model, p["ids"])
        r["name"] = p["name"]
        out.append(r)
        print(model_dir, p["name"], "len", len(p["ids"]), "min margin", min(r["greedy"]["margins"]), flush=True)
    return out, json.loads(model.config.to_json_string())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True, help="the FP8 folder test/helpers/fp8-checkpoint.ts wrote")
    ap.add_argument("--out", required=True, help="refs JSON to write")
    args = ap.parse_args()

    import safetensors
    import torch
    import transformers
    from transformers import AutoTokenizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    qc = json.load(open(os.path.join(args.checkpoint, "config.json")))["quantization_config"]
    assert qc["quant_method"] == "fp8" and qc.get("fmt", "e4m3") == "e4m3" and qc["activation_scheme"] == "dynamic", qc
    block = tuple(qc["weight_block_size"])
    tensors = read_checkpoint(args.checkpoint)

    fp32, bf16 = {}, {}
    for name, (dtype, shape, raw) in sorted(tensors.items()):
        if dtype != "F8_E4M3":
            continue
        sdtype, sshape, sraw = tensors[name + "_scale_inv"]
        assert sshape == [-(-shape[0] // block[0]), -(-shape[1] // block[1])], (name, sshape)
        w8 = to_torch(torch, dtype, shape, raw)
        scale_inv = to_torch(torch, sdtype, sshape, sraw)
        fp32[name] = dequantize(torch, w8, scale_inv, block)
        # What Fp8Dequantize hands a bf16 model: the fp32 product, rounded once to bf16.
        bf16[name] = fp32[name].to(torch.bfloat16)
        print(name, shape, "grid", sshape, check_against_transformers(torch, name, w8, scale_inv, block, fp32[name]))

    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    results = {}
    for key, weights in (("prompts", bf16), ("prompts_fp32_weights", fp32)):
        with tempfile.TemporaryDirectory() as tmp:
            write_plain(torch, args.checkpoint, tmp, tensors, weights)
            results[key], hf_config = references(torch, tmp, tok)

    refs = {
        "checkpoint": "tiny-b-fp8",
        "source": "tiny-b",
        "weight_block_size": list(block),
        "weights_sha256": digest(tensors),
        "dtype": "float32",
        "device": "cpu",
        "hf_config": hf_config,
        **results,
        "env": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
                "safetensors": safetensors.__version__, "python": sys.version},
    }
    with open(args.out, "w") as f:
        json.dump(refs, f)


if __name__ == "__main__":
    main()
