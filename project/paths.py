"""The repository's layout: everything the pipeline makes (runs, the activation cache, bundles, test bundles)
lives under one git-ignored folder."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
BUNDLE = ARTIFACTS / "bundle"  # what make convert writes: a folder per variant
DEFAULT_MODEL_DIR = BUNDLE / "float32"  # the variant make serve and the local server load unless told
