#!/usr/bin/env python3
"""Writes the PyTorch-made model, batch and scores that tests/cli.rs feeds to `ebm score`.

    python3 tests/golden/make_torch_model.py [scripts/ebm_ref.py]

(the argument defaults to scripts/ebm_ref.py in this repository). Writes:

  tests/golden/torch_toy2d.safetensors   the toy2d net exactly as `ebm_ref.py export` builds it
                                         (torch.manual_seed(0); EnergyNet(toy2d_spec())), its
                                         float32 state_dict saved with
                                         safetensors.torch.save_file(sd, path,
                                         metadata={"ebm.spec": json.dumps(spec)})
  tests/golden/torch_x.safetensors       tensor x [4, 2]: export's toy2d x_neg (same seed, same draws)
  tests/golden/torch_scores.safetensors  x, energy [4] and grad_x [4, 2]: PyTorch autograd on the
                                         float32 weights computed in float64

When tests/golden/golden.safetensors is present, the weights and x are checked against its
toy2d/* tensors, so the two golden files cannot drift apart.
"""
import copy
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "..", "scripts", "ebm_ref.py")
if len(sys.argv) > 2 or sys.argv[1:2] in (["-h"], ["--help"]):
    sys.exit(__doc__)
mod_spec = importlib.util.spec_from_file_location("ebm_ref", sys.argv[1] if len(sys.argv) == 2 else REF)
ref = importlib.util.module_from_spec(mod_spec)
mod_spec.loader.exec_module(ref)
B = 4  # export's batch

spec = ref.toy2d_spec()
torch.manual_seed(0)  # export's default --seed
model = ref.EnergyNet(spec)  # float32, PyTorch default init
shape = tuple(spec["input"])
_x_pos = torch.rand((B,) + shape) * 2 - 1  # drawn only to advance the generator as export does
x_neg = torch.rand((B,) + shape) * 2 - 1

sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}

golden_path = os.path.join(HERE, "golden.safetensors")
if os.path.exists(golden_path):
    golden = load_file(golden_path)
    for k, v in sd.items():
        assert torch.equal(v, golden[f"toy2d/{k}"].float()), f"{k} differs from golden toy2d/{k}"
    assert torch.equal(x_neg, golden["toy2d/x_neg"].float()), "x differs from golden toy2d/x_neg"

m64 = copy.deepcopy(model).double()  # float32 values, computed in float64
x64 = x_neg.double().requires_grad_(True)
energy = m64(x64)
(grad,) = torch.autograd.grad(energy.sum(), x64)

save_file(sd, os.path.join(HERE, "torch_toy2d.safetensors"), metadata={"ebm.spec": json.dumps(spec)})
save_file({"x": x_neg.contiguous()}, os.path.join(HERE, "torch_x.safetensors"))
save_file({"x": x_neg.double().contiguous(), "energy": energy.detach().contiguous(),
           "grad_x": grad.detach().contiguous()},
          os.path.join(HERE, "torch_scores.safetensors"), metadata={"torch_version": torch.__version__})
for name in ("torch_toy2d", "torch_x", "torch_scores"):
    path = os.path.join(HERE, name + ".safetensors")
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.1f} KiB)")
