"""Foreign exceptions are translated where they enter: a missing optional extra, running out
of memory, a database failure. Each test fails if the translation is removed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loraledger.errors import InputError, LedgerError, ResourceError


def test_a_command_without_its_extra_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['transformers'] = None; sys.modules['torch'] = None\n"
            "from loraledger.cli import main\n"
            f"sys.exit(main(['model', 'init-tiny', {str(tmp_path / 'tiny')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 4, out.stderr
    assert "needs loraledger's 'ml' extra" in out.stderr and "pip install 'loraledger[ml]'" in out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr


def test_out_of_memory_is_a_resource_error_not_bad_input():
    torch = pytest.importorskip("torch")
    from loraledger.training.hf.basemodel import device_errors

    with pytest.raises(ResourceError, match="out of memory or a device fault") as caught:
        with device_errors("training demo"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert not isinstance(caught.value, InputError)
    with pytest.raises(ResourceError):
        with device_errors("training demo"):
            raise MemoryError()
    with pytest.raises(ValueError, match="not a device problem"):  # anything else passes unchanged
        with device_errors("training demo"):
            raise ValueError("not a device problem")


def test_reads_that_fail_in_the_database_are_ledger_errors(tmp_path):
    from sqlalchemy import text

    from loraledger.db import make_engine, read_session

    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with pytest.raises(LedgerError, match="no such table"):
        with read_session(engine, what="reading jobs") as session:
            session.exec(text("SELECT * FROM missing_table"))
