#!/usr/bin/env bash
# Builds the wheel and checks it the way a user meets it: a fresh virtual environment with the
# CPU build of torch first, the wheel alone (no editable install, no source tree on the path),
# then presets, a 50-iteration train, sample, evaluate, report and export from an empty folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf dist
.venv/bin/python -m build --wheel --outdir dist . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls dist/gankit-*.whl)
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) kB)"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$TORCH"
"$work/venv/bin/pip" install -q "$wheel"
cd "$work"  # nothing of the source tree is importable from here
gankit=("$work/venv/bin/gankit")
"$work/venv/bin/python" - <<'PY'
import importlib.resources as resources, pathlib, gankit
where = pathlib.Path(gankit.__file__).resolve()
assert "site-packages" in where.parts, where  # the installed wheel, not a source tree
package = resources.files("gankit")
for data in ("presets/cdcgan.toml", "weights/mnist-sample.pt", "serving/page.html",
             "assets/mnist-sample.npz", "assets/README.md"):
    assert package.joinpath(data).is_file(), data
print("installed at", where.parent)
PY
"${gankit[@]}" presets > presets.txt
grep "^seed-cgan" presets.txt
"${gankit[@]}" train --preset cdcgan --iterations 50 --set model.channels=4 --out run --no-progress --seed 1
"${gankit[@]}" sample run --n 200 --out samples.npz
"${gankit[@]}" evaluate samples.npz --dataset mnist-sample --json | "$work/venv/bin/python" -c "import json, sys; r = json.load(sys.stdin); assert r['extractor'] == 'mnist-cnn' and r['fid'] > 0, r"
"${gankit[@]}" report run
test -s run/report.html
"${gankit[@]}" export run --format pt2 --out exported --no-eval
"$work/venv/bin/python" -c "import torch; g = torch.export.load('exported/generator.pt2').module(); print('pt2 images', tuple(g(torch.randn(2, 64), torch.tensor([3, 7])).shape))"
cd "$root"
echo "wheel check passed"
