"""`gateway deliveries`: delivery health across subscriptions (the API's /v1/deliveries)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.installation import admin_session
from gateway.cli.root import JsonFlag, console, emit, now
from gateway.cli.tables import print_table

deliveries_app = typer.Typer(no_args_is_help=True, help="Delivery health, failing and dead.")
AgencyOption = Annotated[str | None, typer.Option("--agency", help="One agency only.")]


@deliveries_app.command("failing")
def deliveries_failing(agency: AgencyOption = None, as_json: JsonFlag = False) -> None:
    """Endpoints failing now with their last error, and the deliveries waiting to retry."""
    from gateway.delivery import health

    with admin_session(write=False) as (_runtime, session):
        subs = [
            h.as_dict() for h in health.subscription_health(session, now(), agency) if h.failing
        ]
        failing = health.failing_deliveries(session, agency)
    if as_json:
        emit({"subscriptions": subs, "deliveries": failing})
        return
    table = Table(
        "subscription",
        "agency",
        "endpoint",
        "status",
        "failures",
        "last error",
        title="failing endpoints",
    )
    for s in subs:
        table.add_row(
            s["subscription_id"],
            s["agency_id"],
            s["endpoint_host"] or "(pull)",
            s["status"],
            str(s["consecutive_failures"]),
            s["last_error"] or "-",
        )
    print_table(table, console)
    rows = Table(
        "log index",
        "agency",
        "type",
        "enterprise",
        "attempts",
        "last error",
        "next",
        title=f"failing deliveries: {len(failing)}",
    )
    for d in failing:
        rows.add_row(
            str(d["log_index"]),
            d["agency_id"],
            d["type"],
            d["enterprise"],
            str(d["attempts"]),
            d["last_error"] or "-",
            d["next_attempt_at"] or "-",
        )
    print_table(rows, console)


@deliveries_app.command("dead-letters")
def deliveries_dead(agency: AgencyOption = None, as_json: JsonFlag = False) -> None:
    """Dead and parked deliveries of every subscription."""
    from gateway.delivery import health

    with admin_session(write=False) as (_runtime, session):
        rows = health.stuck_deliveries(session, agency)
    if as_json:
        emit(rows)
        return
    table = Table(
        "subscription",
        "agency",
        "log index",
        "type",
        "enterprise",
        "status",
        "last error",
        title=f"dead and parked: {len(rows)}",
    )
    for d in rows:
        table.add_row(
            d["subscription_id"],
            d["agency_id"],
            str(d["log_index"]),
            d["type"],
            d["enterprise"],
            d["status"],
            d["last_error"] or "-",
        )
    print_table(table, console)


@deliveries_app.command("health")
def deliveries_health(agency: AgencyOption = None, as_json: JsonFlag = False) -> None:
    """Each subscription over the last 24 hours: attempts, success rate, latency."""
    from gateway.delivery import health

    with admin_session(write=False) as (_runtime, session):
        rows = [h.as_dict() for h in health.subscription_health(session, now(), agency)]
    if as_json:
        emit(rows)
        return
    table = Table(
        "subscription",
        "agency",
        "status",
        "attempts",
        "success",
        "latency ms",
        "breaker until",
        title="deliveries, last 24 h",
    )
    for h in rows:
        rate = h["success_rate_24h"]
        table.add_row(
            h["subscription_id"],
            h["agency_id"],
            h["status"],
            str(h["attempts_24h"]),
            "-" if rate is None else f"{rate:.1%}",
            str(h["mean_latency_ms_24h"] or "-"),
            h["breaker_open_until"] or "-",
        )
    print_table(table, console)
