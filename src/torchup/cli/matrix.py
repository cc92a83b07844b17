"""``torchup matrix``: which torch has files for which Python and which build."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torchup.cli import options as o

__all__ = ["add_arguments", "run"]


def _listed(value: str) -> list[str]:
    items = [v.strip() for v in o.given(value).split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of this command (its one-line help is in :mod:`torchup.cli.main`)."""
    p.add_argument(
        "requirements", nargs="*", metavar="REQUIREMENT",
        help="torch releases to show ('torch>=2.0'; default: all)",
    )  # fmt: skip
    p.add_argument(
        "--python", metavar="V,...", type=_listed,
        help="the CPython columns (3.9,3.12,3.13t; default: the usual ones and this machine's)",
    )  # fmt: skip
    p.add_argument(
        "--backend", metavar="NAME,...", type=_listed,
        help="only these builds (cpu,cu126,rocm6.3,xpu,pypi)",
    )  # fmt: skip
    p.add_argument(
        "--platform", metavar="TAG", type=o.given,
        help="another platform's matrix (manylinux_2_28_x86_64, macosx_14_0_arm64, win_amd64)",
    )  # fmt: skip
    p.add_argument(
        "--for", dest="for_profile", metavar="FILE", type=o.given,
        help="the matrix for the machine a `torchup profile` FILE describes",
    )  # fmt: skip
    p.add_argument("--all", action="store_true", help="every patch release, not one per minor")
    p.add_argument(
        "--html", metavar="FILE", type=o.given,
        help="also write the matrix as one self-contained HTML page (filters, files on click)",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing --html FILE")
    o.output_options(p)
    o.source_options(p)


def run(args: argparse.Namespace) -> int:
    from torchup.choose.matrix import read_matrix
    from torchup.errors import UsageError
    from torchup.render.matrix import colour_default, render_matrix

    platform, accelerator = args.platform, None
    if args.for_profile is not None:
        if platform is not None:
            raise UsageError("--for names the platform already", hint="pass one of them")
        from torchup.profiles import load

        profile = load(Path(args.for_profile))
        platform = _platform_of(profile.python.tags)
        accelerator = profile.accelerator
    html = _html_target(args)
    matrix = read_matrix(
        args.requirements or ("torch",),
        pythons=args.python,
        backends=args.backend,
        platform=platform,
        accelerator=accelerator,
        torch_index_url=args.torch_index_url,
        index_url=args.index_url,
        extra_index_urls=args.extra_index_url,
        find_links=args.find_links,
        offline=args.offline,
    )
    if args.json:
        o.emit_json(matrix.to_dict())
    else:
        print(render_matrix(matrix, show_all=args.all, colour=colour_default()))
    for warning in matrix.warnings if args.json else ():
        print(f"torchup: warning: {warning}", file=sys.stderr)
    if html is not None:
        from torchup._paths import write_output
        from torchup.render.matrix_html import render_html

        write_output(html, render_html(matrix.to_dict()), force=args.force)
        print(f"wrote {html}", file=sys.stderr if args.json else sys.stdout)
    return 0 if matrix.rows else 1


def _html_target(args: argparse.Namespace) -> Path | None:
    """The --html FILE, refused before any page is read when it exists without --force."""
    from torchup.errors import UsageError

    if args.html is None:
        return None
    path = Path(args.html)
    if path.exists() and not args.force:
        raise UsageError(
            f"{path} exists", hint="pass --force to replace it, or --html another path"
        )
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: no folder {path.parent}")
    return path


def _platform_of(tags: tuple[str, ...]) -> str:
    for tag in tags:
        platform = tag.split("-")[2]
        if platform.startswith(("manylinux_", "macosx_", "win", "musllinux_")):
            return platform
    return tags[0].split("-")[2] if tags else "linux_x86_64"
