"""``sessionwal.aio.AsyncSessionWriter``: the asyncio writer's contract.

Each test runs its own event loop with ``asyncio.run``. ``_stall(True)`` is a
test hook that holds the background writer as if the disk did not answer,
which makes "queued but not written" states observable without timing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import sessionwal
import sessionwal.pure
from sessionwal import ChunkKind, ChunkRow, PersistenceError, Usage
from sessionwal.aio import AsyncSessionWriter

from conftest import FIXED_CLOSED_AT, make_session, read_lines


def row(i: int, size: int = 0) -> ChunkRow:
    return ChunkRow(ChunkKind.ASSISTANT, {"i": i, "text": f"chunk {i} é世😀" + "x" * size})


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path)]


def chunk_indexes(path: Path) -> list[int]:
    return [r["index"] for r in records(path) if r["record_type"] == "chunk"]


async def until(predicate, timeout: float = 10.0) -> None:
    """Yields to the loop until ``predicate()`` holds (no assertion on how long it takes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def test_header_is_on_disk_before_the_constructor_returns(tmp_path):
    async def main():
        session = make_session(parent_session_ids=["p"], lineage_extras={"k": "v"})
        writer = AsyncSessionWriter(session, path=tmp_path / "s.jsonl", sandbox_handle_id="b")
        # No await since the constructor: nothing else could have written it.
        (header,) = records(writer.partial_path)
        assert header == sessionwal.build_header(session, sandbox_handle_id="b") | {
            "created_at": session.created_at.isoformat()
        }
        assert list(header)[:3] == ["record_type", "schema_version", "id"]
        await writer.abandon()

    asyncio.run(main())


def test_same_bytes_as_the_sync_writers(tmp_path, fixed_clock):
    rows = [row(i, size=i * 37 % 500) for i in range(300)]
    session = make_session(usage=Usage(prompt_tokens=1, completion_tokens=2))

    async def main():
        async with AsyncSessionWriter(session, path=tmp_path / "a.jsonl") as writer:
            for i, r in enumerate(rows[:100]):
                await writer.awrite_chunk(i, r)
            await writer.awrite_chunks(list(enumerate(rows))[100:])
            assert writer.chunks_submitted == 300

    asyncio.run(main())
    for name, cls in (("n", sessionwal.SessionWriter), ("p", sessionwal.pure.SessionWriter)):
        with cls(session, path=tmp_path / f"{name}.jsonl") as writer:
            for i, r in enumerate(rows):
                writer.write_chunk(i, r)
        assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / f"{name}.jsonl").read_bytes()
    *_, trailer = records(tmp_path / "a.jsonl")
    assert trailer["final_chunk_count"] == 300
    assert trailer["closed_at"] == FIXED_CLOSED_AT.isoformat()


def test_fifo_across_concurrent_tasks_and_batches(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", max_queued_chunks=8)
        counter = iter(range(10_000))

        async def producer(task: int) -> None:
            for n in range(40):
                if n % 5 == 0:
                    batch = [(next(counter), row(task)) for _ in range(3)]
                    await writer.awrite_chunks(batch)
                else:
                    await writer.awrite_chunk(next(counter), row(task))
                if n % 7 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(producer(t) for t in range(10)))
        await writer.aclose()
        return writer.path

    path = asyncio.run(main())
    # Indexes were drawn in call order, so the file must hold them sorted.
    indexes = chunk_indexes(path)
    assert indexes == list(range(len(indexes)))
    assert records(path)[-1]["final_chunk_count"] == len(indexes) == 10 * (32 + 8 * 3)


def test_payload_is_encoded_at_call_time(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        writer._stall(True)  # nothing is written until after the mutations
        payload = {"n": 1, "items": ["a"]}
        pending = writer.awrite_chunk(0, ChunkRow("user", payload))
        payload["n"] = 2  # before awaiting
        await pending
        payload["items"].append("b")  # after awaiting
        batch_payload = {"n": 10}
        await writer.awrite_chunks([(1, ChunkRow("user", batch_payload))])
        batch_payload["n"] = 11
        assert chunk_indexes(writer.partial_path) == []
        writer._stall(False)
        await writer.aclose()
        return writer.path

    path = asyncio.run(main())
    payloads = [r["payload"] for r in records(path)[1:-1]]
    assert payloads == [{"n": 1, "items": ["a"]}, {"n": 10}]


def test_full_queue_makes_awrite_chunk_wait_and_never_exceeds_the_bound(tmp_path):
    bound = 4

    async def main():
        writer = AsyncSessionWriter(
            make_session(), path=tmp_path / "s.jsonl", max_queued_chunks=bound
        )
        writer._stall(True)
        returned: list[int] = []
        peak = 0

        async def producer() -> None:
            for i in range(50):
                await writer.awrite_chunk(i, row(i))
                returned.append(i)

        task = asyncio.create_task(producer())
        for _ in range(50):
            await asyncio.sleep(0)
            peak = max(peak, writer.queued_chunks)
        # The producer is stuck on the call after the bound: it waits, it is not refused.
        assert returned == list(range(bound))
        assert not task.done()
        assert writer.queued_chunks == bound
        assert writer.chunks_submitted == bound + 1  # the waiting record holds its place

        writer._stall(False)
        while not task.done():
            peak = max(peak, writer.queued_chunks)
            await asyncio.sleep(0)
        await task
        assert peak <= bound
        await writer.aclose()
        return writer.path

    assert chunk_indexes(asyncio.run(main())) == list(range(50))


def test_byte_bound_applies_and_an_oversized_record_still_passes(tmp_path):
    async def main():
        writer = AsyncSessionWriter(
            make_session(), path=tmp_path / "s.jsonl", max_queued_bytes=1000
        )
        writer._stall(True)
        await writer.awrite_chunk(0, row(0, size=5000))  # alone in the queue: admitted
        waiting = writer.awrite_chunk(1, row(1))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert writer.queued_bytes > 1000 and writer.queued_chunks == 1
        writer._stall(False)
        await waiting
        await writer.aclose()
        return writer.path

    assert chunk_indexes(asyncio.run(main())) == [0, 1]


def test_waiting_never_blocks_the_loop(tmp_path):
    async def main():
        writer = AsyncSessionWriter(
            make_session(), path=tmp_path / "s.jsonl", sync="always", max_queued_chunks=2
        )
        writer._stall(True)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        durable = asyncio.ensure_future(writer.awrite_chunk(0, row(0)))
        flushed = asyncio.create_task(writer.flush())
        await until(lambda: ticks >= 20)
        # The loop ran while the disk "did not answer".
        assert not durable.done() and not flushed.done()
        writer._stall(False)
        await durable
        await flushed
        tick_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tick_task
        await writer.aclose()

    asyncio.run(main())


def test_loop_lag_stays_bounded_while_writing_with_sync_always(tmp_path):
    async def main():
        loop = asyncio.get_running_loop()
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", sync="always")
        max_gap = 0.0
        done = False

        async def ticker() -> None:
            nonlocal max_gap
            while not done:
                before = loop.time()
                await asyncio.sleep(0.002)
                max_gap = max(max_gap, loop.time() - before)

        async def producer(task: int) -> None:
            for n in range(25):
                await writer.awrite_chunk(task * 100 + n, row(n, size=16_000))

        tick_task = asyncio.create_task(ticker())
        await asyncio.gather(*(producer(t) for t in range(8)))
        await writer.aclose()
        done = True
        await tick_task
        return max_gap, writer.path

    max_gap, path = asyncio.run(main())
    assert len(chunk_indexes(path)) == 200
    assert max_gap < 0.5  # generous: fdatasync runs on the writer's thread, never on the loop


def test_sync_always_awaited_chunk_is_in_the_file(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", sync="always")
        for i in range(20):
            await writer.awrite_chunk(i, row(i))
            assert chunk_indexes(writer.partial_path)[-1] == i
            assert writer.chunks_written == i + 1
        await writer.awrite_chunks([(20, row(20)), (21, row(21))])
        assert chunk_indexes(writer.partial_path)[-2:] == [20, 21]
        await writer.aclose()

    asyncio.run(main())


def test_flush_means_everything_queued_reached_the_file(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", sync="never")
        writer._stall(True)
        for i in range(100):
            await writer.awrite_chunk(i, row(i))
        flushed = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.01)
        assert not flushed.done() and chunk_indexes(writer.partial_path) == []
        writer._stall(False)
        await flushed
        assert chunk_indexes(writer.partial_path) == list(range(100))
        assert writer.chunks_written == 100 and writer.queued_chunks == 0
        await writer.flush()  # nothing queued: returns
        await writer.aclose()

    asyncio.run(main())


def test_aclose_drains_everything_then_writes_the_trailer_and_renames(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", max_queued_chunks=16)
        writer._stall(True)
        waiting = [writer.awrite_chunk(i, row(i)) for i in range(500)]  # most wait for room
        asyncio.get_running_loop().call_later(0.01, writer._stall, False)
        await writer.aclose()
        assert all(w.done() for w in waiting)
        assert writer.closed and writer.chunks_written == 500
        assert not writer.partial_path.exists()
        return writer.path

    path = asyncio.run(main())
    assert chunk_indexes(path) == list(range(500))
    assert records(path)[-1]["final_chunk_count"] == 500


def test_aclose_is_idempotent_and_writes_after_it_raise(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        await writer.awrite_chunk(0, row(0))
        await asyncio.gather(writer.aclose(), writer.aclose())
        await writer.aclose()
        await writer.abandon()
        for attempt in (
            lambda: writer.awrite_chunk(1, row(1)),
            lambda: writer.awrite_chunks([(1, row(1))]),
            lambda: writer.awrite_chunks([]),
        ):
            with pytest.raises(RuntimeError, match="closed") as info:
                attempt()
            assert str(info.value) == (
                f"SessionWriter({writer.path}) is closed; cannot append more chunks"
            )
        with pytest.raises(RuntimeError, match="closed"):
            await writer.flush()
        return writer.path

    path = asyncio.run(main())
    assert [r["record_type"] for r in records(path)] == ["header", "chunk", "trailer"]


def test_abandon_writes_what_was_queued_and_leaves_the_partial(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        writer._stall(True)
        for i in range(10):
            await writer.awrite_chunk(i, row(i))
        asyncio.get_running_loop().call_later(0.01, writer._stall, False)
        await writer.abandon()
        await writer.abandon()
        await writer.aclose()  # already finished: nothing happens
        assert not writer.path.exists()
        # The lock is released: the id can be reopened.
        again = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        await again.abandon()
        return writer.partial_path

    partial = asyncio.run(main())
    kinds = [r["record_type"] for r in records(partial)]
    assert kinds == ["header"] + ["chunk"] * 10 + ["header"]


def test_context_manager_closes_on_success_and_abandons_on_exception(tmp_path):
    async def main():
        async with AsyncSessionWriter(make_session("ok"), path=tmp_path / "ok.jsonl") as ok:
            await ok.awrite_chunk(0, row(0))
        assert ok.path.exists() and not ok.partial_path.exists()

        with pytest.raises(KeyError, match="boom"):
            async with AsyncSessionWriter(make_session("bad"), path=tmp_path / "bad.jsonl") as bad:
                await bad.awrite_chunk(0, row(0))
                raise KeyError("boom")
        assert not bad.path.exists()
        assert [r["record_type"] for r in records(bad.partial_path)] == ["header", "chunk"]

        with pytest.raises(TypeError, match="async with"):
            with AsyncSessionWriter(make_session("sync"), path=tmp_path / "x.jsonl"):
                pass

        # A plain `with` on a writer in use refuses and leaves it working.
        used = AsyncSessionWriter(make_session("used"), path=tmp_path / "used.jsonl")
        await used.awrite_chunk(0, row(0))
        with pytest.raises(TypeError, match="async with"):
            with used:
                pass
        await used.awrite_chunk(1, row(1))
        await used.aclose()
        assert [r["record_type"] for r in records(used.path)] == [
            "header",
            "chunk",
            "chunk",
            "trailer",
        ]

    asyncio.run(main())


def test_cancelling_a_wait_for_room_does_not_withdraw_the_record(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", max_queued_chunks=1)
        writer._stall(True)
        await writer.awrite_chunk(0, row(0))
        waiting = asyncio.ensure_future(writer.awrite_chunk(1, row(1)))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        writer._stall(False)
        await writer.aclose()
        return writer.path

    path = asyncio.run(main())
    assert chunk_indexes(path) == [0, 1]
    assert records(path)[-1]["final_chunk_count"] == 2


def test_unencodable_records_queue_nothing_and_raise_like_pure(tmp_path):
    bad_rows = [
        ChunkRow("user", {"x": object()}),
        ChunkRow("user", {"x": "lone \udc80"}),
    ]

    def pure_error(items) -> tuple:
        writer = sessionwal.pure.SessionWriter(make_session("p"), path=tmp_path / "p.jsonl")
        try:
            writer.write_chunks(items)
        except Exception as exc:
            return type(exc), str(exc)
        finally:
            writer.abandon()
        raise AssertionError("pure accepted a bad batch")

    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        await writer.awrite_chunk(0, row(0))
        for bad in bad_rows:
            with pytest.raises(Exception) as single:
                writer.awrite_chunk(1, bad)
            assert (type(single.value), str(single.value)) == pure_error([(1, bad)])
            batch = [(1, row(1)), (2, row(2)), (3, bad)]
            with pytest.raises(Exception) as many:
                writer.awrite_chunks(batch)
            assert (type(many.value), str(many.value)) == pure_error(batch)
        assert writer.chunks_submitted == 1
        await writer.awrite_chunk(1, row(1))  # still usable
        await writer.aclose()
        return writer.path

    assert chunk_indexes(asyncio.run(main())) == [0, 1]


def test_second_writer_on_the_same_file_is_refused(tmp_path):
    async def main():
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        for cls in (AsyncSessionWriter, sessionwal.SessionWriter, sessionwal.pure.SessionWriter):
            with pytest.raises(PersistenceError, match="another process is already writing"):
                cls(make_session(), path=tmp_path / "s.jsonl")
        await writer.aclose()

    asyncio.run(main())


def test_default_paths_and_subclass_hooks(tmp_path, sessionwal_home):
    class Runtime(AsyncSessionWriter):
        build_header = staticmethod(lambda session, *, sandbox_handle_id: {"h": session.id})
        build_trailer = staticmethod(lambda session, *, final_chunk_count: {"n": final_chunk_count})
        build_chunk_record = staticmethod(lambda index, row: {"i": index, "p": row.payload})

    async def main():
        async with AsyncSessionWriter(make_session("plain")) as plain:
            await plain.awrite_chunk(0, row(0))
        async with Runtime(make_session("rt")) as custom:
            await custom.awrite_chunk(0, ChunkRow("user", {"a": 1}))
            await custom.awrite_chunks([(1, ChunkRow("user", {"b": 2}))])
        return plain.path, custom.path

    plain, custom = asyncio.run(main())
    assert plain == (sessionwal_home / "sessions" / "plain.jsonl").resolve()
    assert read_lines(custom) == [
        '{"h": "rt"}\n',
        '{"i": 0, "p": {"a": 1}}\n',
        '{"i": 1, "p": {"b": 2}}\n',
        '{"n": 2}\n',
    ]


def test_constructor_needs_a_running_loop_and_validates_arguments(tmp_path):
    with pytest.raises(RuntimeError, match="no running event loop"):
        AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")

    async def main():
        for kwargs in ({"sync": "sometimes"}, {"max_queued_chunks": 0}, {"max_queued_bytes": 0}):
            with pytest.raises(ValueError):
                AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl", **kwargs)
        assert not (tmp_path / "s.jsonl.__partial__").exists()

    asyncio.run(main())


def test_failing_header_builder_releases_the_file(tmp_path):
    class Broken(AsyncSessionWriter):
        build_header = staticmethod(lambda session, *, sandbox_handle_id: {"x": object()})

    async def main():
        with pytest.raises(TypeError, match="not JSON serializable"):
            Broken(make_session(), path=tmp_path / "s.jsonl")
        writer = AsyncSessionWriter(make_session(), path=tmp_path / "s.jsonl")
        await writer.aclose()

    asyncio.run(main())


def test_failing_trailer_builder_abandons_and_raises(tmp_path):
    class Broken(AsyncSessionWriter):
        build_trailer = staticmethod(lambda session, *, final_chunk_count: {"x": object()})

    async def main():
        writer = Broken(make_session(), path=tmp_path / "s.jsonl")
        await writer.awrite_chunk(0, row(0))
        with pytest.raises(TypeError, match="not JSON serializable"):
            await writer.aclose()
        await writer.aclose()
        assert not writer.path.exists()
        return writer.partial_path

    assert chunk_indexes(asyncio.run(main())) == [0]


def test_intake_is_sealed_before_the_trailer_is_built(tmp_path):
    attempts: list[str] = []

    class Sneaky(AsyncSessionWriter):
        def build_trailer(self, session, *, final_chunk_count):  # type: ignore[override]
            try:
                self.awrite_chunk(99, row(99))
            except RuntimeError as exc:
                attempts.append(str(exc))
            return sessionwal.build_trailer(session, final_chunk_count=final_chunk_count)

    async def main():
        writer = Sneaky(make_session(), path=tmp_path / "s.jsonl")
        await writer.awrite_chunks([(0, row(0)), (1, row(1))])
        await writer.aclose()
        return writer.path

    path = asyncio.run(main())
    assert len(attempts) == 1 and "is closed" in attempts[0]
    assert chunk_indexes(path) == [0, 1]
    assert records(path)[-1]["final_chunk_count"] == 2
