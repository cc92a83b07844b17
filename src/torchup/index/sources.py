"""Which indexes to read: the target pip's configuration, environment, flags, and the
PyTorch index URL setting.

:func:`pip_sources` reproduces what ``python -m pip install`` of the *target*
interpreter would use (pip's ``configuration.py`` and ``ConfigOptionParser``):

1. Config files, later overriding earlier: global (Linux: ``$XDG_CONFIG_DIRS/pip/pip.conf``,
   default ``/etc/xdg/pip/pip.conf``, then ``/etc/pip.conf``), user
   (``~/.pip/pip.conf`` then ``$XDG_CONFIG_HOME/pip/pip.conf``, skipped when
   ``PIP_CONFIG_FILE`` names an existing file), base (``<sys.base_prefix>/pip.conf``,
   pip >= 23.3), site (``<sys.prefix>/pip.conf``), then ``PIP_CONFIG_FILE``.
   ``PIP_CONFIG_FILE=/dev/null`` (``os.devnull``) disables every file.
2. Within that, pip ranks *sections* above files: any ``[install]`` value beats any
   ``[global]`` one, whichever file holds it.
3. ``PIP_*`` environment variables beat all files.
4. Command-line flags: ``--index-url`` replaces; ``--extra-index-url``,
   ``--find-links`` and ``--trusted-host`` *add to* the configured lists (optparse
   appends to the defaults pip seeds from its configuration).

Multi-valued settings are whitespace-separated, as pip splits them. ``--isolated``
mode, keyring and ``.netrc`` are not modelled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from packaging.utils import canonicalize_name

from torchup.errors import TorchupError, UsageError
from torchup.index.pages import VARIANT_RE, redact

if TYPE_CHECKING:
    import configparser

__all__ = [
    "PYPI_SIMPLE",
    "TORCH_INDEX_DEFAULT",
    "PipConfigError",
    "Source",
    "SourceOverrides",
    "Sources",
    "pip_config_files",
    "pip_sources",
    "project_url",
    "torch_index_source",
    "variant_project_url",
]

#: pip's default index.
PYPI_SIMPLE = "https://pypi.org/simple"
#: Root of the PyTorch wheel index (variant directories live under it).
TORCH_INDEX_DEFAULT = "https://download.pytorch.org/whl"

_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE = frozenset({"n", "no", "f", "false", "off", "0"})
_KEYS = ("index-url", "extra-index-url", "find-links", "no-index", "trusted-host", "cert")


class PipConfigError(TorchupError):
    """A pip configuration file or ``PIP_*`` variable cannot be read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One index or find-links location and where the setting came from.

    ``url`` keeps any credentials (it is used to fetch); :meth:`to_dict` redacts them.
    """

    url: str
    origin: str

    def to_dict(self) -> dict[str, str]:
        return {"url": redact(self.url), "origin": self.origin}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """Every place the target's pip would look, plus the PyTorch index root.

    ``index_url`` is ``None`` only in hand-built values, where it means pip's default
    (:attr:`default_index`); :func:`pip_sources` always fills it in, with origin
    ``"default"`` when nothing configures it. With ``no_index`` pip reads no index at
    all, only ``find_links``.
    """

    index_url: Source | None
    extra_index_urls: tuple[Source, ...]
    find_links: tuple[Source, ...]
    trusted_hosts: tuple[str, ...]
    no_index: bool
    torch_index_url: Source
    cert: Source | None = None

    @property
    def default_index(self) -> str:
        return PYPI_SIMPLE

    def index_urls(self) -> tuple[Source, ...]:
        """The simple indexes pip reads, in order (none with ``no_index``)."""
        if self.no_index:
            return ()
        primary = self.index_url or Source(url=PYPI_SIMPLE, origin="default")
        return (primary, *self.extra_index_urls)

    def without(self, unread: Set[str]) -> Sources:
        """These sources less the extra indexes and find-links locations in ``unread``
        (what planning could not read, so the installer is not sent there either). The
        main index stays: dropping it would send the installer to PyPI instead.

        >>> s = Sources(index_url=None, find_links=(), trusted_hosts=(), no_index=False,
        ...     extra_index_urls=(Source(url="https://a/simple", origin="x"),),
        ...     torch_index_url=Source(url="https://t/whl", origin="default"))
        >>> s.without({"https://a/simple"}).extra_index_urls, s.without(set()) == s
        ((), True)
        """
        if not unread:
            return self
        return replace(
            self,
            extra_index_urls=tuple(x for x in self.extra_index_urls if x.url not in unread),
            find_links=tuple(x for x in self.find_links if x.url not in unread),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_url": self.index_url.to_dict() if self.index_url else None,
            "extra_index_urls": [s.to_dict() for s in self.extra_index_urls],
            "find_links": [s.to_dict() for s in self.find_links],
            "trusted_hosts": list(self.trusted_hosts),
            "no_index": self.no_index,
            "torch_index_url": self.torch_index_url.to_dict(),
            "cert": self.cert.to_dict() if self.cert else None,
        }


class SourceOverrides(TypedDict, total=False):
    """Command-line values; ``None`` or an empty sequence means "not given"."""

    index_url: str | None
    extra_index_urls: Sequence[str]
    find_links: Sequence[str]
    trusted_hosts: Sequence[str]
    no_index: bool | None
    torch_index_url: str | None


# -- config files --------------------------------------------------------------------


def pip_config_files(
    *,
    env: Mapping[str, str],
    prefix: str | None = None,
    base_prefix: str | None = None,
    home: Path | None = None,
    platform: str | None = None,
    root: Path | None = None,
) -> list[tuple[str, Path]]:
    """The config files pip would read, lowest priority first, as ``(kind, path)``.

    ``kind`` is one of ``global``, ``user``, ``base``, ``site``, ``env``. Files need
    not exist. ``prefix``/``base_prefix`` are the *target's* ``sys.prefix`` and
    ``sys.base_prefix`` (omitted when unknown). ``root`` re-roots the system-wide
    (global) locations, for tests.
    """
    platform = sys.platform if platform is None else platform
    root = Path("/") if root is None else root
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    windows = platform.startswith("win")
    basename = "pip.ini" if windows else "pip.conf"
    config_file = env.get("PIP_CONFIG_FILE")
    if config_file in (os.devnull, "/dev/null"):
        return []

    files: list[tuple[str, Path]] = []
    if windows:
        program_data = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        files.append(("global", Path(program_data) / "pip" / basename))
    elif platform == "darwin":
        files.append(("global", root / "Library/Application Support/pip" / basename))
    else:
        xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
        files += [
            ("global", root / d.lstrip("/") / "pip" / basename) for d in xdg_dirs.split(":") if d
        ]
        files.append(("global", root / "etc" / basename))

    if not (config_file and Path(config_file).exists()):
        files.append(("user", home / ("pip" if windows else ".pip") / basename))
        if windows:
            appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
            files.append(("user", Path(appdata) / "pip" / basename))
        elif platform == "darwin" and (home / "Library/Application Support/pip").is_dir():
            files.append(("user", home / "Library/Application Support/pip" / basename))
        else:
            xdg_home = env.get("XDG_CONFIG_HOME") or str(home / ".config")
            files.append(("user", Path(xdg_home) / "pip" / basename))
    if base_prefix:
        files.append(("base", Path(base_prefix) / basename))
    if prefix and prefix != base_prefix:
        files.append(("site", Path(prefix) / basename))
    if config_file:
        files.append(("env", Path(config_file)))
    return files


def _read_config(path: Path) -> configparser.RawConfigParser | None:
    if not path.is_file():
        return None
    import configparser  # only when there is a file to read

    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise PipConfigError(
            f"cannot read pip configuration {str(path)!r}: {exc}",
            hint=f"fix or remove {path}; `pip config debug` shows what pip reads",
        ) from None
    return parser


def _collect_settings(
    files: Sequence[tuple[str, Path]], env: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """``name -> (raw value, origin)`` after pip's section, file and env precedence."""
    by_section: dict[str, dict[str, tuple[str, str]]] = {"global": {}, "install": {}}
    for _kind, path in files:
        parser = _read_config(path)
        if parser is None:
            continue
        for section in ("global", "install"):
            if not parser.has_section(section):
                continue
            for name, value in parser.items(section):
                key = name.lower().replace("_", "-")
                if key in _KEYS:
                    by_section[section][key] = (value, f"pip config {path} [{section}]")
    settings = {**by_section["global"], **by_section["install"]}
    for var, value in env.items():
        if var.startswith("PIP_"):
            key = var[4:].lower().replace("_", "-")
            if key in _KEYS:
                settings[key] = (value, var)
    return settings


def _flag(value: str, origin: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise PipConfigError(
        f"{origin}: {value!r} is not a boolean",
        hint="use one of: true, false, yes, no, on, off, 1, 0",
    )


def index_url_problem(value: str) -> str | None:
    """Why ``value`` cannot be an index URL given by the user, or ``None``: https://,
    http:// (fetched only from a local or trusted host) or file:// naming a folder that
    exists. Credentials never appear in the answer.

    >>> index_url_problem("https://user:pw@mirror.example/simple") is None
    True
    >>> index_url_problem("ftp://user:pw@mirror/simple")
    "'ftp://****@mirror/simple' is not an index URL: use https://HOST/..., http://localhost/... or file:///PATH"
    """
    from urllib.parse import urlsplit

    from torchup.index.urls import file_url_to_path

    value = value.strip()
    if not value:
        return "must not be empty (leave it out instead)"
    shown = value  # no user-info, even where the URL does not parse as one
    if "@" in value and "://" in value:
        shown = value[: value.index("://") + 3] + "****@" + value.rsplit("@", 1)[1]
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError as exc:
        return f"{shown!r} is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.hostname and " " not in parts.netloc:
        return None
    if scheme == "file":
        try:
            folder = file_url_to_path(value)
            exists = folder.is_dir()
        except (OSError, TorchupError) as exc:
            return f"{shown!r}: {exc}"
        return None if exists else f"{shown!r}: there is no folder {folder}"
    return (
        f"{shown!r} is not an index URL: use https://HOST/..., http://localhost/... or file:///PATH"
    )


def torch_index_source(*, env: Mapping[str, str], flag: str | None = None) -> Source:
    """The PyTorch index root: ``--torch-index-url`` > ``TORCHUP_TORCH_INDEX_URL`` > default.

    >>> torch_index_source(env={}).url == TORCH_INDEX_DEFAULT
    True
    >>> torch_index_source(env={"TORCHUP_TORCH_INDEX_URL": "https://m/whl/"}).origin
    'TORCHUP_TORCH_INDEX_URL'
    """
    if flag:
        return Source(url=flag.rstrip("/"), origin="--torch-index-url")
    if value := env.get("TORCHUP_TORCH_INDEX_URL", "").strip():
        if problem := index_url_problem(value):
            raise UsageError(
                f"TORCHUP_TORCH_INDEX_URL: {problem}",
                hint="fix or unset TORCHUP_TORCH_INDEX_URL",
            )
        return Source(url=value.rstrip("/"), origin="TORCHUP_TORCH_INDEX_URL")
    return Source(url=TORCH_INDEX_DEFAULT, origin="default")


def pip_sources(
    *,
    env: Mapping[str, str],
    prefix: str | None = None,
    base_prefix: str | None = None,
    home: Path | None = None,
    overrides: SourceOverrides | Mapping[str, Any] | None = None,
    platform: str | None = None,
    root: Path | None = None,
) -> Sources:
    """What the target's pip would read, in pip's precedence order (module docstring).

    ``prefix``/``base_prefix`` are the target interpreter's ``sys.prefix`` and
    ``sys.base_prefix``; ``home`` defaults to ``$HOME``; ``overrides`` holds the
    command-line values (:class:`SourceOverrides`); ``root`` re-roots the system-wide
    config locations (tests). Raises :class:`PipConfigError` for
    an unreadable config file or a malformed boolean.
    """
    over: Mapping[str, Any] = overrides or {}
    files = pip_config_files(
        env=env, prefix=prefix, base_prefix=base_prefix, home=home, platform=platform, root=root
    )
    settings = _collect_settings(files, env)

    def many(key: str) -> list[Source]:
        if key not in settings:
            return []
        value, origin = settings[key]
        return [Source(url=v, origin=origin) for v in value.split()]

    if over.get("index_url"):
        index_url = Source(url=str(over["index_url"]), origin="--index-url")
    elif "index-url" in settings and settings["index-url"][0].strip():
        value, origin = settings["index-url"]
        index_url = Source(url=value.strip(), origin=origin)
    else:
        index_url = Source(url=PYPI_SIMPLE, origin="default")

    extra = many("extra-index-url")
    extra += [Source(url=u, origin="--extra-index-url") for u in over.get("extra_index_urls") or ()]
    links = many("find-links")
    links += [Source(url=u, origin="--find-links") for u in over.get("find_links") or ()]
    trusted = [s.url for s in many("trusted-host")]
    trusted += list(over.get("trusted_hosts") or ())

    no_index = False
    if "no-index" in settings:
        no_index = _flag(*settings["no-index"])
    if over.get("no_index") is not None:
        no_index = bool(over["no_index"])

    cert = None
    if "cert" in settings and settings["cert"][0].strip():
        cert = Source(url=settings["cert"][0].strip(), origin=settings["cert"][1])

    return Sources(
        index_url=index_url,
        extra_index_urls=tuple(_dedupe(extra)),
        find_links=tuple(_dedupe(links)),
        trusted_hosts=tuple(dict.fromkeys(trusted)),
        no_index=no_index,
        torch_index_url=torch_index_source(env=env, flag=over.get("torch_index_url")),
        cert=cert,
    )


def _dedupe(sources: Sequence[Source]) -> list[Source]:
    """Drop repeated URLs (first origin wins); pip would read them twice to no effect."""
    seen: set[str] = set()
    out: list[Source] = []
    for s in sources:
        if s.url not in seen:
            seen.add(s.url)
            out.append(s)
    return out


# -- page URLs -----------------------------------------------------------------------


def project_url(index_url: str, project: str) -> str:
    """The PEP 503 project page URL: normalized name, trailing slash.

    >>> project_url("https://index.example/simple", "Torch_Vision")
    'https://index.example/simple/torch-vision/'
    >>> project_url("file:///opt/pypi/simple/", "torch")
    'file:///opt/pypi/simple/torch/'
    """
    return f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"


def variant_project_url(torch_index_url: str, variant: str, project: str) -> str:
    """``<root>/<variant>/<project>/`` on the PyTorch index.

    Raises :class:`ValueError` for a variant that is not shaped like a PyTorch
    variant directory (it becomes part of a URL path).

    >>> variant_project_url("https://mirror.example/whl/", "cu126", "torch")
    'https://mirror.example/whl/cu126/torch/'
    """
    if not VARIANT_RE.fullmatch(variant):
        raise ValueError(f"not a PyTorch index variant: {variant!r}")
    return f"{torch_index_url.rstrip('/')}/{variant}/{canonicalize_name(project)}/"
