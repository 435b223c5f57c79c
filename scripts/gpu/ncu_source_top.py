#!/usr/bin/env python3
"""Prints where a kernel's warps stall, from Nsight Compute's source page:
    ncu -i REPORT.ncu-rep --page source --csv --print-source cuda,sass > source.csv
    python3 scripts/gpu/ncu_source_top.py source.csv [N]
The N source lines (or, for a SASS-only page, instructions) with the most warp-stall samples,
each with its share of all samples and its largest stall reasons; then the shares per reason."""
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head = next(r for r in rows if any("Sampling (All" in c for c in r))
    samples = next(i for i, c in enumerate(head) if "Sampling (All" in c)
    reasons = [i for i, c in enumerate(head) if c.startswith("stall_") and "Not Issued" not in c]
    by_line = head[0] == "Line No"  # cuda,sass: one section per source file, SASS rows unnumbered
    entries, current = {}, ""
    for r in rows:
        if len(r) == 2 and r[0] == "File Path":
            current = r[1].split("/")[-1]
            continue
        if len(r) != len(head) or r is head or r[0] == head[0]:
            continue
        if by_line and not r[0]:
            continue
        key = f"{current}:{r[0]}  {r[1].strip()[:80]}" if by_line else f"{r[0]}  {r[1].strip()[:80]}"
        acc = entries.setdefault(key, [0.0] * len(head))
        for i in [samples] + reasons:
            acc[i] += number(r[i])
    total = sum(v[samples] for v in entries.values()) or 1
    print(f"{len(entries)} {'source lines' if by_line else 'instructions'}, {total:.0f} stall samples")
    for key, v in sorted(entries.items(), key=lambda kv: -kv[1][samples])[:top]:
        parts = sorted(((v[i], head[i]) for i in reasons), reverse=True)[:3]
        why = ", ".join(f"{name} {x:.0f}" for x, name in parts if x > 0)
        print(f"{100 * v[samples] / total:5.1f}%  {key:<100}  {why}")
    sums = sorted(((sum(v[i] for v in entries.values()), head[i]) for i in reasons), reverse=True)
    print("per reason: " + ", ".join(f"{name} {100 * x / total:.1f}%" for x, name in sums if x > 0))


if __name__ == "__main__":
    main()
