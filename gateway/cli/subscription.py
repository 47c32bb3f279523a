"""`gateway subscription`: agencies' push or pull subscriptions, their status, dead letters
and replays."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from connectors import CONNECTORS
from gateway.cli.installation import admin_session, open_runtime
from gateway.cli.root import JsonFlag, console, emit, now
from gateway.cli.tables import print_table

subscription_app = typer.Typer(no_args_is_help=True, help="Agency subscriptions (push or pull).")


@subscription_app.command("add")
def subscription_add(
    agency_id: str,
    types: Annotated[list[str], typer.Option("--type", help="Message type (repeatable).")],
    url: Annotated[str | None, typer.Option(help="Push endpoint; omit for pull only.")] = None,
    region: Annotated[str | None, typer.Option(help="Division code prefix filter.")] = None,
    view: Annotated[
        str,
        typer.Option(
            help="full (with the publisher's JWS) | fields (cut to the agency's field view) | "
            f"notice | a connector: {' | '.join(CONNECTORS)}."
        ),
    ] = "full",
    signing: Annotated[
        Literal["v1a", "v1", "both"],
        typer.Option(
            help="Standard Webhooks signatures: v1a (Ed25519, whpk_ key to verify with), v1"
            " (HMAC, whsec_ secret shown once: what the standardwebhooks libraries verify) or"
            " both."
        ),
    ] = "v1a",
    hmac: Annotated[bool, typer.Option(help="Same as --signing both.")] = False,
    rate_limit: Annotated[
        float | None, typer.Option(help="Deliveries per second at most (default: no limit).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Subscribe an agency; prints the subscription (and its whsec_ secret, once)."""
    from gateway.delivery.routes import view_of
    from gateway.delivery.subscriptions import create_subscription

    with admin_session() as (runtime, session):
        sub = create_subscription(
            session,
            agency_id=agency_id,
            url=url,
            types=types,
            now=now(),
            allowed_hosts=runtime.settings.delivery.allowed_hosts,
            region_prefix=region,
            view=view,
            signing=["v1a", "v1"] if hmac or signing == "both" else [signing],
            rate_limit=rate_limit,
        )
        out = view_of(sub, runtime, secret=True)
    if as_json:
        emit(out)
        return
    for name, value in out.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        shown = "-" if value is None or value == "" else str(value)
        console.print(f"[bold]{name}[/bold]: {escape(shown)}", soft_wrap=True)


@subscription_app.command("list")
def subscription_list(as_json: JsonFlag = False) -> None:
    """Subscriptions with their status and delivery counts."""
    from gateway.delivery.feed import delivery_counts
    from gateway.delivery.routes import view_of
    from gateway.delivery.subscriptions import list_subscriptions

    runtime = open_runtime()
    try:
        with runtime.db.reader() as session:
            counts = delivery_counts(session)
            items = [
                view_of(s, runtime) | {"deliveries": counts.get(s.id, {})}
                for s in list_subscriptions(session)
            ]
    finally:
        runtime.close()
    if as_json:
        emit(items)
        return
    table = Table()
    # The whole id, never cut: `subscription status`, `dead-letters` and `replay` take it.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("agency", "url", "types", "status", "deliveries"):
        table.add_column(column)
    for i in items:
        table.add_row(
            i["id"],
            i["agency_id"],
            i["url"] or "(pull)",
            "\n".join(i["types"]),
            i["status"],
            ", ".join(f"{k} {v}" for k, v in sorted(i["deliveries"].items())),
        )
    print_table(table, console)


@subscription_app.command("status")
def subscription_status(
    subscription_id: str,
    status: Annotated[str, typer.Argument(help="active | paused | disabled")],
    reason: Annotated[str | None, typer.Option(help="Why (kept on the subscription).")] = None,
) -> None:
    """Pause, disable or re-enable a subscription; re-enabled, it catches up in order."""
    from gateway.delivery.subscriptions import set_status

    with admin_session() as (_runtime, session):
        set_status(session, subscription_id, status, reason)
    console.print(f"{subscription_id}: {status}")


@subscription_app.command("dead-letters")
def subscription_dead(subscription_id: str, as_json: JsonFlag = False) -> None:
    """Deliveries that exhausted their retries."""
    from gateway.delivery.feed import dead_letters

    with admin_session(write=False) as (_runtime, session):
        rows = dead_letters(session, subscription_id)
    if as_json:
        emit(rows)
        return
    table = Table("log index", "message", "enterprise", "attempts", "last error")
    for r in rows:
        table.add_row(
            str(r["log_index"]),
            r["message_id"],
            r["enterprise"],
            str(r["attempts"]),
            r["last_error"] or "",
        )
    print_table(table, console)


@subscription_app.command("replay")
def subscription_replay(
    subscription_id: str,
    from_index: Annotated[int | None, typer.Option(help="First log index.")] = None,
    to_index: Annotated[int | None, typer.Option(help="Last log index (inclusive).")] = None,
    operator: Annotated[str, typer.Option(help="Who replays (recorded).")] = "cli",
) -> None:
    """Queue deliveries again (same webhook-id); one: --from-index N --to-index N."""
    from gateway.delivery.feed import replay

    with admin_session() as (_runtime, session):
        n = replay(
            session,
            subscription_id,
            now(),
            from_index=from_index,
            to_index=to_index,
            operator=operator,
        )
    console.print(f"replaying {n} deliveries")
