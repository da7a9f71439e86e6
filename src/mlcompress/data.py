"""Where the shared data sets live: ``../shared`` beside the repository, or ``$MLCOMPRESS_DATA``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared folder beside the repository (``../shared``), where data and anchors live."""
    return REPO_ROOT.parent / "shared"


def kodak_dir() -> Path:
    """Kodak in the shared data (``$MLCOMPRESS_DATA/kodak`` when that variable is set); may not exist."""
    env = os.environ.get("MLCOMPRESS_DATA")
    return Path(env) / "kodak" if env else shared_dir() / "data" / "kodak"
