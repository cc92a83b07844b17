"""A stand-in torch: a small pure-Python package that passes ``torchup verify``.

Its sources (:func:`sources`) are what ``torchup build-script``'s end-to-end test builds
from a local git repository; :func:`wheel` packs the same modules as a wheel directly,
for the tests that install a local wheel file. ``broken`` makes its matrix product
wrong, so verify fails and an install must be undone.
"""

from __future__ import annotations

import textwrap

from indexserver import make_wheel

_SOURCES = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "torch"
        version = "{version}"

        [tool.setuptools]
        packages = ["torch", "torch.backends"]
    """,
    "requirements.txt": "setuptools\nwheel\n",
    "torch/__init__.py": """
        \"\"\"A stand-in torch: a few pure-Python tensor operations, enough for verify.\"\"\"
        __version__ = "{version}"
        from torch import backends, cuda, version
        from torch._tensor import Tensor, arange, float32, mm, ones, tensor
    """,
    "torch/version.py": "cuda = None\nhip = None\ndebug = False\ngit_version = 'stand-in'\n",
    "torch/cuda.py": """
        def is_available():
            return False


        def device_count():
            return 0
    """,
    "torch/backends/__init__.py": """
        class _Cudnn:
            def version(self):
                return None

        class _Mps:
            def is_built(self):
                return False

            def is_available(self):
                return False

        cudnn, mps = _Cudnn(), _Mps()
    """,
    "torch/_tensor.py": """
        float32 = "float32"


        class Tensor:
            def __init__(self, data, shape, parents=(), requires_grad=False):
                self.data, self.shape = [float(x) for x in data], tuple(shape)
                self.parents, self.grad = parents, None
                self.requires_grad = requires_grad or any(p.requires_grad for p, _ in parents)

            def reshape(self, *shape):
                return Tensor(self.data, shape)

            def t(self):
                rows, cols = self.shape
                return Tensor([self.data[i * cols + j] for j in range(cols) for i in range(rows)],
                              (cols, rows))

            def cpu(self):
                return self

            def tolist(self):
                if len(self.shape) < 2:
                    return list(self.data)
                cols = self.shape[1]
                return [self.data[i:i + cols] for i in range(0, len(self.data), cols)]

            def __float__(self):
                (value,) = self.data
                return value

            def __mul__(self, other):
                if isinstance(other, Tensor):
                    data = [a * b for a, b in zip(self.data, other.data)]
                    return Tensor(data, self.shape, (
                        (self, lambda g: [x * b for x, b in zip(g, other.data)]),
                        (other, lambda g: [x * a for x, a in zip(g, self.data)]),
                    ))
                return Tensor([a * other for a in self.data], self.shape,
                              ((self, lambda g: [x * other for x in g]),))

            __rmul__ = __mul__

            def __add__(self, other):
                if isinstance(other, Tensor):
                    data = [a + b for a, b in zip(self.data, other.data)]
                    return Tensor(data, self.shape, ((self, list), (other, list)))
                return Tensor([a + other for a in self.data], self.shape, ((self, list),))

            __radd__ = __add__

            def sum(self):
                n = len(self.data)
                return Tensor([sum(self.data)], (), ((self, lambda g: [g[0]] * n),))

            def backward(self):
                order, seen = [], set()

                def visit(t):
                    if id(t) not in seen:
                        seen.add(id(t))
                        for parent, _ in t.parents:
                            visit(parent)
                        order.append(t)

                visit(self)
                grads = {id(self): [1.0]}
                for t in reversed(order):
                    g = grads.get(id(t))
                    if g is None:
                        continue
                    if not t.parents:
                        t.grad = Tensor(g, t.shape)
                    for parent, local in t.parents:
                        more, old = local(g), grads.get(id(parent))
                        grads[id(parent)] = more if old is None else [
                            a + b for a, b in zip(old, more)]


        def tensor(values, requires_grad=False, device=None):
            rows = [v if isinstance(v, list) else [v] for v in values]
            flat = [x for row in rows for x in row]
            shape = (len(values),) if not isinstance(values[0], list) else (len(rows), len(rows[0]))
            return Tensor(flat, shape, requires_grad=requires_grad)


        def arange(start, end=None, dtype=None, device=None):
            start, end = (0, start) if end is None else (start, end)
            data = [start + i for i in range(int(end - start))]
            return Tensor(data, (len(data),))


        def ones(rows, cols, device=None):
            return Tensor([1.0] * (rows * cols), (rows, cols))


        def mm(a, b):
            (n, k), (_, m) = a.shape, b.shape
            data = [sum(a.data[i * k + x] * b.data[x * m + j] for x in range(k))
                    for i in range(n) for j in range(m)]
            return Tensor(data, (n, m))
    """,
}


_WRONG_MM = """
        def mm(a, b):
            (n, _), (_, m) = a.shape, b.shape
            return Tensor([0.0] * (n * m), (n, m))
"""


def sources(version: str, *, broken: bool = False) -> dict[str, bytes]:
    """The project's files (``pyproject.toml``, ``torch/...``) by path."""
    out = {}
    for name, source in _SOURCES.items():
        text = source.replace("{version}", version)
        if broken and name == "torch/_tensor.py":
            text = text[: text.index("        def mm(")] + _WRONG_MM
        out[name] = textwrap.dedent(text).lstrip("\n").encode()
    return out


def wheel(version: str, *, tag: str = "py3-none-any", broken: bool = False) -> tuple[str, bytes]:
    """``(file name, bytes)`` of a wheel of the stand-in at ``version``."""
    files = {n: d for n, d in sources(version, broken=broken).items() if n.startswith("torch/")}
    name = f"torch-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n".encode()
    return name, make_wheel(name, metadata, files=files)
