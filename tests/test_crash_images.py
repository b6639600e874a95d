"""The loader on every disk image a crash or power cut can leave.

The Rust power-loss model (``rust/file/tests/powerloss.rs``) proves which
images the writer can leave; here a real session file, including a reopened
one, is cut at every byte and its tail replaced by nothing, zeros or garbage,
under both the partial and the final name. On every image the loader must
either return the session, whose chunks are a prefix of those written, or
raise :class:`~sessionwal.PersistenceError`; never anything else.

Skipped until ``sessionwal.loader`` exists on this branch.
"""

from __future__ import annotations

import pytest

import sessionwal
from sessionwal import ChunkRow

from conftest import make_session

loader = pytest.importorskip("sessionwal.loader", reason="sessionwal.loader is not built yet")


def written_session(tmp_path) -> tuple[bytes, list[dict]]:
    path = tmp_path / "source.jsonl"
    payloads = [{"i": i, "text": 'é世😀\n"' * i} for i in range(6)]
    first = sessionwal.SessionWriter(make_session(), path=path)
    for i, p in enumerate(payloads[:3]):
        first.write_chunk(i, ChunkRow("assistant", p))
    first.abandon()
    second = sessionwal.SessionWriter(make_session(), path=path)
    for i, p in enumerate(payloads[3:], 3):
        second.write_chunk(i, ChunkRow("assistant", p))
    second.close()
    return path.read_bytes(), payloads


def images(data: bytes):
    for cut in range(len(data) + 1):
        kept = data[:cut]
        lost = len(data) - cut
        yield kept
        for fill in (b"\0", b"\xa5"):
            yield kept + fill * min(lost, 64)


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.__partial__"])
def test_the_loader_never_crashes_on_a_crash_image(tmp_path, name):
    data, payloads = written_session(tmp_path)
    target = tmp_path / "images" / name
    target.parent.mkdir()
    loaded = refused = 0
    for image in images(data):
        target.write_bytes(image)
        try:
            session = loader.load_session(path=target)
        except sessionwal.PersistenceError:
            refused += 1
            continue
        loaded += 1
        got = [chunk.payload for chunk in session.chunks]
        assert got == payloads[: len(got)], "the loader invented or reordered chunks"
    assert loaded and refused
