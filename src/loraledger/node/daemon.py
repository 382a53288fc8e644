"""`loraledger node run`: the API plus a background loop that closes epochs by policy and a
worker that runs background jobs."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount

from ..config import Settings
from ..errors import LoraLedgerError
from ..jobs.queue import JobWorker
from .context import NodeContext, open_node

log = logging.getLogger("loraledger.node")


class EpochLoop(threading.Thread):
    """Closes an epoch when the policy says so; a failure is logged and retried with backoff."""

    def __init__(self, node: NodeContext, *, tick: float = 1.0):
        super().__init__(name="epoch-loop", daemon=True)
        self.node = node
        self.tick = tick
        self.stop = threading.Event()

    def run(self) -> None:
        last_close = time.monotonic()
        backoff = self.tick
        while not self.stop.wait(backoff):
            try:
                pending = self.node.manager.pending_records()
                if self.node.policy.due(pending, time.monotonic() - last_close):
                    row = self.node.manager.close()
                    last_close = time.monotonic()
                    if row is not None:
                        log.info("epoch %s confirmed: %s records, total %s wei", row.number, row.record_count, row.total)
                backoff = self.tick
            except LoraLedgerError as exc:
                log.error("closing an epoch failed: %s (retrying)", exc)
                backoff = min(backoff * 2, 60.0)


def run_node(settings: Settings, *, operator: LocalAccount | None, host: str | None, port: int | None,
             make_app: Callable[[NodeContext], Any]) -> None:
    """Open the node, finish what a previous run left half done, start the epoch loop and the
    job worker, and serve ``make_app(node)`` (an ASGI app: the entrypoint passes the API's
    factory, so this module never imports ``api``) until SIGTERM or Ctrl-C."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = open_node(settings, operator=operator)
    node.manager.advance()  # finish whatever a previous run left half done
    interrupted = node.jobs.recover()  # jobs a previous run died under: failed, not left running
    if interrupted:
        log.warning("jobs %s were running when the node last stopped; marked failed", interrupted)
    loop = EpochLoop(node)
    loop.start()
    worker = JobWorker(node.jobs)
    worker.start()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler
    # that was installed before it: with the default one the process dies there and this
    # function's `finally` never runs. A handler that exits normally lets it run, so the
    # running job is stopped and marked failed instead of being left `running`.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(make_app(node), host=host or settings.api_host,
                    port=port or settings.api_port, log_level="info")
    finally:
        loop.stop.set()
        worker.stop()  # interrupts the running job at its next check (it ends failed)
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
