"""Rewards and claims: `loraledger rewards post|proof|show`, `claim`, `balance`, `verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ChainError, NotFoundError
from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    _client,
    _contracts,
    _echo_epoch,
    _echo_json,
    _operator,
    _settings,
    _signer,
    _store,
    format_open,
)

rewards_app = typer.Typer(help="Post reward lists as epochs and serve proofs.", no_args_is_help=True)


@rewards_app.command("post")
def rewards_post(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Reward list: CSV (address,amount) or JSON; amounts in wei.")],
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Append a reward list to the ledger and close an epoch: seal, fund, post, confirm."""
    from ..claims.service import post_reward_list
    from ..node.context import open_node

    settings = _settings(ctx)
    node = open_node(settings, operator=_operator(settings, key_env, keystore))
    result = post_reward_list(node.manager, node.records, file)
    if result.appended == 0:
        typer.echo(f"{file} was appended before; nothing new to record")
    if result.epoch is None:
        return
    _echo_epoch(result.epoch, node.store.path(result.epoch.number))


@rewards_app.command("proof")
def rewards_proof(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The account to prove.")],
    as_json: JsonOption = False,
) -> None:
    """Print the Merkle proof for ADDRESS against the root on chain (JSON for wallets and scripts)."""
    from ..claims.service import reward_proof

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


@rewards_app.command("show")
def rewards_show(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The account.")],
    as_json: JsonOption = False,
) -> None:
    """An account's cumulative reward, what it has claimed on chain and what it can claim now."""
    from ..claims.service import reward_proof

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


def claim(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Account to claim for (default: the signer's own).")] = None,
    node_url: Annotated[str | None, typer.Option("--node", help="Take the proof from this node's API instead of local epoch files.")] = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Claim OPEN rewards: pays cumulative − claimed to the account (anyone may send it)."""
    from ..claims.service import proof_from_node, reward_proof

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


def balance(ctx: typer.Context, address: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Print an account's OPEN balance and claimed total."""
    from ..rewards.lists import parse_address

    account = parse_address(address, where="address")
    contracts = _contracts(_settings(ctx))
    typer.echo(f"{account}  balance {format_open(contracts.balance_of(account))}  claimed {format_open(contracts.claimed(account))}")


def verify(
    ctx: typer.Context,
    epochs: Annotated[Path | None, typer.Option("--epochs", help="Directory of epoch files (default: the node's).")] = None,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="Chain JSON-RPC URL to check against.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every epoch from the epoch files alone and compare with the chain (no database);
    `verify inference HASH` checks one answer's attribution instead."""
    if ctx.invoked_subcommand is not None:
        return
    from ..chain.contracts import LedgerContracts
    from ..claims.service import verify_with_chain

    settings = _settings(ctx, rpc_url=rpc_url)
    store = _store(settings, epochs)
    files = store.read_all()
    if not files:
        raise NotFoundError(f"no epoch files in {store.directory}")
    client = _client(settings)
    if files[0].get("chainId") != client.chain_id:
        raise ChainError(f"the epoch files are for chain {files[0].get('chainId')}, the RPC serves chain {client.chain_id}")
    contracts = LedgerContracts.from_ledger_address(client, files[0]["contracts"]["ledger"])
    report = verify_with_chain(files, contracts, store.read_chunk)
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
