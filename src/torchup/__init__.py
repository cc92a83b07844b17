"""torchup: put a working PyTorch into a chosen Python, or say exactly why it can't.

The library API::

    import torchup
    plan = torchup.plan(["torch==2.5.1", "torchvision"], python="3.10")
    print(plan.ok, [p.pin for p in plan.packages])

Heavy modules (httpx, the index client) load on first use, so importing is cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing is a third of start-up's imports
if TYPE_CHECKING:
    from typing import Any

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
    "apply_fix",
    "detect",
    "doctor",
    "install",
    "plan",
    "pythons",
    "verify",
]

if TYPE_CHECKING:
    from torchup.check.doctor import DoctorReport, doctor
    from torchup.check.verify import VerifyReport, verify
    from torchup.choose.api import plan, pythons
    from torchup.choose.plan import Plan
    from torchup.envs.installing import InstallResult, apply_fix, install
    from torchup.errors import TorchupError, UsageError
    from torchup.hardware.accelerators import Accelerator, detect
    from torchup.interpreters.discover import Interpreter

_LAZY = {
    "Accelerator": "hardware.accelerators",
    "detect": "hardware.accelerators",
    "DoctorReport": "check.doctor",
    "doctor": "check.doctor",
    "InstallResult": "envs.installing",
    "install": "envs.installing",
    "apply_fix": "envs.installing",
    "VerifyReport": "check.verify",
    "verify": "check.verify",
    "plan": "choose.api",
    "pythons": "choose.api",
    "Interpreter": "interpreters.discover",
    "Plan": "choose.plan",
    "TorchupError": "errors",
    "UsageError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f"torchup.{_LAZY[name]}"), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module 'torchup' has no attribute {name!r}")
