"""How long one ``awrite_chunks`` call holds the event loop, per kind of long text.

64 records of 1 Mi characters each (ASCII, Latin-1 with escapes, BMP, astral),
the shape of the asyncio issue's finding: the call must stay under asyncio's
100 ms slow-callback threshold for batches up to 64 MiB, because long strings
are escaped by the I/O threads, not on the loop. Beside it: the same records
fully encoded on the calling thread (what the loop used to pay). Medians of
``--repeats`` runs; the written bytes are checked against that encoding.
Not run in CI (a timing, on a shared machine)::

    python benches/bench_loop_hold.py --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sessionwal import ChunkRow, Session, build_chunk_record
from sessionwal._native import encode_record
from sessionwal.aio import AsyncSessionWriter

TEXTS = {
    "ascii": "a" * (1 << 20),
    "latin1": 'é"\n' * (1 << 18),
    "bmp": "世\\" * (1 << 19),
    "astral": "😀" * (1 << 20),
}


def held_once(directory: Path, text: str) -> tuple[float, list[bytes]]:
    items = [(i, ChunkRow("tool", {"i": i, "out": text})) for i in range(64)]
    path = directory / "s.jsonl"
    path.unlink(missing_ok=True)

    async def main() -> float:
        writer = AsyncSessionWriter(Session(id="s"), path=path, sync="never")
        start = time.perf_counter()
        pending = writer.awrite_chunks(items)
        held = time.perf_counter() - start
        await pending
        await writer.aclose()
        return held

    held = asyncio.run(main())
    return held, path.read_bytes().splitlines(keepends=True)[1:-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'text':8} {'loop held (ms)':>15} {'encode on loop (ms)':>20}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, text in TEXTS.items():
            helds, encodes = [], []
            for _ in range(args.repeats):
                held, lines = held_once(Path(tmp), text)
                start = time.perf_counter()
                expected = [
                    encode_record(build_chunk_record(i, ChunkRow("tool", {"i": i, "out": text})))
                    for i in range(64)
                ]
                encodes.append(time.perf_counter() - start)
                assert lines == expected, f"{kind}: written bytes differ from the encoder's"
                helds.append(held)
            print(
                f"{kind:8} {statistics.median(helds) * 1e3:15.1f} "
                f"{statistics.median(encodes) * 1e3:20.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
