#!/usr/bin/env bash
# Soak test (outside CI): train toy2d on the CPU for a fixed time with pictures, KL
# evaluations and checkpoints on, and record the process's resident memory (RSS) every
# INTERVAL seconds, so a leak shows as a rising line.
#
#   scripts/soak.sh [minutes=30] [out=runs/soak]     # RAYON_NUM_THREADS=1 keeps a core free
#
# Writes $out/rss.csv (seconds, rss_kib) and prints the first, minimum, maximum and last RSS.
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
OUT=${2:-runs/soak}
INTERVAL=${INTERVAL:-30}
BIN=${EBM_BIN:-target/release}
[ -n "${EBM_BIN:-}" ] || cargo build --release || exit 1
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN/ebm" --device cpu train toy2d --iters 100000000 --ckpt-every 1000 --plot-every 5000 \
  --log-every 500 --quiet --out "$OUT/run" 2>"$OUT/train.log" &
pid=$!
echo "seconds,rss_kib" >"$OUT/rss.csv"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [ -n "$rss" ] && echo "$now,$rss" >>"$OUT/rss.csv"
  [ "$now" -ge $((MINUTES * 60)) ] && break
  sleep "$INTERVAL"
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
tail -1 "$OUT/train.log"
python3 - "$OUT/rss.csv" <<'PY'
import csv, sys
rows = [(int(r["seconds"]), int(r["rss_kib"])) for r in csv.DictReader(open(sys.argv[1]))]
rss = [r for _, r in rows]
print(f"{len(rows)} samples over {rows[-1][0]} s: RSS first {rss[0]/1024:.1f} MiB, "
      f"min {min(rss)/1024:.1f}, max {max(rss)/1024:.1f}, last {rss[-1]/1024:.1f} MiB")
# After warm-up (the first 10 %), a leak shows as growth between the two halves.
tail = rss[len(rss)//10:]
half = len(tail)//2
if half:
    a, b = sum(tail[:half])/half, sum(tail[half:])/(len(tail)-half)
    print(f"mean RSS first half {a/1024:.1f} MiB, second half {b/1024:.1f} MiB ({(b-a)/a*100:+.2f} %)")
PY
