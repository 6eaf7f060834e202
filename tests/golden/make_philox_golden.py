#!/usr/bin/env python3
"""Writes tests/golden/philox.json from scripts/ebm_ref.py (the executable RNG spec).

    python3 tests/golden/make_philox_golden.py [scripts/ebm_ref.py] > tests/golden/philox.json

(the argument defaults to scripts/ebm_ref.py in this repository).
"""
import importlib.util
import json
import os
import sys

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "ebm_ref.py")
spec = importlib.util.spec_from_file_location("ebm_ref", sys.argv[1] if len(sys.argv) > 1 else REF)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

cases = []
for seed, n, chains, step, stream in [(0, 9, [0, 1, 2], 0, 0), (7, 4, [3], 5, 0), (2**40 + 123, 11, [0, 17], 99, 1),
                                      (12345, 6, [1000], 2**31 + 7, 2), (0xFFFFFFFFFFFFFFFF, 5, [4294967295], 4294967295, 4)]:
    words = ref.philox_words(seed, n, chains, step, stream)
    normal = ref.philox_normal(seed, (n,), chains, step, stream)
    uniform = ref.philox_uniform(seed, (n,), chains, step, stream, lo=-2.0, hi=3.0)
    cases.append({"seed": str(seed), "n": n, "chains": chains, "step": step, "stream": stream,
                  "words": words.reshape(len(chains), -1).tolist(),
                  "normal": normal.astype(float).tolist(),
                  "uniform_lo_hi": [-2.0, 3.0], "uniform": uniform.astype(float).tolist()})
json.dump({"source": "ebm_ref.py philox_words / philox_normal / philox_uniform", "cases": cases}, sys.stdout, indent=1)
print()
