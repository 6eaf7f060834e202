#!/usr/bin/env python3
"""Writes a ResNet made the ordinary PyTorch way (an nn.Module, not a spec) for the Rust tests.

    python3 tests/golden/make_torch_resnet.py [scripts/ebm_ref.py]

(the argument defaults to scripts/ebm_ref.py in this repository). Writes:

  tests/golden/torch_resnet.safetensors         ebm_ref.ResNet32(in_ch=1, nf=4) after
                                                torch.manual_seed(0): its float32 state_dict
                                                (stem.*, stages.{s}.proj.*, stages.{s}.blocks.{b}.conv1/
                                                conv2.*, head.*) saved with
                                                safetensors.torch.save_file(sd, path,
                                                metadata={"ebm.spec": json.dumps(resnet32_spec(1, 4))})
  tests/golden/torch_resnet_scores.safetensors  x [4, 1, 32, 32] float32 (U[-1, 1]) and energy [4]
                                                float64: the module on the float32 weights and x,
                                                computed in float64

The script checks that the spec-built graph (ebm_ref.EnergyNet(spec) with this state_dict
loaded) gives the same energies as the module, so the file's names and spec agree.
"""
import copy
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "..", "scripts", "ebm_ref.py")
if len(sys.argv) > 2 or sys.argv[1:2] in (["-h"], ["--help"]):
    sys.exit(__doc__)
mod_spec = importlib.util.spec_from_file_location("ebm_ref", sys.argv[1] if len(sys.argv) == 2 else REF)
ref = importlib.util.module_from_spec(mod_spec)
mod_spec.loader.exec_module(ref)

B, IN_CH, NF = 4, 1, 4
spec = ref.resnet32_spec(IN_CH, NF)
torch.manual_seed(0)
model = ref.ResNet32(IN_CH, NF)  # float32, PyTorch default init
x = torch.rand((B, IN_CH, 32, 32)) * 2 - 1

sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
m64 = copy.deepcopy(model).double().eval()  # float32 values, computed in float64
x64 = x.double()
with torch.no_grad():
    energy = m64(x64)

graph = ref.EnergyNet(spec)  # the same net, built from the spec
assert sorted(graph.state_dict()) == sorted(sd), "spec parameter names differ from the module's"
graph.load_state_dict(sd)
with torch.no_grad():
    e_graph = graph.double().eval()(x64)
diff = (e_graph - energy).abs().max().item()
assert diff <= 1e-12 * energy.abs().max().item(), f"graph and module energies differ by {diff:.3e}"
print(f"module vs spec graph: max |dE| = {diff:.1e} over {B} samples ({len(sd)} tensors)")

save_file(sd, os.path.join(HERE, "torch_resnet.safetensors"), metadata={"ebm.spec": json.dumps(spec)})
save_file({"x": x.contiguous(), "energy": energy.contiguous()},
          os.path.join(HERE, "torch_resnet_scores.safetensors"), metadata={"torch_version": torch.__version__})
for name in ("torch_resnet", "torch_resnet_scores"):
    path = os.path.join(HERE, name + ".safetensors")
    os.chmod(path, 0o644)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.1f} KiB)")
