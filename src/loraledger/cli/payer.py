"""Payers: `loraledger payer deposit AMOUNT` (into the PaymentVault, from the payer's wallet) and
`payer balance [ADDRESS]` (what the node credited, spent and has left)."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    NodeUrlOption,
    _client_of_node,
    _contracts,
    _echo_json,
    _settings,
    _signer,
    format_open,
)

payer_app = typer.Typer(help="Payers: deposit OPEN into the PaymentVault to pay for answers, and read balances.",
                        no_args_is_help=True)


def parse_open_amount(text: str, *, wei: bool = False) -> int:
    """``"2.5"`` OPEN → wei (at most 18 decimals); with ``wei``, an integer of wei. ``InputError`` otherwise."""
    from ..errors import InputError

    try:
        value = Decimal(text) if not wei else Decimal(int(text, 10))
    except (InvalidOperation, ValueError):
        raise InputError(f"amount {text!r} is not a number{' of wei' if wei else ' of OPEN'}") from None
    amount = value if wei else value * 10**18
    if amount != amount.to_integral_value() or amount <= 0:
        raise InputError(f"amount {text!r} must be positive{'' if wei else ' with at most 18 decimals'}")
    return int(amount)


def _vault(settings):
    from ..chain.contracts import PaymentVaultContract
    from ..errors import ConfigError

    contracts = _contracts(settings)
    if "PaymentVault" not in contracts.deployment.contracts:
        raise ConfigError("this deployment has no PaymentVault: run `loraledger contracts deploy` to add it")
    return contracts, PaymentVaultContract(contracts.client, contracts.deployment.address("PaymentVault"),
                                           contracts.token)


@payer_app.command("deposit")
def payer_deposit(
    ctx: typer.Context,
    amount: Annotated[str, typer.Argument(help="OPEN to deposit (e.g. 2.5), or wei with --wei.")],
    in_wei: Annotated[bool, typer.Option("--wei", help="AMOUNT is in wei.")] = False,
    payer: Annotated[str | None, typer.Option("--for", help="Credit this payer (default: the signer).")] = None,
    permit: Annotated[bool, typer.Option("--permit", help="One transaction with an EIP-2612 permit instead of "
                                         "approve + deposit.")] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the node to credit it (0: don't).")] = 0,
    node_url: NodeUrlOption = None,
    key_env: KeyEnvOption = None,
    keystore: KeystoreOption = None,
) -> None:
    """Deposit OPEN into the PaymentVault for a payer (signed with $LORALEDGER_KEY, --key-env or
    --keystore). The node credits it once it has its confirmations."""
    from ..errors import InputError, LedgerError
    from ..records.fields import parse_address

    settings = _settings(ctx)
    wei = parse_open_amount(amount, wei=in_wei)
    sender = _signer(key_env, keystore, default_env="LORALEDGER_KEY")
    target = parse_address(payer) if payer else sender.address
    _, vault = _vault(settings)
    if permit:
        if target != sender.address:
            raise InputError("--permit deposits for the signer only (the permit is the payer's own signature)")
        receipt = vault.deposit_with_permit(sender, wei, deadline=int(time.time()) + 3600)
    else:
        receipt = vault.deposit(sender, wei, payer=target)
    typer.echo(f"deposited {format_open(wei)} for {target} (tx 0x{bytes(receipt['transactionHash']).hex()}, "
               f"block {receipt['blockNumber']}); vault total for {target}: {format_open(vault.deposited(target))}")
    if wait <= 0:
        return
    client = _client_of_node(settings, node_url)
    deadline = time.monotonic() + wait
    on_chain = vault.deposited(target)
    while True:
        body = client.request("GET", f"/v1/payers/{target}")
        if int(body["deposited"]) >= on_chain:
            typer.echo(f"credited by the node: balance {format_open(int(body['balance']))}")
            return
        if time.monotonic() > deadline:
            raise LedgerError(f"the node has not credited the deposit after {wait:.0f}s (it waits for "
                              f"{settings.confirmations} confirmation(s)); check `loraledger payer balance {target}`")
        time.sleep(0.5)


@payer_app.command("balance")
def payer_balance(
    ctx: typer.Context,
    address: Annotated[str | None, typer.Argument(help="The payer (default: the signer of $LORALEDGER_KEY).")] = None,
    node_url: NodeUrlOption = None,
    key_env: KeyEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """A payer's account on the node: deposited, spent, balance, and use per model."""
    from ..records.fields import parse_address

    settings = _settings(ctx)
    target = parse_address(address) if address else _signer(key_env, None, default_env="LORALEDGER_KEY").address
    body = _client_of_node(settings, node_url).request("GET", f"/v1/payers/{target}")
    if as_json:
        _echo_json(body)
        return
    typer.echo(f"payer      {body['payer']}")
    typer.echo(f"deposited  {format_open(int(body['deposited']))}  ({body['deposits']} deposit(s))")
    typer.echo(f"spent      {format_open(int(body['spent']))}  ({body['answers']} answer(s))")
    typer.echo(f"balance    {format_open(int(body['balance']))}")
    for use in body["usage"]:
        typer.echo(f"  {use['model']:<24} {use['answers']:>6} answers  {use['promptTokens'] + use['completionTokens']:>8}"
                   f" tokens  {format_open(int(use['spent']))}")
    if not body["depositsRequired"]:
        typer.echo("(this node does not charge deposits: its operator funds every answer)")
