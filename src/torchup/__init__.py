"""torchup: put a working PyTorch into a chosen Python, or say exactly why it can't.

The library API::

    import torchup
    plan = torchup.plan(["torch==2.5.1", "torchvision"], python="3.10")
    print(plan.ok, [p.pin for p in plan.packages])

Heavy modules (httpx, the index client) load on first use, so importing is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Accelerator",
    "DoctorReport",
    "InstallResult",
    "Interpreter",
    "Plan",
    "TorchupError",
    "UsageError",
    "VerifyReport",
    "__version__",
    "detect",
    "doctor",
    "install",
    "plan",
    "pythons",
    "verify",
]

if TYPE_CHECKING:
    from .accelerators import Accelerator, detect
    from .api import plan, pythons
    from .doctor import DoctorReport, doctor
    from .errors import TorchupError, UsageError
    from .installing import InstallResult, install
    from .interpreters import Interpreter
    from .plan import Plan
    from .verify import VerifyReport, verify

_LAZY = {
    "Accelerator": "accelerators",
    "detect": "accelerators",
    "DoctorReport": "doctor",
    "doctor": "doctor",
    "InstallResult": "installing",
    "install": "installing",
    "VerifyReport": "verify",
    "verify": "verify",
    "plan": "api",
    "pythons": "api",
    "Interpreter": "interpreters",
    "Plan": "plan",
    "TorchupError": "errors",
    "UsageError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"torchup.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'torchup' has no attribute {name!r}")
