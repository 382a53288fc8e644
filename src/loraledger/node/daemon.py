"""`loraledger node run`: one process runs the API (and, with a base model, serving), the loop that
closes epochs by policy, the loop that credits vault deposits, the attribution worker and the job
worker (whose jobs run in child processes), from one config (``loraledger.toml``, env, flags).

Start-up finishes what the previous run left: epochs sealed but not confirmed are posted, jobs it
was running are queued again to resume (training) or failed, and answers waiting for attribution
are still queued in the database. SIGTERM (or Ctrl-C) shuts down gracefully: uvicorn stops taking
requests and lets those in flight finish (``shutdown_grace_seconds``), the loops finish the step
they are in, the running job checkpoints and goes back to the queue, and the engine's last answers
are recorded before the process exits."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount

from ..config import Settings
from ..jobs.queue import JobWorker
from ..logs import configure_logging
from ..loops import Retry
from .context import NodeContext, open_node, open_serving

log = logging.getLogger("loraledger.node")


class AttributionLoop(threading.Thread):
    """Runs the attribution worker while answers wait for it; a failure is logged, backed off and
    reported to the node's health, and the loop goes on."""

    def __init__(self, node: NodeContext, *, tick: float = 1.0):
        super().__init__(name="attribution-loop", daemon=True)
        self.node = node
        self.tick = tick
        self.stop = threading.Event()
        self.retry = Retry("attribution", health=node.health, logger=log, base=tick)

    def run(self) -> None:
        worker = self.node.attribution
        assert worker is not None
        wait = self.tick
        while not self.stop.wait(wait):
            try:
                wait = 0.0 if worker.run_once() else self.tick  # drain the backlog, then poll
                self.retry.succeeded()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any failure: logged, backed off
                wait = self.retry.failed(exc)


class DepositLoop(threading.Thread):
    """Credits the vault's confirmed deposits every ``tick`` seconds; a failure (the chain unreachable,
    a reorg deeper than the confirmations) is logged, backed off and reported to the node's health."""

    def __init__(self, node: NodeContext, *, tick: float = 2.0):
        super().__init__(name="deposit-loop", daemon=True)
        self.follower = node.deposit_follower()
        self.stop = threading.Event()
        self.tick = tick
        self.retry = Retry("deposits", health=node.health, logger=log, base=tick)

    def run(self) -> None:
        wait = 0.0
        while not self.stop.wait(wait):
            try:
                self.follower.poll()
                self.retry.succeeded()
                wait = self.tick
            except Exception as exc:  # noqa: BLE001 - the loop outlives any failure: logged, backed off
                wait = self.retry.failed(exc)


class EpochLoop(threading.Thread):
    """Closes an epoch when the policy says so. Any failure (the chain unreachable, the
    database locked, a bug) is logged once, retried with backoff and reported to the node's
    health until a close works again: the loop never dies."""

    def __init__(self, node: NodeContext, *, tick: float = 1.0):
        super().__init__(name="epoch-loop", daemon=True)
        self.node = node
        self.tick = tick
        self.stop = threading.Event()
        self.retry = Retry("epoch loop", health=node.health, logger=log, base=tick)

    def run(self) -> None:
        last_close = time.monotonic()
        wait = self.tick
        while not self.stop.wait(wait):
            wait = self.tick
            try:
                pending = self.node.manager.pending_records()
                # A failing loop retries the close (it also finishes half-done epochs) at once.
                if self.retry.failing or self.node.policy.due(pending, time.monotonic() - last_close):
                    row = self.node.manager.close()
                    last_close = time.monotonic()
                    if row is not None:
                        log.info("epoch %s confirmed: %s records, total %s wei", row.number, row.record_count, row.total)
                self.retry.succeeded()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any failure: logged, backed off
                wait = self.retry.failed(exc)


def run_node(settings: Settings, *, operator: LocalAccount | None, host: str | None, port: int | None,
             make_app: Callable[[NodeContext], Any]) -> None:
    """Open the node, finish what a previous run left half done, start the epoch loop and the
    job worker, and serve ``make_app(node)`` (an ASGI app: the entrypoint passes the API's
    factory, so this module never imports ``api``) until SIGTERM or Ctrl-C."""
    import uvicorn

    configure_logging(settings.log_format, settings.log_level)
    node = open_node(settings, operator=operator)
    if settings.serve_base is not None:
        node.serving = open_serving(node)
    loop = EpochLoop(node)
    recover(node, loop)
    loop.start()
    worker = JobWorker(node.jobs, health=node.health)
    worker.start()
    attribution = AttributionLoop(node) if node.attribution is not None else None
    if attribution is not None:
        attribution.start()
    deposits = DepositLoop(node, tick=settings.deposit_poll_seconds) if node.balances.required else None
    if deposits is not None:
        deposits.start()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler
    # that was installed before it: with the default one the process dies there and this
    # function's `finally` never runs. A handler that exits normally lets it run, so the
    # running job is stopped and marked failed instead of being left `running`.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        # Our own log handler (JSON, request ids) for uvicorn's lines too; our middleware logs each request.
        uvicorn.run(make_app(node), host=host or settings.api_host, port=port or settings.api_port,
                    log_config=None, access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_seconds)
    finally:
        # uvicorn stopped taking requests and let those in flight finish (up to the grace period).
        log.info("shutting down: stopping the loops, the job worker and the engine")
        loops = [thread for thread in (loop, deposits, attribution) if thread is not None]
        for thread in loops:
            thread.stop.set()  # each finishes the step it is in: a close, a poll, a batch of attributions
        worker.stop()  # the running job stops at its next check: training checkpoints and is queued to resume
        if node.serving is not None:
            node.serving.close()  # requests still running end cancelled and are recorded; the recorder flushes
        for thread in loops:
            thread.join(timeout=settings.tx_timeout)
            if thread.is_alive():
                log.warning("%s did not finish its step in %.0f s; the next start finishes it", thread.name,
                            settings.tx_timeout)
        log.info("stopped")
        signal.signal(signal.SIGTERM, previous)


def recover(node: NodeContext, loop: EpochLoop) -> None:
    """Finish what a previous run left half done, and say what that was. A failure here does
    not stop the node: ``loop`` starts in its failing state, so it retries at once (with
    backoff) and ``/v1/health`` says why until it works."""
    try:
        finished = node.manager.advance()
    except Exception as exc:  # noqa: BLE001 - handed to the loop's retry, which logs it
        log.error("recovery: could not finish the epochs a previous run left open; the epoch loop retries")
        loop.retry.failed(exc)
    else:
        if finished:
            log.info("recovery: finished epochs %s left %s by a previous run", [row.number for row in finished],
                     "unconfirmed")
        else:
            log.info("recovery: every epoch is confirmed; nothing to finish")
    interrupted = node.jobs.recover()  # jobs a previous run died under: failed, not left running
    if interrupted:
        log.warning("recovery: jobs %s were running when the node last stopped; marked failed", interrupted)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
