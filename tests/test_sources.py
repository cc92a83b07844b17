"""torchup.index.sources: pip's config precedence, env, flags, the PyTorch index URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchup.index.sources import (
    PYPI_SIMPLE,
    TORCH_INDEX_DEFAULT,
    PipConfigError,
    Source,
    Sources,
    pip_config_files,
    pip_sources,
    project_url,
    torch_index_source,
    variant_project_url,
)


class Machine:
    """A fake filesystem root + home, with helpers to write pip.conf files."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.home = tmp / "home"
        self.prefix = tmp / "venv"
        self.base = tmp / "base"
        for d in (self.root, self.home, self.prefix, self.base):
            d.mkdir()
        self.env: dict[str, str] = {"HOME": str(self.home)}

    def write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @property
    def global_conf(self) -> Path:
        return self.root / "etc" / "pip.conf"

    @property
    def xdg_global_conf(self) -> Path:
        return self.root / "etc" / "xdg" / "pip" / "pip.conf"

    @property
    def legacy_user_conf(self) -> Path:
        return self.home / ".pip" / "pip.conf"

    @property
    def user_conf(self) -> Path:
        return self.home / ".config" / "pip" / "pip.conf"

    @property
    def site_conf(self) -> Path:
        return self.prefix / "pip.conf"

    def sources(self, **overrides: object) -> Sources:
        return pip_sources(
            env=self.env,
            prefix=str(self.prefix),
            base_prefix=str(self.base),
            home=self.home,
            overrides=overrides,
            platform="linux",
            root=self.root,
        )


def index(s: Sources) -> str:
    assert s.index_url is not None
    return s.index_url.url


@pytest.fixture
def m(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_nothing_configured_means_pypi_and_the_default_torch_index(m: Machine) -> None:
    s = m.sources()
    assert s.index_url == Source(url=PYPI_SIMPLE, origin="default")
    assert s.extra_index_urls == s.find_links == ()
    assert s.trusted_hosts == ()
    assert s.no_index is False
    assert s.torch_index_url == Source(url=TORCH_INDEX_DEFAULT, origin="default")
    assert [x.url for x in s.index_urls()] == [PYPI_SIMPLE]


def test_file_order_is_pips(m: Machine) -> None:
    files = pip_config_files(
        env=m.env, prefix=str(m.prefix), base_prefix=str(m.base), home=m.home,
        platform="linux", root=m.root,
    )  # fmt: skip
    assert files == [
        ("global", m.xdg_global_conf),
        ("global", m.global_conf),
        ("user", m.legacy_user_conf),
        ("user", m.user_conf),
        ("base", m.base / "pip.conf"),
        ("site", m.site_conf),
    ]
    m.env["XDG_CONFIG_HOME"] = str(m.home / "xdg")
    m.env["XDG_CONFIG_DIRS"] = "/opt/a:/opt/b"
    files = pip_config_files(env=m.env, home=m.home, platform="linux", root=m.root)
    assert [p for _, p in files] == [
        m.root / "opt/a/pip/pip.conf",
        m.root / "opt/b/pip/pip.conf",
        m.global_conf,
        m.legacy_user_conf,
        m.home / "xdg" / "pip" / "pip.conf",
    ]


def test_later_files_override_earlier_ones(m: Machine) -> None:
    m.write(m.global_conf, "[global]\nindex-url = https://global.example/simple\n")
    assert m.sources().index_url == Source(
        url="https://global.example/simple", origin=f"pip config {m.global_conf} [global]"
    )
    m.write(m.legacy_user_conf, "[global]\nindex-url = https://legacy.example/simple\n")
    m.write(m.user_conf, "[global]\nindex-url = https://user.example/simple\n")
    assert index(m.sources()) == "https://user.example/simple"
    m.write(m.site_conf, "[global]\nindex_url = https://site.example/simple\n")
    assert index(m.sources()) == "https://site.example/simple"


def test_install_section_beats_global_whatever_the_file(m: Machine) -> None:
    m.write(m.global_conf, "[install]\nindex-url = https://install-in-global.example/simple\n")
    m.write(m.site_conf, "[global]\nindex-url = https://global-in-site.example/simple\n")
    s = m.sources()
    assert s.index_url == Source(
        url="https://install-in-global.example/simple",
        origin=f"pip config {m.global_conf} [install]",
    )


def test_environment_beats_files_and_flags_beat_environment(m: Machine) -> None:
    m.write(m.user_conf, "[install]\nindex-url = https://file.example/simple\n")
    m.env["PIP_INDEX_URL"] = "https://env.example/simple"
    assert m.sources().index_url == Source(url="https://env.example/simple", origin="PIP_INDEX_URL")
    assert m.sources(index_url="https://flag.example/simple").index_url == Source(
        url="https://flag.example/simple", origin="--index-url"
    )
    assert m.sources(index_url=None).index_url == Source(
        url="https://env.example/simple", origin="PIP_INDEX_URL"
    )


def test_lists_split_on_whitespace_and_flags_append(m: Machine) -> None:
    m.write(
        m.user_conf,
        "[global]\nfind-links = /opt/wheels\n"
        "extra-index-url = file:///opt/pypi/simple file:///opt/pypi-more/simple\n"
        "    https://third.example/simple\n",
    )
    s = m.sources(
        extra_index_urls=["https://cli.example/simple", "file:///opt/pypi/simple"],
        find_links=["./local"],
    )
    assert [x.url for x in s.extra_index_urls] == [
        "file:///opt/pypi/simple",
        "file:///opt/pypi-more/simple",
        "https://third.example/simple",
        "https://cli.example/simple",
    ]
    assert {x.origin for x in s.extra_index_urls[:3]} == {f"pip config {m.user_conf} [global]"}
    assert s.extra_index_urls[3].origin == "--extra-index-url"
    assert [(x.url, x.origin) for x in s.find_links] == [
        ("/opt/wheels", f"pip config {m.user_conf} [global]"),
        ("./local", "--find-links"),
    ]


def test_env_list_replaces_the_config_list(m: Machine) -> None:
    m.write(m.user_conf, "[global]\nfind-links = /opt/wheels /srv/more\n")
    m.env["PIP_FIND_LINKS"] = "/opt/wheels"
    assert [(x.url, x.origin) for x in m.sources().find_links] == [
        ("/opt/wheels", "PIP_FIND_LINKS")
    ]


def test_pip_config_file_env_skips_user_files(m: Machine) -> None:
    m.write(m.user_conf, "[global]\nindex-url = https://user.example/simple\n")
    m.write(m.site_conf, "[global]\nextra-index-url = https://site.example/simple\n")
    custom = m.write(m.home / "custom.conf", "[global]\ntrusted-host = mirror.example\n")
    m.env["PIP_CONFIG_FILE"] = str(custom)
    s = m.sources()
    assert s.index_url == Source(url=PYPI_SIMPLE, origin="default")
    assert [x.url for x in s.extra_index_urls] == ["https://site.example/simple"]
    assert s.trusted_hosts == ("mirror.example",)
    m.env["PIP_CONFIG_FILE"] = os.devnull
    assert m.sources().extra_index_urls == ()


def test_no_index_and_booleans(m: Machine) -> None:
    m.write(m.user_conf, "[global]\nno-index = yes\n")
    s = m.sources()
    assert s.no_index
    assert s.index_urls() == ()
    m.env["PIP_NO_INDEX"] = "false"
    assert not m.sources().no_index
    assert m.sources(no_index=True).no_index
    m.env["PIP_NO_INDEX"] = "maybe"
    with pytest.raises(PipConfigError, match="not a boolean"):
        m.sources()


def test_trusted_hosts_and_cert(m: Machine) -> None:
    m.write(
        m.global_conf, "[global]\ncert = /etc/ssl/ca.pem\ntrusted-host = a.example b.example:8080\n"
    )
    m.env["PIP_TRUSTED_HOST"] = "c.example"
    s = m.sources(trusted_hosts=["d.example"])
    assert s.trusted_hosts == ("c.example", "d.example")
    assert s.cert == Source(url="/etc/ssl/ca.pem", origin=f"pip config {m.global_conf} [global]")


def test_broken_config_file_is_a_clear_error(m: Machine) -> None:
    m.write(m.user_conf, "index-url = no section header\n")
    with pytest.raises(PipConfigError, match=str(m.user_conf)):
        m.sources()


def test_to_dict_redacts_credentials(m: Machine) -> None:
    m.env["PIP_EXTRA_INDEX_URL"] = "https://bob:hunter2@private.example/simple"
    d = m.sources(torch_index_url="https://tok@mirror.example/whl/").to_dict()
    assert d["extra_index_urls"] == [
        {"url": "https://bob:****@private.example/simple", "origin": "PIP_EXTRA_INDEX_URL"}
    ]
    assert d["torch_index_url"] == {
        "url": "https://****@mirror.example/whl",
        "origin": "--torch-index-url",
    }
    assert "hunter2" not in repr(d)


def test_torch_index_url_precedence() -> None:
    assert torch_index_source(env={}) == Source(url=TORCH_INDEX_DEFAULT, origin="default")
    env = {"TORCHUP_TORCH_INDEX_URL": "https://mirror.example/pytorch-wheels/"}
    assert torch_index_source(env=env) == Source(
        url="https://mirror.example/pytorch-wheels", origin="TORCHUP_TORCH_INDEX_URL"
    )
    assert torch_index_source(env=env, flag="http://127.0.0.1:9/whl") == Source(
        url="http://127.0.0.1:9/whl", origin="--torch-index-url"
    )


def test_page_urls() -> None:
    assert (
        project_url("https://pypi.org/simple/", "Torch.Vision")
        == "https://pypi.org/simple/torch-vision/"
    )
    assert variant_project_url(TORCH_INDEX_DEFAULT, "rocm6.2.4", "torchaudio") == (
        "https://download.pytorch.org/whl/rocm6.2.4/torchaudio/"
    )
    with pytest.raises(ValueError, match="not a PyTorch index variant"):
        variant_project_url(TORCH_INDEX_DEFAULT, "../etc", "torch")


def test_windows_and_macos_locations(tmp_path: Path) -> None:
    env = {"APPDATA": str(tmp_path / "roaming"), "ProgramData": str(tmp_path / "pd")}
    files = pip_config_files(env=env, home=tmp_path, platform="win32")
    assert [p for _, p in files] == [
        tmp_path / "pd" / "pip" / "pip.ini",
        tmp_path / "pip" / "pip.ini",
        tmp_path / "roaming" / "pip" / "pip.ini",
    ]
    (tmp_path / "Library/Application Support/pip").mkdir(parents=True)
    files = pip_config_files(env={}, home=tmp_path, platform="darwin", root=tmp_path / "r")
    assert [p for _, p in files] == [
        tmp_path / "r" / "Library/Application Support/pip/pip.conf",
        tmp_path / ".pip" / "pip.conf",
        tmp_path / "Library/Application Support/pip/pip.conf",
    ]


def test_configparser_is_imported_only_to_read_a_file(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[install]\nindex-url = https://mirror.example/simple\n")
    script = (
        "import json, sys\n"
        "from torchup.index.sources import pip_sources\n"
        "out = []\n"
        "for f in sys.argv[1:]:\n"
        "    s = pip_sources(env={'PIP_CONFIG_FILE': f, 'HOME': f})\n"
        "    out.append([s.index_url.url, 'configparser' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, os.devnull, str(conf)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [
        [PYPI_SIMPLE, False],
        ["https://mirror.example/simple", True],
    ]
