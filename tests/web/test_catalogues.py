"""Every message a person can see has its Chinese text: API and page errors, signaling errors."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from foundation.errors import AppError, NotFound
from web.i18n import catalogue, error_text

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["server", "experts", "disputes", "scheduling", "signaling", "outcomes", "audit", "web"]
ERRORS = {c.__name__ for c in [AppError, *AppError.__subclasses__()]}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def _error_messages() -> list[tuple[str, ast.expr]]:
    """The first argument of every error raised in the code, and the (template, values)
    problems that booking rules return."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ERRORS and node.args:
                found.append((f"{path.name}:{node.lineno}", node.args[0]))
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2 \
                    and isinstance(node.value.elts[1], ast.Dict) and isinstance(node.value.elts[0], ast.Constant):
                found.append((f"{path.name}:{node.lineno}", node.value.elts[0]))
    return found


def test_every_error_template_has_chinese() -> None:
    zh = json.loads((ROOT / "web/locales/errors.zh.json").read_text(encoding="utf-8"))
    messages = _error_messages()
    assert len(messages) > 60
    formatted = [where for where, arg in messages if isinstance(arg, ast.JoinedStr)]
    assert not formatted, f"f-strings can't be translated; pass the values as keywords: {formatted}"
    missing = sorted({arg.value for _, arg in messages if isinstance(arg, ast.Constant)} - set(zh))
    assert not missing, f"no Chinese for: {missing}"


def test_error_text_translates_template_and_labels_codes() -> None:
    error = NotFound("no dispute with id {dispute_id}", dispute_id=12)
    assert error.message == "no dispute with id 12"
    assert error_text(error, "zh") == "没有编号为 12 的纠纷"
    assert error_text(error, "en") == "no dispute with id 12"
    joined = AppError([("{name} is not available at that time", {"name": "王律师"}),
                       ("session {session_id} is {status}", {"session_id": 3, "status": "cancelled"})])
    assert error_text(joined, "zh") == "王律师在该时间没有空；第 3 场调解的状态是“已取消”"


def test_every_signaling_error_code_has_words_in_both_languages() -> None:
    codes = set()
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                codes.add(node.value.value)
    protocol = (ROOT / "signaling/PROTOCOL.md").read_text(encoding="utf-8")
    codes |= set(re.findall(r"^\| `([a-z_0-9]+)` \|", protocol.split("## Server")[0], re.M))
    codes |= {f"invite_{status}" for status in (401, 403, 404, 410)}
    assert {"forbidden", "bad_offer", "room_closed"} <= codes
    for lang in ("zh", "en"):
        words = catalogue(lang)
        missing = sorted(c for c in codes - {"room_closed", "ended"} if f"room.code.{c}" not in words)
        assert not missing, f"{lang}: no words for signaling codes {missing}"
    assert catalogue("zh")["room.code.forbidden"] == "只有主持人可以进行此操作。"
