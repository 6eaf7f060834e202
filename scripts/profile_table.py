#!/usr/bin/env python3
"""Per-kernel GFLOP/s and share of the f32 peak from `ebm bench --profile --json` lines.

    ebm --device gpu bench --workload anatomy32 --iters 1 --profile --json > p.jsonl
    python3 scripts/profile_table.py p.jsonl --peak 66900 [--batch B --steps K --nf N]

Each profiled repeat is one sampling run (B chains, K Langevin steps) or one training
iteration (the same sampling plus the CD loss on 2B rows). The FLOPs a kernel did follow from
the net's per-layer forward FLOPs (`scripts/ebm_ref.py flops --verbose`, a multiply-add = 2):
  sampling: conv/linear forward and backward-data, each = layer FLOPs × B·K;
            the fused MLP chain = 2 × forward FLOPs × B·K;
  train:    forward = layer FLOPs × (B·K + 2B), backward-data = layer FLOPs × B·K plus, for
            every layer but the first, × 2B; backward-weight = layer FLOPs × 2B; where the
            fused MLP chain sampled (it is in the profile), the layers ran on the 2B rows only.
On the GPU the linear layers run on the conv products (as 1×1 convolutions of 1×1 images), so
there the conv2d_* kernels count the conv and the linear layers.
Kernels without a FLOP count (activations, pooling, the update) show time only.
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

DEFAULTS = {"toy2d": (1024, 20)}  # everything else: B = 100, K = 100


def layer_flops(workload, nf):
    ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ebm_ref.py")
    out = subprocess.run([sys.executable, ref, "flops", "--workload", workload, "--nf", str(nf), "--verbose"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["per_layer"]
    # (type, flops per sample) of every layer that multiplies, in the net's order.
    layers = [(r["type"], r["flops"]) for r in rows if r["flops"]]
    return layers, sum(r["flops"] for r in rows)


def kernel_flops(kernel, measure, layers, total, B, K, device, fused):
    # The tensor-core products (conv2d_*_coop) do the f32 kernels' work; the split-K sums
    # (conv2d_sum_*) only add partial products up. The 128-tile products (conv2d_*_wide) and
    # the thin input gradient (conv2d_backward_data_thin) share a product's layers with the
    # 64-tile ones: main() rates them together.
    if kernel.startswith("conv2d_sum"):
        return None
    kernel = product_of(kernel)
    if kernel.startswith("conv2d"):
        types = {"conv2d", "linear"} if device == "gpu" else {"conv2d"}
    elif kernel.startswith("linear"):
        types = {"linear"}
    else:
        types = set()
    if kernel == "mlp_langevin_chain":
        return 2 * total * B * K
    mine = [f for t, f in layers if t in types]
    if not mine:
        return None
    # The net's first layer gets no input gradient in training.
    every, first = sum(mine), (layers[0][1] if layers[0][0] in types else 0)
    if kernel.endswith("_bias"):
        return None
    sampled = 0 if fused else B * K  # rows the layers ran on while sampling
    if kernel.endswith("_forward"):
        return every * (sampled + (2 * B if measure == "train" else 0))
    if kernel.endswith("_backward_data"):
        return every * sampled + ((every - first) * 2 * B if measure == "train" else 0)
    if kernel.endswith("_backward_weight") or kernel.endswith("_backward_params"):
        return every * 2 * B if measure == "train" else None
    return None


def product_of(kernel):
    """The product a kernel computes, whatever its tiles: conv2d_forward for conv2d_forward_wide,
    conv2d_backward_data for conv2d_backward_data_thin (the thin inputs' share of it)."""
    return kernel.removesuffix("_coop").removesuffix("_wide").removesuffix("_thin")


def rate(f, seconds, peak):
    """GFLOP/s and share of the peak, formatted (blank where unknown)."""
    gf = f / seconds / 1e9 if f and seconds > 0 else None
    gfs = f"{gf:9.0f}" if gf else f"{'':>9}"
    share = f"{100 * gf / peak:7.1f}%" if gf and peak > 0 else f"{'':>8}"
    return gfs, share


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl")
    ap.add_argument("--peak", type=float, default=0.0, help="the device's f32 peak in GFLOP/s (0: no share)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--nf", type=int, default=64)
    args = ap.parse_args()
    groups = defaultdict(list)
    for line in open(args.jsonl):
        if line.startswith("{") and '"kernel"' in line:
            rec = json.loads(line)
            groups[(rec["workload"], rec.get("device", ""), rec["measure"])].append(rec)
    for (workload, device, measure), recs in groups.items():
        B, K = DEFAULTS.get(workload, (100, 100))
        B, K = args.batch or B, args.steps or K
        layers, total = layer_flops(workload, args.nf)
        fused = any(r["kernel"] == "mlp_langevin_chain" for r in recs)
        kernel_s = sum(r["seconds"] for r in recs)
        print(f"\n{workload} {measure} (B = {B}, K = {K}): {kernel_s * 1e3:.2f} ms in kernels, "
              f"{recs[0]['wall_seconds'] * 1e3:.2f} ms wall clock ({recs[0]['source']})")
        print(f"  {'kernel':<26} {'calls':>6} {'ms':>9} {'share':>6} {'GFLOP/s':>9} {'of peak':>8}")
        products = defaultdict(list)
        for r in recs:
            products[product_of(r["kernel"])].append(r)
        for r in sorted(recs, key=lambda r: -r["seconds"]):
            # A product split between 64- and 128-tile kernels has no FLOP count per kernel.
            alone = len(products[product_of(r["kernel"])]) == 1
            f = kernel_flops(r["kernel"], measure, layers, total, B, K, device, fused) if alone else None
            gfs, peak = rate(f, r["seconds"], args.peak)
            print(f"  {r['kernel']:<26} {r['calls']:>6} {r['seconds'] * 1e3:9.3f} {100 * r['share']:5.1f}% {gfs} {peak}")
        for product, rs in sorted(products.items()):
            if len(rs) > 1:
                seconds = sum(r["seconds"] for r in rs)
                f = kernel_flops(product, measure, layers, total, B, K, device, fused)
                gfs, peak = rate(f, seconds, args.peak)
                name = product + " (all)"
                calls = sum(r["calls"] for r in rs)
                share = sum(r["share"] for r in rs)
                print(f"  {name:<26} {calls:>6} {seconds * 1e3:9.3f} {100 * share:5.1f}% {gfs} {peak}")


if __name__ == "__main__":
    main()
