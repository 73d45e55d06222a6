"""Measure 6, MemoryStorage under many distinct keys: peak RSS of a fresh process hitting
1 000 000 distinct client keys with the default max_keys (100 000), against the stated bound:
baseline + 2 x bytes per key x max_keys, bytes per key measured in the same process filled with
exactly max_keys keys (nothing evicted); and 2 000 000 keys against 1 000 000 (a plateau).
Runs in rotation, medians.
"""

from __future__ import annotations

import json
import os
import subprocess

from bench._common import PYTHON, ROOT, Row, Target, alternate, bench_env, median, row


def _run(keys: int, max_keys: int) -> dict[str, int]:
    read, write = os.pipe()
    try:
        child = subprocess.run(
            [PYTHON, "-m", "bench.apps.memory_child", str(keys), str(max_keys), str(write)],
            cwd=ROOT,
            env=bench_env(),
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        os.close(write)
        write = -1
        with os.fdopen(read) as source:
            read = -1
            text = source.read()
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
    if child.returncode != 0 or not text:
        raise RuntimeError(child.stderr.decode(errors="replace")[-2000:])
    result: dict[str, int] = json.loads(text)
    if result["kept"] > max_keys:
        raise RuntimeError(f"MemoryStorage kept {result['kept']} keys, over max_keys={max_keys}")
    return result


def measure(smoke: bool) -> list[Row]:
    keys, max_keys, rounds = (20_000, 2_000, 1) if smoke else (1_000_000, 100_000, 3)
    flood, double, full = alternate(
        [
            lambda: _run(keys, max_keys),
            lambda: _run(2 * keys, max_keys),
            lambda: _run(max_keys, max_keys),
        ],
        rounds,
    )
    peak = median([r["peak_kib"] / 1024 for r in flood])
    peak_double = median([r["peak_kib"] / 1024 for r in double])
    filled = median([r["peak_kib"] / 1024 for r in full])
    baseline = median([r["baseline_kib"] / 1024 for r in full])
    per_key = (filled - baseline) * 1024 * 1024 / max_keys
    # An evicting dict churns: its table and the allocator's arenas hold up to about twice the
    # live entries' space, so the stated bound allows twice the measured per-key size.
    bound = baseline + 2 * (filled - baseline)
    note = (
        f"peak RSS, median of {rounds} fresh processes each; bound = baseline {baseline:.1f} MiB "
        f"+ 2 x {per_key:.0f} bytes per key x {max_keys:,} keys (bytes per key measured in the "
        f"same process filled with exactly max_keys keys: peak {filled:.1f} MiB); "
        f"{keys:,} keys kept {flood[0]['kept']:,}"
    )
    return [
        row(
            f"MemoryStorage: peak RSS, {keys:,} keys vs the max_keys={max_keys:,} bound",
            peak,
            bound,
            "MiB",
            Target(1.0),
            smoke=smoke,
            note=note,
        ),
        row(
            f"MemoryStorage: peak RSS, {2 * keys:,} keys vs {keys:,} keys (plateau)",
            peak_double,
            peak,
            "MiB",
            None,
            smoke=smoke,
        ),
    ]


if __name__ == "__main__":
    from bench._common import main

    main(measure)
