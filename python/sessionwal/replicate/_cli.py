"""``sessionwal replicate``, ``sessionwal restore`` and ``sessionwal ls URL``.

Exit codes: ``replicate`` 0 (everything shipped, or stopped by SIGTERM/SIGINT),
1 (``--once`` gave up: what was not shipped is named on stderr), 2 (the store
refuses us: credentials, bucket, permissions; or obstore is missing);
``restore`` 0 or 2 naming the sessions not restored; ``ls URL`` 0 or 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sessionwal import files

__all__ = ["add_parsers", "cmd_ls_url"]

EXIT_OK = 0
EXIT_NOT_SHIPPED = 1
EXIT_ERROR = 2
#: After SIGTERM, how long the object in flight may take before we exit anyway.
STOP_GRACE = 3.0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def add_parsers(sub: Any, dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds ``replicate`` and ``restore`` to the ``sessionwal`` parser."""
    p = sub.add_parser("replicate", help="ship sessions to object storage (s3://, file://, ...)")
    p.add_argument("url", metavar="URL", help="s3://bucket/prefix, gs://, az://, file:///path")
    dir_option(p)
    p.add_argument(
        "--interval", type=_positive, default=1.0, help="seconds between passes (default 1)"
    )
    p.add_argument("--once", action="store_true", help="ship what is there now, then exit")
    p.add_argument(
        "--timeout",
        type=_positive,
        default=30.0,
        help="with --once: give up after this many seconds of store failures (default 30)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=16,
        help="sessions shipped at once (default 16): a pass takes about "
        "sessions with new lines x put latency / workers",
    )
    p.add_argument("--poll", action="store_true", help="poll instead of using inotify")
    p.add_argument("-q", "--quiet", action="store_true", help="log only problems")
    p.set_defaults(run=cmd_replicate)

    p = sub.add_parser("restore", help="restore sessions from object storage into a directory")
    p.add_argument("url", metavar="URL")
    p.add_argument("ids", metavar="ID", nargs="*", help="sessions to restore (default: all)")
    dir_option(p)
    p.set_defaults(run=cmd_restore)


def _directory(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir is not None else files.sessions_dir()


def _log_to(err: TextIO, quiet: bool) -> None:
    log = logging.getLogger("sessionwal.replicate")
    if not log.handlers:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("sessionwal replicate: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def cmd_replicate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sessionwal.replicate import Replicator, StoreError, StoreMisconfigured

    _log_to(err, args.quiet)
    try:
        replicator = Replicator(
            args.url,
            _directory(args),
            interval=args.interval,
            workers=max(1, args.workers),
            use_inotify=not args.poll,
        )
    except (StoreError, ImportError) as exc:
        err.write(f"sessionwal: {exc}\n")
        return EXIT_ERROR

    def stop(signum: int, frame: object) -> None:
        replicator.stop(timeout=0)  # no waiting inside a signal handler

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if not args.once:
            return _run_until_stopped(replicator, err)
        try:
            unshipped = replicator.ship_once(give_up_after=args.timeout)
        except StoreMisconfigured as exc:
            err.write(f"sessionwal: {exc}\n")
            return EXIT_ERROR
        if unshipped and not replicator.stopping:
            ids = sorted({u.session_id for u in unshipped})
            named = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            if replicator.last_error is None:  # files we could not read
                when, reason = "", unshipped[0].reason
            else:
                when, reason = f" after {args.timeout:g} s", f"last error: {replicator.last_error}"
            err.write(f"sessionwal: not shipped{when}: {len(ids)} session(s): {named}; {reason}\n")
            return EXIT_NOT_SHIPPED
        stats = replicator.stats
        out.write(
            f"shipped {stats.live_objects} live segment(s) ({stats.live_bytes} B) and "
            f"{stats.closed_objects} closed session(s) ({stats.closed_bytes} B) "
            f"to {replicator.client.display}\n"
        )
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_until_stopped(replicator: Any, err: TextIO) -> int:
    """Replicates in a thread until a signal; then gives the object in flight
    ``STOP_GRACE`` seconds to land, and exits either way (puts are atomic: one
    cut short was never written, and the next run ships its lines)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            replicator.run()
        except BaseException as exc:  # reported by the main thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="sessionwal-replicate")
    thread.start()
    while thread.is_alive() and not replicator.stopping:
        thread.join(0.5)
    thread.join(STOP_GRACE)
    if failure:
        err.write(f"sessionwal: replicate stopped: {failure[0]}\n")
        return EXIT_ERROR
    if thread.is_alive():
        err.write(
            f"sessionwal replicate: the store did not answer within {STOP_GRACE:g} s; "
            "stopping without the object in flight (the next run ships it)\n"
        )
        err.flush()
        sys.stdout.flush()
        # The pass's worker threads are stuck in a request: exiting normally would
        # wait for them (concurrent.futures joins its workers at exit).
        os._exit(EXIT_OK)
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sessionwal.replicate import RestoreError, StoreError, restore

    try:
        restored = restore(args.url, args.ids or None, _directory(args))
    except (RestoreError, StoreError, ImportError) as exc:
        err.write(f"sessionwal: restore: {exc}\n")
        return EXIT_ERROR
    for item in restored:
        out.write(f"restored {item.session_id} -> {item.path} ({item.size} B)\n")
    if not restored:
        err.write("sessionwal: the store holds no sessions\n")
    return EXIT_OK


def cmd_ls_url(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from sessionwal.replicate import StoreError, list_remote

    if "://" not in args.url:
        err.write(
            f"sessionwal: ls takes a store URL (s3://..., file:///...), not '{args.url}'; "
            "for a directory of sessions use --dir\n"
        )
        return EXIT_ERROR
    try:
        infos = list_remote(args.url)
    except (StoreError, ImportError) as exc:
        err.write(f"sessionwal: {exc}\n")
        return EXIT_ERROR
    if args.json:
        for info in infos:
            record = {
                "id": info.session_id,
                "state": info.state,
                "generation": info.generation,
                "generations": info.generations,
                "size": info.size,
                "objects": info.objects,
                "last_shipped": info.last_shipped.isoformat() if info.last_shipped else None,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not infos:
        err.write(f"no sessions in '{args.url}'\n")
        return EXIT_OK
    rows = [["ID", "STATE", "GEN", "BYTES", "OBJECTS", "LAST SHIPPED"]]
    for info in infos:
        shipped = (
            info.last_shipped.isoformat(sep=" ", timespec="seconds") if info.last_shipped else "-"
        )
        rows.append(
            [
                info.session_id,
                info.state,
                str(info.generation),
                str(info.size),
                str(info.objects),
                shipped,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    return EXIT_OK
