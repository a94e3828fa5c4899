"""The scan spread over worker processes gives what one process gives: the same line numbers, reports,
prepared files; and the input's edges (ranges, long lines, compression) are read as they should be."""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import json
import lzma
import threading
from pathlib import Path

import pytest

from providers.errors import ConfigError
from tasks.data.config import DataConfig, PiiConfig
from tasks.data.filescan import ScanPlan, _context
from tasks.data.source import LongLine, compression, line_ranges, read_lines
from tasks.data.stage import check_file, prepare
from tasks.rundir import RunDir
from tests.tasks.data.helpers import OPENAI, distinct, line

SERIAL, SPREAD = ScanPlan(workers=1), ScanPlan(workers=2, chunk_bytes=1500)


def messy(tmp_path: Path) -> Path:
    """About 40 ranges of 1,500 bytes with problems of every kind spread over them: bad JSON, blank lines,
    wrong roles, unknown keys (rewritten), PII, exact duplicates far apart, and a last line cut short."""
    rows = distinct(300)
    for index in range(7, 300, 23):
        rows[index] = "{broken"
    for index in range(11, 300, 37):
        rows[index] = ""
    for index in range(13, 300, 41):
        rows[index] = json.dumps({"messages": [{"role": "robot", "content": "x"}]})
    for index in range(17, 300, 29):
        rows[index] = line(f"ticket {index}: mail me at jane{index}@example.com", id=index)
    rows[250] = rows[3]
    path = tmp_path / "messy.jsonl"
    path.write_text("\ufeff" + "\n".join(rows) + "\n" + line("cut short")[:25], encoding="utf-8")
    return path


def test_spread_scan_reports_the_same_lines_as_one_process(tmp_path: Path) -> None:
    path = messy(tmp_path)
    assert len(line_ranges(path, 1500)) > 30
    streamed: list[tuple] = []
    config = DataConfig(path=path, pii=PiiConfig(policy="report"))
    serial = check_file(config, OPENAI, plan=SERIAL)
    spread = check_file(config, OPENAI, sink=lambda d: streamed.append((d.line, d.code)), plan=SPREAD)
    assert spread == serial
    lines = [(d["line"], d["code"]) for d in spread["diagnostics"]["kept"]]
    assert lines[0] == (1, "bom")
    assert (8, "invalid_json") in lines and (284, "invalid_json") in lines
    assert (12, "blank_line") in lines and (14, "unknown_role") in lines and (18, "unknown_key") in lines
    assert (301, "truncated_last_line") in lines
    assert spread["pii"]["lines"]["EMAIL"][:3] == [18, 47, 76]
    assert spread["duplicates"]["exact"]["largest"][0]["lines"] == [4, 251]
    line_level = [item for item in streamed if item[0] is not None]
    assert line_level == sorted(line_level, key=lambda item: item[0])  # streamed in file order


def test_spread_prepare_writes_the_same_files(tmp_path: Path) -> None:
    rows = distinct(400)
    rows[5] = line("call me on 415 555 0132 please", id=1)  # scrubbed and rewritten
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    outputs = []
    for name, plan in (("serial", SERIAL), ("spread", SPREAD)):
        run = RunDir.create(tmp_path / name, "p", "c" * 64)
        config = DataConfig(path=path, severity={"unknown_key": "warning"})
        dataset = prepare(config, run, OPENAI, plan=plan)
        outputs.append((dataset.train_path.read_bytes(), dataset.eval_path.read_bytes(), dataset.sha256))
        assert not list(run.data_dir.glob(".*")), "staged parts are removed"
    assert outputs[0] == outputs[1]
    assert b"<PHONE>" in outputs[0][0] + outputs[0][1]


def test_strata_are_numbered_in_file_order_across_ranges(tmp_path: Path) -> None:
    languages = ["en", "de", "fr"]
    rows = [json.dumps({**json.loads(row), "metadata": {"lang": languages[(i - 100) % 3 if i > 100 else 0]}})
            for i, row in enumerate(distinct(300))]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = DataConfig(path=path, stratify_by="lang")
    serial, spread = (check_file(config, OPENAI, plan=plan)["split"] for plan in (SERIAL, SPREAD))
    assert spread == serial and list(spread["strata"]) == ["en", "de", "fr"]


def test_ranges_start_at_line_starts_and_cover_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"a\n" + b"b" * 5000 + b"\n" + b"c\n" * 50 + b"no newline at the end")
    data = path.read_bytes()
    for chunk in (1, 3, 100, 4999, 10_000):
        ranges = line_ranges(path, chunk)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
        assert all(end == start for (_, end), (start, _) in itertools.pairwise(ranges))
        assert all(data[start - 1:start] == b"\n" for start, _ in ranges[1:])


def test_a_line_over_the_limit_is_measured_not_kept() -> None:
    long_text = "word " * 5000
    handle = io.BytesIO(b'{"a": 1}\n' + json.dumps({"t": long_text}).encode() + b"\n" + b'{"b": 2}')
    items = list(read_lines(handle, None, lambda text: len(text.split()), limit=1024))
    assert items[0] == b'{"a": 1}\n' and items[2] == b'{"b": 2}'
    assert isinstance(items[1], LongLine) and items[1].complete
    assert items[1].size == len(json.dumps({"t": long_text})) + 1
    assert items[1].tokens == 5002  # '{"t":', 5,000 words and '"}', counted across the pieces


def test_a_long_line_is_reported_as_too_long_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(line("a" * 9_000_000) + "\n" + "\n".join(distinct(20)) + "\n", encoding="utf-8")
    report = check_file(DataConfig(path=path), OPENAI, plan=SERIAL)
    first = report["diagnostics"]["kept"][0]
    assert (first["line"], first["code"]) == (1, "too_long")
    assert first["message"].startswith("a line of 9.0 MB, about ")
    assert report["counts"]["usable"] == 20 and report["tokens"]["over_limit"] == 1


@pytest.mark.parametrize(("name", "pack"), [("gzip", gzip.compress), ("bzip2", bz2.compress),
                                           ("xz", lzma.compress)])
def test_compressed_input_is_read_as_it_is(tmp_path: Path, name: str, pack) -> None:
    rows = "\n".join(distinct(40)) + "\n{bad\n"
    plain, packed = tmp_path / "plain.jsonl", tmp_path / "packed.jsonl"
    plain.write_text(rows, encoding="utf-8")
    packed.write_bytes(pack(rows.encode()))
    assert compression(packed) == name and compression(plain) is None
    reports = [check_file(DataConfig(path=path), OPENAI, plan=SPREAD) for path in (plain, packed)]
    assert reports[1]["counts"] == reports[0]["counts"]
    assert reports[1]["diagnostics"]["by_code"]["invalid_json"] == {"error": 1}
    assert [c["message"] for c in reports[1]["checks"] if c["code"] == "compressed"] == [
        f"packed.jsonl is {name}-compressed: read as it is, on one core (a compressed file cannot be split)"]


def test_zstd_without_its_package_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="data.jsonl is zstd-compressed; decompress it first"):
            check_file(DataConfig(path=path), OPENAI)
    else:
        assert compression(path) == "zstd"


def test_workers_are_forked_only_from_a_single_threaded_process() -> None:
    if threading.active_count() == 1:  # the Prefect test server of an earlier test runs threads
        assert _context().get_start_method() == "fork"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _context().get_start_method() == "forkserver"
    finally:
        stop.set()
        other.join()
