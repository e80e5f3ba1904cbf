"""Compatibility shim that lets PyPI's ``dgl==1.1.3`` import on current setuptools.

DGL 1.1.3 does ``from setuptools.extern.packaging import version`` at import
time. setuptools >= 70 removed the ``setuptools.extern`` vendoring namespace, and
pinning an old setuptools conflicts with torch. The vendored module was the
ordinary ``packaging`` distribution, so we alias it before the first
``import dgl``. Import :func:`import_dgl` instead of ``dgl`` everywhere.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType


def _alias_setuptools_extern_packaging() -> None:
    if "setuptools.extern.packaging" in sys.modules:
        return
    try:
        importlib.import_module("setuptools.extern.packaging")
        return
    except ImportError:
        pass
    import packaging
    import packaging.version

    extern = sys.modules.get("setuptools.extern")
    if extern is None:
        extern = types.ModuleType("setuptools.extern")
        extern.__path__ = []  # a namespace-like package
        sys.modules["setuptools.extern"] = extern
    extern.packaging = packaging  # type: ignore[attr-defined]
    sys.modules["setuptools.extern.packaging"] = packaging
    sys.modules["setuptools.extern.packaging.version"] = packaging.version


def import_dgl() -> ModuleType:
    """Import and return the ``dgl`` module with the compatibility alias in place."""
    _alias_setuptools_extern_packaging()
    import os

    os.environ.setdefault("DGLBACKEND", "pytorch")
    import warnings

    import dgl

    # On CPU DGL's data loader advises CPU affinity on every iteration; we size threads ourselves.
    warnings.filterwarnings("ignore", message="Dataloader CPU affinity opt is not enabled")
    return dgl
