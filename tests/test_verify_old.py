"""``torchup verify`` in the old Pythons torchup installs torch into: 3.6, 3.7 and 2.7.

torch 1.10 was the last release with cp36 wheels, 1.13 with cp37 and 1.4 with cp27, so
the probe must run there (it reads the installed metadata from ``sys.path`` where
``importlib.metadata`` is missing). The targets are real venvs made by pyenv's own 3.6
and 3.7 (``python -m venv --without-pip``) and pyenv's 2.7 with a user site
(``PYTHONUSERBASE``; 2.7 has no venv module), holding a small pure-Python torch that
computes the probe's checks for real (its tensors are lists, its autograd walks the
graph) and its companions, with hand-written metadata. Each test skips where its
pyenv Python is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from realtorch import PYENV_VERSIONS
from realtorch import quiet_env as _quiet_env
from test_verify import CPU, _check, _site_packages, _venv, _write
from torchup.check.verify import VerifyReport, verify

# A stand-in for torch in Python that parses on 2.7 too: enough of the API for the
# probe's tensor op, autograd pass, matmul, nms and gain, computed for real.
FAKE_TORCH = {
    "torch/__init__.py": """
        __version__ = "{version}"
        from . import backends, cuda, version

        float32 = "float32"


        def _flat(data):
            if isinstance(data, (list, tuple)):
                rows = [_flat(row) for row in data]
                inner = rows[0][1] if rows else ()
                return [v for values, _ in rows for v in values], (len(rows),) + inner
            return [float(data)], ()


        class Tensor(object):
            def __init__(self, data, shape, requires_grad=False, parents=()):
                self.data = [float(v) for v in data]
                self.shape = tuple(shape)
                self.requires_grad = requires_grad
                self.grad = None
                self._parents = parents  # (tensor, our grad -> its grad) pairs

            def _lift(self, other):
                if isinstance(other, Tensor):
                    return other
                return Tensor([other] * len(self.data), self.shape)

            def __add__(self, other):
                other = self._lift(other)
                data = [a + b for a, b in zip(self.data, other.data)]
                same = lambda g: g
                return Tensor(data, self.shape, parents=((self, same), (other, same)))

            __radd__ = __add__

            def __mul__(self, other):
                other = self._lift(other)
                data = [a * b for a, b in zip(self.data, other.data)]
                mine = lambda g: [x * b for x, b in zip(g, other.data)]
                theirs = lambda g: [x * a for x, a in zip(g, self.data)]
                return Tensor(data, self.shape, parents=((self, mine), (other, theirs)))

            __rmul__ = __mul__

            def sum(self):
                n = len(self.data)
                return Tensor([sum(self.data)], (), parents=((self, lambda g: g * n),))

            def backward(self, grad=None):
                grad = grad or [1.0] * len(self.data)
                if self.requires_grad:
                    old = self.grad.data if self.grad is not None else [0.0] * len(grad)
                    self.grad = Tensor([a + b for a, b in zip(old, grad)], self.shape)
                for parent, chain in self._parents:
                    parent.backward(chain(grad))

            def reshape(self, *shape):
                return Tensor(self.data, shape)

            def t(self):
                rows, cols = self.shape
                data = [self.data[r * cols + c] for c in range(cols) for r in range(rows)]
                return Tensor(data, (cols, rows))

            def cpu(self):
                return self

            def tolist(self):
                if not self.shape:
                    return self.data[0]
                if len(self.shape) == 1:
                    return list(self.data)
                cols = self.shape[1]
                return [self.data[i : i + cols] for i in range(0, len(self.data), cols)]

            def __float__(self):
                return self.data[0]


        def tensor(data, requires_grad=False, device="cpu"):
            values, shape = _flat(data)
            return Tensor(values, shape, requires_grad)


        def arange(start, end=None, dtype=None, device="cpu"):
            if end is None:
                start, end = 0, start
            return Tensor(range(int(start), int(end)), (int(end) - int(start),))


        def ones(*shape, **device):
            size = 1
            for n in shape:
                size *= n
            return Tensor([1.0] * size, shape)


        def mm(a, b):
            (n, k), (_, m) = a.shape, b.shape
            data = [
                sum(a.data[i * k + j] * b.data[j * m + c] for j in range(k))
                for i in range(n)
                for c in range(m)
            ]
            return Tensor(data, (n, m))
    """,
    "torch/cuda.py": """
        def is_available():
            return False
    """,
    "torch/version.py": """
        cuda = None
        hip = None
        debug = False
        git_version = "0000000"
    """,
    "torch/backends/__init__.py": "",
    "torch/backends/cudnn.py": """
        def version():
            return None
    """,
    "torch-{version}.dist-info/METADATA": """
        Metadata-Version: 2.1
        Name: torch
        Version: {version}
        Requires-Dist: typing-extensions
    """,
}

FAKE_TORCHVISION = {
    "torchvision/__init__.py": """
        __version__ = "{vision}"
        from . import ops
    """,
    "torchvision/ops.py": """
        import torch


        def _iou(a, b):
            width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            both = width * height
            area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
            return both / (area(a) + area(b) - both)


        def nms(boxes, scores, threshold):
            rows, score = boxes.tolist(), scores.tolist()
            keep = []
            for i in sorted(range(len(rows)), key=lambda i: -score[i]):
                if all(_iou(rows[i], rows[k]) <= threshold for k in keep):
                    keep.append(i)
            return torch.tensor(keep)
    """,
    "torchvision-{vision}.dist-info/METADATA": """
        Metadata-Version: 2.1
        Name: torchvision
        Version: {vision}
        Requires-Dist: numpy
        Requires-Dist: torch (=={pinned})
    """,
}

# An egg-info directory (a setup.py install): the torch pin is in requires.txt.
FAKE_TORCHAUDIO = {
    "torchaudio/__init__.py": """
        __version__ = "{audio}"
    """,
    "torchaudio/functional.py": """
        def gain(waveform, gain_db):
            return waveform * (10.0 ** (gain_db / 20.0))
    """,
    "torchaudio-{audio}-py{py}.egg-info/PKG-INFO": """
        Metadata-Version: 1.0
        Name: torchaudio
        Version: {audio}
    """,
    "torchaudio-{audio}-py{py}.egg-info/requires.txt": """
        torch=={pinned}

        [sox]
        sox
    """,
}

# The last torch family each old Python has wheels for.
FAMILIES = {
    "3.6.15": {"version": "1.10.2+cpu", "vision": "0.11.3+cpu", "audio": "0.10.2+cpu"},
    "3.7.16": {"version": "1.13.1+cpu", "vision": "0.14.1+cpu", "audio": "0.13.1+cpu"},
    "2.7.18": {"version": "1.4.0+cpu", "vision": "0.5.0+cpu", "audio": "0.4.0"},
}
VENV_PYTHONS = ("3.6.15", "3.7.16")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return _quiet_env()


def _pyenv(version: str) -> Path:
    python = PYENV_VERSIONS / version / "bin" / "python"
    if not python.exists():
        pytest.skip(f"needs pyenv's CPython {version}")
    return python


def _family(site: Path, version: str, **override: str) -> dict[str, str]:
    """Write the fake torch family for pyenv ``version`` into ``site``; its versions."""
    family = {**FAMILIES[version], "py": version.rsplit(".", 1)[0], **override}
    family.setdefault("pinned", family["version"].split("+")[0])
    files = {**FAKE_TORCH, **FAKE_TORCHVISION, **FAKE_TORCHAUDIO}
    _write(site, {name.format(**family): text.format(**family) for name, text in files.items()})
    return family


def _passes(report: VerifyReport, family: dict[str, str]) -> None:
    assert report.ok, [c for c in report.checks if c.status != "pass"]
    assert report.torch == family["version"]
    assert report.local == "cpu"
    assert report.companions == {"torchaudio": family["audio"], "torchvision": family["vision"]}
    assert [(c.id, c.status) for c in report.checks] == [
        ("import-torch", "pass"), ("devices", "pass"), ("build-matches-hardware", "pass"),
        ("tensor-op", "pass"), ("autograd", "pass"), ("matmul:cpu", "pass"),
        ("torchvision-matches-torch", "pass"), ("import-torchvision", "pass"),
        ("torchvision-nms:cpu", "pass"),
        ("torchaudio-matches-torch", "pass"), ("import-torchaudio", "pass"),
        ("torchaudio-gain", "pass"),
    ]  # fmt: skip
    # the pins were read from the metadata files, without importlib.metadata
    assert f"requires torch=={family['pinned']}" in str(
        _check(report, "torchaudio-matches-torch")["detail"]
    )
    assert f"requires torch=={family['pinned']}" in str(
        _check(report, "torchvision-matches-torch")["detail"]
    )


@pytest.mark.parametrize("version", VENV_PYTHONS)
def test_old_python_venv_passes(tmp_path: Path, env: dict[str, str], version: str) -> None:
    python = _venv(tmp_path / "old", _pyenv(version))
    family = _family(_site_packages(tmp_path / "old"), version)
    report = verify(str(python), accelerator=CPU, env=env, timeout=60)
    _passes(report, family)
    assert report.python == str(python)


def test_python27_with_a_user_site_passes(tmp_path: Path, env: dict[str, str]) -> None:
    python = _pyenv("2.7.18")
    userbase = tmp_path / "userbase"
    family = _family(userbase / "lib" / "python2.7" / "site-packages", "2.7.18")
    report = verify(str(python), accelerator=CPU, env={**env, "PYTHONUSERBASE": str(userbase)})
    _passes(report, family)


@pytest.mark.parametrize("version", VENV_PYTHONS)
def test_torch_that_raises_on_import_is_a_failed_check_with_the_venv_fix(
    tmp_path: Path, env: dict[str, str], version: str
) -> None:
    prefix = tmp_path / "broken"
    python = _venv(prefix, _pyenv(version))
    site = _site_packages(prefix)
    family = _family(site, version)
    _write(site, {"torch/__init__.py": "raise OSError('libtorch_cpu.so: cannot open')\n"})
    report = verify(str(python), accelerator=CPU, env=env, timeout=60)
    assert not report.ok
    assert report.torch == family["version"]  # from its metadata, read without importing
    check = _check(report, "import-torch")
    assert check["status"] == "fail"
    assert check["detail"] == "OSError: libtorch_cpu.so: cannot open"
    # into this venv (not ./.venv, where `--python` alone would go), the same build,
    # reinstalled (the installer would call the same version satisfied)
    pin = family["version"].split("+")[0]
    assert check["fix"] == (
        f"torchup install torch=={pin} --backend cpu --reinstall --venv {prefix}"
    )
    assert [c.id for c in report.checks] == ["import-torch"]


def test_companion_for_another_torch_names_the_venv_and_backend(
    tmp_path: Path, env: dict[str, str]
) -> None:
    prefix = tmp_path / "mixed"
    python = _venv(prefix, _pyenv("3.7.16"))
    _family(_site_packages(prefix), "3.7.16", pinned="1.12.1")
    report = verify(str(python), accelerator=CPU, env=env, timeout=60)
    pairing = _check(report, "torchvision-matches-torch")
    assert pairing["status"] == "fail"
    assert "requires torch==1.12.1, but torch 1.13.1+cpu is installed" in str(pairing["detail"])
    assert (
        pairing["fix"] == f"torchup install torch==1.13.1 torchvision --backend cpu --venv {prefix}"
    )
    assert _check(report, "torchaudio-matches-torch")["status"] == "fail"
    assert _check(report, "autograd")["status"] == "pass"


def test_conda_env_fix_names_the_conda_env(tmp_path: Path, env: dict[str, str]) -> None:
    # A prefix with conda-meta/ is a conda env to the probe (no conda on this machine).
    prefix = tmp_path / "envs" / "ml"
    python = _venv(prefix, _pyenv("3.7.16"))
    (prefix / "conda-meta").mkdir()
    report = verify(str(python), accelerator=CPU, env=env, timeout=60)
    assert _check(report, "import-torch")["fix"] == f"torchup install torch --conda-env {prefix}"


def test_plain_python_fix_keeps_python(tmp_path: Path, env: dict[str, str]) -> None:
    python = _pyenv("2.7.18")
    userbase = tmp_path / "userbase"
    site = userbase / "lib" / "python2.7" / "site-packages"
    _family(site, "2.7.18")
    _write(site, {"torch/__init__.py": "import os\nos._exit(5)\n"})
    report = verify(str(python), accelerator=CPU, env={**env, "PYTHONUSERBASE": str(userbase)})
    check = _check(report, "import-torch")
    assert "exited with status 5" in str(check["detail"])
    assert check["fix"] == (
        f"torchup install torch==1.4.0 --backend cpu --reinstall --python {python} --system"
    )
