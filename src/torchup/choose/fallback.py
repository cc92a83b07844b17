"""What to say when the PyTorch index could not be read and the plan fell back to what
pip alone would install from PyPI (``--backend pypi``). Pure: the metadata comes in as
a lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torchup.choose.plan import PypiFallback
from torchup.choose.resolve import MetadataLookup
from torchup.choose.variants import (
    cuda_of_requirements,
    driver_floors,
    judge,
    platform_key,
    variant_of_cuda,
)

if TYPE_CHECKING:
    from torchup.choose.resolve import Outcome
    from torchup.hardware.accelerators import Accelerator
    from torchup.interpreters.discover import Interpreter

__all__ = ["fallback_warning", "pypi_fallback"]


def pypi_fallback(
    why: str,
    outcomes: Sequence[Outcome],
    metadata: MetadataLookup,
    accel: Accelerator | None,
    py: Interpreter,
) -> PypiFallback:
    """What PyPI's torch, planned because the PyTorch index was unreadable, is built for,
    and whether this machine runs it."""
    torch = next((o.choice for o in outcomes if o.choice and o.choice.project == "torch"), None)
    if torch is None:
        return PypiFallback(reason=why, torch=None)
    requires = metadata(torch)
    cuda = cuda_of_requirements(requires) if requires is not None else None
    # unread metadata: PyPI's Linux torch is a CUDA build (x86_64 since 1.x)
    known = requires is not None or "linux" not in torch.dist.filename
    verdict = None
    if accel is not None and accel.kind == "cuda" and cuda is not None:
        verdict = judge(variant_of_cuda(cuda), torch.version, accel, platform_key(py.markers))
    return PypiFallback(
        reason=why, torch=torch.dist.filename, cuda=cuda, known=known, verdict=verdict
    )


def fallback_warning(fallback: PypiFallback) -> str:
    head = (
        f"the PyTorch index could not be read ({fallback.reason}); planned what pip would "
        "install from its own sources instead (--backend pypi)"
    )
    if fallback.torch is None:
        return head
    head += f": PyPI's torch, {fallback.describe()}"
    if not fallback.cuda_build:
        return head
    if fallback.verdict is None:
        return (
            f"{head}, with GBs of nvidia-*/cuda-* wheels that this machine (no NVIDIA GPU) "
            "cannot use; the CPU build is only on the PyTorch index, so `torchup install` "
            "stops here (--backend cpu with a reachable --torch-index-url, or --backend pypi "
            "to take the CUDA build knowingly)"
        )
    floors = driver_floors(fallback.verdict.variant)
    needs = f", which needs NVIDIA driver >= {floors.strict}" if floors and floors.strict else ""
    runs = (
        "this driver runs it"
        if fallback.verdict.ok
        else f"this machine does not run it ({fallback.verdict.reason})"
    )
    return f"{head}{needs}: {runs}"
