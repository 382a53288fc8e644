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

import click
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
app.add_typer(rewards_app, name="rewards")

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
    return load_settings(**(ctx.obj or {}), **more)


def _client(settings: Settings):
    from .chain.client import ChainClient
    from .chain.contracts import all_packaged_abis

    return ChainClient(
        settings.rpc_url,
        expected_chain_id=settings.chain_id,
        confirmations=settings.confirmations,
        tx_timeout=settings.tx_timeout,
        error_abis=all_packaged_abis(),
    )


def _contracts(settings: Settings):
    from .chain.contracts import LedgerContracts
    from .chain.deploy import load_deployment

    client = _client(settings)
    return LedgerContracts(client, load_deployment(settings.deployment_file(client.chain_id)))


def _store(settings: Settings, chain_id: int, directory: Path | None = None):
    from .ledger.epochfiles import EpochFileStore

    return EpochFileStore(directory or settings.epochs_dir(chain_id))


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
    """Seal a reward list as the next epoch (cumulative tree + epoch file), fund it and post it."""
    from .rewardflow import post_reward_list

    settings = _settings(ctx)
    operator = _operator(settings, key_env, keystore)
    contracts = _contracts(settings)
    store = _store(settings, contracts.client.chain_id)
    result = post_reward_list(contracts, store, operator, file)
    if not result.sealed_now:
        typer.echo(f"{file} is already epoch {result.epoch} (root {result.root}); nothing to do")
        return
    typer.echo(f"epoch {result.epoch} posted: {result.accounts} accounts, {format_open(result.total)} funded")
    typer.echo(f"  rewards root {result.root}")
    typer.echo(f"  tx {result.tx_hash} (gas {result.gas_used})")
    typer.echo(f"  epoch file {store.path(result.epoch)}")


@rewards_app.command("proof")
def rewards_proof(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The account to prove.")],
    as_json: JsonOption = False,
) -> None:
    """Print the Merkle proof for ADDRESS against the root on chain (JSON for wallets and scripts)."""
    from .rewardflow import reward_proof

    settings = _settings(ctx)
    contracts = _contracts(settings)
    proof = reward_proof(contracts, _store(settings, contracts.client.chain_id), address)
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
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Claim OPEN rewards: pays cumulative − claimed to the account (anyone may send it)."""
    from .rewardflow import reward_proof

    settings = _settings(ctx)
    sender = _signer(key_env, keystore, default_env="LORALEDGER_KEY")
    contracts = _contracts(settings)
    proof = reward_proof(contracts, _store(settings, contracts.client.chain_id), account or sender.address)
    receipt = contracts.claim(sender, proof.account, proof.cumulative_amount, proof.proof)
    typer.echo(
        f"claimed {format_open(proof.claimable)} for {proof.account} "
        f"(tx 0x{bytes(receipt['transactionHash']).hex()}, gas {receipt['gasUsed']})"
    )
    typer.echo(f"balance {format_open(contracts.balance_of(proof.account))}")


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
    as_json: JsonOption = False,
) -> None:
    """Recompute every epoch from the epoch files and compare with the chain."""
    from .rewardflow import verify_with_chain

    settings = _settings(ctx)
    contracts = _contracts(settings)
    store = _store(settings, contracts.client.chain_id, epochs)
    files = store.read_all()
    if not files:
        raise NotFoundError(f"no epoch files in {store.directory}")
    report = verify_with_chain(files, contracts)
    if as_json:
        _echo_json({"ok": report.ok, "epochs": report.epochs, "problems": report.problems})
    elif report.ok:
        typer.echo(f"verified {report.epochs} epoch{'s' if report.epochs != 1 else ''}: log roots, reward roots, totals and data hashes match the chain")
    else:
        for problem in report.problems:
            typer.echo(f"MISMATCH {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


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
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line unless debugging
        if os.environ.get("LORALEDGER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (set LORALEDGER_DEBUG=1 for the traceback)", err=True)
        return 1


def run() -> None:
    """Console-script entrypoint."""
    sys.exit(main())
