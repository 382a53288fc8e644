"""Compile, deploy and inspect the contracts: `loraledger contracts deploy|show`."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import (
    JsonOption,
    KeyEnvOption,
    KeystoreOption,
    _client,
    _contracts,
    _echo_json,
    _operator,
    _settings,
)

contracts_app = typer.Typer(help="Compile, deploy and inspect the contracts.", no_args_is_help=True)


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
    from ..chain.compile import compile_contracts
    from ..chain.deploy import Deployer

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
