"""Deterministic benchmark workloads: ``chat``, ``deltas``, ``large``.

Rows come from a seeded :class:`random.Random`, so every run and every
machine writes the same bytes. Text mixes ASCII, accents, CJK, emoji, quotes,
backslashes and control characters so the slow paths of a JSON encoder are
exercised, not only ASCII.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sessionwal.model import ChunkKind, ChunkRow

__all__ = ["WORKLOADS", "chat", "deltas", "large"]

# Text fragments: weights give ~80 % ASCII with every other script in every row of any size.
_ASCII = (
    "the agent session tool call returned value error file path config request token model "
    "stream delta result output input context window retry timeout latency cache index query "
    "function import return async await self None True False def class print json yield"
).split()
_ACCENTED = [
    "café",
    "naïve",
    "résumé",
    "Ångström",
    "façade",
    "jalapeño",
    "Müller",
    "Dvořák",
    "São Paulo",
    "œuvre",
    "Zürich",
    "piñata",
]
_CJK = [
    "数据库",
    "连接失败",
    "こんにちは",
    "東京都",
    "한국어",
    "模型输出",
    "文件路径",
    "テスト",
    "会话",
]
_EMOJI = ["🚀", "👍", "🤖", "✅", "🔥", "👩‍💻", "🎉", "⚠️", "🇯🇵", "👍🏽"]
_SPECIAL = [
    '"',
    "'",
    "\\",
    "\n",
    "\t",
    "\\n",
    '\\"',
    "C:\\Users\\dev",
    '{"key": "value"}',
    "<tag>",
    "&amp;",
    "\r\n",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "…",
]
_POOL = _ASCII + _ACCENTED + _CJK + _EMOJI + _SPECIAL
_WEIGHTS = (
    [80 / len(_ASCII)] * len(_ASCII)
    + [6 / len(_ACCENTED)] * len(_ACCENTED)
    + [5 / len(_CJK)] * len(_CJK)
    + [3 / len(_EMOJI)] * len(_EMOJI)
    + [6 / len(_SPECIAL)] * len(_SPECIAL)
)
_CUM_WEIGHTS = [sum(_WEIGHTS[: i + 1]) for i in range(len(_WEIGHTS))]
_MODELS = ["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "llama-3.1-70b-instruct"]
_TOOLS = ["read_file", "search_code", "run_shell", "http_get", "write_file"]
_T0 = 1_718_000_000.0  # a fixed epoch: generated timestamps must not depend on the clock


def _text(rng: random.Random, n: int) -> str:
    """``n`` characters of mixed-script text (one ``choices`` call: fast enough for 64 KiB)."""
    parts = rng.choices(_POOL, cum_weights=_CUM_WEIGHTS, k=n // 4 + 4)
    text = " ".join(parts)
    while len(text) < n:
        text += " " + " ".join(rng.choices(_POOL, cum_weights=_CUM_WEIGHTS, k=n // 4 + 4))
    return text[:n]


def _call_id(rng: random.Random) -> str:
    return f"call_{rng.getrandbits(64):016x}"


def _tool_call(rng: random.Random) -> dict[str, Any]:
    return {
        "id": _call_id(rng),
        "name": rng.choice(_TOOLS),
        "arguments": {
            "path": f"/workspace/src/{rng.choice(_ASCII)}_{rng.randrange(100)}.py",
            "pattern": _text(rng, rng.randint(5, 40)),
            "max_results": rng.randint(1, 500),
            "recursive": rng.random() < 0.5,
            "timeout": None if rng.random() < 0.3 else round(rng.uniform(0.5, 120), 2),
        },
    }


def chat(n: int, seed: int = 0) -> list[ChunkRow]:
    """Agent conversation rows, ~1 KB per encoded line on average.

    A system row, then turns of user, assistant (0 to 2 tool calls), one tool
    result per call and a final assistant reply: the shapes a runtime persists.
    """
    rng = random.Random(seed)
    ts = _T0
    rows = [
        ChunkRow(
            ChunkKind.SYSTEM,
            {"role": "system", "content": _text(rng, 400), "created": ts, "version": 2},
        )
    ]
    while len(rows) < n:
        ts += rng.uniform(0.5, 30)
        rows.append(
            ChunkRow(
                ChunkKind.USER,
                {
                    "role": "user",
                    "content": _text(rng, rng.randint(20, 300)),
                    "name": rng.choice([None, "alice", "bob"]),
                    "created": round(ts, 6),
                    "attachments": [],
                },
            )
        )
        calls = [_tool_call(rng) for _ in range(rng.randint(0, 2))]
        for final in [False, True] if calls else [True]:
            prompt, completion = rng.randint(50, 30_000), rng.randint(1, 2_000)
            rows.append(
                ChunkRow(
                    ChunkKind.ASSISTANT,
                    {
                        "role": "assistant",
                        "content": _text(rng, rng.randint(50, 800)),
                        "tool_calls": [] if final else calls,
                        "model": rng.choice(_MODELS),
                        "temperature": rng.choice([0.0, 0.2, 0.7, 1.0]),
                        "top_p": rng.random(),
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                        "latency_s": rng.expovariate(0.5),
                        "cached": rng.random() < 0.2,
                        "finish_reason": "stop" if final else "tool_calls",
                        "refusal": None,
                    },
                )
            )
            for call in [] if final else calls:
                rows.append(
                    ChunkRow(
                        ChunkKind.TOOL_RESULT,
                        {
                            "role": "tool",
                            "tool_call_id": call["id"],
                            "name": call["name"],
                            "content": _text(rng, rng.randint(100, 3000)),
                            "is_error": rng.random() < 0.1,
                            "exit_code": rng.choice([0, 0, 1, None]),
                            "duration_s": round(rng.expovariate(2.0), 4),
                        },
                    )
                )
    return rows[:n]


def deltas(n: int, seed: int = 0) -> list[ChunkRow]:
    """Streamed token deltas of 1 to 24 chars, ~150 B per encoded line."""
    rng = random.Random(seed)
    rows = [
        ChunkRow(
            ChunkKind.ASSISTANT,
            {
                "delta": _text(rng, rng.randint(1, 24)),
                "index": i,
                "finish_reason": None,
                "logprob": round(-rng.expovariate(3.0), 5),
            },
        )
        for i in range(n)
    ]
    if rows:
        rows[-1].payload["finish_reason"] = "stop"
    return rows


def large(n: int, seed: int = 0, size: int = 64 * 1024) -> list[ChunkRow]:
    """Tool results of ~``size`` UTF-8 bytes each (file dumps, command output)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        lines: list[str] = []
        total = 0
        while total < size:
            line = _text(rng, rng.randint(10, 160))
            lines.append(line)
            total += len(line.encode("utf-8", "surrogatepass")) + 1
        rows.append(
            ChunkRow(
                ChunkKind.TOOL_RESULT,
                {
                    "role": "tool",
                    "tool_call_id": _call_id(rng),
                    "name": "run_shell",
                    "content": "\n".join(lines),
                    "bytes": total,
                    "truncated": False,
                    "duration_s": round(rng.expovariate(0.2), 3),
                },
            )
        )
    return rows


WORKLOADS: dict[str, Callable[[int, int], list[ChunkRow]]] = {
    "chat": chat,
    "deltas": deltas,
    "large": large,
}
