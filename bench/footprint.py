"""Footprint: the serving environment against the training one, the model files, and what the image adds.

    python -m bench.footprint [--bundle artifacts/bundle]

The image's layers over AWS's base are the exact wheels pip resolves for the image's Python and platform
(their installed size), the model and the code; bench.container measures the built image itself.
"""

import subprocess
import tempfile
import zipfile
from pathlib import Path

from bench.common import REPO, checkpoint_of, parser
from bench.results import Field, Table, model_of, record
from harness.dockerfile import pip_download_lambda_wheels


def tree_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6, 1)


def installed_wheels_mb(arch: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(pip_download_lambda_wheels(arch, Path(tmp)), check=True, capture_output=True)
        return round(sum(i.file_size for w in Path(tmp).glob("*.whl") for i in zipfile.ZipFile(w).infolist()) / 1e6, 1)


FIELDS = [Field("what", "what"), Field("mb", "MB", "MB")]


def main(argv=None):
    p = parser(__doc__)
    args = p.parse_args(argv)
    sizes = [
        {"what": f"{venv} (installed)", "mb": tree_mb(REPO / venv)}
        for venv in (".venv-lambda", ".venv")
        if (REPO / venv).is_dir()
    ]
    sizes += [
        {"what": f"{m.parent.name} model.tflite", "mb": round(m.stat().st_size / 1e6, 1)}
        for m in sorted(args.bundle.glob("*/model.tflite"))
    ]
    checkpoint = checkpoint_of(args.bundle / "float32")
    if checkpoint:
        sizes.append({"what": f"Keras checkpoint {checkpoint.name}", "mb": round(checkpoint.stat().st_size / 1e6, 1)})
    code_mb = round(sum(f.stat().st_size for f in (REPO / "lambda_fn").glob("*.py")) / 1e6, 2)
    model_mb = round((args.bundle / "float32" / "model.tflite").stat().st_size / 1e6, 1)
    for arch in ("x86_64", "aarch64"):
        wheels = installed_wheels_mb(arch)
        what = f"the image's layers over the base, {arch}: wheels {wheels} + model {model_mb} + code {code_mb}"
        sizes.append({"what": what, "mb": round(wheels + model_mb + code_mb, 1)})
    title = "Footprint: environments, model files, the image's layers"
    model = model_of(args.bundle / "float32")
    record(__spec__.name, argv, title, [Table("sizes", FIELDS, sizes)], [], model)


if __name__ == "__main__":
    main()
