"""The one append log (judgeforge.io): a write cut by a kill never costs a row written before it."""

from __future__ import annotations

import json

import pytest

from judgeforge.errors import UserError
from judgeforge.io import AppendLog, read_log, repair_log_tail


def test_a_cut_last_line_is_left_out_then_removed_before_the_next_append(tmp_path, capsys):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b')
    assert list(read_log(p)) == [{"a": 1}, {"a": 2}]
    log = AppendLog(p)
    log.write({"a": 4})
    log.close()
    assert p.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 4}\n'
    assert "dropped a partial last row" in capsys.readouterr().err
    assert log.written == 1


def test_a_whole_last_row_without_newline_is_kept(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}')
    assert repair_log_tail(p) is False
    assert p.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert [r["a"] for r in read_log(p)] == [1, 2]


def test_a_bad_whole_line_is_skipped_or_refused(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\nnot json\n[1]\n{"a": 2}\n')
    assert [r["a"] for r in read_log(p)] == [1, 2]
    with pytest.raises(UserError, match="line 2"):
        list(read_log(p, bad_line=lambda n: UserError(f"line {n}")))


def test_a_long_cut_line_is_found_past_the_read_chunk(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n" + '{"x": "' + "y" * 200_000)
    assert repair_log_tail(p, announce=False) is True
    assert p.read_text() == '{"a": 1}\n'
