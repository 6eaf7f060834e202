#!/usr/bin/env bash
# Builds `ebm` and every test executable in release mode and copies them into .devbin/
# (git-ignored), for scripts/gpu_check.sh on a GPU machine that should not spend its time
# compiling. Stripped, they are still ~100 MB, more than the device tool carries (64 MiB), so
# they are also packed into .devpack/devbin.tar.xz (~20 MB): carry .devpack and run
# `EBM_BIN=.devpack/devbin.tar.xz scripts/gpu_check.sh`, which unpacks it into .devbin/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
rm -rf .devbin && mkdir -p .devbin/tests
cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c 'import json, shutil, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("profile", {}).get("test") and m.get("executable"):
        kind, name = m["target"]["kind"][0], m["target"]["name"]
        shutil.copy(m["executable"], ".devbin/tests/" + (name if kind == "test" else f"{kind}-{name}"))'
cp target/release/ebm .devbin/
strip .devbin/ebm .devbin/tests/*   # the device tool carries at most 64 MiB
pwd > .devbin/build_root   # the path the tests were compiled with (CARGO_MANIFEST_DIR)
mkdir -p .devpack
tar cf - -C .devbin . | xz -T0 -6 > .devpack/devbin.tar.xz
du -sh .devbin .devpack/devbin.tar.xz
