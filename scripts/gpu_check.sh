#!/usr/bin/env bash
# The GPU check: one short call on a machine with a GPU, everything it measures under $OUT.
#
#   scripts/gpu_check.sh                      # builds with cargo if EBM_BIN is unset
#   EBM_BIN=.devbin scripts/gpu_check.sh      # binaries built elsewhere (scripts/prepare_devbin.sh)
#   EBM_BIN=.devpack/devbin.tar.xz scripts/gpu_check.sh   # the same, packed (unpacked to .devbin/)
#
# Each section is skipped once BUDGET seconds (default 420) have passed, and each workload's
# comparison gets a deadline, so the call ends on time whatever the machine is like. The
# most wanted first:
#   1. `ebm info`, the driver and PyTorch's view of the GPU, the device's f32 peak;
#   2. every test executable with CI=true and EBM_DEVICE=gpu (a missing adapter fails);
#   3. ebm against PyTorch eager fp32 (TF32 off) and PyTorch's default TF32 convolutions,
#      alternating over ROUNDS rounds (scripts/compare.sh), on toy2d (and its sampling with
#      --mlp-chain-group 4 against fp32) and anatomy32;
#   4. per-kernel profiles of toy2d (also with --mlp-chain-group 4) and anatomy32, with each
#      conv kernel's GFLOP/s and its share of the f32 peak (scripts/profile_table.py),
#      anatomy32 also with --conv-tiles auto (each product timed on 64×64 and 128×128 tiles,
#      both times listed) and on tensor cores, and its sampling with the image's gradient on
#      its own kernel and on the tiles (EBM_THIN_INPUTS, 5 alternating rounds); then anatomy32
#      with --conv-tiles auto against PyTorch;
#   5. a 300-iteration full-width (n_f = 64) MNIST demo on the GPU, with its picture;
#   6. the MNIST demo again with the conv products on tensor cores (--tensor-cores), beside
#      the f32 run's metrics and picture; the toy2d demo in f32 and on tensor cores (its
#      linear layers), their final KLs; anatomy32 on tensor cores against PyTorch;
#   7. the same comparison on mnist32 and resnet32 (where the build has it);
#   8. torch.compile on toy2d (one round: it compiles for a minute);
#   9. the samplers' chain-steps/s (ULA, MALA, HMC, annealed) on the shipped toy model and
#      an AIS log Z (kernels unchanged since they were last measured).
# $OUT gets summary.txt (all the tables), the demo's sample grid, and gpu-check.tar.gz with
# every log and JSON line (the device tool brings back at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET=${BUDGET:-420}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-bench-out/gpu-check}
REF=${EBM_REF:-scripts/ebm_ref.py}
W=$(mktemp -d)   # the working folder: logs, JSON lines, the demo run
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 700 "$XDG_RUNTIME_DIR"
SUMMARY=$W/summary.txt
finish() { cp "$SUMMARY" "$OUT/summary.txt" 2>/dev/null; tar czf "$OUT/gpu-check.tar.gz" -C "$W" --exclude='*.safetensors' . 2>/dev/null; }
trap finish EXIT
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - (SECONDS - START))); }
section() {  # section NAME SECONDS_NEEDED: false (and a note) when the budget is spent
  if [ "$(left)" -lt "$2" ]; then
    say "== $1: skipped, $(left) s of the budget left (needs ~$2 s)"
    return 1
  fi
  say ""
  say "== $1 ($((SECONDS - START)) s in)"
}

if [ -f "${EBM_BIN:-}" ]; then   # a packed .devbin (prepare_devbin.sh)
  rm -rf .devbin && mkdir -p .devbin && tar xJf "$EBM_BIN" -C .devbin || exit 1
  EBM_BIN=.devbin
fi
if [ -n "${EBM_BIN:-}" ]; then
  BIN=$EBM_BIN
  # Tests find the repo and the CLI at the paths they were compiled with: make those paths
  # point here when the binaries were built in another checkout.
  if [ -f "$BIN/build_root" ]; then
    ROOT=$(cat "$BIN/build_root")
    if [ "$ROOT" != "$PWD" ] && [ ! -e "$ROOT" ]; then
      mkdir -p "$(dirname "$ROOT")" && ln -s "$PWD" "$ROOT"
    fi
    mkdir -p target/release && ln -sf "$PWD/$BIN/ebm" target/release/ebm
  fi
  TESTS=$(ls "$BIN"/tests/* 2>/dev/null)
else
  cargo build --release || exit 1
  BIN=target/release
  TESTS=$(cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("profile", {}).get("test") and m.get("executable"): print(m["executable"])')
fi

# A container whose NVIDIA driver is mounted outside the loader's search path (as on the
# machines this was first run on): point the Vulkan loader at its ICD file.
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! "$BIN/ebm" info 2>/dev/null | grep -q "hardware" && [ -f "$NV_ICD" ]; then
  export VK_DRIVER_FILES=$NV_ICD
fi
section "device" 0
"$BIN/ebm" info 2>&1 | tee "$W/info.txt" | tee -a "$SUMMARY" | head -40
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv 2>&1 | tee -a "$SUMMARY"
# The f32 peak: SMs × 128 f32 lanes × 2 FLOP (an FMA) × the highest SM clock.
PEAK=$(python3 - <<'PY' 2>/dev/null
import subprocess, torch
p = torch.cuda.get_device_properties(0)
mhz = float(subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True).stdout.split()[0])
print(f"{p.multi_processor_count * 128 * 2 * mhz * 1e6 / 1e9:.0f}")
PY
)
PEAK=${PEAK:-0}
say "torch $(python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' 2>&1); f32 peak $PEAK GFLOP/s"

if section "GPU tests (CI=true, EBM_DEVICE=gpu, 4 executables at a time)" 60; then
  export CI=true EBM_DEVICE=gpu
  printf '%s\n' $TESTS | xargs -P 4 -I{} sh -c \
    'n=$(basename {}); timeout ${TEST_TIMEOUT:-150} {} >"$0/test-$n.log" 2>&1; echo "$n exit $?" >>"$0/tests.txt"' "$W"
  unset CI EBM_DEVICE
  sort "$W/tests.txt" | tee -a "$SUMMARY"
  grep -h "^test result" "$W"/test-*.log | awk '{p+=$4; f+=$6; i+=$8} END {print "passed", p, "failed", f, "ignored", i}' |
    tee -a "$SUMMARY"
  grep -h -B2 -A12 "panicked" "$W"/test-*.log | head -80 | tee -a "$SUMMARY"
fi

compare() {  # ebm vs PyTorch eager fp32 and TF32 on one workload, ROUNDS alternating rounds
  if section "ebm vs PyTorch on $1, GPU, $ROUNDS alternating rounds" 45; then
    # Each workload gets at most its share of what is left, so a slow one cannot eat the rest.
    DEADLINE=$(( $(date +%s) + $(left) / ${2:-2} )) ITERS=${ITERS:-2} \
    DEVICE=gpu ROUNDS=$ROUNDS VARIANTS="fp32 tf32" EBM_BIN=$BIN EBM_REF=$REF JSONL=$W/bench-$1.jsonl \
      scripts/compare.sh "$1" 2>>"$W/bench.err" | tee -a "$SUMMARY"
  fi
}
# Most wanted first: the budget cuts from the end.
compare toy2d 4
if section "toy2d with --mlp-chain-group 4 vs PyTorch, $ROUNDS alternating rounds" 30; then
  # The fused chain with 4 chains a workgroup: 256 workgroups for the 1024 chains, not 128.
  DEADLINE=$(( $(date +%s) + $(left) / 6 )) ITERS=${ITERS:-2} EBM_MLP_CHAIN_GROUP=4 \
  DEVICE=gpu ROUNDS=$ROUNDS VARIANTS="fp32" EBM_BIN=$BIN EBM_REF=$REF JSONL=$W/bench-toy2d-chain-group-4.jsonl \
    scripts/compare.sh toy2d --only sampling 2>>"$W/bench.err" | tee -a "$SUMMARY"
fi
compare anatomy32 3

if section "per-kernel profiles (GPU timestamps); anatomy32 again on tensor cores" 25; then
  for w in toy2d anatomy32; do
    timeout $(( $(left) / 3 + 1 )) "$BIN/ebm" --device gpu bench --workload "$w" --iters 1 --warmup 0 --profile --json \
      >>"$W/profile.jsonl" 2>>"$W/bench.err"
  done
  timeout $(( $(left) / 3 + 1 )) "$BIN/ebm" --mlp-chain-group 4 --device gpu bench --workload toy2d --iters 1 \
    --warmup 0 --only sampling --profile --json >>"$W/profile-chain-group-4.jsonl" 2>>"$W/bench.err"
  python3 scripts/profile_table.py "$W/profile.jsonl" --peak "$PEAK" | tee -a "$SUMMARY"
  say "toy2d with --mlp-chain-group 4:"
  python3 scripts/profile_table.py "$W/profile-chain-group-4.jsonl" --peak "$PEAK" | tee -a "$SUMMARY"
  # --conv-tiles auto: every product timed on 64×64 and on 128×128 tiles (conv2d_wide.wgsl),
  # both times listed ("conv tiles:" lines), the faster kept; then the profile with them.
  timeout $(( $(left) / 3 + 1 )) "$BIN/ebm" --conv-tiles auto --device gpu bench --workload anatomy32 --iters 1 \
    --warmup 1 --profile --json >"$W/profile-conv-tiles-auto.jsonl" 2>"$W/conv-tiles-auto.err"
  grep "^conv tiles:" "$W/conv-tiles-auto.err" | tee -a "$SUMMARY"
  python3 scripts/profile_table.py "$W/profile-conv-tiles-auto.jsonl" --peak "$PEAK" | tee -a "$SUMMARY"
  timeout $(( $(left) / 3 + 1 )) "$BIN/ebm" --tensor-cores --device gpu bench --workload anatomy32 --iters 1 --warmup 0 \
    --profile --json >"$W/profile-tensor-cores.jsonl" 2>>"$W/bench.err"
  python3 scripts/profile_table.py "$W/profile-tensor-cores.jsonl" --peak "$PEAK" | tee -a "$SUMMARY"
  # The gradient into the 3-channel image on its own kernel (conv2d_thin.wgsl, the default)
  # or on the tiles (EBM_THIN_INPUTS=tiles): anatomy32 sampling alternated over 5 rounds,
  # then the profile on the tiles (the one above is on the kernel).
  for r in 1 2 3 4 5; do
    for v in kernel tiles; do
      EBM_THIN_INPUTS=$v timeout $(( $(left) / 10 + 1 )) "$BIN/ebm" --device gpu bench --workload anatomy32 \
        --iters 2 --warmup 1 --only sampling 2>>"$W/bench.err" | sed "s/^/thin inputs on the $v, round $r: /" |
        tee -a "$SUMMARY"
    done
  done
  EBM_THIN_INPUTS=tiles timeout $(( $(left) / 3 + 1 )) "$BIN/ebm" --device gpu bench --workload anatomy32 --iters 1 \
    --warmup 0 --only sampling --profile --json >"$W/profile-thin-tiles.jsonl" 2>>"$W/bench.err"
  say "anatomy32 sampling with the thin inputs' gradient on the tiles:"
  python3 scripts/profile_table.py "$W/profile-thin-tiles.jsonl" --peak "$PEAK" | tee -a "$SUMMARY"
fi

if section "anatomy32 with --conv-tiles auto vs PyTorch, $ROUNDS alternating rounds" 45; then
  DEADLINE=$(( $(date +%s) + $(left) / 4 )) ITERS=${ITERS:-2} EBM_CONV_TILES=auto \
  DEVICE=gpu ROUNDS=$ROUNDS VARIANTS="fp32 tf32" EBM_BIN=$BIN EBM_REF=$REF JSONL=$W/bench-conv-tiles-auto.jsonl \
    scripts/compare.sh anatomy32 2>>"$W/bench.err" | tee -a "$SUMMARY"
fi

mnist_demo() {  # mnist_demo RUN_NAME PICTURE_NAME [EBM_FLAGS…]: the 300-iteration demo, its grid to $OUT
  local run=$1 picture=$2 t0=$SECONDS
  shift 2
  timeout "$(( $(left) > 10 ? $(left) - 5 : 5 ))" "$BIN/ebm" "$@" --device gpu train images --spec mnist32 \
    --nf 64 --iters 300 --plot-every 300 --quiet --out "$W/$run" >"$W/$run.log" 2>&1
  say "exit $? after $((SECONDS - t0)) s: $(tail -2 "$W/$run.log" | tr '\n' ' ')"
  grid=$(ls "$W/$run"/samples_*.png 2>/dev/null | tail -1)
  [ -n "$grid" ] && cp "$grid" "$OUT/$picture"
}

if section "MNIST demo, n_f = 64, 300 iterations, GPU" 40; then
  mnist_demo mnist mnist-gpu-samples.png
  tail -1 "$W/mnist/metrics.csv" 2>/dev/null | tee -a "$SUMMARY"
  [ -f "$W/mnist/replay.png" ] && cp "$W/mnist/replay.png" "$OUT/mnist-gpu-replay.png"
fi

if section "MNIST demo on tensor cores (--tensor-cores), the same 300 iterations" 40; then
  # The tensor-core path's effect on training: the same run as above, f16 conv operands.
  mnist_demo mnist-tc mnist-gpu-tensor-cores-samples.png --tensor-cores
  say "f32:          $(tail -1 "$W/mnist/metrics.csv" 2>/dev/null)"
  say "tensor cores: $(tail -1 "$W/mnist-tc/metrics.csv" 2>/dev/null)"
fi

if section "toy2d demo (8gaussians, 3000 iterations), f32 and on tensor cores" 40; then
  # The toy demo's training on tensor cores: its linear layers run on the conv products, so
  # with --tensor-cores their forward and input gradient take f16 operands (the fused
  # sampling chain stays f32). The final KL to the data beside the f32 run's.
  for v in f32 tensor-cores; do
    flag=""; [ "$v" = tensor-cores ] && flag=--tensor-cores
    t0=$SECONDS
    timeout "$(( $(left) > 10 ? $(left) / 2 : 5 ))" "$BIN/ebm" $flag --device gpu train toy2d \
      --dataset 8gaussians --quiet --out "$W/toy2d-$v" >"$W/toy2d-$v.log" 2>&1
    say "$v: exit $? after $((SECONDS - t0)) s: $(tail -1 "$W/toy2d-$v.log")"
  done
fi

if section "anatomy32 on tensor cores (--tensor-cores) vs PyTorch, $ROUNDS alternating rounds" 45; then
  DEADLINE=$(( $(date +%s) + $(left) / 3 )) ITERS=${ITERS:-2} EBM_TENSOR_CORES=on \
  DEVICE=gpu ROUNDS=$ROUNDS VARIANTS="fp32 tf32" EBM_BIN=$BIN EBM_REF=$REF JSONL=$W/bench-tensor-cores.jsonl \
    scripts/compare.sh anatomy32 2>>"$W/bench.err" | tee -a "$SUMMARY"
fi
compare mnist32 3
"$BIN/ebm" bench --workload resnet32 --nf 1 --batch 1 --steps 1 --iters 1 --only sampling >/dev/null 2>&1 &&
  compare resnet32 2
if section "toy2d vs torch.compile (one round: compiling takes a minute)" 90; then
  DEADLINE=$(( $(date +%s) + $(left) )) DEVICE=gpu ROUNDS=1 ITERS=5 VARIANTS=compile EBM_BIN=$BIN EBM_REF=$REF JSONL=$W/compile.jsonl \
    scripts/compare.sh toy2d 2>>"$W/bench.err" | tee -a "$SUMMARY"
fi

if section "samplers on the GPU: ULA (fused), MALA, HMC L=5, annealed; AIS" 25; then
  M=tests/golden/toy2d-8gaussians-trained.safetensors
  for s in ula mala hmc annealed; do
    timeout 60 "$BIN/ebm" --device gpu sample --model "$M" --n 10000 --steps 200 --sampler "$s" \
      --leapfrog 5 --step-size 0.1 --out "$W/samples-$s.safetensors" 2>&1 | grep -E "chain-steps|acceptance" |
      sed "s/^/$s: /" | tee -a "$SUMMARY"
  done
  timeout 60 "$BIN/ebm" --device gpu eval loglik --model "$M" --data 8gaussians 2>&1 | tee -a "$SUMMARY"
fi

say ""
say "== done in $((SECONDS - START)) s"
exit 0
