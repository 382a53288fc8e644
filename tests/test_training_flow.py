"""The ModelFactory end to end: ``loraledger train | adapters | bench | pipeline`` as real CLI
processes and the ``/v1/jobs`` train jobs through the real app, against a real anvil, a real
SQLite ledger and a real (tiny, random) llama model trained with torch + peft on the CPU.

One module-wide setup keeps it fast: one deployment, datanet 1 with 21 instruction rows
from three contributors and one snapshot, datanet 2 with no snapshot, one tiny base model,
and one adapter trained by the CLI that later tests benchmark and copy. Training is tiny
(4 steps of 4 rows of at most 64 tokens).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rfc8785
from conftest import cli_environment
from eth_utils import keccak
from sqlmodel import Session, select

from loraledger.chain.contracts import AdapterRegistryContract
from loraledger.config import load_settings
from loraledger.crypto.merkle import StandardMerkleTree
from loraledger.datanets.content import parse_rows, row_hash
from loraledger.errors import InputError, TransactionReverted
from loraledger.failpoints import TRAIN_FAILPOINTS
from loraledger.node.context import open_node, open_records
from loraledger.records.kinds import AdapterRecord, BenchmarkRecord
from loraledger.training.adapters import adapter_hash
from loraledger.training.data import in_validation
from loraledger.training.factory import ATTRIBUTION_TRAJECTORY
from loraledger.training.hf.tiny import init_tiny_model
from loraledger.training.tables import AdapterRow

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

TOKEN = "training-flow-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
VAL = 0.2
TINY = ["--max-steps", "4", "--max-length", "64", "--batch-size", "4", "--val-fraction", str(VAL),
        "--rank", "4", "--alpha", "8", "--lr", "1e-2"]

# Three contributors, seven rows each, on different subjects (no near-duplicates).
ROWS = {
    1: [
        ("What is aspirin used for?", "Aspirin relieves pain, fever and inflammation, and thins the blood."),
        ("What is tachycardia?", "A resting heart rate above 100 beats per minute."),
        ("Which organ produces insulin?", "The pancreas, in its islets of Langerhans."),
        ("How many bones are in the adult human body?", "Two hundred and six."),
        ("What does a stethoscope let a doctor hear?", "Sounds of the heart, lungs and bowel."),
        ("Name a vitamin made in the skin under sunlight.", "Vitamin D."),
        ("What is the largest artery in the body?", "The aorta, leaving the left ventricle."),
    ],
    2: [
        ("Convert 3 kilometres to metres.", "3000 metres."),
        ("What gas do plants absorb for photosynthesis?", "Carbon dioxide, taken in through the stomata."),
        ("Who wrote the novel Moby-Dick?", "Herman Melville, published in 1851."),
        ("What is the boiling point of water at sea level in Fahrenheit?", "212 degrees Fahrenheit."),
        ("Which planet has the most prominent rings?", "Saturn, whose rings are mostly ice."),
        ("What language is spoken in Brazil?", "Portuguese."),
        ("How many sides does a hexagon have?", "Six sides and six corners."),
    ],
    3: [
        ("Write a SQL query counting rows in table orders.", "SELECT COUNT(*) FROM orders;"),
        ("What does HTTP status 404 mean?", "The server could not find the requested resource."),
        ("In Python, how do you reverse a list xs in place?", "Call xs.reverse()."),
        ("What is the time complexity of binary search?", "O(log n) comparisons on a sorted array."),
        ("Which git command shows the commit history?", "git log"),
        ("What port does HTTPS use by default?", "Port 443."),
        ("What does JSON stand for?", "JavaScript Object Notation."),
    ],
}


def jsonl(pairs) -> str:
    return "".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs)


def cli(env, *args, key=None, timeout=300):
    full = dict(env)
    if key is not None:
        full["LORALEDGER_KEY"] = "0x" + key.key.hex()
    return subprocess.run([sys.executable, "-m", "loraledger", *map(str, args)], env=full, capture_output=True,
                          text=True, timeout=timeout)


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def one_line_error(result, code: int, *needles: str) -> str:
    """The command failed with ``code`` and one ``error: ...`` line naming every needle."""
    assert result.returncode == code, f"exit {result.returncode} (wanted {code})\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def keccak_jcs(value) -> str:
    """keccak256 of the RFC 8785 form, computed with the rfc8785 package (not the project's)."""
    return "0x" + keccak(rfc8785.dumps(value)).hex()


# ----------------------------------------------------------------------------------- setup


@pytest.fixture(scope="module")
def world(anvil, deployment, accounts, tmp_path_factory):
    deployed, deployments_file, client = deployment
    base = tmp_path_factory.mktemp("training-flow")
    # One torch thread: on a small shared machine two OpenMP threads spin against each other
    # (and against the API threads of the jobs tests) and make tiny steps ~10x slower.
    env = cli_environment(anvil.url, base, operator=accounts[0], deployments=deployments_file.parent,
                          OMP_NUM_THREADS="1")
    settings = load_settings(rpc_url=anvil.url, data_dir=base / "data", deployments_dir=deployments_file.parent,
                             admin_token=TOKEN, public_url=None)
    ok(cli(env, "datanet", "create", "--name", "general-qa", "--schema", "instruction", "--license", "CC-BY-4.0",
           "--owner", accounts[4].address))
    for index, pairs in ROWS.items():
        rows_file = base / f"rows-{index}.jsonl"
        rows_file.write_text(jsonl(pairs))
        out = ok(cli(env, "datanet", "contribute", "1", rows_file, "--license", "CC-BY-4.0", key=accounts[index]))
        assert f"{len(pairs)} rows recorded in datanet 1" in out
    snap_out = ok(cli(env, "datanet", "snapshot", "1"))
    assert "version 1: 21 rows" in snap_out, snap_out
    ok(cli(env, "datanet", "create", "--name", "empty", "--schema", "instruction", "--license", "CC0-1.0"))
    model = init_tiny_model(base / "models" / "tiny-llama", "llama", seed=0).path

    node = open_node(settings)
    snapshot = node.datanets.snapshot_row(1, 1)
    rows = list(node.datanets.snapshot_rows(1, 1))  # (row_hash, contributor, data), snapshot order
    node.engine.dispose()
    assert any(in_validation(h, VAL) for h, _, _ in rows), "pick rows that leave some held out"
    registry_address = deployed.address("AdapterRegistry")
    return {"env": env, "settings": settings, "base": base, "model": model, "snapshot": snapshot, "rows": rows,
            "client": client, "registry": AdapterRegistryContract(client, registry_address), "accounts": accounts}


def adapters_dir(world) -> Path:
    return world["settings"].data_dir / "adapters"


def ledger(world):
    """A fresh RecordLedger on the node's database (it sees what the CLI processes wrote)."""
    engine, records = open_records(world["settings"])
    engine.dispose()  # connections are opened as needed; none is kept between calls
    return records


def adapter_names(world) -> list[str]:
    """Names in the node's adapters table, read from the SQLite file."""
    engine, _ = open_records(world["settings"])
    try:
        with Session(engine) as session:
            return sorted(session.exec(select(AdapterRow.name)))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def trained(world):
    """The adapter ``qa-lora`` trained by ``loraledger train`` (developer: account 4)."""
    env, accounts = world["env"], world["accounts"]
    result = cli(env, "train", "--datanet", "1", "--base", world["model"], "--name", "qa-lora", "--developer",
                 accounts[4].address, "--seed", "7", *TINY)
    ok(result)
    shown = json.loads(ok(cli(env, "adapters", "show", "qa-lora")))
    return {"result": result, "shown": shown, "dir": Path(shown["path"])}


# ----------------------------------------------------------------------------- 1. train


def test_train_cli_writes_records_and_registers_adapter(world, trained):
    env, accounts, shown, out_dir = world["env"], world["accounts"], trained["shown"], trained["dir"]
    assert out_dir == adapters_dir(world).resolve() / "qa-lora"
    files = {p.name for p in out_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "provenance.json", "training_rows.json"} <= files
    assert files <= {"adapter_config.json", "adapter_model.safetensors", "provenance.json", "training_rows.json",
                     "README.md", "attribution.safetensors", "attribution-checkpoints", "attribution-indexes"}
    assert "attribution index 0x" in trained["result"].stdout
    # The early snapshots attribution is computed at: PEFT directories, listed with their hashes.
    from loraledger.attribution.index import read_index
    from loraledger.fsutil import sha256_file

    listed = json.loads((out_dir / "provenance.json").read_text())["attributionCheckpoints"]
    steps = json.loads((out_dir / "provenance.json").read_text())["metrics"]["steps"]
    assert [c["step"] for c in listed] == sorted({max(1, round(steps * f)) for f in ATTRIBUTION_TRAJECTORY})
    for item in listed:
        assert "0x" + sha256_file(out_dir / item["path"] / "adapter_model.safetensors").hex() == item["weightsSha256"]
    index, _ = read_index(out_dir)
    assert [(c.path, c.step, c.weights_sha256) for c in index.checkpoints] == \
        [(c["path"], c["step"], c["weightsSha256"]) for c in listed]
    assert not (adapters_dir(world) / "qa-lora.partial").exists()
    assert "registered in AdapterRegistry as version 1" in trained["result"].stdout

    provenance = json.loads((out_dir / "provenance.json").read_text())
    assert shown["provenance"] == provenance
    model_hash = ok(cli(env, "model", "hash", world["model"])).split()[0]
    dir_hash = ok(cli(env, "adapters", "hash", out_dir)).split()[0]
    assert re.fullmatch(r"0x[0-9a-f]{64}", model_hash) and re.fullmatch(r"0x[0-9a-f]{64}", dir_hash)

    # provenance.json: what went in
    assert provenance["source"] == "trained" and provenance["name"] == "qa-lora"
    assert provenance["baseModel"]["hash"] == model_hash and provenance["baseModel"]["modelType"] == "llama"
    assert provenance["baseModel"]["tiny"] is True
    snap = world["snapshot"]
    assert provenance["datanet"]["id"] == 1 and provenance["datanet"]["snapshotVersion"] == 1
    assert provenance["datanet"]["snapshotRoot"] == snap.root
    assert provenance["datanet"]["manifestHash"] == keccak_jcs(json.loads(snap.manifest))
    train_rows = [(h, c) for h, c, _ in world["rows"] if not in_validation(h, VAL)]
    val_rows = [(h, c) for h, c, _ in world["rows"] if in_validation(h, VAL)]
    expected_tree = StandardMerkleTree.of([list(r) for r in train_rows], ["bytes32", "address"])
    assert provenance["trainingRows"]["count"] == len(train_rows) == 21 - len(val_rows)
    assert provenance["trainingRows"]["root"] == expected_tree.root
    assert provenance["validationRows"]["count"] == len(val_rows) > 0
    counts: dict[str, int] = {}
    for _, contributor in train_rows:
        counts[contributor] = counts.get(contributor, 0) + 1
    assert provenance["trainingRows"]["contributors"] == counts and len(counts) == 3
    dumped = StandardMerkleTree.load(json.loads((out_dir / "training_rows.json").read_text()))
    assert dumped.root == expected_tree.root
    hyper = provenance["hyperparameters"]
    assert (hyper["rank"], hyper["alpha"], hyper["learningRate"], hyper["maxSteps"], hyper["batchSize"],
            hyper["maxLength"], hyper["valFraction"], hyper["seed"]) == (4, 8.0, 0.01, 4, 4, 64, VAL, 7)
    assert hyper["targetModules"] == ["q_proj", "v_proj"]
    assert provenance["seed"] == 7
    import transformers

    libraries = provenance["libraries"]
    assert libraries["torch"] == torch.__version__ and libraries["peft"] == peft.__version__
    assert libraries["transformers"] == transformers.__version__ and libraries["python"]
    assert provenance["adapterHash"] == dir_hash
    assert provenance["developer"] == accounts[4].address
    assert provenance["metrics"]["steps"] == 4 and provenance["metrics"]["valLoss"] is not None

    # the adapters row and the ledger record
    prov_hash = keccak_jcs(provenance)
    adapter_id = "0x" + keccak(b"qa-lora").hex()
    assert (shown["adapterHash"], shown["baseModelHash"], shown["provenanceHash"], shown["developer"],
            shown["adapterId"], shown["datanetId"], shown["snapshotVersion"], shown["chainVersion"]) == \
        (dir_hash, model_hash, prov_hash, accounts[4].address, adapter_id, 1, 1, 1)
    record = ledger(world).get(shown["recordSeq"])
    assert isinstance(record, AdapterRecord) and record.kind == "adapter"
    assert (record.name, record.adapter_id, record.adapter_hash, record.base_model_hash, record.provenance_hash,
            record.developer, record.source) == \
        ("qa-lora", adapter_id, dir_hash, model_hash, prov_hash, accounts[4].address, "trained")
    assert (record.datanet_id, record.snapshot_version, record.snapshot_root, record.training_rows_root,
            record.training_row_count) == (1, 1, snap.root, expected_tree.root, len(train_rows))

    # AdapterRegistry on chain
    registry = world["registry"]
    on_chain = registry.get_adapter(adapter_id)
    assert (on_chain.developer, on_chain.version, on_chain.adapter_hash, on_chain.base_model_hash,
            on_chain.provenance_hash) == (accounts[4].address, 1, dir_hash, model_hash, prov_hash)
    assert registry.adapter_of(dir_hash) == (adapter_id, 1)

    listed = json.loads(ok(cli(env, "adapters", "list", "--json")))
    assert [a for a in listed if a["name"] == "qa-lora"] == [{k: v for k, v in shown.items() if k != "provenance"}]

    # the adapter is a loadable PEFT adapter
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(out_dir)).r == 4

    # verify: agrees; after tampering with provenance.json it names the mismatch
    assert "agree" in ok(cli(env, "adapters", "verify", "qa-lora"))
    original = (out_dir / "provenance.json").read_bytes()
    try:
        tampered = {**provenance, "seed": 8}
        (out_dir / "provenance.json").write_text(json.dumps(tampered))
        bad = cli(env, "adapters", "verify", "qa-lora")
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert "MISMATCH provenance hash" in bad.stderr, bad.stderr
    finally:
        (out_dir / "provenance.json").write_bytes(original)
    ok(cli(env, "adapters", "verify", "qa-lora"))


# ------------------------------------------------------------------------ 2. bad input


def assert_nothing_left(world, name: str, before: list[str]) -> None:
    assert adapter_names(world) == before
    assert not (adapters_dir(world) / name).exists()
    assert not (adapters_dir(world) / f"{name}.partial").exists(), \
        f"a failed run left {adapters_dir(world) / (name + '.partial')} behind"


@pytest.mark.parametrize("case", [
    pytest.param((["--datanet", "9"], 3, ["no datanet 9"]), id="unknown-datanet"),
    pytest.param((["--datanet", "1", "--snapshot", "5"], 3, ["no snapshot version 5"]), id="unknown-snapshot"),
    pytest.param((["--datanet", "2"], 3, ["datanet 2 has no snapshot"]), id="no-snapshot-yet"),
    pytest.param((["--datanet", "1", "--rank", "0"], 2, ["rank", ">= 1"]), id="rank-0"),
    pytest.param((["--datanet", "1", "--name", "../x"], 2, ["invalid adapter name", "../x"]), id="bad-name"),
    pytest.param((["--datanet", "1", "--name", "qa-lora"], 2, ["qa-lora", "exists already"]), id="existing-name"),
    pytest.param((["--datanet", "1", "--target-modules", "nope_proj"], 2, ["nope_proj", "q_proj"]),
                 id="unknown-target-module"),
])
def test_train_refuses_bad_input(world, trained, case):
    args, code, needles = case
    before = adapter_names(world)
    name = next((args[i + 1] for i, a in enumerate(args) if a == "--name"), "refused-run")
    extra = [] if "--name" in args else ["--name", name]
    result = cli(world["env"], "train", "--base", world["model"], *TINY, *args, *extra)  # the case's options win
    one_line_error(result, code, *needles)
    if name != "qa-lora" and ".." not in name:
        assert_nothing_left(world, name, before)
    else:
        assert adapter_names(world) == before
    assert adapter_hash(trained["dir"]).hash == trained["shown"]["adapterHash"]  # the existing one is untouched


def test_train_identical_adapter_under_new_name_is_refused_cleanly(world, trained):
    """Same data, settings and seed train the same bytes (deterministic on CPU), so the same
    adapter hash: a second name for it is refused, and nothing of the second run is left."""
    before = adapter_names(world)
    result = cli(world["env"], "train", "--datanet", "1", "--base", world["model"], "--name", "qa-lora-again",
                 "--developer", world["accounts"][4].address, "--seed", "7", *TINY)
    one_line_error(result, 2, trained["shown"]["adapterHash"], "qa-lora")
    assert_nothing_left(world, "qa-lora-again", before)
    with pytest.raises(TransactionReverted, match="UnknownAdapter"):  # never registered
        world["registry"].get_adapter("0x" + keccak(b"qa-lora-again").hex())
    assert world["registry"].adapter_of(trained["shown"]["adapterHash"])[1] == 1


def test_train_refuses_base_that_is_not_a_model(world, trained):
    before = adapter_names(world)
    not_model = world["base"] / "not-a-model"
    not_model.mkdir(exist_ok=True)
    (not_model / "notes.txt").write_text("just text")
    result = cli(world["env"], "train", "--datanet", "1", "--base", not_model, "--name", "from-junk", *TINY)
    one_line_error(result, 2, str(not_model))
    assert_nothing_left(world, "from-junk", before)
    missing = world["base"] / "no-such-model"
    result = cli(world["env"], "train", "--datanet", "1", "--base", missing, "--name", "from-nothing", *TINY)
    one_line_error(result, 2, str(missing), "does not exist")
    assert_nothing_left(world, "from-nothing", before)


def test_train_quantize_4bit_needs_gpu(world):
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("this machine can run QLoRA")
    before = adapter_names(world)
    result = cli(world["env"], "train", "--datanet", "1", "--base", world["model"], "--name", "qlora-run",
                 "--quantize", "4bit", *TINY)
    line = one_line_error(result, 4, "QLoRA")
    assert "GPU" in line or "bitsandbytes" in line
    assert_nothing_left(world, "qlora-run", before)


# ----------------------------------------------------------------------------- 3. import


def test_import_external_adapter(world, trained):
    from safetensors.torch import load_file, save_file

    env, base = world["env"], world["base"]
    external = base / "external-adapter"
    external.mkdir()
    shutil.copyfile(trained["dir"] / "adapter_config.json", external / "adapter_config.json")
    weights = load_file(str(trained["dir"] / "adapter_model.safetensors"))
    first = sorted(n for n in weights if "lora_B" in n)[0]
    weights[first] = weights[first] + 0.125
    save_file(weights, str(external / "adapter_model.safetensors"))
    expected = ok(cli(env, "adapters", "hash", external)).split()[0]
    assert expected != trained["shown"]["adapterHash"]
    before = adapter_names(world)

    # a wrong --expect-hash: refused, nothing imported
    wrong = "0x" + "ab" * 32
    refused = cli(env, "adapters", "import", external, "--name", "ext", "--base", world["model"],
                  "--expect-hash", wrong)
    one_line_error(refused, 2, "mismatch", expected)
    assert adapter_names(world) == before and not (adapters_dir(world) / "ext").exists()

    # a pickled adapter_model.bin only: refused
    pickled = base / "pickled-adapter"
    pickled.mkdir()
    shutil.copyfile(external / "adapter_config.json", pickled / "adapter_config.json")
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    one_line_error(cli(env, "adapters", "import", pickled, "--name", "pickled", "--base", world["model"]), 2,
                   "adapter_model.bin")
    assert adapter_names(world) == before

    imported = cli(env, "adapters", "import", external, "--name", "ext", "--base", world["model"],
                   "--expect-hash", expected)
    assert "provenance external" in ok(imported)
    shown = json.loads(ok(cli(env, "adapters", "show", "ext")))
    provenance = shown["provenance"]
    assert provenance["source"] == "external" and provenance["adapterHash"] == expected
    assert not {"datanet", "trainingRows", "validationRows"} & set(provenance)
    assert provenance["baseModel"]["hash"] == trained["shown"]["baseModelHash"]
    assert shown["datanetId"] is None and shown["snapshotVersion"] is None and shown["source"] == "external"
    assert shown["provenanceHash"] == keccak_jcs(provenance)
    record = ledger(world).get(shown["recordSeq"])
    assert isinstance(record, AdapterRecord) and record.source == "external" and record.adapter_hash == expected
    assert (record.datanet_id, record.snapshot_version, record.snapshot_root, record.training_rows_root,
            record.training_row_count) == (None, None, None, None, None)
    on_chain = world["registry"].get_adapter(shown["adapterId"])
    assert (on_chain.version, on_chain.adapter_hash, on_chain.provenance_hash, on_chain.developer) == \
        (1, expected, shown["provenanceHash"], world["accounts"][0].address)
    assert world["registry"].adapter_of(expected) == (shown["adapterId"], 1)
    ok(cli(env, "adapters", "verify", "ext"))
    # the copy in the node is the node's: the source directory is not used any more
    assert Path(shown["path"]) == (adapters_dir(world) / "ext").resolve()


# ------------------------------------------------------------------------------ 4. bench


def benchmark_records(world, stderr: str) -> list[BenchmarkRecord]:
    found = re.search(r"recorded (\d+) benchmark records \(seq (\d+)–(\d+)\)", stderr)
    assert found, stderr
    count, first, last = map(int, found.groups())
    records = [ledger(world).get(seq) for seq in range(first, last + 1)]
    assert len(records) == count and all(isinstance(r, BenchmarkRecord) for r in records)
    return records


def test_bench_base_vs_adapter_on_held_out_rows(world, trained):
    out = world["base"] / "bench-out"
    result = cli(world["env"], "bench", "--base", world["model"], "--adapters", "qa-lora", "--datanet", "1",
                 "--val-fraction", VAL, "--format", "json", "--out", out, "--max-new-tokens", "6", "--max-length", "64")
    report = json.loads(ok(result))
    val_hashes = [h for h, _, _ in world["rows"] if in_validation(h, VAL)]
    assert report["evalSetHash"] == keccak_jcs(val_hashes)
    assert report["baseModelHash"] == trained["shown"]["baseModelHash"]
    base_row, adapter_row = report["rows"]
    assert base_row["name"] == "base" and base_row["adapterHash"] is None
    assert adapter_row["name"] == "qa-lora" and adapter_row["adapterHash"] == trained["shown"]["adapterHash"]
    for row in report["rows"]:
        assert row["examples"] == len(val_hashes)
        for key in ("loss", "perplexity", "exactMatch", "rougeL"):
            assert isinstance(row[key], float | int) and not isinstance(row[key], bool), (key, row)
        assert row["loss"] > 0 and abs(row["perplexity"] - math.exp(row["loss"])) < 1e-3 * row["perplexity"]
        assert 0 <= row["exactMatch"] <= 1 and 0 <= row["rougeL"] <= 1
    assert adapter_row["loss"] != base_row["loss"]  # the adapter changed the model
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "benchmark.md").read_text()
    assert "qa-lora" in markdown and "base" in markdown
    assert json.loads((out / "benchmark.json").read_text()) == report

    records = benchmark_records(world, result.stderr)
    assert len(records) == 2
    assert {r.eval_set_hash for r in records} == {report["evalSetHash"]}
    by_adapter = {r.adapter_hash: r for r in records}
    assert set(by_adapter) == {None, trained["shown"]["adapterHash"]}
    assert by_adapter[None].adapter_name is None
    assert by_adapter[trained["shown"]["adapterHash"]].adapter_name == "qa-lora"
    assert all(r.base_model_hash == report["baseModelHash"] and r.eval_examples == len(val_hashes) for r in records)
    assert abs(by_adapter[None].loss - base_row["loss"]) < 1e-5

    # Without --datanet/--val-fraction the eval set is the rows the adapter itself held out.
    inferred = json.loads(ok(cli(world["env"], "bench", "--base", world["model"], "--adapters", "qa-lora",
                                 "--format", "json", "--max-new-tokens", "2", "--max-length", "64")))
    assert inferred["evalSetHash"] == report["evalSetHash"]
    # An unknown adapter is named, before any model is loaded.
    one_line_error(cli(world["env"], "bench", "--base", world["model"], "--adapters", "qa-lora,no-such-lora",
                       "--format", "json"), 3, "no-such-lora")


def test_bench_with_eval_file_and_bad_eval_files(world, trained):
    env = world["env"]
    pairs = [("What colour is a ripe banana?", "Yellow."), ("How many legs does a spider have?", "Eight legs."),
             ("What is two plus two?", "Four.")]
    eval_file = world["base"] / "eval.jsonl"
    eval_file.write_text(jsonl(pairs))
    result = cli(env, "bench", "--base", world["model"], "--adapters", "qa-lora", "--eval", eval_file,
                 "--format", "json", "--max-new-tokens", "4", "--max-length", "64")
    report = json.loads(ok(result))
    expected_hashes = ["0x" + row_hash(r).hex() for r in parse_rows(jsonl(pairs), "instruction")]
    assert report["evalSetHash"] == keccak_jcs(expected_hashes)
    assert [r["name"] for r in report["rows"]] == ["base", "qa-lora"]
    assert all(r["examples"] == 3 for r in report["rows"])
    records = benchmark_records(world, result.stderr)
    assert [r.eval_set_hash for r in records] == [report["evalSetHash"]] * 2

    size = ledger(world).size()
    not_jsonl = world["base"] / "eval-bad.jsonl"
    not_jsonl.write_text("prompt,completion\nWhat?,That.\n")
    one_line_error(cli(env, "bench", "--base", world["model"], "--eval", not_jsonl), 2, str(not_jsonl))
    wrong_keys = world["base"] / "eval-keys.jsonl"
    wrong_keys.write_text(json.dumps({"question": "What?", "answer": "That."}) + "\n")
    one_line_error(cli(env, "bench", "--base", world["model"], "--eval", wrong_keys), 2, str(wrong_keys))
    assert ledger(world).size() == size  # nothing recorded for a refused eval set


# --------------------------------------------------------------------------- 5. pipeline


def test_pipeline_run_and_rerun(world, trained):
    env = world["env"]
    pipeline = world["base"] / "pipelines" / "qa.toml"
    pipeline.parent.mkdir()
    pipeline.write_text(f"""
name = "qa-pipeline"

[base]
path = "{world['model']}"

[snapshot]
datanet = 1
version = "latest"

[train]
rank = 4
alpha = 8.0
learning_rate = 0.01
max_steps = 4
batch_size = 4
max_length = 64
val_fraction = {VAL}
seed = 3

[bench]
eval = "validation"
max_new_tokens = 4

[register]
enabled = true
""")
    first = cli(env, "pipeline", "run", pipeline)
    assert "pipeline qa-pipeline: adapter qa-pipeline" in ok(first)
    run_file = world["settings"].data_dir / "runs" / "qa-pipeline" / "run.json"
    run = json.loads(run_file.read_text())
    assert run["status"] == "done" and run["fileSha256"] == hashlib.sha256(pipeline.read_bytes()).hexdigest()
    assert run["snapshot"] == {"datanet": 1, "version": 1, "root": world["snapshot"].root, "rows": 21}
    shown = json.loads(ok(cli(env, "adapters", "show", "qa-pipeline")))
    assert run["adapter"]["name"] == "qa-pipeline" and run["adapter"]["adapterHash"] == shown["adapterHash"]
    assert run["adapter"]["adapterHash"] == ok(cli(env, "adapters", "hash", shown["path"])).split()[0]
    assert shown["provenance"]["hyperparameters"]["seed"] == 3
    assert [r["name"] for r in run["benchmark"]["rows"]] == ["base", "qa-pipeline"]
    assert run["benchmark"]["evalSetHash"] == keccak_jcs([h for h, _, _ in world["rows"] if in_validation(h, VAL)])
    assert len(run["benchmarkRecordSeqs"]) == 2
    assert run["registration"]["version"] == 1 and run["registration"]["txHash"].startswith("0x")
    assert world["registry"].adapter_of(shown["adapterHash"]) == (shown["adapterId"], 1)

    before_bytes, before_size, before_names = run_file.read_bytes(), ledger(world).size(), adapter_names(world)
    again = cli(env, "pipeline", "run", pipeline)
    ok(again)
    assert "already done" in again.stderr, again.stderr
    assert "training on" not in again.stderr
    assert run_file.read_bytes() == before_bytes
    assert ledger(world).size() == before_size and adapter_names(world) == before_names

    bad = world["base"] / "pipelines" / "bad.toml"
    bad.write_text(pipeline.read_text().replace('name = "qa-pipeline"', 'name = "bad-pipeline"')
                   .replace("rank = 4", "rank = 0"))
    one_line_error(cli(env, "pipeline", "run", bad), 2, str(bad), "rank")
    assert not (world["settings"].data_dir / "runs" / "bad-pipeline").exists()
    assert "bad-pipeline" not in adapter_names(world)


# ------------------------------------------------------------------------------- 6. jobs


@pytest.fixture(scope="module")
def jobs_api(world):
    from fastapi.testclient import TestClient

    from loraledger.api import create_app
    from loraledger.jobs.queue import JobWorker

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI processes (see ``world``)
    node = open_node(world["settings"], operator=world["accounts"][0])
    worker = JobWorker(node.jobs, tick=0.2)
    worker.start()
    with TestClient(create_app(world["settings"], operator=world["accounts"][0], node=node)) as client:
        yield client, node
    worker.stop(timeout=60)
    torch.set_num_threads(threads)
    assert not worker.is_alive()


def wait_for(client, job_id: int, predicate, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        assert job["status"] not in ("done", "failed", "cancelled"), job
        assert time.monotonic() < deadline, f"timed out waiting on job {job_id}: {job}"
        time.sleep(0.05)


def finished(job: dict) -> bool:
    return job["status"] in ("done", "failed", "cancelled")


def train_params(world, name: str, **config) -> dict:
    return {"datanet": 1, "base": str(world["model"]), "name": name, "config": {
        "rank": 4, "alpha": 8, "learning_rate": 0.01, "max_length": 64, "batch_size": 4, "val_fraction": VAL,
        **config}}


def test_train_job_over_api(world, jobs_api):
    client, node = jobs_api
    response = client.post("/v1/jobs", headers=ADMIN,
                           json={"kind": "train", "params": train_params(world, "job-lora", max_steps=4, seed=11)})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["kind"] == "train"
    done = wait_for(client, job["id"], finished)
    assert done["status"] == "done", done
    row = node.factory.get("job-lora")
    result = done["result"]
    assert result["adapter"] == "job-lora" and result["adapterHash"] == row.adapter_hash
    assert result["chainVersion"] == 1 and result["metrics"]["steps"] == 4
    assert ok(cli(world["env"], "adapters", "hash", row.path)).split()[0] == row.adapter_hash
    assert world["registry"].adapter_of(row.adapter_hash) == (row.adapter_id, 1)
    assert done["progress"]  # the last progress report is kept

    # no admin token: refused
    assert client.post("/v1/jobs", json={"kind": "train", "params": train_params(world, "x")}).status_code == 401


@pytest.mark.parametrize("case", [
    pytest.param(({"config": {"rank": 0}}, ["rank"]), id="rank-0"),
    pytest.param(({"base": "__not_a_model__"}, ["not-a-model"]), id="base-not-a-model"),
    pytest.param(({"datanet": 9}, ["datanet 9"]), id="unknown-datanet"),
])
def test_train_job_bad_params_refused(world, jobs_api, case):
    client, _ = jobs_api
    override, needles = case
    params = train_params(world, "bad-job")
    if "config" in override:
        params["config"] = {**params["config"], **override["config"]}
    if "base" in override:
        junk = world["base"] / "not-a-model"
        junk.mkdir(exist_ok=True)
        params["base"] = str(junk)
    if "datanet" in override:
        params["datanet"] = override["datanet"]
    before = len(client.get("/v1/jobs").json())
    response = client.post("/v1/jobs", headers=ADMIN, json={"kind": "train", "params": params})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    for needle in needles:
        assert needle in message, message
    assert len(client.get("/v1/jobs").json()) == before  # nothing queued


def test_train_job_cancel_then_resume(world, jobs_api):
    client, node = jobs_api
    params = train_params(world, "job-resumed", epochs=150, seed=12)  # 600 steps: time to cancel
    job = client.post("/v1/jobs", headers=ADMIN, json={"kind": "train", "params": params}).json()
    running = wait_for(client, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 1)
    assert running["status"] == "running"
    total = running["progress"]["totalSteps"]
    cancel = client.post(f"/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    assert cancel.status_code == 200, cancel.text
    ended = wait_for(client, job["id"], finished)
    assert ended["status"] == "cancelled", ended
    partial = node.factory.adapters_dir / "job-resumed.partial"
    checkpoints = sorted((partial / "checkpoints").glob("step-*/state.json"))
    assert checkpoints, f"no checkpoint under {partial}"
    step = json.loads(checkpoints[-1].read_text())["step"]
    assert 1 <= step < total
    assert not (node.factory.adapters_dir / "job-resumed").exists()
    assert "job-resumed" not in [a.name for a in node.factory.all()]

    # the same job without resume is refused at run time (the unfinished run is kept)
    again = client.post("/v1/jobs", headers=ADMIN, json={"kind": "train", "params": params}).json()
    failed = wait_for(client, again["id"], finished)
    assert failed["status"] == "failed" and "--resume" in failed["error"]
    assert checkpoints[-1].exists()

    resumed = client.post("/v1/jobs", headers=ADMIN, json={"kind": "train", "params": {**params, "resume": True}})
    assert resumed.status_code == 201, resumed.text
    done = wait_for(client, resumed.json()["id"], finished, timeout=240)
    assert done["status"] == "done", done
    assert done["result"]["metrics"]["resumedFrom"] == step
    assert done["result"]["metrics"]["steps"] == total
    row = node.factory.get("job-resumed")
    assert row.adapter_hash == done["result"]["adapterHash"] and row.chain_version == 1
    assert not partial.exists()


def test_a_job_whose_process_dies_fails_and_the_node_keeps_serving(world, jobs_api):
    """Jobs run in a child process: killing it (as the kernel's OOM killer would) fails the
    job with the exit status; the node's API and worker carry on."""
    import multiprocessing
    import signal

    client, node = jobs_api
    params = train_params(world, "job-killed", epochs=150, seed=13)
    job = client.post("/v1/jobs", headers=ADMIN, json={"kind": "train", "params": params}).json()
    wait_for(client, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 1)
    children = [p for p in multiprocessing.active_children() if p.name == f"loraledger-job-{job['id']}"]
    assert len(children) == 1
    os.kill(children[0].pid, signal.SIGKILL)
    ended = wait_for(client, job["id"], finished)
    assert ended["status"] == "failed", ended
    assert "worker process died with exit status -9" in ended["error"]
    assert client.get("/v1/health").status_code == 200
    assert "job-killed" not in [a.name for a in node.factory.all()]
    # the worker takes the next job
    bench = client.post("/v1/jobs", headers=ADMIN, json={"kind": "bench", "params": {
        "base": str(world["model"]), "adapters": [], "datanet": 1, "valFraction": VAL, "maxNewTokens": 4}}).json()
    assert wait_for(client, bench["id"], finished)["status"] == "done"


def test_jobs_cli_against_a_running_node(world, trained):
    """`loraledger node run` runs a job submitted with `loraledger jobs submit --wait`
    (in its worker's child process); `jobs list/show` read it back; a bad one is refused."""
    from conftest import free_port

    port = free_port()
    env = {**world["env"], "LORALEDGER_ADMIN_TOKEN": TOKEN, "LORALEDGER_API_PORT": str(port)}
    daemon = subprocess.Popen([sys.executable, "-m", "loraledger", "node", "run"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while cli(env, "jobs", "list").returncode != 0:
            assert daemon.poll() is None and time.monotonic() < deadline, daemon.stdout.read() if daemon.poll() else ""
            time.sleep(0.5)
        params = json.dumps({"base": str(world["model"]), "adapters": ["qa-lora"], "datanet": 1,
                             "valFraction": VAL, "maxNewTokens": 4})
        done = json.loads(ok(cli(env, "jobs", "submit", "bench", "--params", params, "--wait", "--json")))
        assert done["status"] == "done" and [r["name"] for r in done["result"]["rows"]] == ["base", "qa-lora"]
        listed = json.loads(ok(cli(env, "jobs", "list", "--json", "--kind", "bench")))
        assert done["id"] in [j["id"] for j in listed]
        assert json.loads(ok(cli(env, "jobs", "show", str(done["id"]))))["result"] == done["result"]
        one_line_error(cli(env, "jobs", "submit", "bench", "--params", '{"base": "/nope", "datanet": 1}'), 2, "/nope")
        no_token = {k: v for k, v in env.items() if k != "LORALEDGER_ADMIN_TOKEN"}
        one_line_error(cli(no_token, "jobs", "cancel", str(done["id"])), 4, "admin token")
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)


def test_adapters_api_and_training_row_proofs(world, trained, jobs_api):
    """/v1/adapters serves what AdapterRegistry's metadataURI points at; a contributor proves
    that their row trained the adapter, and a held-out row gets 404."""
    from loraledger.crypto.merkle import StandardMerkleTree

    client, _ = jobs_api
    listed = client.get("/v1/adapters").json()
    qa = next(a for a in listed if a["name"] == "qa-lora")
    assert "path" not in qa and qa["adapterHash"] == trained["shown"]["adapterHash"]
    shown = client.get("/v1/adapters/qa-lora").json()
    assert shown["provenance"]["adapterHash"] == qa["adapterHash"]
    assert keccak_jcs(shown["provenance"]) == qa["provenanceHash"]

    trained_rows = [(h, c) for h, c, _ in world["rows"] if not in_validation(h, VAL)]
    held_out = next(h for h, _, _ in world["rows"] if in_validation(h, VAL))
    row_hash_hex, contributor = trained_rows[0]
    proof = client.get(f"/v1/adapters/qa-lora/rows/{row_hash_hex}/proof").json()
    assert proof["verified"] is True and proof["contributor"] == contributor
    assert StandardMerkleTree.verify(proof["root"], ["bytes32", "address"], [row_hash_hex, contributor], proof["proof"])
    assert proof["root"] == shown["provenance"]["trainingRows"]["root"]
    assert client.get(f"/v1/adapters/qa-lora/rows/{held_out}/proof").status_code == 404
    assert json.loads(ok(cli(world["env"], "adapters", "proof", "qa-lora", row_hash_hex)))["proof"] == proof["proof"]

    assert client.get("/v1/adapters/nope").status_code == 404
    assert client.get("/v1/adapters/..%2Fx").status_code in (400, 404)
    assert client.get("/v1/adapters/Bad_Name").status_code == 400
    assert client.post("/v1/adapters/qa-lora/register").status_code == 401
    again = client.post("/v1/adapters/qa-lora/register", headers=ADMIN).json()
    assert again["newlyRegistered"] is False and again["chainVersion"] == 1


@pytest.mark.parametrize("point", TRAIN_FAILPOINTS)
def test_train_killed_at_any_failpoint_then_resumed(world, point):
    """`loraledger train` SIGKILLed at each failpoint, then run again with --resume: one
    adapter row, one adapter record, one registration, and files that verify."""
    env, name = world["env"], f"crash-{point.split('.')[1].replace('_', '-')}"
    args = ["train", "--datanet", "1", "--base", world["model"], "--name", name, "--seed", str(40 + len(name)),
            "--checkpoint-every", "2", *TINY]
    killed = cli({**env, "LORALEDGER_FAILPOINTS": point}, *args)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    plain = cli(env, *args)
    if point == "train.after_record":  # recorded: the name is taken; register finishes the job
        one_line_error(plain, 2, "exists already")
        ok(cli(env, "adapters", "register", name))
    else:
        one_line_error(plain, 2, "--resume")
        ok(cli(env, *args, "--resume"))
    row = next(a for a in json.loads(ok(cli(env, "adapters", "list", "--json"))) if a["name"] == name)
    assert row["chainVersion"] == 1
    assert world["registry"].adapter_of(row["adapterHash"]) == (row["adapterId"], 1)
    records = [r for r in ledger(world).range(0) if r.kind == "adapter" and r.name == name]
    assert len(records) == 1 and records[0].adapter_hash == row["adapterHash"]
    ok(cli(env, "adapters", "verify", name))
    assert not (adapters_dir(world) / f"{name}.partial").exists()


def answer_once(serving, prompt: str, max_tokens: int, payer: str):
    """One greedy completion of ``qa-lora`` through ``serving``, recorded: (generation, inference record)."""
    from loraledger.serving.protocol import parse_completion

    generation = serving.start(parse_completion({"model": "qa-lora", "prompt": prompt, "max_tokens": max_tokens,
                                                 "temperature": 0}), payer)
    for event in iter(generation.handle.events.get, None):
        generation.absorb(event)
        if event.finished:
            break
    return generation, serving.finish(generation)


def test_an_answer_of_a_trained_adapter_pays_its_contributors_by_training_rows(world, trained):
    """Until attribution scores answers, a served trained adapter's fee is weighted by its training
    rows per contributor (from its provenance), so the split is verifiable from the records."""
    from loraledger.records.kinds import FeeRecord, InferenceRecord
    from loraledger.serving.recorder import InferenceRecorder
    from loraledger.serving.service import ServingService

    accounts = world["accounts"]
    node = open_node(world["settings"], operator=accounts[0])
    recorder = InferenceRecorder(node.records, operator=accounts[0].address)
    serving = ServingService.open(Path(world["model"]), factory=node.factory, prices=node.prices, recorder=recorder,
                                  max_loras=1, max_cpu_loras=1, max_rank=16, device="cpu")
    try:
        _, inference = answer_once(serving, "What is 2+2?", 3, accounts[5].address)
    finally:
        serving.close()
    fee = node.records.range(inference.seq + 1, inference.seq + 2)[0]
    assert isinstance(inference, InferenceRecord) and isinstance(fee, FeeRecord)
    expected = {c: n for c, n in node.factory.provenance("qa-lora")["trainingRows"]["contributors"].items()}
    trained_rows = [c for h, c, _ in world["rows"] if not in_validation(h, VAL)]
    assert dict(fee.weights) == expected == {c: trained_rows.count(c) for c in set(trained_rows)}
    assert fee.developer == accounts[4].address and fee.ref == f"inference:{inference.request_id}"
    node.engine.dispose()


def test_featurize_builds_the_attribution_index_once_and_checks_it(world, trained):
    """``loraledger adapters featurize`` writes the index beside the adapter over exactly its training
    rows, records its hash once (a second run finds it), and a changed file is refused on load."""
    from loraledger.attribution.index import INDEX_FILE, read_index
    from loraledger.attribution.service import AttributionIndexer
    from loraledger.records.kinds import AttributionIndexRecord

    env, out_dir = world["env"], trained["dir"]
    # `train` built the default index already.
    built = json.loads(ok(cli(env, "adapters", "featurize", "qa-lora", "--base", world["model"])))
    assert built["created"] is False and built["k"] == 16
    first = json.loads(ok(cli(env, "adapters", "featurize", "qa-lora", "--base", world["model"], "--k", "4")))
    assert first["created"] is True and first["method"] == "logra" and first["k"] == 4
    # The index it replaced is kept by its hash: answers attributed with it still find it.
    replaced, replaced_hash = read_index(out_dir, expect_hash=built["indexHash"])
    assert replaced_hash == built["indexHash"] and replaced.k == 16
    assert (out_dir / "attribution-indexes" / f"{built['indexHash'][2:]}.safetensors").is_file()
    trained_rows = [(h, c) for h, c, _ in world["rows"] if not in_validation(h, VAL)]
    index, digest = read_index(out_dir)
    assert digest == first["indexHash"] == "0x" + hashlib.sha256((out_dir / INDEX_FILE).read_bytes()).hexdigest()
    assert sorted((r.row_hash, r.contributor) for r in index.rows) == sorted(trained_rows)
    assert index.features.values.shape == (len(trained_rows), first["dim"]) and index.spans.row_count == len(index.rows)
    records = ledger(world)
    record = records.get(first["recordSeq"])
    adapter_record = records.get(json.loads(ok(cli(env, "adapters", "show", "qa-lora")))["recordSeq"])
    assert isinstance(record, AttributionIndexRecord) and record.index_hash == digest
    assert record.training_rows_root == adapter_record.training_rows_root and record.row_count == len(trained_rows)

    again = json.loads(ok(cli(env, "adapters", "featurize", "qa-lora", "--base", world["model"], "--k", "4")))
    assert again["created"] is False and again["indexHash"] == digest and again["recordSeq"] == first["recordSeq"]
    assert sum(isinstance(r, AttributionIndexRecord) and r.adapter_name == "qa-lora"
               for r in ledger(world).range(0)) == 2  # train's, then k=4

    node = open_node(world["settings"])
    try:
        indexer = AttributionIndexer(node.factory, node.records)
        assert indexer.load("qa-lora")[1] == digest
        saved = (out_dir / INDEX_FILE).read_bytes()
        (out_dir / INDEX_FILE).write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
        with pytest.raises(InputError, match="not the recorded"):
            indexer.load("qa-lora")
        (out_dir / INDEX_FILE).write_bytes(saved)
    finally:
        node.engine.dispose()
    external = cli(env, "adapters", "featurize", "nope", "--base", world["model"])
    one_line_error(external, external.returncode, "nope")


@pytest.fixture(scope="module")
def attributed(world, trained):
    """A serving node with the attribution worker attached, and one answer of ``qa-lora`` (indexed by
    ``train``) recorded by it: the worker has not run yet. The node's API serves it (``url``)."""
    from conftest import serve

    from loraledger.api import create_app
    from loraledger.node.context import attach_attribution
    from loraledger.serving.recorder import InferenceRecorder
    from loraledger.serving.service import ServingService

    accounts = world["accounts"]
    settings = world["settings"].model_copy(update={"serve_base": Path(world["model"])})
    node = open_node(settings, operator=accounts[0])
    recorder = InferenceRecorder(node.records, operator=accounts[0].address)
    serving = ServingService.open(Path(world["model"]), factory=node.factory, prices=node.prices, recorder=recorder,
                                  max_loras=1, max_cpu_loras=1, max_rank=16, device="cpu")
    node.serving = serving
    worker = attach_attribution(node, serving)
    question, _ = ROWS[1][0]
    generation, inference = answer_once(serving, question, 6, accounts[5].address)
    url, server, thread = serve(create_app(settings, node=node))
    yield {"node": node, "serving": serving, "worker": worker, "generation": generation, "inference": inference,
           "url": url, "question": question}
    server.should_exit = True
    thread.join(timeout=10)
    serving.close()
    recorder.close()
    node.engine.dispose()


def test_a_served_answer_of_an_indexed_adapter_is_attributed_then_paid(world, attributed):
    """With the attribution worker attached, an answer of ``qa-lora`` (indexed by ``train``) gets its
    inference record at once and its attribution and fee records from the worker: the fee's weights
    are the attribution's, and the answer's texts, index and query vector recompute them."""
    import numpy as np
    from prometheus_client import generate_latest

    from loraledger.attribution.attribute import score_query
    from loraledger.attribution.influence import Quantized
    from loraledger.attribution.service import AttributionIndexer
    from loraledger.attribution.tables import AttributionTaskRow
    from loraledger.records.kinds import AttributionRecord, FeeRecord, InferenceRecord

    node, serving, worker = attributed["node"], attributed["serving"], attributed["worker"]
    inference = attributed["inference"]
    assert isinstance(inference, InferenceRecord) and node.records.size() == inference.seq + 1  # no fee yet
    url = attributed["url"]
    pending = httpx.get(f"{url}/v1/inferences/{inference.hash_hex}").json()
    assert pending["attribution"]["status"] == "pending" and pending["fee"] is None
    assert worker.backlog() == 1 and b"loraledger_attribution_backlog 1.0" in generate_latest(serving.metrics.registry)
    assert worker.run_once() == 1 and worker.backlog() == 0
    attribution, fee = node.records.range(inference.seq + 1, inference.seq + 3)
    assert isinstance(attribution, AttributionRecord) and isinstance(fee, FeeRecord)
    assert attribution.inference == inference.hash_hex and fee.ref == f"inference:{inference.request_id}"
    assert dict(fee.weights) == dict(attribution.weights) and sum(fee.weights.values()) > 0
    trained_rows = {h for h, _, _ in world["rows"] if not in_validation(h, VAL)}
    assert {t.row for t in attribution.top} <= trained_rows
    assert attribution.status == "done", attribution.reason
    # The integer part recomputes from the stored query vector, the index and the output text.
    with Session(node.engine) as session:
        task = session.get(AttributionTaskRow, inference.seq)
    index, _ = AttributionIndexer(node.factory, node.records).load("qa-lora")
    query = Quantized(np.frombuffer(task.query_vector, dtype="<i2").astype(np.int64), task.query_exponent)
    texts = attributed["generation"].output
    ids = serving.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    top, _, weights = score_query(index, query, ids["input_ids"], [tuple(o) for o in ids["offset_mapping"]])
    assert [(r, c, s) for r, c, s in top] == [(t.row, t.contributor, t.score) for t in attribution.top]
    assert weights == dict(attribution.weights)
    # GET /v1/inferences/{hash} shows the attribution, its proof, the query vector, the fee and its shares.
    body = httpx.get(f"{url}/v1/inferences/{inference.hash_hex}").json()
    shown = body["attribution"]
    assert shown["status"] == "done" and shown["attributionSeq"] == attribution.seq
    assert shown["record"]["record"] == attribution.model_dump(mode="json")
    assert shown["record"]["inclusionProof"]["index"] == attribution.seq
    assert bytes.fromhex(shown["queryVector"]["int16le"]) == task.query_vector
    assert shown["queryVector"]["exponent"] == task.query_exponent
    assert body["fee"]["record"] == fee.model_dump(mode="json") and body["fee"]["seq"] == fee.seq
    shares = {s["account"]: (s["roles"], int(s["amount"])) for s in body["fee"]["shares"]}
    assert sum(amount for _, amount in shares.values()) == fee.fee
    split = body["fee"]["split"]
    paid = {who: amount for who, (roles, amount) in shares.items() if "contributor" in roles}
    assert set(paid) <= set(fee.weights) and paid
    assert abs(sum(paid.values()) - fee.fee * split["contributorsBps"] // 10_000) <= len(shares)
    assert "operator" in shares[fee.operator][0]


def test_an_attributed_answer_is_audited_shown_and_verified(world, attributed):
    """``POST /v1/attribute`` recomputes a served answer's attribution without recording anything;
    ``attribution show`` prints it; ``verify inference`` recomputes it from the artifacts and fails
    when a text, the published query vector or the index file is changed."""
    from loraledger.attribution.index import INDEX_FILE
    from loraledger.attribution.tables import AttributionTaskRow, InferenceTextRow

    node, worker, inference = attributed["node"], attributed["worker"], attributed["inference"]
    if worker.backlog():
        worker.run_once()
    env, url, accounts = world["env"], attributed["url"], world["accounts"]
    attribution = node.records.get(inference.seq + 1)
    _, key = node.payers.create(accounts[5].address, label="audit")
    headers = {"Authorization": f"Bearer {key}"}
    size = node.records.size()
    with Session(node.engine) as session:
        texts = session.get(InferenceTextRow, inference.seq)
    body = {"model": "qa-lora", "prompt": texts.prompt, "completion": texts.output}
    audit = httpx.post(f"{url}/v1/attribute", json=body, headers=headers, timeout=120)
    assert audit.status_code == 200, audit.text
    audited = audit.json()
    assert audited["recorded"] is False and audited["queryHash"] == attribution.query_hash
    assert [(t["row"], t["contributor"], t["score"]) for t in audited["top"]] == \
        [(t.row, t.contributor, t.score) for t in attribution.top]
    assert audited["weights"] == dict(attribution.weights) and audited["indexHash"] == attribution.index_hash
    assert all(s["text"] == texts.output[s["start"]:s["end"]] for s in audited["spans"])
    chat = httpx.post(f"{url}/v1/attribute", headers=headers, timeout=120, json={
        "model": "qa-lora", "messages": [{"role": "user", "content": attributed["question"]}],
        "completion": texts.output})
    assert chat.status_code == 200 and chat.json()["weights"], chat.text
    for bad, status, needle in [
        ({"model": "qa-lora", "completion": "x"}, 400, "exactly one of prompt"),
        ({**body, "messages": [{"role": "user", "content": "q"}]}, 400, "exactly one of prompt"),
        ({**body, "completion": ""}, 400, "completion"),
        ({**body, "max_tokens": 3}, 400, "max_tokens"),
        ({**body, "model": "tiny-llama"}, 400, "base model"),
        ({**body, "model": "nope"}, 404, "nope"),
        ({**body, "completion": "word " * 5000}, 400, "context"),
    ]:
        refused = httpx.post(f"{url}/v1/attribute", json=bad, headers=headers, timeout=60)
        assert refused.status_code == status and needle in refused.text, (bad, refused.text)
    assert httpx.post(f"{url}/v1/attribute", json=body, timeout=60).status_code == 401
    assert node.records.size() == size  # audits record nothing

    shown = ok(cli(env, "attribution", "show", inference.hash_hex, "--no-color"))
    assert inference.hash_hex in shown and "contributors credited" in shown
    top_contributor = max(attribution.weights, key=lambda c: (attribution.weights[c], c))
    assert top_contributor in shown and "earns" in shown
    assert ("⟦" in shown) == bool(attribution.spans)
    as_json = json.loads(ok(cli(env, "attribution", "show", inference.hash_hex, "--json")))
    assert as_json["attribution"] == attribution.model_dump(mode="json") and as_json["output"] == texts.output

    verified = cli(env, "verify", "inference", inference.hash_hex, "--base", world["model"], "--json")
    report = json.loads(ok(verified))
    assert report["ok"] and report["status"] == "done" and report["queryDifference"] <= 2, report
    assert {c["name"] for c in report["checks"]} >= {"texts", "attribution record", "training rows", "index",
                                                     "query hash", "query vector", "scores", "spans", "weights", "fee"}

    # Tampering is caught: the CLI once (exit 1, the failing check named), the rest in-process.
    from loraledger.attribution.verify import InferenceVerifier

    verifier = InferenceVerifier(node.records, node.factory)
    assert verifier.verify(inference.hash_hex, base_dir=Path(world["model"])).ok

    def tampered(change, undo, failing: str, *, through_cli: bool = False) -> None:
        change()
        try:
            if through_cli:
                result = cli(env, "verify", "inference", inference.hash_hex, "--base", world["model"])
                assert result.returncode == 1 and f"MISMATCH  {failing}" in result.stderr, result.stderr
            else:
                report = verifier.verify(inference.hash_hex, base_dir=Path(world["model"]))
                assert not report.ok and failing in {c.name for c in report.checks if not c.ok}, report.to_json()
        finally:
            undo()

    def setter(table, field: str, value):
        def go():
            with Session(node.engine) as session:
                row = session.get(table, inference.seq)
                setattr(row, field, value)
                session.add(row)
                session.commit()
        return go

    with Session(node.engine) as session:
        vector = session.get(AttributionTaskRow, inference.seq).query_vector
    flipped = bytearray(vector)
    flipped[0] ^= 0x10
    index_file = Path(node.factory.get("qa-lora").path) / INDEX_FILE
    saved = index_file.read_bytes()
    tampered(setter(InferenceTextRow, "output", texts.output + " and more"),
             setter(InferenceTextRow, "output", texts.output), "texts", through_cli=True)
    tampered(setter(AttributionTaskRow, "query_vector", bytes(flipped)),
             setter(AttributionTaskRow, "query_vector", vector), "query hash")
    tampered(lambda: index_file.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1])), lambda: index_file.write_bytes(saved),
             "index")
    snapshot = next((Path(node.factory.get("qa-lora").path) / "attribution-checkpoints").iterdir())
    weights = (snapshot / "adapter_model.safetensors").read_bytes()
    verifier = InferenceVerifier(node.records, node.factory)  # a new one loads the snapshots again, checking them
    tampered(lambda: (snapshot / "adapter_model.safetensors").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1])),
             lambda: (snapshot / "adapter_model.safetensors").write_bytes(weights), "checkpoints")
    assert InferenceVerifier(node.records, node.factory).verify(inference.hash_hex, base_dir=Path(world["model"])).ok
    missing = cli(env, "verify", "inference", "0x" + "ab" * 32, "--base", world["model"])
    one_line_error(missing, 3, "0x" + "ab" * 32)
