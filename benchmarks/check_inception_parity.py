"""gankit's FID-Inception against pytorch-fid's, layer for layer, where both can run.

pytorch-fid builds its network on torchvision, which does not install beside the CPU torch wheel
gankit pins; run this where torchvision and pytorch-fid are installed (a CUDA machine's torch,
say). Both networks get the same randomly initialised weights (the real file cannot be fetched
offline, and random weights exercise every layer just as well), the same digits, and their
2,048-d pool3 features are compared.

  python benchmarks/check_inception_parity.py
Writes benchmarks/results/inception_parity.md.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.data import load_dataset
from gankit.metrics.inception import FIDInceptionV3

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    import pytorch_fid
    import torchvision
    from pytorch_fid import inception as fid_inception

    torch.manual_seed(0)
    ours = FIDInceptionV3()
    for module in ours.modules():  # He init keeps the activations' scale through 47 layers
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    state = ours.state_dict()
    # pytorch-fid downloads its weights in fid_inception_v3(); give it ours instead
    fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state
    theirs = fid_inception.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    ours.eval()
    digits = load_dataset("mnist-sample").images[::250]  # (20, 1, 28, 28) in [-1, 1]
    with torch.inference_mode():
        mine = ours.features(digits).double()
        reference = theirs(((digits + 1) / 2).repeat(1, 3, 1, 1))[0].flatten(1).double()
    difference = (mine - reference).abs().max().item()
    relative = difference / reference.abs().max().item()
    lines = [
        f"FID-Inception parity: gankit against pytorch-fid {pytorch_fid.__version__} "
        f"(torchvision {torchvision.__version__}, torch {torch.__version__}), same random "
        f"weights, {len(digits)} mnist-sample digits, pool3 features (2,048-d).",
        "",
        "| max abs difference | relative to the largest feature | feature scale (mean abs) |",
        "|---|---|---|",
        f"| {difference:.3g} | {relative:.3g} | {reference.abs().mean().item():.3g} |",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inception_parity.md").write_text(text + "\n")
    if relative > 1e-4:
        raise SystemExit(f"features differ: {relative:.3g} relative")


if __name__ == "__main__":
    main()
