"""Shared fixtures: the local index server, a private cache, opt-in markers.

- ``index_server`` (session): a real HTTP server on 127.0.0.1 serving captured PyPI
  pages, a generated PyTorch-layout index, generated wheels and fault endpoints
  (tests/indexserver.py). Attributes: ``url``, ``pypi_url`` (``<url>/pypi/simple``),
  ``torch_url`` (``<url>/whl``), ``requests`` (the request log), ``reset_log()``.
- ``cache_env`` (function): a fresh cache directory, exported as ``TORCHUP_CACHE_DIR``.
- Markers: ``network`` runs only with ``TORCHUP_NETWORK_TESTS=1``, ``gpu`` only with
  ``TORCHUP_GPU_TESTS=1``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
