"""What some tests need from the machine besides Python packages, and whether this one has it.

A test that needs a system program carries a marker (`browser`, `pdf`, `postgres`, `nginx`,
`netns`, `tmpfs`): set on the test, or given by the fixture it uses (`FIXTURES`). Where the program is
missing the test is skipped with one line saying what to install, and the run ends with the
list of what was skipped and the one command that installs it all. CI (`.ci/run`) sets
TIAOJIE_TESTS_NO_SKIPS=1, which turns any skipped test into a failed run.
"""
from __future__ import annotations

import ctypes.util
import dataclasses
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
NO_SKIPS = "TIAOJIE_TESTS_NO_SKIPS"
FONTS = Path("/usr/share/fonts")


def _cjk_font() -> bool:
    return any(FONTS.rglob("Noto*CJK*")) if FONTS.is_dir() else False


@dataclasses.dataclass(frozen=True)
class Need:
    """A marker, what it stands for, the Debian packages that provide it, and a check."""

    marker: str
    what: str
    packages: tuple[str, ...]
    check: Callable[[], bool]
    root: bool = False  # besides the packages, the tests must run as root

    @functools.cached_property
    def present(self) -> bool:
        return self.check() and (not self.root or os.geteuid() == 0)

    def reason(self) -> str:
        as_root = " and run as root" if self.root else ""
        return f"needs {self.what}: apt-get install {' '.join(self.packages)}{as_root}"


NEEDS = {need.marker: need for need in [
    Need("browser", "Debian's Chromium and CJK fonts", ("chromium", "fonts-noto-cjk"),
         lambda: Path(CHROMIUM).exists() and _cjk_font()),
    Need("pdf", "Pango and CJK fonts (WeasyPrint)", ("libpango-1.0-0", "libpangoft2-1.0-0", "fonts-noto-cjk"),
         lambda: bool(ctypes.util.find_library("pango-1.0") and ctypes.util.find_library("pangoft2-1.0")) and _cjk_font()),
    Need("postgres", "PostgreSQL", ("postgresql",),
         lambda: bool(os.environ.get("TIAOJIE_TEST_POSTGRES")) or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))),
    Need("nginx", "nginx and openssl", ("nginx", "openssl"),
         lambda: bool(shutil.which("nginx") and shutil.which("openssl"))),
    Need("turn", "coturn and openssl", ("coturn", "openssl"),
         lambda: bool(shutil.which("turnserver") and shutil.which("openssl"))),
    Need("netns", "iproute2 (a network namespace)", ("iproute2",), lambda: bool(shutil.which("ip")), root=True),
    Need("tmpfs", "mount (a small tmpfs to fill)", ("mount",), lambda: bool(shutil.which("mount")), root=True),
]}

# Fixtures that bring a need with them: a test that uses one is marked without saying so.
FIXTURES = {"browser": ("browser",), "postgres": ("postgres",), "proxy": ("nginx",), "phone": ("netns", "browser")}


def install_command(needs: list[Need]) -> str:
    """One command that installs what these needs lack."""
    packages = sorted({package for need in needs for package in need.packages})
    return "sudo apt-get install -y " + " ".join(packages)


# The pytest hooks (tests/conftest.py loads this module as a plugin).

_SKIPPED = pytest.StashKey[list[tuple[str, list[Need]]]]()


def pytest_configure(config: pytest.Config) -> None:
    for need in NEEDS.values():
        config.addinivalue_line("markers", f"{need.marker}: {need.reason()}")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests whose fixtures bring a need; skip those whose needs this machine lacks."""
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & FIXTURES.keys():
            for marker in FIXTURES[fixture]:
                item.add_marker(marker)
        lacking = [NEEDS[mark.name] for mark in item.iter_markers() if mark.name in NEEDS and not NEEDS[mark.name].present]
        if lacking:
            item.add_marker(pytest.mark.skip(reason="; ".join(dict.fromkeys(need.reason() for need in lacking))))
            config.stash.setdefault(_SKIPPED, []).append((item.nodeid, lacking))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's last lines: what was skipped for want of a system program, and how to install it all."""
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = config.stash.get(_SKIPPED, [])
    if terminalreporter is None:
        return
    if skipped:
        lacking = list(dict.fromkeys(need for _, needs in skipped for need in needs))
        terminalreporter.write_line(
            f"{len(skipped)} test{'s' * (len(skipped) != 1)} skipped for want of: " + ", ".join(need.what for need in lacking), yellow=True)
        root = " (and run the tests as root)" if any(need.root and os.geteuid() != 0 for need in lacking) else ""
        terminalreporter.write_line(f"to run them all: {install_command(lacking)}{root}", yellow=True)
    if os.environ.get(NO_SKIPS) and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(f"{NO_SKIPS} is set and tests were skipped: the run fails", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With TIAOJIE_TESTS_NO_SKIPS set (CI), a run that skipped any test fails."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get(NO_SKIPS) and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
