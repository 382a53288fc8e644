"""ModelFactory: snapshot → LoRA adapter → ledger record → AdapterRegistry (wiring).

Order of a training run, chosen so a crash at any point loses nothing and duplicates
nothing:

1. check everything cheap first (name, datanet, snapshot, base model, settings);
2. train in ``<out>.partial/`` (checkpoints there; ``resume=True`` continues);
3. write the PEFT directory + ``provenance.json`` + ``training_rows.json`` into
   ``<out>.partial/adapter`` and move it to ``<out>`` in one rename (a crash after this:
   ``resume=True`` records the published adapter instead of training again); the adapter's
   early trajectory snapshots go with it, under ``attribution-checkpoints/`` (the states its
   attribution index is built from, at :data:`ATTRIBUTION_TRAJECTORY` of the steps);
4. append the ``AdapterRecord`` and the ``adapters`` row in one transaction (a rerun that
   finds the same adapter hash under the same name returns the existing row);
5. register on chain unless already there (``adapterOf(adapterHash)`` is checked first, so
   retrying after a crash never registers twice); :meth:`ModelFactory.register` retries.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..chain.contracts import AdapterRegistryContract
from ..crypto.canonical import canonicalize
from ..datanets.service import DatanetService
from ..db import read_session, session_scope
from ..errors import ChainError, InputError, LedgerError, NotFoundError
from ..failpoints import failpoint
from ..fsutil import atomic_write_json, sha256_file
from ..records.fields import parse_address
from ..records.kinds import AdapterRecord, BenchmarkRecord, Record
from ..records.ledger import RecordLedger
from .adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_hash, inspect_adapter, normalise_adapter_config
from .config import TrainConfig, validate_adapter_name
from .data import TrainingRow, build_examples, split_rows
from .hf.basemodel import (
    BaseModelHash,
    default_target_modules,
    device_errors,
    hash_base_model,
    inspect_base_model,
    load_base_model,
)
from .provenance import (
    PROVENANCE_FILE,
    PROVENANCE_FORMAT,
    TRAINING_ROWS_FILE,
    contributor_counts,
    library_versions,
    provenance_hash,
    rows_tree,
)
from .report import BenchmarkReport, report_to_json

#: Fractions of a training run's steps at which the adapter is snapshotted for attribution: the
#: gradients of a few early states predict each row's effect best (``scripts/bench_attribution.py``).
ATTRIBUTION_TRAJECTORY = (0.02, 0.05)
#: Where the snapshots live in an adapter's directory (one PEFT directory per step).
ATTRIBUTION_CHECKPOINTS_DIR = "attribution-checkpoints"
from .tables import AdapterRow

if TYPE_CHECKING:  # the trainer imports torch; the CLI should not pay for that to list adapters
    from .hf.trainer import TrainOutcome, TrainProgress

__all__ = ["ModelFactory", "TrainRequest", "TrainResult", "adapter_id", "adapter_to_dict"]


def adapter_id(name: str) -> str:
    """The AdapterRegistry id of an adapter name: keccak256 of its UTF-8 bytes."""
    return "0x" + keccak(name.encode("utf-8")).hex()


def adapter_to_dict(row: AdapterRow) -> dict[str, Any]:
    """An adapter row as camelCase JSON (API and CLI)."""
    return {
        "name": row.name, "adapterId": row.adapter_id, "adapterHash": row.adapter_hash,
        "baseModelHash": row.base_model_hash, "provenanceHash": row.provenance_hash, "developer": row.developer,
        "source": row.source, "path": row.path, "datanetId": row.datanet_id, "snapshotVersion": row.snapshot_version,
        "recordSeq": row.record_seq, "createdAt": row.created_at, "chainVersion": row.chain_version,
        "txHash": row.tx_hash,
    }


@dataclass(frozen=True)
class TrainRequest:
    """One training run: which data, which base model, which settings, who gets credit."""

    datanet_id: int
    base_dir: Path
    config: TrainConfig
    #: ``None``: the datanet's latest snapshot.
    snapshot_version: int | None = None
    #: ``None``: ``d<datanet>-v<version>-r<rank>-s<seed>``.
    name: str | None = None
    #: The adapter developer (credited with the developer share); ``None``: the operator.
    developer: str | None = None
    output_dir: Path | None = None
    resume: bool = False
    device: str = "auto"
    register: bool = True


@dataclass
class TrainResult:
    """What a training run produced."""

    adapter: AdapterRow
    provenance: dict[str, Any]
    outcome: TrainOutcome | None
    registered: bool
    notes: list[str] = field(default_factory=list)


class ModelFactory:
    """Trains, imports, registers and benchmarks adapters for one node."""

    def __init__(self, engine: Engine, records: RecordLedger, datanets: DatanetService, *, data_dir: Path,
                 registry: AdapterRegistryContract | None = None, operator: LocalAccount | None = None,
                 public_url: str | None = None, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.records = records
        self.datanets = datanets
        self.data_dir = data_dir
        self.registry = registry
        self.operator = operator
        self.public_url = public_url.rstrip("/") if public_url else None
        self.clock = clock

    # ---- lookups -------------------------------------------------------------------------
    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def benchmarks_dir(self) -> Path:
        return self.data_dir / "benchmarks"

    def get(self, name: str) -> AdapterRow:
        validate_adapter_name(name)
        with read_session(self.engine) as session:
            row = session.get(AdapterRow, name)
        if row is None:
            raise NotFoundError(f"no adapter named {name!r}; `loraledger adapters list` shows them")
        return row

    def all(self) -> list[AdapterRow]:
        with read_session(self.engine) as session:
            return list(session.exec(select(AdapterRow).order_by(AdapterRow.created_at, AdapterRow.name)))

    def by_hash(self, digest: str) -> AdapterRow | None:
        """The adapter whose hash is ``digest``, if this node has it."""
        return self._by_hash(digest)

    def _by_hash(self, digest: str) -> AdapterRow | None:
        with read_session(self.engine) as session:
            return session.exec(select(AdapterRow).where(AdapterRow.adapter_hash == digest)).first()

    def provenance(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        try:
            return json.loads((Path(row.path) / PROVENANCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LedgerError(f"provenance of adapter {name} at {row.path} cannot be read: {exc}") from None

    def hash_base(self, base_dir: Path) -> BaseModelHash:
        """The base model hash, with per-file hashes cached in ``<data_dir>/cache``."""
        return hash_base_model(base_dir, cache_path=self.data_dir / "cache" / "base-model-hashes.json")

    def _developer(self, developer: str | None) -> str:
        if developer is not None:
            return parse_address(developer)
        if self.operator is None:
            raise InputError("no developer address: pass --developer or configure the operator key")
        return self.operator.address

    def _metadata_uri(self, name: str) -> str:
        return f"{self.public_url}/v1/adapters/{name}" if self.public_url else ""

    # ---- training ------------------------------------------------------------------------
    def snapshot_training_rows(self, datanet_id: int, version: int | None) -> tuple[int, dict[str, Any], list[TrainingRow]]:
        """(version, manifest, rows) of a snapshot; ``NotFoundError``/``InputError`` when there is none."""
        version = self.datanets.resolve_version(datanet_id, version)
        snap = self.datanets.snapshot_row(datanet_id, version)
        rows = [TrainingRow(h, c, data) for h, c, data in self.datanets.snapshot_rows(datanet_id, version)]
        if not rows:
            raise InputError(f"snapshot {version} of datanet {datanet_id} is empty: nothing to train on")
        return version, json.loads(snap.manifest), rows

    def prepare(self, request: TrainRequest) -> tuple[TrainRequest, Path]:
        """Check a request without training: fills in version, name and output directory."""
        version = self.datanets.resolve_version(request.datanet_id, request.snapshot_version)
        inspect_base_model(request.base_dir)
        name = validate_adapter_name(request.name or
                                     f"d{request.datanet_id}-v{version}-r{request.config.rank}-s{request.config.seed}")
        out = (request.output_dir or self.adapters_dir / name).expanduser().resolve()
        with read_session(self.engine) as session:
            existing = session.get(AdapterRow, name)
        if existing is not None:
            hint = (f" (not yet registered on chain: `loraledger adapters register {name}` finishes it)"
                    if existing.chain_version is None else "")
            raise InputError(f"an adapter named {name!r} exists already{hint}; choose another --name")
        if out.exists():
            published = self._published_run(out, name)
            if not (published and request.resume):
                hint = ("; it holds a finished run that was never recorded (a crash after publishing it?): "
                        "pass --resume to record and register it") if published else "; remove it or choose another --out"
                raise InputError(f"output directory {out} exists already{hint}")
        partial = out.with_name(out.name + ".partial")
        if partial.exists() and not request.resume:
            raise InputError(f"{partial} holds an unfinished run; pass --resume to continue it or delete it")
        self._developer(request.developer)
        return TrainRequest(**{**request.__dict__, "snapshot_version": version, "name": name, "output_dir": out}), partial

    @staticmethod
    def _published_run(out: Path, name: str) -> bool:
        """Whether ``out`` holds a complete trained adapter named ``name`` (step 3 done)."""
        try:
            provenance = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
            return (provenance.get("name") == name and provenance.get("source") == "trained"
                    and adapter_hash(out).hash == provenance.get("adapterHash"))
        except (OSError, ValueError, InputError):
            return False

    def _record_published(self, request: TrainRequest) -> TrainResult:
        """Steps 4-5 for a run whose adapter directory was published before a crash."""
        assert request.output_dir is not None and request.name is not None
        provenance = json.loads((request.output_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
        datanet, rows = provenance["datanet"], provenance["trainingRows"]
        record = AdapterRecord(
            timestamp=provenance["createdAt"], name=request.name, adapter_id=adapter_id(request.name),
            adapter_hash=provenance["adapterHash"], base_model_hash=provenance["baseModel"]["hash"],
            provenance_hash=provenance_hash(provenance), developer=provenance["developer"], source="trained",
            datanet_id=datanet["id"], snapshot_version=datanet["snapshotVersion"], snapshot_root=datanet["snapshotRoot"],
            training_rows_root=rows["root"], training_row_count=rows["count"],
        )
        row = self._store(record, request.output_dir)
        registered = False
        if request.register:
            row, registered = self.register(row.name)
        return TrainResult(row, provenance, None, registered, ["recorded a run published before a crash"])

    @staticmethod
    def _stage_trajectory(partial: Path, staged: Path) -> list[dict[str, Any]]:
        """Move the run's trajectory snapshots into the staged adapter (``attribution-checkpoints/``);
        what provenance says of them: ``[{"path", "step", "weightsSha256"}]``."""
        from .hf.trainer import TRAJECTORY_DIR

        source, target = partial / TRAJECTORY_DIR, staged / ATTRIBUTION_CHECKPOINTS_DIR
        shutil.rmtree(target, ignore_errors=True)
        if not source.is_dir():
            return []
        os.replace(source, target)
        out = []
        for step_dir in sorted(p for p in target.iterdir() if p.is_dir() and p.name.startswith("step-")):
            out.append({"path": f"{ATTRIBUTION_CHECKPOINTS_DIR}/{step_dir.name}", "step": int(step_dir.name[5:]),
                        "weightsSha256": "0x" + sha256_file(step_dir / ADAPTER_WEIGHTS).hex()})
        return out

    def train(self, request: TrainRequest, *, on_progress: Callable[[TrainProgress], None] | None = None,
              on_stage: Callable[[str], None] | None = None) -> TrainResult:
        """Run ``request`` end to end (see the module docstring for the order)."""
        from .hf.trainer import train_lora

        stage = on_stage or (lambda _: None)
        request, partial = self.prepare(request)
        assert request.name and request.output_dir and request.snapshot_version
        if request.output_dir.exists():  # prepare allowed it: --resume of a published run
            stage("recording an adapter published before a crash")
            return self._record_published(request)
        developer = self._developer(request.developer)
        version, manifest, rows = self.snapshot_training_rows(request.datanet_id, request.snapshot_version)
        stage("hashing the base model")
        base_hash = self.hash_base(request.base_dir)
        stage("loading the base model")
        loaded = load_base_model(request.base_dir, device=request.device, quantize=request.config.quantize)
        config = request.config
        if config.target_modules is None:
            config = config.with_targets(default_target_modules(loaded.info.model_type))
        train_rows, val_rows = split_rows(rows, config.val_fraction)
        if not train_rows:
            raise InputError(f"all {len(rows)} rows of the snapshot fall in the validation split; "
                             "lower --val-fraction or add rows")
        train_examples, dropped = build_examples(loaded.tokenizer, train_rows, config.max_length)
        val_examples, _ = build_examples(loaded.tokenizer, val_rows, config.max_length)
        stage(f"training on {len(train_examples)} rows ({len(val_examples)} held out) on {loaded.device}")
        # ``partial`` is not created here: the trainer makes it with its first checkpoint, so a
        # run that fails before one (e.g. unknown --target-modules) leaves nothing that would
        # block the next run under this name ("holds an unfinished run").
        pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else loaded.tokenizer.eos_token_id
        with device_errors(f"training {request.name}"):
            outcome = train_lora(loaded.model, train_examples, val_examples, config, pad_id=pad_id,
                                 device=loaded.device, work_dir=partial, resume=request.resume,
                                 on_progress=on_progress, fingerprint_extra={"baseModel": base_hash.hash},
                                 trajectory=ATTRIBUTION_TRAJECTORY)
        stage("saving the adapter")
        staged = partial / "adapter"
        shutil.rmtree(staged, ignore_errors=True)
        outcome.model.save_pretrained(str(staged))
        normalise_adapter_config(staged, base_model=str(loaded.info.path))
        trajectory = self._stage_trajectory(partial, staged)
        digest = adapter_hash(staged)
        twin = self._by_hash(digest.hash)
        if twin is not None and twin.name != request.name:
            # Checked before anything is moved into place: refusing later (in _store) would
            # leave an output directory with no adapters row, blocking this name for good.
            shutil.rmtree(partial, ignore_errors=True)
            raise InputError(f"this run trained an adapter identical to {twin.name!r} (hash {digest.hash}); "
                             "nothing was stored: use that adapter, or change the seed or settings")
        tree, val_tree = rows_tree(train_rows), rows_tree(val_rows)
        assert tree is not None
        provenance = {
            "format": PROVENANCE_FORMAT,
            "name": request.name,
            "source": "trained",
            "adapterHash": digest.hash,
            "developer": developer,
            "baseModel": {"hash": base_hash.hash, "modelType": loaded.info.model_type,
                          "architectures": list(loaded.info.architectures), "tiny": loaded.info.tiny},
            "datanet": {"id": request.datanet_id, "name": manifest.get("name"), "schema": manifest.get("schema"),
                        "snapshotVersion": version, "snapshotRoot": manifest["root"],
                        "manifestHash": "0x" + keccak(canonicalize(manifest)).hex(),
                        "chainId": manifest.get("chainId"), "registry": manifest.get("registry")},
            "trainingRows": {"count": len(train_rows), "root": tree.root, "contributors": contributor_counts(train_rows),
                             "droppedTooLong": dropped},
            "validationRows": {"count": len(val_rows), "root": val_tree.root if val_tree else None},
            "hyperparameters": config.to_json(),
            "attributionCheckpoints": trajectory,
            "seed": config.seed,
            "libraries": library_versions(),
            "device": loaded.device,
            "metrics": {
                "steps": outcome.steps, "tokens": outcome.tokens, "seconds": round(outcome.seconds, 3),
                "tokensPerSecond": round(outcome.tokens_per_second, 1),
                "firstLoss": round(outcome.losses[0], 6) if outcome.losses else None,
                "finalLoss": round(outcome.losses[-1], 6) if outcome.losses else None,
                "valLoss": round(outcome.val_loss, 6) if outcome.val_loss is not None else None,
                "resumedFrom": outcome.resumed_from,
            },
            "createdAt": int(self.clock()),
        }
        atomic_write_json(staged / PROVENANCE_FILE, provenance)
        atomic_write_json(staged / TRAINING_ROWS_FILE, tree.dump())
        request.output_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, request.output_dir)
        shutil.rmtree(partial, ignore_errors=True)
        failpoint("train.after_publish")
        record = AdapterRecord(
            timestamp=provenance["createdAt"], name=request.name, adapter_id=adapter_id(request.name),
            adapter_hash=digest.hash, base_model_hash=base_hash.hash, provenance_hash=provenance_hash(provenance),
            developer=developer, source="trained", datanet_id=request.datanet_id, snapshot_version=version,
            snapshot_root=manifest["root"], training_rows_root=tree.root, training_row_count=len(train_rows),
        )
        row = self._store(record, request.output_dir)
        failpoint("train.after_record")
        registered = False
        if request.register:
            stage("registering on chain")
            row, registered = self.register(row.name)
        return TrainResult(row, provenance, outcome, registered)

    # ---- import ----------------------------------------------------------------------------
    def import_adapter(self, source: Path, *, name: str, base_dir: Path | None = None,
                       base_model_hash: str | None = None, developer: str | None = None,
                       expect_hash: str | None = None, register: bool = True) -> TrainResult:
        """Import a PEFT LoRA adapter trained elsewhere, with provenance ``external``.

        Its hash is computed here (and must equal ``expect_hash`` when given); it carries no
        datanet, so it is never credited to datanet contributors. The base model is named by
        its directory (hashed here) or by its hash."""
        name = validate_adapter_name(name)
        checked = inspect_adapter(source)
        digest = adapter_hash(checked)
        if expect_hash is not None and digest.hash != expect_hash.lower():
            raise InputError(f"adapter hash mismatch: {source} hashes to {digest.hash}, not {expect_hash}")
        if base_dir is not None:
            base_hash = self.hash_base(base_dir).hash
        elif base_model_hash is not None:
            base_hash = base_model_hash.lower()
            if len(base_hash) != 66 or not base_hash.startswith("0x"):
                raise InputError(f"--base-model-hash must be 0x + 64 hex digits, got {base_model_hash!r}")
        else:
            raise InputError("say which base model the adapter is for: --base DIR or --base-model-hash 0x...")
        developer = self._developer(developer)
        existing = self._by_hash(digest.hash)
        if existing is not None:
            if existing.name == name:
                return TrainResult(existing, self.provenance(name), None, existing.chain_version is not None,
                                   ["already imported"])
            raise InputError(f"this adapter (hash {digest.hash}) is already in the node as {existing.name!r}")
        with read_session(self.engine) as session:
            if session.get(AdapterRow, name) is not None:
                raise InputError(f"an adapter named {name!r} exists already; choose another --name")
        out = self.adapters_dir / name
        if out.exists():
            raise InputError(f"{out} exists already; remove it or choose another name")
        staged = out.with_name(out.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for file_name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            shutil.copyfile(checked.path / file_name, staged / file_name)
        if adapter_hash(staged).hash != digest.hash:
            raise LedgerError(f"{source} changed while it was being imported; try again")
        provenance = {
            "format": PROVENANCE_FORMAT, "name": name, "source": "external", "adapterHash": digest.hash,
            "developer": developer, "baseModel": {"hash": base_hash}, "importedFrom": str(checked.path),
            "libraries": library_versions(), "createdAt": int(self.clock()),
        }
        atomic_write_json(staged / PROVENANCE_FILE, provenance)
        os.replace(staged, out)
        record = AdapterRecord(timestamp=provenance["createdAt"], name=name, adapter_id=adapter_id(name),
                               adapter_hash=digest.hash, base_model_hash=base_hash,
                               provenance_hash=provenance_hash(provenance), developer=developer, source="external")
        row = self._store(record, out)
        registered = False
        if register:
            row, registered = self.register(name)
        return TrainResult(row, provenance, None, registered)

    def _store(self, record: AdapterRecord, path: Path) -> AdapterRow:
        """Append the record and the adapters row in one transaction (idempotent by hash)."""
        existing = self._by_hash(record.adapter_hash)
        if existing is not None:
            if existing.name != record.name:
                raise InputError(f"an identical adapter (hash {record.adapter_hash}) exists already as {existing.name!r}")
            return existing

        def store(session: Session, stamped: list[Record]) -> None:
            appended = stamped[0]
            assert isinstance(appended, AdapterRecord) and appended.seq is not None
            session.add(AdapterRow(
                name=appended.name, adapter_id=appended.adapter_id, adapter_hash=appended.adapter_hash,
                base_model_hash=appended.base_model_hash, provenance_hash=appended.provenance_hash,
                developer=appended.developer, source=appended.source, path=str(path),
                datanet_id=appended.datanet_id, snapshot_version=appended.snapshot_version,
                record_seq=appended.seq, created_at=appended.timestamp,
            ))

        self.records.append(record, in_transaction=store)
        return self.get(record.name)

    def training_row_proof(self, name: str, row_hash_hex: str) -> dict[str, Any]:
        """A proof that row ``row_hash_hex`` was in adapter ``name``'s training set: an OZ
        multiproof-free single proof against ``training_rows_root`` of its AdapterRecord."""
        from ..crypto.merkle import StandardMerkleTree

        row = self.get(name)
        if row.source != "trained":
            raise NotFoundError(f"adapter {name} is external: it has no training rows here")
        try:
            tree = StandardMerkleTree.load(json.loads((Path(row.path) / TRAINING_ROWS_FILE).read_text()))
        except (OSError, ValueError) as exc:
            raise LedgerError(f"training rows of adapter {name} cannot be read: {exc}") from None
        wanted = row_hash_hex.lower()
        record = self.records.get(row.record_seq)
        assert isinstance(record, AdapterRecord)
        for index, (digest, contributor) in tree.entries():
            if "0x" + bytes(digest).hex() == wanted:
                proof = tree.get_proof(index)
                return {"adapter": name, "adapterHash": row.adapter_hash, "root": record.training_rows_root,
                        "rowHash": wanted, "contributor": contributor, "proof": proof,
                        "recordSeq": row.record_seq, "verified": tree.root == record.training_rows_root
                        and StandardMerkleTree.verify(tree.root, ["bytes32", "address"], [wanted, contributor], proof)}
        raise NotFoundError(f"row {wanted} did not train adapter {name}")

    # ---- chain -------------------------------------------------------------------------------
    def register(self, name: str) -> tuple[AdapterRow, bool]:
        """Register adapter ``name`` in AdapterRegistry unless it is there; (row, newly registered)."""
        row = self.get(name)
        if self.registry is None or self.operator is None:
            raise ChainError("registering an adapter needs the chain and the operator key (LORALEDGER_OPERATOR_KEY)")
        registered_id, version = self.registry.adapter_of(row.adapter_hash)
        fresh = False
        if version == 0:
            version, receipt = self.registry.register(
                self.operator, row.adapter_id, row.developer, row.adapter_hash, row.base_model_hash,
                row.provenance_hash, self._metadata_uri(name))
            tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
            fresh = True
        elif registered_id != row.adapter_id:
            raise ChainError(f"adapter hash {row.adapter_hash} is registered on chain under another id ({registered_id})")
        else:
            tx_hash = row.tx_hash
        with session_scope(self.engine) as session:
            stored = session.get(AdapterRow, name)
            assert stored is not None
            stored.chain_version, stored.tx_hash = version, tx_hash
            session.add(stored)
        return self.get(name), fresh

    def verify(self, name: str) -> list[str]:
        """Recompute the adapter's hashes from its files and compare them with its ledger
        record and (when connected) AdapterRegistry; the list of mismatches, empty if none."""
        row = self.get(name)
        problems: list[str] = []
        digest = adapter_hash(row.path).hash
        if digest != row.adapter_hash:
            problems.append(f"adapter hash: files {digest}, ledger {row.adapter_hash}")
        provenance = self.provenance(name)
        if provenance_hash(provenance) != row.provenance_hash:
            problems.append(f"provenance hash: provenance.json {provenance_hash(provenance)}, ledger {row.provenance_hash}")
        if provenance.get("adapterHash") != row.adapter_hash:
            problems.append(f"provenance.json names adapter hash {provenance.get('adapterHash')}")
        record = self.records.get(row.record_seq)
        if not isinstance(record, AdapterRecord) or record.adapter_hash != row.adapter_hash \
                or record.provenance_hash != row.provenance_hash:
            problems.append(f"ledger record {row.record_seq} does not match the adapters table")
        if self.registry is not None and row.chain_version is not None:
            on_chain = self.registry.get_adapter(row.adapter_id)
            registered_id, version = self.registry.adapter_of(row.adapter_hash)
            if registered_id != row.adapter_id or version != row.chain_version:
                problems.append(f"AdapterRegistry: hash registered as {registered_id} v{version}")
            elif on_chain.version == version and (on_chain.provenance_hash != row.provenance_hash
                                                  or on_chain.base_model_hash != row.base_model_hash
                                                  or on_chain.developer != row.developer):
                problems.append("AdapterRegistry holds other base model / provenance hashes or developer")
        return problems

    # ---- benchmarks --------------------------------------------------------------------------
    def training_source(self, names: Sequence[str], *, datanet: int | None = None, snapshot: int | None = None,
                        val_fraction: float | None = None) -> tuple[int | None, int | None, float | None]:
        """Fill in what was not given from the trained adapters among ``names``: their
        datanet, snapshot version and validation share, so that "held out" means the rows
        those adapters did not see. ``InputError`` when the adapters disagree."""
        trained = [self.get(name) for name in names]
        trained = [row for row in trained if row.source == "trained"]

        def agreed(what: str, values: set[Any]) -> Any:
            if len(values) > 1:
                raise InputError(f"the adapters were trained with different {what} ({sorted(values)}); "
                                 f"choose one with --{what.replace(' ', '-')}")
            return values.pop() if values else None

        if datanet is None:
            datanet = agreed("datanet", {row.datanet_id for row in trained})
        same_data = [row for row in trained if row.datanet_id == datanet]
        if snapshot is None:
            snapshot = agreed("snapshot", {row.snapshot_version for row in same_data})
        if val_fraction is None:
            val_fraction = agreed("val fraction", {self.provenance(row.name)["hyperparameters"]["valFraction"]
                                                   for row in same_data})
        return datanet, snapshot, val_fraction

    def eval_set(self, *, eval_file: Path | None = None, datanet: int | None = None, snapshot: int | None = None,
                 split: str = "validation", val_fraction: float = 0.1) -> Any:
        """The eval set named by a JSONL file, or by a datanet snapshot and split
        (``validation``: the rows training held out with ``val_fraction``; ``all``)."""
        from .hf.evaluate import EvalSet, eval_set_from_file

        if (eval_file is None) == (datanet is None):
            raise InputError("name the eval set: --eval FILE or --datanet ID [--snapshot N]")
        if eval_file is not None:
            return eval_set_from_file(eval_file)
        assert datanet is not None
        if split not in ("validation", "all"):
            raise InputError(f"split must be validation or all, not {split!r}")
        version, _, rows = self.snapshot_training_rows(datanet, snapshot)
        chosen = split_rows(rows, val_fraction)[1] if split == "validation" else rows
        if not chosen:
            raise InputError(f"snapshot {version} of datanet {datanet} has no rows in its validation split "
                             f"(val fraction {val_fraction}); use split all or an eval file")
        return EvalSet(tuple(chosen), f"datanet {datanet} snapshot {version} ({split} split)")

    def benchmark(self, base_dir: Path, adapter_names: Sequence[str], eval_set: Any, *, device: str = "auto",
                  max_length: int = 512, batch_size: int = 8, max_new_tokens: int = 64,
                  on_model: Callable[[str], None] | None = None) -> tuple[BenchmarkReport, list[BenchmarkRecord]]:
        """Benchmark the base model and the named adapters on ``eval_set``; appends one
        ``BenchmarkRecord`` per model and saves the report JSON under ``<data_dir>/benchmarks``."""
        from .hf.evaluate import BenchAdapter, run_benchmark

        base_hash = self.hash_base(base_dir).hash
        adapters = []
        for name in adapter_names:
            row = self.get(name)
            if row.base_model_hash != base_hash:
                raise InputError(f"adapter {name} was made for base model {row.base_model_hash}, "
                                 f"but --base hashes to {base_hash}")
            if adapter_hash(row.path).hash != row.adapter_hash:
                raise LedgerError(f"the files of adapter {name} at {row.path} no longer match its recorded hash")
            adapters.append(BenchAdapter(name, Path(row.path), row.adapter_hash))
        loaded = load_base_model(base_dir, device=device)
        with device_errors("the benchmark"):
            report = run_benchmark(loaded.model, loaded.tokenizer, base_hash, adapters, eval_set,
                                   device=loaded.device, max_length=max_length, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, on_model=on_model)
        timestamp = int(self.clock())
        records = [
            BenchmarkRecord(timestamp=timestamp, eval_set_hash=report.eval_set_hash, eval_examples=row.examples,
                            base_model_hash=base_hash, adapter_hash=row.adapter_hash,
                            adapter_name=None if row.adapter_hash is None else row.name,
                            loss=round(row.loss, 6), perplexity=_finite(row.perplexity),
                            exact_match=None if row.exact_match is None else round(row.exact_match, 6),
                            rouge_l=None if row.rouge_l is None else round(row.rouge_l, 6))
            for row in report.rows
        ]
        appended = self.records.append_many(records)
        self.benchmarks_dir.mkdir(parents=True, exist_ok=True)
        first = appended[0].seq
        atomic_write_json(self.benchmarks_dir / f"{first:08d}.json",
                          {**report_to_json(report), "recordSeqs": [r.seq for r in appended]})
        return report, appended


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None

