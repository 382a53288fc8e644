"""Run a job handler in a child process (the node's heavy jobs: training, benchmarks).

Why a process and not the worker thread: a torch job that runs out of memory or crashes in
native code would take the whole node (API, epoch loop) down with it; a Python-heavy API
thread and a training loop would fight over the GIL; and a job stuck outside its own
checks (loading a model) can only be stopped from outside. The child opens its own services
from the same settings (same ledger database, same chain) with the ``opener`` it is named,
and runs the handler on them; this module knows nothing of what they are.

Protocol over a ``multiprocessing`` pipe, child → parent: ``("progress", dict)``,
``("done", result)``, ``("cancelled", None)``, ``("error", class name, message)``; parent
→ child: ``"cancel"``. The parent relays progress to the job, forwards a cancel, and turns
the child's end into the job's end; a child that dies without saying how (killed, out of
memory, segfault) fails the job with its exit status. A child that does not stop within
:data:`CANCEL_GRACE_S` of a cancel is killed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from importlib import import_module
from typing import Any

from eth_account.signers.local import LocalAccount

from .. import errors
from ..errors import LedgerError, LoraLedgerError
from .queue import JobCancelled, JobContext

__all__ = ["CANCEL_GRACE_S", "ChildContext", "run_isolated"]

log = logging.getLogger("loraledger.jobs")

#: Seconds a child gets to stop (and checkpoint) after a cancel before it is killed.
CANCEL_GRACE_S = 60.0
_POLL_S = 0.2


class ChildContext:
    """The :class:`~loraledger.jobs.queue.JobContext` API inside the child process."""

    def __init__(self, conn: Any, job_id: int, params: dict[str, Any]):
        self.job_id = job_id
        self.params = params
        self._conn = conn
        self._cancelled = False
        self._last = 0.0

    def report(self, progress: dict[str, Any], *, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last >= 0.25:  # the parent throttles its writes too
            self._last = now
            self._conn.send(("progress", progress))

    @property
    def cancelled(self) -> bool:
        while not self._cancelled and self._conn.poll():
            self._cancelled = self._conn.recv() == "cancel"
        return self._cancelled

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled(f"job {self.job_id} cancelled")


def _leave_a_core_for_the_node() -> None:
    """Use all cores but one for torch (unless OMP_NUM_THREADS says otherwise): the node's
    API and epoch loop keep running beside the job, and OpenMP threads that have to share
    their cores with them stall at every barrier (a training step measured 20-40x slower
    on 2 cores with every core given to torch)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _load(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def _child_main(target: str, opener: str, settings: Any, operator_key: bytes | None, job_id: int,
                params: dict[str, Any], conn: Any) -> None:
    """Entry point of the child: ``services = opener(settings, operator=...)``, then
    ``target(services, params, ctx)``; report how it ended."""
    try:
        from eth_account import Account

        handler = _load(target)
        _leave_a_core_for_the_node()
        operator = Account.from_key(operator_key) if operator_key else None
        services = _load(opener)(settings, operator=operator)
        result = handler(services, params, ChildContext(conn, job_id, params))
        conn.send(("done", result))
    except JobCancelled:
        conn.send(("cancelled", None))
    except LoraLedgerError as exc:
        conn.send(("error", type(exc).__name__, exc.message))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as the job's error
        traceback.print_exc()
        conn.send(("error", "", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _error(name: str, message: str) -> Exception:
    """The child's error as the same ``loraledger.errors`` class (``LedgerError`` for others)."""
    cls = getattr(errors, name, None) if name else None
    if isinstance(cls, type) and issubclass(cls, LoraLedgerError):
        return cls(message)
    return LedgerError(message)


def _died(code: int | None) -> str:
    hint = " (killed: out of memory?)" if code == -9 else ""
    return f"the job's worker process died with exit status {code}{hint}"


def run_isolated(target: str, opener: str, settings: Any, operator: LocalAccount | None, params: dict[str, Any],
                 ctx: JobContext, *, on_progress: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """Run ``target`` (``"module:function"``, called as ``function(services, params, ctx)``) in a
    child process, where ``services = opener(settings, operator=operator)`` (``opener`` is also
    ``"module:function"``; both are imported in the child); returns the handler's result."""
    spawn = multiprocessing.get_context("spawn")  # fork would copy the API's threads and locks
    parent, child = spawn.Pipe()
    key = bytes(operator.key) if operator is not None else None
    process = spawn.Process(target=_child_main, args=(target, opener, settings, key, ctx.job_id, params, child),
                            name=f"loraledger-job-{ctx.job_id}", daemon=True)
    process.start()
    child.close()
    cancel_sent_at: float | None = None
    try:
        while True:
            message = None
            if parent.poll(_POLL_S):
                try:
                    message = parent.recv()
                except EOFError:  # the child is gone without a word
                    process.join()
                    raise LedgerError(_died(process.exitcode)) from None
                if message is not None:
                    kind = message[0]
                    if kind == "progress":
                        (on_progress or ctx.report)(message[1])
                        continue
                    process.join(timeout=30)
                    if kind == "done":
                        return message[1]
                    if kind == "cancelled":
                        ctx.check_cancelled()  # JobCancelled, or JobInterrupted if the node is stopping
                        raise JobCancelled(f"job {ctx.job_id} cancelled")
                    raise _error(message[1], message[2])
            if not process.is_alive() and not parent.poll():
                process.join()
                raise LedgerError(_died(process.exitcode))
            if cancel_sent_at is None and ctx.cancelled:
                try:
                    parent.send("cancel")
                except (BrokenPipeError, OSError):
                    pass  # it is ending anyway: the next poll sees how
                cancel_sent_at = time.monotonic()
            elif cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                log.warning("job %s did not stop %.0f s after a cancel; killing its process", ctx.job_id, CANCEL_GRACE_S)
                process.kill()
                process.join()
                ctx.check_cancelled()
                raise JobCancelled(f"job {ctx.job_id} cancelled")
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        parent.close()
