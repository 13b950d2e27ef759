"""mypy checks the graph state, its records and the nodes that read and write them ([tool.mypy] in pyproject)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mypy(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api", reason="mypy is in the test extra: pip install -e '.[test]'")
    monkeypatch.chdir(ROOT)  # the config's files are relative to the repository root
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", *args])
    return out + err, status


def test_state_and_nodes_type_check(monkeypatch: pytest.MonkeyPatch) -> None:
    out, status = _mypy(monkeypatch)
    assert status == 0, out


def test_a_wrong_record_key_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_key.py"
    wrong.write_text(
        "from fourkagent.state.schema import State\n"
        "def f(state: State) -> object:\n"
        "    return state['verdict']['bestt_tool']\n"
    )
    out, status = _mypy(monkeypatch, str(wrong))
    assert status == 1 and '"Verdict" has no key "bestt_tool"' in out, out
