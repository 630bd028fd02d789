"""Footprint: the serving environment against the training one, the model files, the container.

    .venv/bin/python -m bench.footprint

The container estimate is the Lambda base image (not measurable here: no
Docker engine; AWS's figure is stated) plus the installed size of the exact
wheels pip resolves for the image's Python and platform, plus the model.
"""

import subprocess
import tempfile
import zipfile
from pathlib import Path

from bench.common import BUNDLE, REPO
from harness.dockerfile import pip_download_lambda_wheels


def tree_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6, 1)


def installed_wheels_mb(arch: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(pip_download_lambda_wheels(arch, Path(tmp)), check=True)
        return round(sum(i.file_size for w in Path(tmp).glob("*.whl") for i in zipfile.ZipFile(w).infolist()) / 1e6, 1)


def main():
    print("| what | MB |")
    print("| --- | --- |")
    for venv in (".venv-lambda", ".venv"):
        print(f"| {venv} (installed) | {tree_mb(REPO / venv)} |")
    for model in sorted(BUNDLE.glob("*/model.tflite")):
        print(f"| {model.parent.name} model.tflite | {model.stat().st_size / 1e6:.1f} |")
    checkpoint = next(iter(sorted(REPO.glob("artifacts/runs/*/*.h5"))), None)
    if checkpoint:
        print(f"| Keras checkpoint {checkpoint.name} | {checkpoint.stat().st_size / 1e6:.1f} |")
    code_mb = sum(f.stat().st_size for f in (REPO / "lambda_fn").glob("*.py")) / 1e6
    model_mb = (BUNDLE / "float32" / "model.tflite").stat().st_size / 1e6
    for arch in ("x86_64", "aarch64"):
        wheels = installed_wheels_mb(arch)
        print(
            f"| image layers added to the base, {arch}: wheels {wheels} + model {model_mb:.1f} + code {code_mb:.2f} "
            f"| {wheels + model_mb + code_mb:.1f} |"
        )


if __name__ == "__main__":
    main()
