#!/usr/bin/env python3
"""Markdown tables from the JSON lines of scripts/scaling.sh (ebm and ebm_ref.py rows).

For each workload: chain-steps/s against B at the K used most, then against K at the B used
most; one column per engine and the ratio ebm / PyTorch.
"""
import json
import sys
from collections import Counter, defaultdict


def engine(row):
    if row.get("engine") == "ebm":
        return "ebm"
    return "torch.compile" if row.get("compile") else "PyTorch"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    rows = [r for r in rows if r.get("measure") == "sampling"]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == workload]
        table = defaultdict(dict)
        for r in mine:
            table[(r["batch"], r["steps"])][engine(r)] = r["chain_steps_per_s"]
        ks = Counter(k for _, k in table)
        bs = Counter(b for b, _ in table)
        engines = list(dict.fromkeys(engine(r) for r in mine))
        device = next((r.get("device_name") for r in mine if r.get("engine") == "ebm"), "?")
        for axis, fixed_name, fixed in (("B", "K", ks.most_common(1)[0][0]),
                                        ("K", "B", bs.most_common(1)[0][0])):
            keys = sorted(key for key in table if key[1 if axis == "B" else 0] == fixed)
            if len(keys) < 2:
                continue
            print(f"\n{workload}, {fixed_name} = {fixed}, chain-steps/s ({device}):\n")
            print(f"| {axis} | " + " | ".join(engines) + " | ebm / PyTorch |")
            print("|---:|" + "---:|" * (len(engines) + 1))
            for key in keys:
                vals = table[key]
                cells = [f"{vals[e]:.3g}" if e in vals else "—" for e in engines]
                ratio = (f"{vals['ebm'] / vals['PyTorch']:.2f}×"
                         if "ebm" in vals and "PyTorch" in vals else "—")
                print(f"| {key[0] if axis == 'B' else key[1]} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
