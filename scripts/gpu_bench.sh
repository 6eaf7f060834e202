#!/usr/bin/env bash
# One call on a GPU machine: GPU tests on real hardware, then `ebm bench` and ebm_ref.py
# side by side (JSON lines), the layer-by-layer toy2d chain and per-kernel profiles, the
# scaling tables (scripts/scaling.sh), the timed image demo, then the full-size toy2d
# training run on CPU and GPU with the same seed.
#
#   scripts/gpu_bench.sh                 # builds with cargo, reads ../shared/bench/ebm_ref.py
#   EBM_BIN=.devbin EBM_REF=.devbin/ebm_ref.py scripts/gpu_bench.sh   # prebuilt binaries
#
# EBM_BIN holds `ebm` and the test executables (tests/*); results go to $OUT (default
# bench-out/): bench.jsonl, tests.log, profile.txt, scaling-gpu.jsonl, images-gpu/,
# toy2d-{cpu,gpu}/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
REF=${EBM_REF:-../shared/bench/ebm_ref.py}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 700 "$XDG_RUNTIME_DIR"

if [ -n "${EBM_BIN:-}" ]; then
  BIN=$EBM_BIN
  TESTS=$(ls "$BIN"/tests/* 2>/dev/null)
else
  cargo build --release || exit 1
  BIN=target/release
  TESTS=$(cargo test --release --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("profile", {}).get("test") and m.get("executable"): print(m["executable"])')
fi

echo "== adapters" | tee "$OUT/info.txt"
"$BIN/ebm" info | tee -a "$OUT/info.txt"

echo "== GPU tests on this machine's adapter (CI=true: no adapter is a failure)"
status=0
for t in $TESTS; do
  echo "-- $(basename "$t")" | tee -a "$OUT/tests.log"
  CI=true EBM_DEVICE=gpu timeout "${TEST_TIMEOUT:-300}" "$t" 2>&1 | tee -a "$OUT/tests.log" |
    grep -E "^test result|FAILED|panicked|KL|error" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done

echo "== benchmarks (ebm, then PyTorch eager, then torch.compile)"
for w in toy2d anatomy32 mnist32; do
  "$BIN/ebm" --device gpu bench --workload "$w" --json | tee -a "$OUT/bench.jsonl"
  python3 "$REF" bench --workload "$w" --device cuda --json | tee -a "$OUT/bench.jsonl"
  python3 "$REF" bench --workload "$w" --device cuda --compile --json | tee -a "$OUT/bench.jsonl"
  # The CPU rows of the ConvNets use K = 10 so that they finish (chain-steps/s does not depend on K).
  cpu_steps=$([ "$w" = toy2d ] && echo 20 || echo 10)
  "$BIN/ebm" --device cpu bench --workload "$w" --steps "$cpu_steps" --json | tee -a "$OUT/bench.jsonl"
  python3 "$REF" bench --workload "$w" --device cpu --steps "$cpu_steps" --json | tee -a "$OUT/bench.jsonl"
done

echo "== toy2d layer by layer (--unfused) and per-kernel profiles, GPU"
"$BIN/ebm" --device gpu bench --workload toy2d --only sampling --unfused --json | tee -a "$OUT/bench.jsonl"
for w in toy2d anatomy32; do
  "$BIN/ebm" --device gpu bench --workload "$w" --iters 3 --profile | tee -a "$OUT/profile.txt"
done
"$BIN/ebm" --device gpu bench --workload toy2d --only sampling --unfused --iters 3 --profile |
  tee -a "$OUT/profile.txt"

echo "== scaling: chain-steps/s against B and K, GPU vs PyTorch CUDA"
EBM_BIN="$BIN" EBM_REF="$REF" OUT="$OUT" scripts/scaling.sh gpu | tail -40

echo "== mnist32 image demo on the GPU (full width n_f = 64), timed"
"$BIN/ebm" --device gpu train images --spec mnist32 --iters "${IMAGE_ITERS:-1000}" --plot-every 250 \
  --quiet --out "$OUT/images-gpu" 2>&1 | tail -3

echo "== toy2d 8gaussians, full size, same seed on CPU and GPU"
for d in cpu gpu; do
  "$BIN/ebm" --device $d train toy2d --quiet --log-every 500 --out "$OUT/toy2d-$d" 2>&1 | tail -2
done
python3 - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
last = {d: list(csv.DictReader(open(f"{out}/toy2d-{d}/metrics.csv")))[-1] for d in ("cpu", "gpu")}
for d, row in last.items():
    print(f"{d}: iter {row['iter']} KL {float(row['kl']):.4f} loss {float(row['loss']):+.4f} {float(row['it_per_s']):.1f} it/s")
print(f"|KL_gpu - KL_cpu| = {abs(float(last['gpu']['kl']) - float(last['cpu']['kl'])):.4f}")
PY
exit $status
