"""What several commands share: the option groups, reading the other machine a plan
is for, and printing the one JSON document."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchup.choose.plan import Plan
    from torchup.interpreters.discover import Interpreter
    from torchup.profiles import Profile

__all__ = [
    "common",
    "emit_json",
    "error_doc",
    "given",
    "index_url",
    "output_options",
    "plan_kwargs",
    "plan_options",
    "plan_target",
    "target_options",
    "target_profile",
]


def given(value: str) -> str:
    """An option's value, which may not be empty (an empty one is a mistake, not a
    request for the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the option out instead)")
    return value


def index_url(value: str) -> str:
    """An index URL given on the command line (:func:`~torchup.index.sources.index_url_problem`)."""
    from torchup.index.sources import index_url_problem

    if problem := index_url_problem(given(value)):
        raise argparse.ArgumentTypeError(problem)
    return value.strip()


def common(parser: argparse.ArgumentParser) -> None:
    """``--python`` and the output options, for the commands that target a Python."""
    parser.add_argument(
        "--python",
        metavar="SPEC",
        type=given,
        help="target Python: a version (3.10, 3.13t), an executable, a venv or conda "
        "prefix, or a conda env name (default: the active venv, ./.venv, or python3 on PATH)",
    )
    output_options(parser)


def output_options(
    parser: argparse.ArgumentParser, *, quiet_help: str = "print only problems and warnings"
) -> None:
    """``--json``, ``-v``/``--verbose`` and ``-q``/``--quiet``, which every command takes."""
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def source_options(p: argparse.ArgumentParser) -> None:
    """Where pages are read from: the PyTorch index, pip's indexes and wheel folders,
    and ``--offline``."""
    p.add_argument(
        "--torch-index-url",
        metavar="URL",
        type=index_url,
        help="root of the PyTorch index (TORCHUP_TORCH_INDEX_URL; default the official one)",
    )
    p.add_argument("--index-url", metavar="URL", type=index_url, help="replace pip's index URL")
    p.add_argument(
        "--extra-index-url",
        metavar="URL",
        type=index_url,
        action="append",
        default=[],
        help="add an index",
    )
    p.add_argument(
        "--find-links",
        metavar="LOCATION",
        type=given,
        action="append",
        default=[],
        help="add a wheel folder",
    )
    p.add_argument("--offline", action="store_true", help="read cached pages only; say their age")


def plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENT",
        help="PEP 508 requirements (default: torch), or wheel files by path; "
        "torchvision/torchaudio are paired to torch",
    )
    p.add_argument(
        "--backend",
        metavar="NAME",
        type=given,
        help="auto (default; TORCHUP_BACKEND), cpu, cuXYZ, rocmX.Y, xpu, mps, or pypi "
        "(what pip alone would install)",
    )
    source_options(p)
    p.add_argument(
        "--allow-name",
        metavar="NAME",
        action="append",
        default=[],
        help="accept a requirement named NAME although it is a keystroke from a PyTorch "
        "package's name (refused otherwise: 'troch', 'pytorch')",
    )


def plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The options :func:`plan_options` adds, as ``plan()``/``install()`` take them."""
    return {
        "backend": args.backend,
        "torch_index_url": args.torch_index_url,
        "index_url": args.index_url,
        "extra_index_urls": args.extra_index_url,
        "find_links": args.find_links,
        "offline": args.offline,
        "allow_names": args.allow_name,
    }


def target_options(p: argparse.ArgumentParser) -> None:
    """Plan for another machine: a profile (``--for``), or the flags describing one."""
    g = p.add_argument_group("another machine (instead of --python)")
    g.add_argument(
        "--for",
        dest="for_profile",
        metavar="FILE",
        type=given,
        help="plan for the machine a `torchup profile` FILE describes",
    )
    g.add_argument("--python-version", metavar="X.Y", type=given, help="its CPython (3.13t)")
    g.add_argument(
        "--platform",
        metavar="TAG",
        type=given,
        help="its platform tag: manylinux_2_28_x86_64, macosx_14_0_arm64, win_amd64 ...",
    )
    g.add_argument("--gpu", metavar="ARCHS", type=given, help="its GPUs: sm_90, 8.6,9.0, gfx942")
    g.add_argument("--driver", metavar="VERSION", type=given, help="its NVIDIA driver (550.54)")
    g.add_argument("--rocm", metavar="VERSION", type=given, help="its ROCm (6.3)")


#: the options that make a plan (``dest``: flag), which a lock has made already: given
#: with ``--lock`` they would be ignored, so they are refused (:func:`refuse_planning`)
PLANNING = {
    "requirements": "requirements",
    "python": "--python",
    "for_profile": "--for",
    "python_version": "--python-version",
    "platform": "--platform",
    "gpu": "--gpu",
    "driver": "--driver",
    "rocm": "--rocm",
    "backend": "--backend",
    "torch_index_url": "--torch-index-url",
    "index_url": "--index-url",
    "extra_index_url": "--extra-index-url",
    "find_links": "--find-links",
    "offline": "--offline",
    "allow_name": "--allow-name",
}


def refuse_planning(
    args: argparse.Namespace, *, does: str, hint: str, taken: Sequence[str] = ()
) -> None:
    """A :class:`UsageError` naming every option of :data:`PLANNING` given with
    ``--lock`` (but ``taken``, which the command uses otherwise); ``does`` says what
    ``--lock`` does instead (``--lock fetches what the lock holds``)."""
    given = [f for d, f in PLANNING.items() if d not in taken and getattr(args, d, None)]
    if given:
        from torchup.errors import UsageError

        raise UsageError(f"{does}; {', '.join(given)} would make a new plan", hint=hint)


def target_profile(args: argparse.Namespace) -> Profile | None:
    """The other machine :func:`target_options` names, or None for this one."""
    flags = {k: getattr(args, k) for k in ("python_version", "platform", "gpu", "driver", "rocm")}
    given = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
    if args.for_profile is None and not given:
        return None  # this machine: nothing of profiles/ is loaded
    from torchup.errors import UsageError
    from torchup.profiles import from_flags, load

    if args.python and (args.for_profile or given):
        raise UsageError(
            "--python picks a Python on this machine; --for and --platform describe another",
            hint="pass one or the other",
        )
    if args.for_profile is not None:
        if given:
            raise UsageError(
                f"--for takes the machine from its profile; {', '.join(given)} would contradict it",
                hint="edit the profile, or describe the machine with flags alone",
            )
        from pathlib import Path  # lazy, like every import the --help path does not need

        return load(Path(args.for_profile))
    if not (flags["python_version"] and flags["platform"]):
        raise UsageError(
            "a machine described by flags needs --python-version and --platform",
            hint="e.g. --python-version 3.12 --platform manylinux_2_28_x86_64 --gpu sm_90 "
            "--driver 550.54",
        )
    return from_flags(**flags)


def plan_target(
    args: argparse.Namespace, requirements: Sequence[str], *, wheel_files: bool = False
) -> Plan:
    """The plan for ``requirements`` on the machine the options name: another one
    (``--for`` or the flags, planned with nothing of this machine's) or a Python here.
    A wheel file's path is a :class:`UsageError` unless ``wheel_files`` (``plan``): a lock,
    a wheelhouse and the exports record index files that another machine can fetch."""
    if not wheel_files:
        _no_wheel_files(args, requirements)
    profile = target_profile(args)
    if profile is None:
        python = _finding(args.python)  # while the planner's modules load
        from torchup.choose.api import plan

        return plan(requirements, python=python(), **plan_kwargs(args))
    from torchup.choose.api import plan

    made = plan(
        requirements,
        python=profile.python,
        accelerator=profile.accelerator,
        elsewhere=True,
        **plan_kwargs(args),
    )
    if not made.build_script:
        return made
    # the build script is for that machine too: named by the same options, not its path
    from dataclasses import replace

    from torchup.choose.plan import build_script_command

    return replace(made, build_script=build_script_command(made.build_script[2], _target(args)))


def _finding(spec: str | None) -> Callable[[], Interpreter | str | None]:
    """Start finding the Python ``--python SPEC`` names (or the default one) in a
    thread, and return what waits for it: the planner's imports (~60 ms) then overlap
    the probe, which runs that Python (~40 ms of waiting, the first time). The waiter
    returns the probed interpreter, or raises what finding it raised, as ``plan()``
    would. A version SPEC is returned as given: it needs discovery, whose list the
    planner keeps for the other Pythons it may suggest."""
    import threading
    from pathlib import Path

    # imported here, not in the thread: two threads importing at once can meet an
    # import cycle half done
    from torchup.interpreters import discover

    found: list[Interpreter | str | None] = []
    failed: list[BaseException] = []

    def find() -> None:
        try:
            if spec is not None and discover.is_version_spec(spec):
                found.append(spec)
            elif spec:
                found.append(discover.select(spec, env=os.environ, cwd=Path.cwd()))
            else:
                found.append(discover.default_interpreter(env=os.environ, cwd=Path.cwd()))
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=find, name="torchup-find-python", daemon=True)
    worker.start()

    def wait() -> Interpreter | str | None:
        worker.join()
        if failed:
            raise failed[0]
        return found[0]

    return wait


def _no_wheel_files(args: argparse.Namespace, requirements: Sequence[str]) -> None:
    from pathlib import Path

    from torchup.choose.localwheel import split_local_wheels
    from torchup.errors import UsageError

    _, wheels = split_local_wheels(requirements, cwd=Path.cwd())
    if wheels:
        path = next(iter(wheels.values())).path
        raise UsageError(
            f"torchup {args.command} records files another machine fetches from an index; "
            f"{path} is a file on this disk",
            hint=f"install it here with `torchup install {path}`, or publish it on an "
            "index and ask for its version",
        )


def _target(args: argparse.Namespace) -> tuple[str, ...]:
    """The options that named another machine, as given."""
    if args.for_profile is not None:
        return ("--for", args.for_profile)
    flags = ("python_version", "platform", "gpu", "driver", "rocm")
    given = [(f"--{f.replace('_', '-')}", getattr(args, f, None)) for f in flags]
    return tuple(part for flag, value in given if value for part in (flag, value))


def error_doc(kind: str, message: str, hint: str | None) -> dict[str, Any]:
    return {"schema": 1, "ok": False, "error": {"type": kind, "message": message, "hint": hint}}


def json_text(doc: dict[str, Any]) -> str:
    """``doc`` as ``--json`` prints it."""
    import json

    return json.dumps(doc, indent=2) + "\n"


def emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json_text(doc))
