"""regtracks: long-context DNA models of regulatory markers, from FASTA + peak files to tracks.

The package import is deliberately light (no torch, no numpy): ``regtracks --help`` must be fast.
Public objects are imported lazily from their modules on first access.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Genome": "regtracks.data.genome",
    "MarkerSet": "regtracks.data.markers",
    "Marker": "regtracks.data.markers",
    "IntervalIndex": "regtracks.data.labels",
    "RegtracksError": "regtracks._util",
    "DataConfig": "regtracks.config",
    "get_model": "regtracks.models",
    "list_models": "regtracks.models",
    "register_model": "regtracks.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'regtracks' has no attribute {name!r}")
