#!/usr/bin/env bash
# ebm against the project's PyTorch reference on one workload, alternating the two programs
# over N rounds (these machines drift; one run proves nothing), then the median ratio and its
# range per measurement (scripts/compare_table.py).
#
#   scripts/compare.sh toy2d                 # 5 rounds on the CPU, 2 threads each
#   ROUNDS=7 THREADS=2 scripts/compare.sh anatomy32 --nf 64
#   DEVICE=gpu VARIANTS="fp32 tf32" scripts/compare.sh anatomy32     # PyTorch on CUDA
#
# Environment: DEVICE cpu|gpu (default cpu; PyTorch runs on cuda for gpu), ROUNDS (5),
# THREADS (CPU threads of both programs, default 2), ITERS (timed repeats per program and
# round, 3), VARIANTS (what ebm is compared with each round: PyTorch with fp32 = TF32 off,
# tf32 = PyTorch's default TF32 convolutions, compile = torch.compile; or bin=DIR, the `ebm`
# in DIR — another build, for before/after figures; default fp32), EBM_BIN (folder with
# `ebm`, default target/release), EBM_REF (default scripts/ebm_ref.py), JSONL (append every
# record here, default a temp file), DEADLINE (a time in seconds since the epoch: no round
# starts after it, and a round running at it is cut short), ISA (CPU only: avx2 runs both
# programs as on a CPU without AVX-512 — ebm with --cpu-tiles avx2, and PyTorch with
# ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2; build ebm
# for it with `cargo build --release --no-default-features --target-dir target/avx2` and set
# EBM_BIN=target/avx2/release, so that the gemm crate has no AVX-512 either), SERVE (1: one
# PyTorch process answers every round's requests, `ebm_ref.py serve`, so that rounds do not
# each pay seconds for importing torch and starting CUDA; 0: a process per request). ebm
# starts afresh every round. Arguments after the workload go to both programs (--nf,
# --batch, --steps, --only).
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/compare.sh WORKLOAD [--nf N] [--batch B] [--steps K] [--only sampling|train]" >&2; exit 2; }
W=$1; shift
DEVICE=${DEVICE:-cpu}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
ITERS=${ITERS:-3}
VARIANTS=${VARIANTS:-fp32}
BIN=${EBM_BIN:-target/release}
REF=${EBM_REF:-scripts/ebm_ref.py}
JSONL=${JSONL:-$(mktemp)}
TORCH_DEVICE=$([ "$DEVICE" = gpu ] && echo cuda || echo cpu)
[ -x "$BIN/ebm" ] || { echo "error: $BIN/ebm not found (cargo build --release, or set EBM_BIN)" >&2; exit 2; }
ISA=${ISA:-}
case $ISA in
  "") ;;
  avx2)
    [ "$DEVICE" = cpu ] || { echo "error: ISA is for DEVICE=cpu" >&2; exit 2; }
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null &&
      ! "$BIN/ebm" info 2>/dev/null | grep -q "gemm built without its AVX-512 kernels"; then
      echo "error: ISA=avx2 on an AVX-512 CPU needs EBM_BIN from a --no-default-features build" >&2; exit 2
    fi
    export EBM_CPU_TILES=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  *) echo "error: ISA: unknown '$ISA' (avx2, or unset for the CPU's widest)" >&2; exit 2 ;;
esac
tag() {  # tag ROUND VARIANT: add both to each JSON line (awk: a variant may be a path)
  awk -v r="$1" -v v="$2" '/^\{/ { sub(/^\{/, "{\"round\": " r ", \"variant\": \"" v "\", ") } { print }'
}
DEADLINE=${DEADLINE:-0}
SERVE=${SERVE:-1}
until_deadline() {  # the command, cut at DEADLINE when one is set
  if [ "$DEADLINE" -gt 0 ]; then timeout $((DEADLINE - $(date +%s) > 1 ? DEADLINE - $(date +%s) : 1)) "$@"; else "$@"; fi
}
ebm_bench() {  # ebm_bench DIR ARGS…: DIR/ebm's JSON lines for this workload
  local dir=$1
  shift
  RAYON_NUM_THREADS=$THREADS until_deadline "$dir/ebm" --device "$DEVICE" bench --workload "$W" \
    --iters "$ITERS" --json "$@"
}
# The server, where some variant is PyTorch (bin=DIR variants are other ebm builds).
if [ "$SERVE" = 1 ] && [ -n "$(printf '%s\n' $VARIANTS | grep -v '^bin=')" ]; then
  coproc REF_SERVER { exec python3 "$REF" serve; }
  trap 'kill ${REF_SERVER_PID:-} 2>/dev/null' EXIT
fi
ref_bench() {  # ref_bench ARGS…: the reference's output for `bench ARGS…`, from the server if one runs
  if [ -z "${REF_SERVER_PID:-}" ]; then
    until_deadline python3 "$REF" bench "$@"
    return
  fi
  local line wait=()
  printf '%q ' "$@" >&"${REF_SERVER[1]}" && echo >&"${REF_SERVER[1]}" || return 1
  while :; do
    [ "$DEADLINE" -gt 0 ] && wait=(-t $((DEADLINE - $(date +%s) > 1 ? DEADLINE - $(date +%s) : 1)))
    if ! IFS= read -r ${wait[@]+"${wait[@]}"} line <&"${REF_SERVER[0]}"; then
      # Cut at the deadline, or the server died: no more requests to it.
      kill "$REF_SERVER_PID" 2>/dev/null
      unset REF_SERVER_PID
      return 1
    fi
    case $line in '{"served": '*) return 0 ;; esac
    printf '%s\n' "$line"
  done
}
ANSWER=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
  if [ "$DEADLINE" -gt 0 ] && [ "$(date +%s)" -ge "$DEADLINE" ]; then
    echo "deadline: stopped before round $r of $ROUNDS" >&2
    break
  fi
  ebm_bench "$BIN" "$@" |
    tag "$r" ebm | tee -a "$JSONL" >/dev/null
  for v in $VARIANTS; do
    if [ "${v#bin=}" != "$v" ]; then
      ebm_bench "${v#bin=}" "$@" | tag "$r" "$v" | tee -a "$JSONL" >/dev/null
      continue
    fi
    case $v in
      fp32) extra=(--tf32 off) ;;
      tf32) extra=(--tf32 default) ;;
      compile) extra=(--tf32 off --compile) ;;
      *) echo "error: VARIANTS: unknown '$v' (fp32, tf32, compile, bin=DIR)" >&2; exit 2 ;;
    esac
    # Not in a pipeline: the server's pipes belong to this shell, not to a subshell.
    ref_bench --workload "$W" --device "$TORCH_DEVICE" --threads "$THREADS" \
      --iters "$ITERS" --json "${extra[@]}" "$@" >"$ANSWER"
    tag "$r" "$v" <"$ANSWER" | tee -a "$JSONL" >/dev/null
  done
  echo "round $r/$ROUNDS done" >&2
done
python3 scripts/compare_table.py "$JSONL"
