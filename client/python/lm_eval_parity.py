"""lm-evaluation-harness against a grpst server, and against Hugging Face transformers on the same
checkpoint: the same three request kinds lm-eval sends to vLLM (loglikelihood of choices,
loglikelihood_rolling, generate_until), each scored both ways on the same documents.

    python lm_eval_parity.py --base-url http://127.0.0.1:9997 --model qwen3 --checkpoint DIR

lm-eval runs twice, as a user runs it: `--model local-completions` (the server's /v1/completions,
tokenizer_backend=huggingface on the checkpoint folder) and `--model hf` (transformers, fp32, CPU).
The tasks are local (a JSON-lines file written here), so no dataset is downloaded. Prints one JSON
line; exits 1 when a loglikelihood differs by more than --tolerance or fewer than --min-same
greedy answers match. Needs `pip install -r requirements-lm-eval.txt` (lm-eval pulls in torch).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

TASKS = {
    "grpst_mc": {"output_type": "multiple_choice", "doc_to_text": "{{question}}\nAnswer:", "doc_to_choice": "{{choices}}",
                 "doc_to_target": "{{label}}", "metric_list": [{"metric": "acc"}]},
    "grpst_ppl": {"output_type": "loglikelihood_rolling", "doc_to_text": "{{question}} {{answer}}",
                  "doc_to_target": "{{question}} {{answer}}", "metric_list": [{"metric": "word_perplexity"}]},
    "grpst_gen": {"output_type": "generate_until", "doc_to_text": "{{question}}\nAnswer:", "doc_to_target": "{{answer}}",
                  "generation_kwargs": {"until": ["\n"], "max_gen_toks": 8, "do_sample": False},
                  "metric_list": [{"metric": "exact_match"}]},
}


def write_tasks(folder: str, docs: int) -> None:
    data = os.path.join(folder, "data.jsonl")
    with open(data, "w") as f:
        for i in range(docs):
            f.write(json.dumps({"question": f"Question {i}: what is {i} plus {i}?", "choices": [str(2 * i), str(2 * i + 1), str(i), "zero"],
                                "label": 0, "answer": str(2 * i)}) + "\n")
    for name, spec in TASKS.items():
        task = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": data}}, "test_split": "test", **spec}
        # JSON is YAML: lm-eval reads these task files with its YAML loader.
        with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
            json.dump(task, f)


def run_lm_eval(folder: str, out: str, model: str, model_args: str, extra: List[str]) -> None:
    cmd = [sys.executable, "-m", "lm_eval", "--model", model, "--model_args", model_args, "--tasks", ",".join(TASKS),
           "--include_path", folder, "--log_samples", "--output_path", out, *extra]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"lm_eval --model {model} failed with exit code {r.returncode}")


def samples(out: str, task: str) -> List[Dict[str, Any]]:
    files = glob.glob(os.path.join(out, "**", f"samples_{task}_*.jsonl"), recursive=True)
    if len(files) != 1:
        raise SystemExit(f"expected one samples file for {task} under {out}, found {len(files)}")
    with open(files[0]) as f:
        return sorted((json.loads(line) for line in f), key=lambda r: r["doc_id"])


def loglikelihoods(sample: Dict[str, Any]) -> List[float]:
    # multiple_choice: [[ll, is_greedy]] per choice; loglikelihood_rolling: [ll] per document.
    return [float(r[0][0] if isinstance(r[0], list) else r[0]) for r in sample["resps"]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:9997")
    p.add_argument("--model", default="qwen3", help="the model id the server serves")
    p.add_argument("--checkpoint", required=True, help="the checkpoint folder the server serves (tokenizer and transformers reference)")
    p.add_argument("--docs", type=int, default=12)
    p.add_argument("--tolerance", type=float, default=0.15, help="largest |difference| of a loglikelihood (a sum over its tokens)")
    p.add_argument("--min-same", type=float, default=0.8, help="share of greedy answers that must be identical (near-ties may differ)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="grpst-lm-eval-") as tmp:
        write_tasks(tmp, a.docs)
        api, hf = os.path.join(tmp, "out-api"), os.path.join(tmp, "out-hf")
        run_lm_eval(tmp, api, "local-completions",
                    f"model={a.model},base_url={a.base_url.rstrip('/')}/v1/completions,tokenizer_backend=huggingface,"
                    f"tokenizer={a.checkpoint},num_concurrent=4,max_length=512", [])
        run_lm_eval(tmp, hf, "hf", f"pretrained={a.checkpoint},dtype=float32", ["--device", "cpu"])
        summary: Dict[str, Any] = {"docs": a.docs}
        ok = True
        for task in ("grpst_mc", "grpst_ppl"):
            pairs = [(x, y) for s, t in zip(samples(api, task), samples(hf, task)) for x, y in zip(loglikelihoods(s), loglikelihoods(t))]
            worst = max(abs(x - y) for x, y in pairs)
            summary[task] = {"loglikelihoods": len(pairs), "max_abs_diff": round(worst, 4)}
            ok = ok and len(pairs) > 0 and worst <= a.tolerance
        gen = list(zip(samples(api, "grpst_gen"), samples(hf, "grpst_gen")))
        same = sum(s["resps"][0][0] == t["resps"][0][0] for s, t in gen)
        summary["grpst_gen"] = {"answers": len(gen), "identical": same}
        ok = ok and len(gen) > 0 and same >= a.min_same * len(gen)
        summary["ok"] = ok
        print(json.dumps(summary))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
