"""One MemoryStorage run in a fresh process: ``python -m bench.apps.memory_child KEYS MAX_KEYS FD``
hits KEYS distinct client keys once each and writes ``{"baseline_kib", "peak_kib", "kept"}``
as JSON to FD (baseline: resident memory before the first hit; peak: the process's maximum)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _flood(keys: int, max_keys: int) -> tuple[int, int]:
    from asgi_lambda_mw import MemoryStorage, Rate

    storage = MemoryStorage(max_keys=max_keys)
    rate = Rate.parse("100/minute")
    await storage.hit("ip:warm-up", rate)
    baseline = _rss_kib()
    for index in range(keys):
        # Client keys as the middleware makes them: "ip:" and an address.
        address = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        await storage.hit(f"ip:{address}", rate)
    return baseline, len(storage)


def main() -> None:
    keys, max_keys, fd = (int(argument) for argument in sys.argv[1:4])
    baseline, kept = asyncio.run(_flood(keys, max_keys))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "kept": kept}))


if __name__ == "__main__":
    main()
