"""Shared fixtures: the local index server, a private cache, opt-in markers.

- ``index_server`` (session): a real HTTP server on 127.0.0.1 serving captured PyPI
  pages, a generated PyTorch-layout index, generated wheels and fault endpoints
  (tests/indexserver.py). Attributes: ``url``, ``pypi_url`` (``<url>/pypi/simple``),
  ``torch_url`` (``<url>/whl``), ``requests`` (the request log), ``reset_log()``.
- ``cache_env`` (function): a fresh cache directory, exported as ``TORCHUP_CACHE_DIR``.
- ``torch_venv`` (session): a CPython 3.11 venv with the real CPU torch 2.13.0, installed
  offline (tests/realtorch.py); its python. Skips where the wheel or Python is missing.
- Markers: ``network`` runs only with ``TORCHUP_NETWORK_TESTS=1``, ``gpu`` only with
  ``TORCHUP_GPU_TESTS=1``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realtorch
from indexserver import IndexServer

_OPT_IN = {"network": "TORCHUP_NETWORK_TESTS", "gpu": "TORCHUP_GPU_TESTS"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, variable in _OPT_IN.items():
        if os.environ.get(variable) == "1":
            continue
        skip = pytest.mark.skip(reason=f"opt in with {variable}=1")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def index_server() -> Iterator[IndexServer]:
    server = IndexServer.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache directory, also exported as ``TORCHUP_CACHE_DIR``."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TORCHUP_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CPython 3.11 venv with the real CPU torch, installed offline; its python.

    The installer's cache goes once the install is done and the venv at the end of the
    session, so old pytest temp dirs do not pile up gigabytes.
    """
    if not realtorch.available():
        pytest.skip("needs CPython 3.11.7, the torch 2.13.0+cpu wheel and the local index")
    root = tmp_path_factory.mktemp("real-torch")
    yield realtorch.build(root)
    shutil.rmtree(root, ignore_errors=True)
