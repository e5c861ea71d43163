"""Where the bench scripts find real MNIST: $CONVSCOPE_DATA, else the four IDX files beside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> str:
    """The folder holding MNIST's four IDX files: $CONVSCOPE_DATA when set, else ../shared/data/mnist."""
    return os.environ.get("CONVSCOPE_DATA") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist")
