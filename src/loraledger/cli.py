"""The ``loraledger`` command line.

Every command turns a ``LoraLedgerError`` into one line on stderr and a non-zero exit
code (2 bad input, 3 not found, 4 configuration, 5 chain, 1 other); secrets are read from
environment variables or encrypted keystores and never printed.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import Settings, load_settings
from .errors import ChainError, ConfigError, InputError, LoraLedgerError, NotFoundError

app = typer.Typer(
    name="loraledger",
    help="An attribution ledger node for specialised AI: records who shaped what, and pays them on chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
devnet_app = typer.Typer(help="Run a local anvil chain in the background.", no_args_is_help=True)
contracts_app = typer.Typer(help="Compile, deploy and inspect the contracts.", no_args_is_help=True)
rewards_app = typer.Typer(help="Post reward lists as epochs and serve proofs.", no_args_is_help=True)
app.add_typer(devnet_app, name="devnet")
app.add_typer(contracts_app, name="contracts")
epoch_app = typer.Typer(help="Seal, post and inspect epochs.", no_args_is_help=True)
fees_app = typer.Typer(help="Append fee records to the ledger.", no_args_is_help=True)
node_app = typer.Typer(help="Run the node: API and epoch loop.", no_args_is_help=True)
datanet_app = typer.Typer(help="Community datasets: create, contribute, review, snapshot, export.", no_args_is_help=True)
app.add_typer(rewards_app, name="rewards")
app.add_typer(epoch_app, name="epoch")
app.add_typer(fees_app, name="fees")
app.add_typer(node_app, name="node")
app.add_typer(datanet_app, name="datanet")

EXIT_CODES: list[tuple[type[LoraLedgerError], int]] = [
    (InputError, 2),
    (NotFoundError, 3),
    (ConfigError, 4),
    (ChainError, 5),
]

KeyEnvOption = Annotated[
    str | None,
    typer.Option("--key-env", help="Environment variable holding the signing key (hex)."),
]
KeystoreOption = Annotated[
    Path | None,
    typer.Option("--keystore", help="Encrypted JSON keystore to sign with; password from "
                 "LORALEDGER_KEYSTORE_PASSWORD or a prompt."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


# ---- shared wiring -------------------------------------------------------------------
@app.callback()
def _global_options(
    ctx: typer.Context,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="Chain JSON-RPC URL (env LORALEDGER_RPC_URL).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Node state directory (env LORALEDGER_DATA_DIR).")] = None,
    deployments_dir: Annotated[
        Path | None, typer.Option("--deployments-dir", help="Where <chainId>.json deployment files live.")
    ] = None,
) -> None:
    ctx.obj = {"rpc_url": rpc_url, "data_dir": data_dir, "deployments_dir": deployments_dir}


def _settings(ctx: typer.Context, **more: Any) -> Settings:
    """Settings from env/TOML, overridden by global options, then by the command's own."""
    overrides = dict(ctx.obj or {})
    overrides.update({key: value for key, value in more.items() if value is not None})
    return load_settings(**overrides)


def _client(settings: Settings):
    from .node.context import chain_client

    return chain_client(settings)


def _contracts(settings: Settings):
    from .node.context import ledger_contracts

    return ledger_contracts(settings)


def _store(settings: Settings, directory: Path | None = None):
    from .ledger.epochfiles import EpochFileStore

    return EpochFileStore(directory or settings.epochs_dir)


def _signer(key_env: str | None, keystore: Path | None, *, default_env: str, settings_key: Any = None):
    """The signing account: --keystore, else --key-env / default env var, else the settings key."""
    from .chain.keys import account_from_env, account_from_hex, account_from_keystore

    if keystore is not None:
        password = os.environ.get("LORALEDGER_KEYSTORE_PASSWORD")
        if password is None and sys.stdin.isatty():
            password = typer.prompt(f"Password for {keystore}", hide_input=True)
        return account_from_keystore(keystore, password)
    var = key_env or default_env
    if os.environ.get(var):
        return account_from_env(var)
    if settings_key is not None:
        return account_from_hex(settings_key.get_secret_value(), source="the operator_key setting")
    raise ConfigError(f"no signing key: set {var} to a private key, or pass --keystore FILE")


def _operator(settings: Settings, key_env: str | None, keystore: Path | None):
    from .chain.keys import account_from_keystore

    if keystore is None and key_env is None and settings.operator_keystore is not None:
        password = settings.operator_keystore_password
        return account_from_keystore(settings.operator_keystore, password.get_secret_value() if password else None)
    return _signer(key_env, keystore, default_env="LORALEDGER_OPERATOR_KEY", settings_key=settings.operator_key)


def format_open(wei: int) -> str:
    """``1234500000000000000`` → ``1.2345 OPEN``."""
    text = format(Decimal(wei) / Decimal(10**18), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} OPEN"


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


# ---- devnet --------------------------------------------------------------------------
def _devnet(settings: Settings):
    from .chain.toolchain import foundry_binary
    from .devnet import Devnet

    return Devnet(settings.data_dir / "devnet", foundry_binary("anvil", settings.root))


@devnet_app.command("up")
def devnet_up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="RPC port.")] = 8545,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    chain_id: Annotated[int, typer.Option("--chain-id", help="Chain id.")] = 31337,
    block_time: Annotated[float | None, typer.Option(help="Seconds per block (default: mine on demand).")] = None,
) -> None:
    """Start anvil in the background (state kept in <data-dir>/devnet)."""
    status = _devnet(_settings(ctx)).up(host=host, port=port, chain_id=chain_id, block_time=block_time)
    typer.echo(f"devnet running: {status.rpc_url} (chain {status.chain_id}, pid {status.pid}, block {status.block})")
    typer.echo(f"logs: {status.log_file}   state: {status.state_file}")


@devnet_app.command("down")
def devnet_down(ctx: typer.Context) -> None:
    """Stop the background anvil (its state is saved for the next `up`)."""
    stopped = _devnet(_settings(ctx)).down()
    typer.echo("devnet stopped" if stopped else "devnet was not running")


@devnet_app.command("status")
def devnet_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show whether the devnet runs, its RPC URL, chain id and block."""
    status = _devnet(_settings(ctx)).status()
    if as_json:
        _echo_json(status.__dict__)
    elif status.running:
        typer.echo(f"running: {status.rpc_url} chain {status.chain_id} block {status.block} pid {status.pid}")
    else:
        typer.echo("not running")
        raise typer.Exit(1)


@devnet_app.command("accounts")
def devnet_accounts(count: Annotated[int, typer.Option(min=1, max=100)] = 5, as_json: JsonOption = False) -> None:
    """Print anvil's well-known dev accounts and keys (public test keys: devnet only)."""
    from .devnet import dev_accounts

    accounts = dev_accounts(count)
    if as_json:
        _echo_json([{"address": a.address, "privateKey": "0x" + a.key.hex()} for a in accounts])
        return
    typer.echo("# anvil dev accounts: these keys are public, use them on a devnet only")
    for index, account in enumerate(accounts):
        typer.echo(f"{index}  {account.address}  0x{account.key.hex()}")


# ---- contracts -----------------------------------------------------------------------
@contracts_app.command("deploy")
def contracts_deploy(
    ctx: typer.Context,
    operator: Annotated[str | None, typer.Option(help="Address given OPERATOR_ROLE (default: the deployer).")] = None,
    token: Annotated[str | None, typer.Option(help="Use this existing OPEN token instead of deploying OpenToken.")] = None,
    redeploy: Annotated[bool, typer.Option(help="Deploy anew even if a deployment exists.")] = False,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Deploy (or resume deploying) all contracts and write deployments/<chainId>.json."""
    from .chain.compile import compile_contracts
    from .chain.deploy import Deployer

    settings = _settings(ctx)
    deployer = _operator(settings, key_env, keystore)
    client = _client(settings)
    artifacts = compile_contracts(settings.root, settings.solc_binary)
    path = settings.deployment_file(client.chain_id)
    deployment = Deployer(
        client, deployer, artifacts, path,
        operator=operator, token=token, redeploy=redeploy,
        fee_split_bps=(settings.contributors_bps, settings.developer_bps, settings.operator_bps),
    ).run()
    typer.echo(f"deployed on chain {deployment.chain_id} → {path}")
    for name, contract in deployment.contracts.items():
        typer.echo(f"  {name:<18} {contract.address}")


@contracts_app.command("show")
def contracts_show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the deployment of the current chain and the ledger's state."""
    contracts = _contracts(_settings(ctx))
    deployment = contracts.deployment
    info = {
        "chainId": deployment.chain_id,
        "contracts": {n: c.address for n, c in deployment.contracts.items()},
        "epoch": contracts.current_epoch(),
        "merkleRoot": contracts.merkle_root(),
        "totalFunded": str(contracts.total_funded()),
        "feeSplitBps": dict(zip(("contributors", "developer", "operator"), contracts.fee_split())),
    }
    if as_json:
        _echo_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


# ---- rewards -------------------------------------------------------------------------
@rewards_app.command("post")
def rewards_post(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Reward list: CSV (address,amount) or JSON; amounts in wei.")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Append a reward list to the ledger and close an epoch: seal, fund, post, confirm."""
    from .node.context import open_node
    from .rewardflow import post_reward_list

    settings = _settings(ctx)
    node = open_node(settings, operator=_operator(settings, key_env, keystore))
    result = post_reward_list(node.manager, node.records, file)
    if result.appended == 0:
        typer.echo(f"{file} was appended before; nothing new to record")
    if result.epoch is None:
        return
    _echo_epoch(result.epoch, node.store.path(result.epoch.number))


def _echo_epoch(row, path: Path | None = None) -> None:
    typer.echo(
        f"epoch {row.number} {row.status}: {row.record_count} records, {row.accounts} accounts, "
        f"{format_open(int(row.total))} funded"
    )
    typer.echo(f"  log size {row.end_seq}, root {row.log_root}")
    typer.echo(f"  rewards root {row.rewards_root}")
    if row.block_number is not None:
        typer.echo(f"  posted in block {row.block_number} (gas {row.gas_used})")
    if path is not None:
        typer.echo(f"  epoch file {path}")


@rewards_app.command("proof")
def rewards_proof(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The account to prove.")],
    as_json: JsonOption = False,
) -> None:
    """Print the Merkle proof for ADDRESS against the root on chain (JSON for wallets and scripts)."""
    from .rewardflow import reward_proof

    settings = _settings(ctx)
    proof = reward_proof(_contracts(settings), _store(settings), address)
    if as_json:
        _echo_json(proof.to_json())
        return
    typer.echo(f"account     {proof.account}")
    typer.echo(f"cumulative  {format_open(proof.cumulative_amount)} ({proof.cumulative_amount} wei)")
    typer.echo(f"claimed     {format_open(proof.claimed)}")
    typer.echo(f"claimable   {format_open(proof.claimable)}")
    typer.echo(f"epoch {proof.epoch}, root {proof.root}")
    typer.echo("claim from any wallet:")
    typer.echo("  " + proof.cast_command(settings.rpc_url))


@app.command("claim")
def claim(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Account to claim for (default: the signer's own).")] = None,
    node_url: Annotated[str | None, typer.Option("--node", help="Take the proof from this node's API instead of local epoch files.")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Claim OPEN rewards: pays cumulative − claimed to the account (anyone may send it)."""
    from .rewardflow import proof_from_node, reward_proof

    settings = _settings(ctx)
    sender = _signer(key_env, keystore, default_env="LORALEDGER_KEY")
    contracts = _contracts(settings)
    target = account or sender.address
    proof = proof_from_node(node_url, target, contracts) if node_url else reward_proof(contracts, _store(settings), target)
    receipt = contracts.claim(sender, proof.account, proof.cumulative_amount, proof.proof)
    typer.echo(
        f"claimed {format_open(proof.claimable)} for {proof.account} "
        f"(tx 0x{bytes(receipt['transactionHash']).hex()}, gas {receipt['gasUsed']})"
    )
    typer.echo(f"balance {format_open(contracts.balance_of(proof.account))}")


@rewards_app.command("show")
def rewards_show(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The account.")],
    as_json: JsonOption = False,
) -> None:
    """An account's cumulative reward, what it has claimed on chain and what it can claim now."""
    from .rewardflow import reward_proof

    settings = _settings(ctx)
    proof = reward_proof(_contracts(settings), _store(settings), address)
    if as_json:
        info = proof.to_json()
        info.pop("proof")
        _echo_json(info)
        return
    typer.echo(f"{proof.account} as of epoch {proof.epoch}")
    typer.echo(f"  cumulative {format_open(proof.cumulative_amount)}")
    typer.echo(f"  claimed    {format_open(proof.claimed)}")
    typer.echo(f"  claimable  {format_open(proof.claimable)}")


@app.command("balance")
def balance(ctx: typer.Context, address: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Print an account's OPEN balance and claimed total."""
    from .rewardlist import parse_address

    account = parse_address(address, where="address")
    contracts = _contracts(_settings(ctx))
    typer.echo(f"{account}  balance {format_open(contracts.balance_of(account))}  claimed {format_open(contracts.claimed(account))}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    epochs: Annotated[Path | None, typer.Option("--epochs", help="Directory of epoch files (default: the node's).")] = None,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="Chain JSON-RPC URL to check against.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every epoch from the epoch files alone and compare with the chain (no database)."""
    from .chain.contracts import LedgerContracts
    from .rewardflow import verify_with_chain

    settings = _settings(ctx, rpc_url=rpc_url)
    store = _store(settings, epochs)
    files = store.read_all()
    if not files:
        raise NotFoundError(f"no epoch files in {store.directory}")
    client = _client(settings)
    if files[0].get("chainId") != client.chain_id:
        raise ChainError(f"the epoch files are for chain {files[0].get('chainId')}, the RPC serves chain {client.chain_id}")
    contracts = LedgerContracts.from_ledger_address(client, files[0]["contracts"]["ledger"])
    report = verify_with_chain(files, contracts)
    if as_json:
        _echo_json({"ok": report.ok, "epochs": report.epochs, "problems": report.problems})
    elif report.ok:
        typer.echo(
            f"verified {report.epochs} epoch{'s' if report.epochs != 1 else ''}: log roots and consistency, "
            "reward roots, totals, fee splits and data hashes match the chain"
        )
    else:
        for problem in report.problems:
            typer.echo(f"MISMATCH {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


# ---- epochs, fees, node ---------------------------------------------------------------
@epoch_app.command("close")
def epoch_close(ctx: typer.Context, key_env: KeyEnvOption = None, keystore: KeystoreOption = None) -> None:
    """Finish any pending epoch, then seal the open records into a new epoch, post and confirm it."""
    from .node.context import open_node

    settings = _settings(ctx)
    node = open_node(settings, operator=_operator(settings, key_env, keystore))
    row = node.manager.close()
    if row is None:
        typer.echo("no new records since the last epoch; nothing to seal")
        latest = node.manager.latest()
        if latest is not None:
            _echo_epoch(latest)
        return
    _echo_epoch(row, node.store.path(row.number))


@epoch_app.command("status")
def epoch_status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every epoch's state (sealed, submitted, confirmed) and the records waiting for the next one."""
    from .epochmachine import describe
    from .node.context import open_node

    node = open_node(_settings(ctx))
    rows = node.manager.epochs()
    pending = node.manager.pending_records()
    if as_json:
        _echo_json({"epochs": [describe(r) for r in rows], "pendingRecords": pending,
                    "chainEpoch": node.contracts.current_epoch(), "logSize": node.records.size()})
        return
    for row in rows:
        typer.echo(f"{row.number:>5}  {row.status:<10} {row.record_count:>8} records  "
                   f"{format_open(int(row.total)):>24}  block {row.block_number}")
    typer.echo(f"chain epoch {node.contracts.current_epoch()}; {pending} records wait for the next epoch")


@epoch_app.command("show")
def epoch_show(ctx: typer.Context, number: Annotated[int, typer.Argument(help="Epoch number.")]) -> None:
    """Print epoch N's file (JSON): records, log root, reward tree, totals."""
    settings = _settings(ctx)
    typer.echo(json.dumps(_store(settings).read(number), indent=2))


@fees_app.command("import")
def fees_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON lines: {payer, fee, weights, developer?, operator?, ref?}")],
) -> None:
    """Append fee records (one JSON object per line) to the ledger, all or nothing."""
    from .feeimport import import_fee_file
    from .node.context import open_records

    settings = _settings(ctx)
    _, records = open_records(settings)
    appended = import_fee_file(records, file, default_operator=_default_operator(settings))
    typer.echo(f"appended {len(appended)} fee records (seq {appended[0].seq}..{appended[-1].seq}); "
               f"log size {records.size()}")


def _default_operator(settings: Settings) -> str | None:
    """The deployment's operator (fees without an operator go to it): the deployment of
    ``chain_id`` when set, else the only deployment there is; None when that is ambiguous."""
    from .chain.deploy import load_deployment

    if settings.chain_id is not None:
        return load_deployment(settings.deployment_file(settings.chain_id)).operator
    files = sorted(settings.deployments_dir.glob("*.json")) if settings.deployments_dir.is_dir() else []
    return load_deployment(files[0]).operator if len(files) == 1 else None


@node_app.command("run")
def node_run(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Listen address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Serve the /v1 API and close epochs by policy (every N seconds or M records)."""
    from .node.daemon import run_node

    settings = _settings(ctx)
    run_node(settings, operator=_operator(settings, key_env, keystore), host=host, port=port)


# ---- datanets ---------------------------------------------------------------------------
def _datanet_node(ctx: typer.Context, operator=None):
    from .node.context import open_node

    return open_node(_settings(ctx), operator=operator)


def _datanet_json(node, datanet_id: int) -> dict[str, Any]:
    row = node.datanets.get(datanet_id)
    return {
        "id": row.id, "owner": row.owner, "name": row.name, "schema": row.row_schema,
        "licenses": json.loads(row.licenses), "policy": row.policy, "nearDuplicatePct": row.near_duplicate_pct,
        "latestVersion": row.latest_version, "rows": node.datanets.counts(row.id),
        "domain": {"name": "loraledger", "version": "1", "chainId": node.datanets.domain.chain_id,
                   "verifyingContract": node.datanets.domain.registry},
    }


@datanet_app.command("create")
def datanet_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Datanet name.")],
    schema: Annotated[str, typer.Option(help="Row schema: text, instruction (prompt/completion) or chat (messages).")],
    license: Annotated[list[str], typer.Option("--license", help="Allowed SPDX licence id (repeat for several).")],
    owner: Annotated[str | None, typer.Option(help="Owner address (default: the operator).")] = None,
    policy: Annotated[str, typer.Option(help="auto (accept valid rows) or review (the owner decides).")] = "auto",
    near_pct: Annotated[int, typer.Option("--near-pct", help="Near-duplicate threshold, Jaccard %.")] = 85,
    metadata_uri: Annotated[str, typer.Option(help="Metadata URI stored on chain.")] = "",
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Create a datanet: registered in DatanetRegistry and recorded in the ledger."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    node = _datanet_node(ctx, operator)
    row = node.datanets.create(operator, owner=owner or operator.address, name=name, row_schema=schema,
                               licenses=license, policy=policy, near_duplicate_pct=near_pct, metadata_uri=metadata_uri)
    typer.echo(f"datanet {row.id} '{row.name}' created (owner {row.owner}, schema {row.row_schema}, policy {row.policy})")


@datanet_app.command("contribute")
def datanet_contribute(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    file: Annotated[Path, typer.Argument(help="Rows as JSON lines.")],
    license: Annotated[str, typer.Option(help="SPDX licence of these rows.")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per signed batch.")] = 1_000,
    valid_minutes: Annotated[int, typer.Option(min=1, help="Signature deadline, minutes from now.")] = 60,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Sign (EIP-712, your key) and submit rows in batches; each batch is all or nothing."""
    import time

    from .datanets.content import content_hash, parse_rows
    from .datanets.contribution import Contribution, sign_contribution

    contributor = _signer(key_env, keystore, default_env="LORALEDGER_KEY")
    node = _datanet_node(ctx)
    schema = node.datanets.get(datanet_id).row_schema
    try:
        lines = file.read_bytes().decode("utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        raise NotFoundError(f"rows file {file} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"rows file {file} is not UTF-8") from None
    batches = [
        "".join(lines[i:i + batch_size]) for i in range(0, len(lines), batch_size) if "".join(lines[i:i + batch_size]).strip()
    ]
    if not batches:
        raise InputError(f"rows file {file} has no rows")
    accepted = 0
    with typer.progressbar(length=len(lines), label=f"contributing {file.name}", file=sys.stderr) as bar:
        for index, text in enumerate(batches):
            rows = parse_rows(text, schema)
            contribution = Contribution(datanet_id, contributor.address, content_hash(rows), license,
                                        node.datanets.next_nonce(contributor.address),
                                        int(time.time()) + 60 * valid_minutes)
            try:
                result = node.datanets.contribute(datanet_id, text, contribution,
                                                  sign_contribution(contributor, node.datanets.domain, contribution))
            except InputError as exc:
                raise InputError(f"batch {index + 1} of {len(batches)} (starting at line {index * batch_size + 1}): "
                                 f"{exc.message}; {accepted} rows from earlier batches were recorded", **exc.details) from None
            accepted += len(result.row_hashes)
            bar.update(text.count("\n") or 1)
    typer.echo(f"{accepted} rows recorded in datanet {datanet_id} ({result.status}) from {contributor.address}")


@datanet_app.command("review")
def datanet_review(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    row_hashes: Annotated[list[str] | None, typer.Argument(help="Row hashes to decide.")] = None,
    accept: Annotated[bool, typer.Option("--accept/--reject", help="Accept or reject the rows.")] = True,
    all_pending: Annotated[bool, typer.Option("--all-pending", help="Decide every pending row.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded with the decision).")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """The owner (or the operator for the owner) accepts or rejects pending rows; recorded in the ledger."""
    settings = _settings(ctx)
    signer = _signer(key_env, keystore, default_env="LORALEDGER_KEY", settings_key=settings.operator_key)
    node = _datanet_node(ctx)
    datanet = node.datanets.get(datanet_id)
    if signer.address not in (datanet.owner, node.contracts.deployment.operator):
        raise InputError(f"only the owner {datanet.owner} or the node operator may review datanet {datanet_id}")
    wanted = [r.row_hash for r in node.datanets.pending(datanet_id)] if all_pending else (row_hashes or [])
    count = node.datanets.review(datanet_id, wanted, accept=accept, decided_by=signer.address, reason=reason)
    typer.echo(f"{'accepted' if accept else 'rejected'} {count} rows of datanet {datanet_id}")


@datanet_app.command("snapshot")
def datanet_snapshot(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    export: Annotated[Path | None, typer.Option(help="Also export the snapshot to this directory.")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Freeze the accepted rows as the next version; publish its root to DatanetRegistry."""
    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    node = _datanet_node(ctx, operator)
    snap = node.datanets.snapshot(datanet_id, operator)
    typer.echo(f"datanet {datanet_id} version {snap.version}: {snap.row_count} rows, root {snap.root}")
    if export is not None:
        _export(node, datanet_id, snap.version, export)


def _export(node, datanet_id: int, version: int, directory: Path) -> None:
    snap = node.datanets.snapshot_row(datanet_id, version)
    with typer.progressbar(length=snap.row_count, label="exporting", file=sys.stderr) as bar:
        rows_path, manifest_path = node.datanets.export(datanet_id, version, directory, progress=bar.update)
    typer.echo(f"exported {snap.row_count} rows to {rows_path} (manifest {manifest_path})")


@datanet_app.command("export")
def datanet_export(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    directory: Annotated[Path, typer.Argument(help="Output directory (rows.jsonl + manifest.json).")],
    version: Annotated[int | None, typer.Option(help="Snapshot version (default: latest).")] = None,
) -> None:
    """Export a snapshot as JSONL + manifest (reads with datasets.load_dataset("json", ...))."""
    node = _datanet_node(ctx)
    _export(node, datanet_id, node.datanets.resolve_version(datanet_id, version), directory)


@datanet_app.command("show")
def datanet_show(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    as_json: JsonOption = False,
) -> None:
    """A datanet's rules, row counts, latest version and EIP-712 domain."""
    info = _datanet_json(_datanet_node(ctx), datanet_id)
    if as_json:
        _echo_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


@datanet_app.command("proof")
def datanet_proof(
    ctx: typer.Context,
    datanet_id: Annotated[int, typer.Argument(help="Datanet id.")],
    row_hash: Annotated[str, typer.Argument(help="The row's hash.")],
    version: Annotated[int | None, typer.Option(help="Snapshot version (default: latest).")] = None,
) -> None:
    """Prove a row is in a snapshot; the proof is checked by DatanetRegistry.verifyRow on chain."""
    node = _datanet_node(ctx)
    _echo_json(node.datanets.row_proof(datanet_id, node.datanets.resolve_version(datanet_id, version), row_hash))


# The ModelFactory commands (model, train, adapters, bench, pipeline) live in their own
# module; importing it registers them on `app`.
from . import cli_models  # noqa: E402,F401


# ---- entrypoint ----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to one line and an exit code."""
    try:
        # With standalone_mode=False click returns an Exit's code instead of raising it.
        result = app(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except LoraLedgerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line unless debugging
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error (Typer's own copy of click: no stable class to import)
            return exc.exit_code
        if os.environ.get("LORALEDGER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (set LORALEDGER_DEBUG=1 for the traceback)", err=True)
        return 1


def run() -> None:
    """Console-script entrypoint."""
    sys.exit(main())
