"""Reviewed-labels files (project/reviewed.py) about real photos, as the review page would write them."""

import hashlib
from pathlib import Path

from project import reviewed


def decide(file: Path, source: str, photo: Path, label: str | None, location: str | None = None, kind="label"):
    """Append a reviewer's decision about photo (its bytes' sha256 now; location: its path, or a URL serving it)."""
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    decision = reviewed.Decision(
        source, location or str(photo.resolve()), digest, kind, label, decided_at=reviewed.now()
    )
    reviewed.append(file, decision)
    return decision
