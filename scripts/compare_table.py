#!/usr/bin/env python3
"""Median ratio of ebm to PyTorch, with its range, from the JSON lines of scripts/compare.sh.

    python3 scripts/compare_table.py bench.jsonl [--markdown]

Each line is one measurement tagged with its `round` and `variant` (`ebm`, or the PyTorch
setting: fp32, tf32, compile). Within a round, ratio = ebm rate / PyTorch rate (chain-steps/s
for sampling, it/s for training, higher is better); over the rounds, the median and the range
(min–max) of those ratios. Ratios are paired per round, so drift between rounds cancels.
"""
import json
import statistics
import sys
from collections import defaultdict


def rate(rec):
    return rec["chain_steps_per_s"] if rec["measure"] == "sampling" else rec["train_iters_per_s"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in sys.argv
    if len(args) != 1:
        sys.exit(__doc__)
    rows = defaultdict(dict)  # (workload, measure, batch, steps) -> {(round, variant): rate}
    devices = {}
    for line in open(args[0]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        key = (rec["workload"], rec["measure"], rec["batch"], rec["steps"])
        rows[key][(rec["round"], rec["variant"])] = rate(rec)
        devices.setdefault(rec["variant"], rec.get("device_name", "?"))
    out = []
    for (w, m, b, k), rates in rows.items():
        rounds = sorted({r for r, _ in rates})
        variants = sorted({v for _, v in rates if v != "ebm"})
        unit = "chain-steps/s" if m == "sampling" else "it/s"
        for v in variants:
            pairs = [(rates[(r, "ebm")], rates[(r, v)]) for r in rounds if (r, "ebm") in rates and (r, v) in rates]
            if not pairs:
                continue
            ratios = [e / t for e, t in pairs]
            med = statistics.median(ratios)
            out.append(dict(workload=w, measure=m, batch=b, steps=k, variant=v, unit=unit, rounds=len(pairs),
                            ebm=statistics.median(e for e, _ in pairs), torch=statistics.median(t for _, t in pairs),
                            ratio=med, lo=min(ratios), hi=max(ratios), per_round=ratios))
    if markdown:
        print("| workload | measure | B | K | PyTorch | rounds | ebm (median) | PyTorch (median) | ratio: median [range] |")
        print("|---|---|---:|---:|---|---:|---:|---:|---|")
        for o in out:
            print(f"| {o['workload']} | {o['measure']} | {o['batch']} | {o['steps']} | {o['variant']} | {o['rounds']} | "
                  f"{o['ebm']:.4g} {o['unit']} | {o['torch']:.4g} | **{o['ratio']:.2f}×** [{o['lo']:.2f}–{o['hi']:.2f}] |")
    else:
        for o in out:
            per = " ".join(f"{r:.2f}" for r in o["per_round"])
            print(f"{o['workload']:>12} {o['measure']:8} B={o['batch']} K={o['steps']} vs {o['variant']:7} "
                  f"ebm {o['ebm']:.4g} / torch {o['torch']:.4g} {o['unit']}: ratio {o['ratio']:.2f}x "
                  f"[{o['lo']:.2f}-{o['hi']:.2f}] over {o['rounds']} rounds ({per})")
    for v, d in sorted(devices.items()):
        print(f"# {v}: {d}", file=sys.stderr)


if __name__ == "__main__":
    main()
