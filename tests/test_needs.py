"""Tests that need a system program skip, saying what to install, on a machine without it; CI fails on a skip."""
from __future__ import annotations

import dataclasses

import pytest

from tests.needs import NEEDS, NO_SKIPS

SUITE = """
import pytest

@pytest.fixture
def browser():
    yield "a browser"

def test_a_page(browser):
    assert browser

@pytest.mark.pdf
def test_a_pdf():
    pass

def test_plain():
    pass
"""


@pytest.fixture
def no_chromium(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setitem(NEEDS, "browser", dataclasses.replace(NEEDS["browser"], check=lambda: False))
    monkeypatch.setitem(NEEDS, "pdf", dataclasses.replace(NEEDS["pdf"], check=lambda: True))
    monkeypatch.delenv(NO_SKIPS, raising=False)
    pytester.makeconftest('pytest_plugins = ["tests.needs"]')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function")
    pytester.makepyfile(SUITE)
    return pytester


def test_a_test_whose_fixture_needs_a_missing_program_is_skipped_with_what_to_install(no_chromium: pytest.Pytester) -> None:
    result = no_chromium.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED * needs Debian's Chromium and CJK fonts: apt-get install chromium fonts-noto-cjk",
        "1 test skipped for want of: Debian's Chromium and CJK fonts",
        "to run them all: sudo apt-get install -y chromium fonts-noto-cjk",
    ])
    assert result.ret == 0
    assert no_chromium.runpytest_inprocess("-m", "not browser").parseoutcomes() == {"passed": 2, "deselected": 1}


def test_with_no_skips_asked_for_a_skipped_test_fails_the_run(no_chromium: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_SKIPS, "1")
    result = no_chromium.runpytest_inprocess()
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"{NO_SKIPS} is set and tests were skipped: the run fails"])
