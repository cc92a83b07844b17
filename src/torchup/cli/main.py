"""The ``torchup`` command line: parse arguments, call the library, print, exit.

Exit codes: 0 success, 1 expected failure (nothing fits, a source failed), 2 usage or
internal error. ``--json`` prints exactly one document on stdout; warnings and errors
go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from torchup import __version__
from torchup.errors import TorchupError

__all__ = ["main"]


def _given(value: str) -> str:
    """An option's value, which may not be empty (an empty one is a mistake, not a
    request for the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the option out instead)")
    return value


def _index_url(value: str) -> str:
    """An index URL given on the command line (:func:`~torchup.index.sources.index_url_problem`)."""
    from torchup.index.sources import index_url_problem

    if problem := index_url_problem(_given(value)):
        raise argparse.ArgumentTypeError(problem)
    return value.strip()


def _common(parser: argparse.ArgumentParser) -> None:
    """``--python`` and the output options, for the commands that target a Python."""
    parser.add_argument(
        "--python",
        metavar="SPEC",
        type=_given,
        help="target Python: a version (3.10, 3.13t), an executable, a venv or conda "
        "prefix, or a conda env name (default: the active venv, ./.venv, or python3 on PATH)",
    )
    _output_options(parser)


def _output_options(
    parser: argparse.ArgumentParser, *, quiet_help: str = "print only problems and warnings"
) -> None:
    """``--json``, ``-v``/``--verbose`` and ``-q``/``--quiet``, which every command takes."""
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


class _UsageExit(Exception):
    """A command line argparse rejected (after it printed the usage and the error)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _UsageExit(message, f"see `{self.prog} --help`")


if TYPE_CHECKING:
    from torchup.profiles import Profile

    _Subparsers = argparse._SubParsersAction[_Parser]


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: children stopped, changes undone."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchup",
        description="Put a working PyTorch into a chosen Python, or say exactly why it "
        "can't and what will.",
    )
    parser.add_argument("--version", action="version", version=f"torchup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMAND_PARSERS:
        add(sub)
    return parser


def _add_pythons_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("pythons", help="list every Python on this machine and its wheel tags")
    _common(p)
    p.add_argument("--tags", action="store_true", help="also print each Python's wheel tags")


def _add_detect_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "detect", help="show the accelerator found (NVIDIA, AMD, Intel, Apple or none)"
    )
    _output_options(p, quiet_help="print only warnings")


def _add_plan_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("plan", help="choose the torch files for a Python, or explain why none fit")
    _common(p)
    _plan_options(p)
    _target_options(p)


def _add_profile_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "profile", help="record a machine (a Python and its GPUs) for plans made elsewhere (--for)"
    )
    _common(p)
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the profile to FILE (default: stdout)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing FILE")
    p.add_argument(
        "--script",
        action="store_true",
        help="write the standalone profile script instead, for a machine without torchup: "
        "`python3 torchup-profile.py > node.json` there (Python 2.7 or 3.6+)",
    )


def _add_install_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "install", help="create or update an environment with a verified PyTorch, all or nothing"
    )
    _common(p)
    _plan_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--venv", metavar="PATH", type=_given, help="the venv to install into (created if missing)"
    )
    where.add_argument(
        "--conda-env", metavar="NAME", type=_given, help="an existing conda env (its own pip)"
    )
    where.add_argument(
        "--system",
        action="store_true",
        help="install into the Python itself, even when it is externally managed (PEP 668)",
    )
    p.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default="auto",
        help="uv where available (auto), or the target's own pip",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would run; change nothing")
    p.add_argument(
        "--no-verify", action="store_true", help="skip running torch in the result (not advised)"
    )
    p.add_argument(
        "--force-incompatible",
        action="store_true",
        help="when no torch wheel fits this Python, try the nearest one built for another "
        "Python anyway: installed aside, kept only if verify passes",
    )
    p.add_argument(
        "--reinstall",
        action="store_true",
        help="replace the torch family's files even when the same versions are installed "
        "(repairs a damaged install; dependencies are left alone)",
    )


def _add_verify_parser(sub: _Subparsers) -> None:
    p = sub.add_parser("verify", help="run torch in an environment and check it works here")
    _common(p)
    p.add_argument(
        "--venv", metavar="PATH", type=_given, help="the venv to check (instead of --python)"
    )


def _add_doctor_parser(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "doctor", help="find out why an existing PyTorch setup is broken, and how to fix it"
    )
    _common(p)
    p.add_argument(
        "--venv", metavar="PATH", type=_given, help="the venv to examine (instead of --python)"
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="after showing the fixes, apply the ones torchup can do safely: a reinstall "
        "through torchup install, undone if it fails (the others stay advice)",
    )


#: One function per subcommand, in the order ``--help`` lists them; a new command is
#: one more ``_add_<command>_parser`` here.
_COMMAND_PARSERS: tuple[Callable[[_Subparsers], None], ...] = (
    _add_pythons_parser,
    _add_detect_parser,
    _add_plan_parser,
    _add_profile_parser,
    _add_install_parser,
    _add_verify_parser,
    _add_doctor_parser,
)


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENT",
        help="PEP 508 requirements (default: torch); torchvision/torchaudio are paired to torch",
    )
    p.add_argument(
        "--backend",
        metavar="NAME",
        type=_given,
        help="auto (default; TORCHUP_BACKEND), cpu, cuXYZ, rocmX.Y, xpu, mps, or pypi "
        "(what pip alone would install)",
    )
    p.add_argument(
        "--torch-index-url",
        metavar="URL",
        type=_index_url,
        help="root of the PyTorch index (TORCHUP_TORCH_INDEX_URL; default the official one)",
    )
    p.add_argument("--index-url", metavar="URL", type=_index_url, help="replace pip's index URL")
    p.add_argument(
        "--extra-index-url",
        metavar="URL",
        type=_index_url,
        action="append",
        default=[],
        help="add an index",
    )
    p.add_argument(
        "--find-links",
        metavar="LOCATION",
        type=_given,
        action="append",
        default=[],
        help="add a wheel folder",
    )
    p.add_argument(
        "--offline", action="store_true", help="plan from the cache only; say how old it is"
    )
    p.add_argument(
        "--allow-name",
        metavar="NAME",
        action="append",
        default=[],
        help="accept a requirement named NAME although it is a keystroke from a PyTorch "
        "package's name (refused otherwise: 'troch', 'pytorch')",
    )


def _plan_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The options :func:`_plan_options` adds, as ``plan()``/``install()`` take them."""
    return {
        "backend": args.backend,
        "torch_index_url": args.torch_index_url,
        "index_url": args.index_url,
        "extra_index_urls": args.extra_index_url,
        "find_links": args.find_links,
        "offline": args.offline,
        "allow_names": args.allow_name,
    }


def _target_options(p: argparse.ArgumentParser) -> None:
    """Plan for another machine: a profile (``--for``), or the flags describing one."""
    g = p.add_argument_group("another machine (instead of --python)")
    g.add_argument(
        "--for",
        dest="for_profile",
        metavar="FILE",
        type=_given,
        help="plan for the machine a `torchup profile` FILE describes",
    )
    g.add_argument("--python-version", metavar="X.Y", type=_given, help="its CPython (3.13t)")
    g.add_argument(
        "--platform",
        metavar="TAG",
        type=_given,
        help="its platform tag: manylinux_2_28_x86_64, macosx_14_0_arm64, win_amd64 ...",
    )
    g.add_argument("--gpu", metavar="ARCHS", type=_given, help="its GPUs: sm_90, 8.6,9.0, gfx942")
    g.add_argument("--driver", metavar="VERSION", type=_given, help="its NVIDIA driver (550.54)")
    g.add_argument("--rocm", metavar="VERSION", type=_given, help="its ROCm (6.3)")


def _target_profile(args: argparse.Namespace) -> Profile | None:
    """The other machine :func:`_target_options` names, or None for this one."""
    from torchup.errors import UsageError
    from torchup.profiles import from_flags, load

    flags = {k: getattr(args, k) for k in ("python_version", "platform", "gpu", "driver", "rocm")}
    given = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
    if args.for_profile is None and not given:
        return None
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
        return load(Path(args.for_profile))
    if not (flags["python_version"] and flags["platform"]):
        raise UsageError(
            "a machine described by flags needs --python-version and --platform",
            hint="e.g. --python-version 3.12 --platform manylinux_2_28_x86_64 --gpu sm_90 "
            "--driver 550.54",
        )
    return from_flags(**flags)


def _error_doc(kind: str, message: str, hint: str | None) -> dict[str, Any]:
    return {"schema": 1, "ok": False, "error": {"type": kind, "message": message, "hint": hint}}


def _emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _cmd_pythons(args: argparse.Namespace) -> int:
    from torchup.choose.api import pythons
    from torchup.render.text import render_pythons

    found = pythons(python=args.python)
    if args.json:
        _emit_json({"schema": 1, "pythons": [p.to_dict() for p in found]})
    else:
        print(render_pythons(found))
        if args.tags:
            for py in found:
                print(f"\n{py.executable}:\n  " + "\n  ".join(py.tags[:20]))
                if len(py.tags) > 20:
                    print(f"  ... {len(py.tags) - 20} more (--json lists all)")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from torchup.choose.backends import requested_backend
    from torchup.hardware.accelerators import detect
    from torchup.render.text import render_accelerator

    accel = detect()
    backend = requested_backend(None, os.environ)
    if args.json:
        doc = {"schema": 1, "backend": {"name": backend[0], "source": backend[1]}}
        _emit_json({**doc, **accel.to_dict()})
    elif not args.quiet:
        print(render_accelerator(accel, backend))
    for warning in accel.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from torchup.choose.api import plan
    from torchup.render.text import render_plan

    profile = _target_profile(args)
    if profile is not None:
        result = plan(
            args.requirements,
            python=profile.python,
            accelerator=profile.accelerator,
            elsewhere=True,
            **_plan_kwargs(args),
        )
    else:
        result = plan(args.requirements, python=args.python, **_plan_kwargs(args))
    if args.json:
        _emit_json(result.to_dict())
    elif not args.quiet or not result.ok:
        print(render_plan(result))
    for warning in result.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_profile(args: argparse.Namespace) -> int:
    from torchup._paths import write_output
    from torchup.interpreters.discover import default_interpreter, select
    from torchup.profiles import node_script, record
    from torchup.profiles.profile import read

    if args.script:
        text = node_script()
        what = "the profile script: run `python3 FILE > node.json` on the machine"
    else:
        py = select(args.python) if args.python else default_interpreter()
        doc = record(py.executable)
        profile = read(doc, source=py.executable)  # checks that it reads back
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        what = profile.describe()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    write_output(Path(args.output), text, force=args.force)
    if args.json:
        _emit_json({"schema": 1, "ok": True, "path": args.output, "summary": what})
    elif not args.quiet:
        print(f"wrote {args.output}: {what}")
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from torchup.envs.installing import install
    from torchup.render.text import render_install

    result = install(
        args.requirements,
        python=args.python,
        venv=args.venv,
        conda_env=args.conda_env,
        system=args.system,
        installer=args.installer,
        dry_run=args.dry_run,
        verify=not args.no_verify,
        force_incompatible=args.force_incompatible,
        reinstall=args.reinstall,
        echo=not args.json and not args.quiet,
        **_plan_kwargs(args),
    )
    if args.json:
        _emit_json(result.to_dict())
    elif not args.quiet or not result.ok:
        print(render_install(result))
    for warning in result.plan.warnings:
        print(f"torchup: warning: {warning}", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_verify(args: argparse.Namespace) -> int:
    from torchup.check.verify import verify
    from torchup.interpreters.discover import examined
    from torchup.render.text import render_verify

    report = verify(examined(args.python, args.venv).executable)
    if args.json:
        _emit_json(report.to_dict())
    else:
        print(render_verify(report, quiet=args.quiet))
    return 0 if report.ok else 1


def _cmd_doctor(args: argparse.Namespace) -> int:
    from torchup.check.doctor import doctor
    from torchup.envs.installing import apply_fix
    from torchup.render.text import render_doctor

    report = doctor(python=args.python, venv=args.venv)
    shown = {"quiet": args.quiet, "verbose": args.verbose > 0}
    if not args.json:
        print(render_doctor(report, **shown))
    applied: list[dict[str, Any]] = []
    automatic = [fix for fix in report.fixes if fix.automatic] if args.fix else []
    if args.fix and not automatic and not report.ok and not args.json:
        print("\n--fix: nothing here that torchup can fix by itself; see the fixes above")
    for fix in automatic:
        if not args.json:
            print(f"\n--fix: {fix.command}")
        try:
            result = apply_fix(fix, echo=not args.json and not args.quiet)
        except TorchupError as exc:
            ok, message = False, str(exc)
        else:
            problems = [f"{p.requirement}: {p.message}" for p in result.plan.problems]
            ok, message = result.ok, "; ".join([result.message, *problems])
            for warning in result.plan.warnings:
                print(f"torchup: warning: {warning}", file=sys.stderr)
        applied.append({"command": fix.command, "ok": ok, "message": message})
        if not args.json:
            print(message)
    if automatic:
        report = doctor(python=args.python, venv=args.venv)
        if not args.json:
            print("\nafter the fix:\n" + render_doctor(report, **shown))
    if args.json:
        _emit_json({**report.to_dict(), "applied": applied})
    return 0 if report.ok else 1


_COMMANDS = {
    "pythons": _cmd_pythons,
    "detect": _cmd_detect,
    "plan": _cmd_plan,
    "profile": _cmd_profile,
    "install": _cmd_install,
    "verify": _cmd_verify,
    "doctor": _cmd_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    wants_json = any(a == "--json" or (len(a) > 3 and "--json".startswith(a)) for a in argv)
    try:
        args = _parser().parse_args(argv)
    except _UsageExit as exc:
        if wants_json:
            _emit_json(_error_doc("UsageError", *exc.args))
        return 2
    wants_json = bool(getattr(args, "json", False))  # as parsed (--jso abbreviates it)
    level = (
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    if args.quiet:
        level = logging.ERROR
    logging.basicConfig(
        level=level, format="torchup: %(levelname)s: %(message)s", stream=sys.stderr
    )
    import signal
    import threading

    # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) undo like
    # Ctrl-C; only the main thread may set handlers, and an embedding program gets its
    # own handlers back afterwards
    stops = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {int(s): signal.signal(s, _terminate) for s in stops}
    try:
        return _COMMANDS[args.command](args)
    except TorchupError as exc:
        print(f"torchup: error: {exc}", file=sys.stderr)
        if wants_json:
            _emit_json(_error_doc(type(exc).__name__, exc.message, exc.hint))
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`torchup plan | head`): not an error worth a message.
        # Point stdout at devnull so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        print("torchup: " + ("terminated" if terminated else "interrupted"), file=sys.stderr)
        if wants_json:
            _emit_json(_error_doc("Interrupted", "stopped; nothing was left half-done", None))
        return 128 + int(exc.args[0]) if terminated else 130  # 143 for SIGTERM
    except Exception as exc:  # an internal bug: say so briefly, details with -v
        if args.verbose:
            raise
        print(
            f"torchup: internal error: {type(exc).__name__}: {exc}\n"
            "  please report it with the output of the same command run with -v",
            file=sys.stderr,
        )
        return 2
    finally:
        for number, handler in previous.items():  # None: set outside Python, use default
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
