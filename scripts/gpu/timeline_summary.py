#!/usr/bin/env python3
"""Where a replayed decode step's time goes, from the kernel timeline that the CUPTI injection
library writes (test/gpu/timeline/cupti_timeline.cpp; scripts/gpu/run.sh stage `timeline`).

Usage: timeline_summary.py kernels.csv [LABEL ...]

Every cudaGraphLaunch is one step (its kernels share a correlation id); each graph's last
REPLAYS launches are summarised, the graphs in capture order, named by the LABELs when given.
A kernel's role comes from its name and, for the linear kernels, its place in the layer: after a
decode attention kernel come o_proj, gate_up and down_proj; the next linear is the next layer's
qkv, or the LM head when no attention follows. Per role: kernels per step, the mean time from
its start to its end, and its exclusive time: the part of the step in which it is the kernel that
ends last among those started (under programmatic dependent launch a kernel starts while its
predecessor runs; the overlap counts for the predecessor). Gaps with no kernel running are
"idle". The exclusive times and idle add up to the step."""
import csv
import statistics
import sys
from collections import defaultdict

REPLAYS = 20
# The linear kernels (ours and cuBLASLt's: nvjet_*, cutlass, xmma), and the helpers that run
# before a GEMM (its activations normed / quantized) or after it (int8_sq's int32 epilogue,
# cuBLASLt's split-K reduction), named after the projection they serve.
LINEAR = ("linear_stream_kernel", "gemv_bf16_kernel", "linear_skinny_kernel", "linear_wo_tiled_kernel", "nvjet",
          "gemm", "cutlass", "xmma")
HELPERS_BEFORE = ("prologue_kernel", "row_block_kernel", "quantize_fp8_kernel", "quantize_int8_kernel",
                  "dequant_int4_kernel", "dequant_int8_kernel")
HELPERS_AFTER = ("dequant_int32_kernel", "splitKreduce")
ROLES_AFTER_ATTENTION = ("o_proj", "gate_up", "down_proj")


def category(name):
    for key, cat in (("qk_norm_rope", "q/k norm + RoPE + KV write"), ("attention_decode", "decode attention"),
                     ("split_reduce", "attention split merge"), ("embedding", "embedding"),
                     ("decode_persistent", "persistent step"), ("swiglu", "swiglu"), ("rmsnorm", "rmsnorm"),
                     ("sample", "sampling")):
        if key in name:
            return cat
    if any(k in name for k in HELPERS_BEFORE):
        return "helper before"
    if any(k in name for k in HELPERS_AFTER):
        return "helper after"
    if any(k in name for k in LINEAR):
        return "linear"
    return "other: " + name[:60]


def roles(kernels):
    """Names each kernel of one step (sorted by start) by what it computes."""
    out = []
    attn_left = sum(1 for k in kernels if category(k["name"]) == "decode attention")
    since_attention = None  # linears since the last attention kernel
    last = "qkv"  # the last linear's role
    for k in kernels:
        cat = category(k["name"])
        if cat == "decode attention":
            attn_left -= 1
            since_attention = 0
            out.append(cat)
        elif cat in ("linear", "helper before"):
            if since_attention is None:
                role = "qkv"
            elif since_attention < len(ROLES_AFTER_ATTENTION):
                role = ROLES_AFTER_ATTENTION[since_attention]
            else:
                role = "qkv" if attn_left > 0 else "lm_head"
            if cat == "linear":
                out.append(role)
                last = role
                if since_attention is not None:
                    since_attention += 1
            else:
                out.append(role + " (helper)")
        elif cat == "helper after":
            out.append(last + " (helper)")
        else:
            out.append(cat)
    return out


def step_table(kernels):
    kernels = sorted(kernels, key=lambda k: (k["start"], k["end"]))
    names = roles(kernels)
    excl = defaultdict(float)
    dur = defaultdict(list)
    idle = 0.0
    last_end = kernels[0]["start"]
    for k, role in zip(kernels, names):
        if k["start"] > last_end:
            idle += k["start"] - last_end
        excl[role] += max(0, k["end"] - max(k["start"], last_end))
        dur[role].append(k["end"] - k["start"])
        last_end = max(last_end, k["end"])
    span = last_end - kernels[0]["start"]
    return span, idle, excl, dur


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    labels = sys.argv[2:]
    launches = defaultdict(list)  # (graph, correlation) -> kernels
    with open(sys.argv[1]) as f:
        for row in csv.DictReader(f):
            if row["graph_id"] == "0":
                continue
            launches[(int(row["graph_id"]), int(row["correlation_id"]))].append(
                {"start": int(row["start_ns"]), "end": int(row["end_ns"]), "name": row["name"]})
    graphs = defaultdict(list)
    for (graph, corr), ks in launches.items():
        graphs[graph].append((corr, ks))
    for i, graph in enumerate(sorted(graphs)):
        steps = [ks for _, ks in sorted(graphs[graph])][-REPLAYS:]
        tables = [step_table(ks) for ks in steps]
        span = statistics.median(t[0] for t in tables) / 1e3
        idle = statistics.median(t[1] for t in tables) / 1e3
        label = labels[i] if i < len(labels) else "graph %d" % graph
        print("== %s: %d kernels per step, step %.1f us (median of %d replays), idle %.1f us" %
              (label, len(steps[-1]), span, len(steps), idle))
        roles_seen = []
        for t in tables:
            for r in t[2]:
                if r not in roles_seen:
                    roles_seen.append(r)
        print("  %-34s %7s %11s %13s %11s %7s" % ("role", "count", "mean us", "exclusive us", "per count", "share"))
        for r in roles_seen:
            ex = statistics.median(t[2].get(r, 0.0) for t in tables) / 1e3
            durs = [d for t in tables for d in t[3].get(r, [])]
            count = len(tables[-1][3].get(r, []))
            mean = statistics.mean(durs) / 1e3 if durs else 0.0
            print("  %-34s %7d %11.2f %13.1f %11.2f %6.1f%%" %
                  (r, count, mean, ex, ex / count if count else 0.0, 100.0 * ex / span if span else 0.0))
        print("  %-34s %7s %11s %13.1f %11s %6.1f%%" % ("idle (no kernel running)", "", "", idle, "",
                                                     100.0 * idle / span if span else 0.0))


if __name__ == "__main__":
    main()
