#!/usr/bin/env bash
# Scaling tables: sampling chain-steps/s against the number of chains B (1 to 4096) and
# against K, for toy2d and anatomy32, ebm beside ebm_ref.py on the same device.
#
#   scripts/scaling.sh cpu            # ebm --device cpu vs PyTorch CPU
#   scripts/scaling.sh gpu            # ebm --device gpu vs PyTorch CUDA (eager)
#   EBM_BIN=.devbin EBM_REF=.devbin/ebm_ref.py scripts/scaling.sh gpu
#
# Writes JSON lines to $OUT/scaling-<device>.jsonl (OUT defaults to bench-out/) and prints
# the markdown tables (scripts/scaling_table.py). ConvNet rows use small K on the CPU so the
# sweep ends in minutes; chain-steps/s hardly depends on K (the K table shows how much).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cpu}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
BIN=${EBM_BIN:-target/release}
REF=${EBM_REF:-scripts/ebm_ref.py}
ITERS=${ITERS:-3}
JSONL="$OUT/scaling-$DEVICE.jsonl"
: >"$JSONL"
[ -n "${EBM_BIN:-}" ] || cargo build --release || exit 1
TORCH_DEVICE=$([ "$DEVICE" = gpu ] && echo cuda || echo cpu)

both() { # workload batch steps
  "$BIN/ebm" --device "$DEVICE" bench --workload "$1" --batch "$2" --steps "$3" \
    --only sampling --iters "$ITERS" --json | tee -a "$JSONL"
  python3 "$REF" bench --workload "$1" --batch "$2" --steps "$3" --device "$TORCH_DEVICE" \
    --only sampling --iters "$ITERS" --json | tee -a "$JSONL"
}

if [ "$DEVICE" = gpu ]; then conv_k=20; conv_batches="1 4 16 64 256 1024 4096"; else
  conv_k=2; conv_batches="1 4 16 64 256 1024"; fi
for b in 1 4 16 64 256 1024 4096; do both toy2d "$b" 20; done
for k in 1 5 20 50 100; do both toy2d 1024 "$k"; done
for b in $conv_batches; do both anatomy32 "$b" "$conv_k"; done
for k in 1 5 20; do both anatomy32 100 "$k"; done
python3 scripts/scaling_table.py "$JSONL"
