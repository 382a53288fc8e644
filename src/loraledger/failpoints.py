"""Named failpoints: crash the process at chosen lines, to test that money paths recover.

Set ``LORALEDGER_FAILPOINTS=name[,name...]`` and the process kills itself with SIGKILL
(no cleanup, no flushing, like a power cut or an OOM kill) when it reaches one of them.
Tests run the real CLI as a subprocess with a failpoint set, then run it again without
and check that nothing was lost, skipped or paid twice.
"""

from __future__ import annotations

import os
import signal

#: Every failpoint in the code, in the order an epoch passes them.
FAILPOINTS = (
    "seal.before_file",      # records chosen, nothing written
    "seal.after_file",       # epoch file on disk, database not committed
    "seal.after_commit",     # epoch sealed in the database, nothing on chain
    "submit.after_approve",  # allowance raised, post not signed
    "submit.after_sign",     # signed post transaction stored, not broadcast
    "submit.after_broadcast",  # broadcast, not recorded as such
    "confirm.before_mark",   # mined and confirmed on chain, not marked confirmed
)

#: The failpoints of a training run (``loraledger train``), in order.
TRAIN_FAILPOINTS = (
    "train.after_checkpoint",  # a training checkpoint written, training not finished
    "train.after_publish",     # adapter directory published, no ledger record yet
    "train.after_record",      # adapter recorded in the ledger, not registered on chain
)


def failpoint(name: str) -> None:
    """SIGKILL this process if ``name`` is armed in ``LORALEDGER_FAILPOINTS``."""
    armed = os.environ.get("LORALEDGER_FAILPOINTS")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
