"""The session-file layer: one verdict per file from every command, names, the import rules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow, SessionState, files, list_sessions, load_session

from conftest import make_session, run_cli

HEADER = {
    "record_type": "header",
    "schema_version": 1,
    "id": "s",
    "created_at": "2026-01-02T03:04:05+00:00",
}


def chunk(i: int) -> dict:
    return {"record_type": "chunk", "index": i, "kind": "user", "payload": {"n": i}}


def trailer(count: int) -> dict:
    return {
        "record_type": "trailer",
        "closed_at": "2026-01-02T04:00:00+00:00",
        "final_chunk_count": count,
        "cumulative_usage": None,
    }


def lines(*records: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


# name -> (file name, bytes, expected state). "live" is made by a writer.
SHAPES = {
    "closed": ("s.jsonl", lines(HEADER, chunk(0), chunk(1), trailer(2)), SessionState.CLOSED),
    "crashed": ("s.jsonl.__partial__", lines(HEADER, chunk(0)), SessionState.CRASHED),
    "header without created_at": (
        "s.jsonl",
        lines({**HEADER, "created_at": "yesterday"}, chunk(0), trailer(1)),
        SessionState.CLOSED,
    ),
    "torn tail": (
        "s.jsonl.__partial__",
        lines(HEADER, chunk(0)) + b'{"record_type": "chu',
        SessionState.CRASHED,
    ),
    "trailer mismatch": (
        "s.jsonl",
        lines(HEADER, chunk(0), chunk(1), chunk(2), trailer(5)),
        SessionState.CORRUPT,
    ),
    "final without trailer": ("s.jsonl", lines(HEADER, chunk(0)), SessionState.CORRUPT),
    # Out of sequence: the log ends before it (the recovery rule), a crash tail.
    "foreign header id": (
        "s.jsonl.__partial__",
        lines(HEADER, chunk(0), {**HEADER, "id": "other"}),
        SessionState.CRASHED,
    ),
    # Power loss: the size extended over pages that never landed, a later one did.
    "NUL hole": (
        "s.jsonl.__partial__",
        lines(HEADER, chunk(0)) + bytes(5000) + lines(chunk(9)),
        SessionState.CRASHED,
    ),
    "final with a NUL hole": (
        "s.jsonl",
        lines(HEADER, chunk(0)) + bytes(5000) + lines(chunk(9), trailer(2)),
        SessionState.CORRUPT,
    ),
}


def every_verdict(path: Path, directory: Path) -> dict[str, object]:
    """What each reader says of ``path``, reduced to a state."""
    said: dict[str, object] = {"state_of": files.state_of(path).state}

    skipped: list[Path] = []
    listed = list_sessions(directory, on_error=lambda p, _exc: skipped.append(p))
    said["list_sessions"] = listed[0].state if listed else ("skipped" if skipped else None)

    ls = run_cli("ls", "--dir", directory, "--json")
    rows = [json.loads(line) for line in ls.stdout.splitlines()]
    said["ls"] = rows[0]["state"] if rows else ("skipped" if "skipped" in ls.stderr else None)

    verify = run_cli("verify", path)
    said["verify"] = {0: "closed", 1: "in flight or crashed", 2: "corrupt"}[verify.returncode]
    said["verify line"] = verify.stdout.split(": ")[1]

    show = run_cli("show", path)
    state_line = next((x for x in show.stdout.splitlines() if x.startswith("state: ")), None)
    said["show"] = (show.returncode, state_line)
    said["tail"] = run_cli("tail", path).returncode
    try:
        said["load_session"] = load_session(path=path).verdict().state
    except sessionwal.SessionFormatError:
        said["load_session"] = "corrupt"
    return said


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_command_gives_one_verdict_per_file(tmp_path, shape):
    name, data, state = SHAPES[shape]
    path = tmp_path / name
    path.write_bytes(data)
    said = every_verdict(path, tmp_path)
    if state is SessionState.CORRUPT:
        # Loadable (its valid log), but no clean close writes it: shown, and called corrupt.
        expected_lists = "skipped"
        expected_load = state
        expected_show = (2, f"state: corrupt: {files.state_of(path).detail}")
    else:
        expected_lists = state
        expected_load = state
        expected_show = (0, f"state: {state.label}")
    assert said == {
        "state_of": state,
        "list_sessions": expected_lists,
        "ls": expected_lists if expected_lists == "skipped" else state.value,
        "verify": {0: "closed", 1: "in flight or crashed", 2: "corrupt"}[state.exit_code],
        "verify line": "ok" if state is SessionState.CLOSED else state.label,
        "show": expected_show,
        "tail": state.exit_code if state.exit_code == 2 else 0,
        "load_session": expected_load,
    }


def test_a_live_session_is_in_flight_for_every_command(writer_cls, tmp_path):
    with writer_cls(make_session("s"), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, ChunkRow("user", {"n": 0}))
        said = every_verdict(writer.partial_path, tmp_path)
        assert said["state_of"] is SessionState.IN_FLIGHT
        assert said["list_sessions"] is SessionState.IN_FLIGHT
        assert said["ls"] == "in_flight"
        assert said["verify line"] == "in flight"
        assert said["show"] == (0, "state: in flight")
        assert said["load_session"] is SessionState.IN_FLIGHT


def test_state_words_are_one_spelling():
    assert SessionState.IN_FLIGHT == "in_flight"
    assert SessionState.IN_FLIGHT.label == "in flight"
    assert [s.exit_code for s in SessionState] == [0, 1, 1, 2, 2]


def test_a_state_prints_as_its_word(tmp_path):
    # SessionInfo.state was the plain string "in_flight" before it became an
    # enum; code that prints or formats it must still get that word.
    with sessionwal.SessionWriter(make_session("s"), path=tmp_path / "s.jsonl"):
        (info,) = list_sessions(tmp_path)
        assert (str(info.state), f"{info.state}") == ("in_flight", "in_flight")
        assert json.dumps({"state": info.state}) == '{"state": "in_flight"}'


# ------------------------------------------------------------------ names


def test_names_map_both_ways(tmp_path):
    where = files.SessionsDir(tmp_path)
    assert where.final("a.b") == tmp_path / "a.b.jsonl"
    assert where.partial("a.b") == tmp_path / "a.b.jsonl.__partial__"
    assert files.final_of(where.partial("a.b")) == where.final("a.b")
    assert files.partial_of(where.final("a.b")) == where.partial("a.b")
    assert files.partial_of(where.partial("a.b")) == where.partial("a.b")
    assert files.session_id_of(where.partial("a.b")) == "a.b"
    assert files.candidates("x", directory=tmp_path) == [where.final("x"), where.partial("x")]
    assert files.candidates(path=where.partial("x")) == [where.partial("x")]
    with pytest.raises(TypeError):
        files.candidates("x", path=where.final("x"))


def test_backups_are_matched_by_exact_name(tmp_path):
    partial = files.SessionsDir(tmp_path).partial("B")
    ours = [files.backup_name(partial, n) for n in (0, 1, 12)]
    others = [
        tmp_path / "B.jsonl.__partial__.bak-archive.jsonl",
        tmp_path / "B.jsonl.__partial__.bakery.jsonl.__partial__",
        tmp_path / "B.jsonl.__partial__.bak.01",
        tmp_path / "B.jsonl.__partial__.bak.",
    ]
    for path in ours + others:
        path.write_bytes(b"")
    assert files.backups_of(partial) == sorted(ours)


# ------------------------------------------------------------------ import rules

PACKAGE = Path(sessionwal.__file__).parent


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports at module level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "sessionwal":
                found |= {f"sessionwal.{alias.name}" for alias in node.names}
    return found


def _package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def test_fcntl_is_imported_by_the_file_layer_only():
    users = sorted(name for name, path in _package_modules().items() if "fcntl" in _imports(path))
    assert users == ["sessionwal.files"]


def test_the_package_import_graph_has_no_cycle():
    modules = _package_modules()
    graph = {
        name: {dep for dep in _imports(path) if dep in modules and dep != "sessionwal"}
        for name, path in modules.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
