#!/usr/bin/env python3
"""A Hugging Face Qwen3 checkpoint with random bf16 weights, made on the GPU (no download), for
the tensor-parallel benchmark (bench/gpu-tp.ts) and the build benchmark (scripts/gpu/run.sh
build-bench); and its ceilings: the copy bandwidth of every GPU
and, with two or more GPUs, the time of one NCCL all-reduce across them at the sizes a decode step
sums (one token's and 64 tokens' hidden state, bf16), of the all-gather of a 64-row step's fp32
logits, and the transport NCCL chose.

    python3 scripts/gpu/random_checkpoint.py OUT_DIR [--shape qwen3-32b] [--ceilings FILE.json]
        [--layers N] [--silent-from N]

A speculative-decoding pair (bench:spec --method draft_model on the GPU): --silent-from 2 writes the
target with o_proj and down_proj zero from layer 2 on (those layers add nothing to the residual,
so it computes what its first two layers do, reading every byte a real model would), --layers 2
its draft: every tensor is drawn from its own name's seed, so both hold the same first layers,
embedding, norm and head.

Speed depends only on the shapes, so random weights (normal, std 0.02; norms 1) measure what the
real checkpoint would. Shards of about 4 GB are written by several threads at once; a folder that
already holds a complete checkpoint of the shape is left as it is.
"""
import argparse
import json
import os
import re
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3MoeConfig

SHAPES = {
    "qwen3-32b": dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Qwen3-1.7B's layers with an untied head (the real one ties it): the build benchmark's model.
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                     rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Qwen3-30B-A3B's shapes (128 experts of 768, 8 per token) in 24 of its 48 layers: the whole
    # model's 61 GB would not fit the GPU machine's disk beside everything else.
    "qwen3-30b-a3b-24l": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=24, num_attention_heads=32,
                              num_key_value_heads=4, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                              rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                              num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768, norm_topk_prob=True,
                              decoder_sparse_step=1, mlp_only_layers=[]),
}
SHARD_BYTES = 4 * 10**9


def tensor_shapes(c):
    """(name, shape) of every tensor, in the order transformers writes them."""
    h, q, kv, i = c["hidden_size"], c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"], c["intermediate_size"]
    out = [("model.embed_tokens.weight", (c["vocab_size"], h))]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out += [(p + "self_attn.q_proj.weight", (q, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, q)),
                (p + "self_attn.q_norm.weight", (c["head_dim"],)), (p + "self_attn.k_norm.weight", (c["head_dim"],)),
                (p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,))]
        if c.get("num_experts"):
            e, im = c["num_experts"], c["moe_intermediate_size"]
            out.append((p + "mlp.gate.weight", (e, h)))
            for x in range(e):
                out += [(f"{p}mlp.experts.{x}.gate_proj.weight", (im, h)), (f"{p}mlp.experts.{x}.up_proj.weight", (im, h)),
                        (f"{p}mlp.experts.{x}.down_proj.weight", (h, im))]
        else:
            out += [(p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)), (p + "mlp.down_proj.weight", (h, i))]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (c["vocab_size"], h))]
    return out


def shards(shapes):
    """Consecutive tensors grouped into files of about SHARD_BYTES."""
    groups, cur, size = [], [], 0
    for name, shape in shapes:
        n = 2 * torch.Size(shape).numel()
        if cur and size + n > SHARD_BYTES:
            groups.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    return groups + ([cur] if cur else [])


def silent(name, silent_from):
    """Whether `name` is an o_proj / down_proj of a layer at or past silent_from (written zero)."""
    m = re.match(r"model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.weight$", name)
    return silent_from is not None and m is not None and int(m.group(1)) >= silent_from


def write_shard(out_dir, index, count, group, seed, silent_from=None):
    tensors = {}
    for name, shape in group:
        if name.endswith("norm.weight"):
            t = torch.ones(shape, dtype=torch.bfloat16, device="cuda")
        elif silent(name, silent_from):
            t = torch.zeros(shape, dtype=torch.bfloat16, device="cuda")
        else:
            # The tensor's own seed: the same name gets the same values in any shape of model.
            gen = torch.Generator(device="cuda").manual_seed(seed * 1000003 + zlib.crc32(name.encode()))
            t = torch.empty(shape, dtype=torch.bfloat16, device="cuda").normal_(0.0, 0.02, generator=gen)
        tensors[name] = t.cpu()
    file = f"model-{index + 1:05d}-of-{count:05d}.safetensors"
    save_file(tensors, os.path.join(out_dir, file), metadata={"format": "pt"})
    return file, {name: file for name in tensors}


def copy_bandwidth(device):
    """Device-to-device copy of 4 GiB, bytes read + written per second (median of 10 after 3 warm-ups)."""
    with torch.cuda.device(device):
        a = torch.empty(2**32, dtype=torch.uint8, device=device)
        b = torch.empty_like(a)
        times = []
        for k in range(13):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            b.copy_(a)
            e.record()
            e.synchronize()
            if k >= 3:
                times.append(s.elapsed_time(e) / 1000)
        del a, b
        torch.cuda.empty_cache()
    return 2 * 2**32 / sorted(times)[len(times) // 2] / 1e9


def allreduce_rank(rank, world, sizes, vocab, out_dir):
    """One rank of the collective measurements: mean time per all-reduce of each size (200 in a
    row), and per all-gather of a 64-row step's fp32 logits (20 in a row)."""
    os.environ.update(NCCL_DEBUG="INFO", NCCL_DEBUG_FILE=os.path.join(out_dir, f"nccl.{rank}.log"))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29531", rank=rank, world_size=world)
    times = {}
    for n in sizes:
        x = torch.ones(n, dtype=torch.bfloat16, device="cuda")
        for _ in range(20):
            dist.all_reduce(x)
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(200):
            dist.all_reduce(x)
        e.record()
        e.synchronize()
        times[n] = s.elapsed_time(e) * 1000 / 200
    # The logits all-gather of a 64-row step: every rank's vocabulary slice of 64 fp32 rows.
    part = torch.ones(64 * vocab // world, dtype=torch.float32, device="cuda")
    whole = torch.empty(part.numel() * world, dtype=torch.float32, device="cuda")
    for _ in range(5):
        dist.all_gather_into_tensor(whole, part)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(20):
        dist.all_gather_into_tensor(whole, part)
    e.record()
    e.synchronize()
    gather_us = s.elapsed_time(e) * 1000 / 20
    with open(os.path.join(out_dir, f"times.{rank}.json"), "w") as f:
        json.dump({"allreduce": times, "logits_allgather_us": gather_us, "logits_allgather_bytes": whole.numel() * 4}, f)
    dist.destroy_process_group()


def allreduce_ceiling(world, hidden, vocab):
    """Microseconds per all-reduce of `hidden` and 64 x `hidden` bf16 values across `world` GPUs,
    and per all-gather of 64 rows of fp32 logits (the tensor-parallel runtime's per-step gather)."""
    import tempfile
    sizes = [hidden, 64 * hidden]
    with tempfile.TemporaryDirectory() as d:
        # A watchdog: a group that hangs (a rank that never joins) must not take the benchmark's time.
        ctx = mp.start_processes(allreduce_rank, args=(world, sizes, vocab, d), nprocs=world, join=False)
        deadline = time.monotonic() + 120
        while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                for p in ctx.processes:
                    p.kill()
                return {"gpus": world, "error": "the all-reduce measurement did not finish in 120 s"}
        with open(os.path.join(d, "times.0.json")) as f:
            measured = json.load(f)
        times = measured["allreduce"]
        via = set()
        for name in os.listdir(d):
            if name.startswith("nccl."):
                with open(os.path.join(d, name), errors="replace") as f:
                    via.update(line.split(" via ", 1)[1].strip() for line in f if " via " in line)
    gathered = measured["logits_allgather_bytes"]
    return {"gpus": world, "us_per_allreduce": {f"{n} bf16 ({2 * n} bytes)": t for n, t in zip(sizes, times.values())},
            "logits_allgather": {"bytes": gathered, "us": measured["logits_allgather_us"],
                                 "gb_s": gathered / measured["logits_allgather_us"] / 1e3},
            "transport": sorted(via)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="qwen3-32b", choices=sorted(SHAPES))
    ap.add_argument("--ceilings")
    ap.add_argument("--seed", type=int, default=32)
    ap.add_argument("--layers", type=int, help="this many layers of the shape (a draft model)")
    ap.add_argument("--silent-from", type=int, help="o_proj and down_proj zero from this layer on (a draft's target)")
    args = ap.parse_args()
    if args.ceilings:
        gpus = [{"index": d, "name": torch.cuda.get_device_name(d), "copy_gbs": copy_bandwidth(d)} for d in range(torch.cuda.device_count())]
        ceilings = {"gpus": gpus}
        if len(gpus) > 1:
            ceilings["allreduce"] = allreduce_ceiling(len(gpus), SHAPES[args.shape]["hidden_size"], SHAPES[args.shape]["vocab_size"])
        with open(args.ceilings, "w") as f:
            json.dump(ceilings, f, indent=1)
        print(json.dumps(ceilings), flush=True)
    cfg = dict(SHAPES[args.shape], **({"num_hidden_layers": args.layers} if args.layers else {}))
    groups = shards(tensor_shapes(cfg))
    done = os.path.join(args.out, "model.safetensors.index.json")
    # What made the folder, kept in the index: a second call reuses it only when it asks for the same.
    recipe = {"shape": args.shape, "seed": args.seed, "layers": args.layers, "silent_from": args.silent_from}
    if os.path.exists(done):
        with open(done) as f:
            made = json.load(f).get("metadata", {}).get("recipe")
        if made is not None and made != recipe:
            sys.exit(f"{args.out} holds a checkpoint made with {made}, not {recipe}: remove the folder or name another")
        print(f"{args.out}: already written", flush=True)
        return
    os.makedirs(args.out, exist_ok=True)
    config_class = Qwen3MoeConfig if cfg.get("num_experts") else Qwen3Config
    config_class(**cfg, torch_dtype="bfloat16").to_json_file(os.path.join(args.out, "config.json"))
    t0 = time.perf_counter()
    weight_map = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(write_shard, args.out, i, len(groups), g, args.seed, args.silent_from) for i, g in enumerate(groups)]
        for j in jobs:
            file, names = j.result()
            weight_map.update(names)
            print(f"wrote {file}", flush=True)
    total = sum(2 * torch.Size(s).numel() for _, s in tensor_shapes(cfg))
    # The index last: its presence says the checkpoint is complete.
    with open(done, "w") as f:
        json.dump({"metadata": {"total_size": total, "recipe": recipe}, "weight_map": weight_map}, f, indent=1)
    print(f"{args.shape}: {total / 1e9:.1f} GB in {len(groups)} files, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
