#!/usr/bin/env bash
# Issue 13 on a GPU machine, in one short call: the generator families' tests on the real
# adapter (CI=true, EBM_DEVICE=gpu: the PyTorch goldens of one coop and one latent-EBM
# iteration, two-net resume) and a full-width (n_f = 64) cooperative MNIST run for
# RUN_SECONDS, with its pictures and metrics under $OUT.
#
#   scripts/gpu_coop.sh                      # builds with cargo if EBM_BIN is unset
#   EBM_BIN=.devbin scripts/gpu_coop.sh      # `ebm` and tests/generators built elsewhere
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out/gpu-coop}
RUN_SECONDS=${RUN_SECONDS:-240}
W=$(mktemp -d)
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 700 "$XDG_RUNTIME_DIR"
if [ -n "${EBM_BIN:-}" ]; then
  BIN=$EBM_BIN
  TEST=$BIN/tests/generators
  # The tests find their goldens at the path they were compiled in.
  if [ -f "$BIN/build_root" ]; then
    ROOT=$(cat "$BIN/build_root")
    if [ "$ROOT" != "$PWD" ] && [ ! -e "$ROOT" ]; then mkdir -p "$(dirname "$ROOT")" && ln -s "$PWD" "$ROOT"; fi
  fi
else
  cargo build --release || exit 1
  BIN=target/release
  TEST=$(cargo test --release --test generators --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p')
fi
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! "$BIN/ebm" info 2>/dev/null | grep -q "hardware" && [ -f "$NV_ICD" ]; then
  export VK_DRIVER_FILES=$NV_ICD
fi
LOG=$OUT/log.txt
"$BIN/ebm" info 2>&1 | head -3 | tee "$LOG"
echo "== tests/generators on the GPU" | tee -a "$LOG"
CI=true EBM_DEVICE=gpu timeout 120 "$TEST" 2>&1 | grep -E "^test |test result" | tee -a "$LOG"
DATA=data/mnist/train-images-idx3-ubyte.gz
[ -f "$DATA" ] || DATA=data/mnist-subset/train-images-idx3-ubyte.gz
echo "== coop on MNIST ($DATA), n_f = 64, K = 20, $RUN_SECONDS s" | tee -a "$LOG"
timeout "$RUN_SECONDS" "$BIN/ebm" --device gpu train images --objective coop --nf 64 --steps 20 \
  --data "$DATA" --iters 100000 --log-every 25 --plot-every 100 --ckpt-every 100 --quiet \
  --out "$W/coop" 2>&1 | tail -40 | tee -a "$LOG"
for f in generator.png revised.png metrics.csv; do cp "$W/coop/$f" "$OUT/coop-$f" 2>/dev/null; done
echo "== done" | tee -a "$LOG"
