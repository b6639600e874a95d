"""Benchmark the native sessionwal writer against the pure-Python reference.

Workloads (generated deterministically): ``chat`` (~1 KB agent messages),
``deltas`` (~150 B streamed token deltas), ``large`` (~64 KiB tool outputs).
Contenders: ``sessionwal.pure.SessionWriter``, ``sessionwal.SessionWriter``
(per chunk and ``write_chunks`` in batches of 64) and, when orjson is
installed, a hand-rolled ``orjson.dumps`` + ``os.write`` writer as a yardstick.
It also checks that pure and native write byte-identical files and that
memory stays flat while streaming a long session.

Run from a checkout with the package installed (``pip install .``)::

    python benches/bench_writers.py --quick              # < 20 s
    python benches/bench_writers.py                      # full run, medians of 9 repeats
    python benches/bench_writers.py --workloads deltas --chunks 100000 --repeats 15
    python benches/bench_writers.py --stream-mib 1024    # the "flat memory at 1 GiB" target
    python benches/bench_writers.py --json out.json --plot out.png   # plot: sessionwal[plot]

``sessionwal bench`` runs the same code (``sessionwal.bench``); ``--help``
lists every option.
"""

from sessionwal.bench import main

raise SystemExit(main())
