"""How background loops live through failures (loops.Retry + health.NodeHealth): one log line
per failure, backoff up to a cap, health degraded with the reason until a success."""

from __future__ import annotations

import logging

from loraledger.chain.client import ChainUnreachable
from loraledger.errors import LedgerError
from loraledger.health import NodeHealth
from loraledger.loops import Retry, describe_failure


def test_a_failing_part_logs_once_backs_off_and_recovers(caplog):
    health = NodeHealth()
    retry = Retry("epoch loop", health=health, logger=logging.getLogger("test.loops"), base=1.0, cap=8.0)
    down = ChainUnreachable("chain unreachable at http://127.0.0.1:1 (ConnectionError)")
    with caplog.at_level(logging.DEBUG, logger="test.loops"):
        delays = [retry.failed(down) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "epoch loop failing: chain unreachable" in errors[0].getMessage()
    assert health.status == "degraded"
    assert [p.reason for p in health.problems()] == ["chain unreachable at http://127.0.0.1:1 (ConnectionError)"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test.loops"):
        retry.failed(LedgerError("database is locked"))  # a new reason: one more line
        retry.succeeded()
        retry.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert any("failing: database locked: database is locked" in line for line in lines)
    assert sum("recovered" in line for line in lines) == 1
    assert health.status == "ok" and health.problems() == []
    assert retry.failed(down) == 1.0  # the backoff starts over after a success


def test_an_unexpected_error_keeps_its_traceback_once(caplog):
    retry = Retry("job worker", health=None, logger=logging.getLogger("test.loops"))
    with caplog.at_level(logging.ERROR, logger="test.loops"):
        for _ in range(3):
            try:
                raise KeyError("boom")
            except KeyError as exc:
                retry.failed(exc)
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
    assert describe_failure(KeyError("boom")) == "unexpected KeyError: 'boom'"
