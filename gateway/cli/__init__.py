"""The `gateway` command: the root group assembled from one module per command group, in the
order `gateway --help` lists them. `gateway = "gateway.cli:main"` and `python -m gateway.cli`.
"""

from gateway.cli.agency import agency_app
from gateway.cli.catalog import catalog_app
from gateway.cli.console import console_app
from gateway.cli.contracts import contracts_app
from gateway.cli.deliveries import deliveries_app
from gateway.cli.feedback import feedback_app
from gateway.cli.installation import (
    admin_session,
    configured,
    open_runtime,
    require_initialised,
    require_keys,
    settings,
)
from gateway.cli.key import key_app, read_jwk
from gateway.cli.ledger import ledger_app
from gateway.cli.root import (
    DEBUG_VARIABLE,
    INIT_HINT,
    GatewayGroup,
    JsonFlag,
    PortOption,
    SuiteOption,
    app,
    console,
    emit,
    err,
    explain,
    fail,
    now,
)
from gateway.cli.server import demo, init, serve, worker
from gateway.cli.subscription import subscription_app
from gateway.cli.supervision import draw_app, supervision_app
from gateway.cli.token import token
from gateway.cli.transparency import audit, publish, verify
from gateway.cli.uscc import uscc_app
from gateway.cli.witness import witness_app

# Typer lists the root's commands in the order they were registered, then its groups in the
# order they were added.
for _command in (init, serve, publish, token, audit, verify, worker, demo):
    app.command()(_command)
app.add_typer(agency_app, name="agency")
app.add_typer(key_app, name="key")
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.add_typer(catalog_app, name="catalog")
app.add_typer(subscription_app, name="subscription")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(feedback_app, name="feedback")
app.add_typer(console_app, name="console")
app.add_typer(contracts_app, name="contracts")
app.add_typer(uscc_app, name="uscc")
app.add_typer(supervision_app, name="supervision")
app.add_typer(draw_app, name="draw")


def main() -> None:
    app()


__all__ = [
    "DEBUG_VARIABLE",
    "INIT_HINT",
    "GatewayGroup",
    "JsonFlag",
    "PortOption",
    "SuiteOption",
    "admin_session",
    "agency_app",
    "app",
    "audit",
    "catalog_app",
    "configured",
    "console",
    "contracts_app",
    "demo",
    "draw_app",
    "emit",
    "err",
    "explain",
    "fail",
    "init",
    "key_app",
    "ledger_app",
    "main",
    "now",
    "open_runtime",
    "publish",
    "read_jwk",
    "require_initialised",
    "require_keys",
    "serve",
    "settings",
    "subscription_app",
    "supervision_app",
    "token",
    "uscc_app",
    "verify",
    "witness_app",
    "worker",
]
