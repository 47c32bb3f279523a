"""`gateway agency`: register agencies and grant or withdraw what they may publish, subscribe
to and query, their token scopes and their request rate."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.installation import admin_session, open_runtime
from gateway.cli.root import JsonFlag, console, emit, fail, now
from gateway.cli.tables import print_table
from gateway.registry.rights import QUERY_CONTRACTS

agency_app = typer.Typer(no_args_is_help=True, help="Register agencies and their publish rights.")


@agency_app.command("add")
def agency_add(
    agency_id: Annotated[str, typer.Argument(help="Short id, e.g. fj-yjt")],
    name: Annotated[str, typer.Option(help="Official name.")],
    uscc: Annotated[str, typer.Option(help="The agency's unified social credit code.")],
    role: Annotated[list[str], typer.Option(help="Role (repeatable), e.g. grading_authority.")],
    publish: Annotated[
        list[str] | None, typer.Option(help="Message type it may publish (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an agency; publish rights are denied unless granted here or by `agency grant`."""
    from gateway.registry import service

    with admin_session() as (runtime, session):
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency_id,
            name=name,
            uscc=uscc,
            roles=role,
            now=now(),
        )
        rights = service.grant_publish(session, runtime.signer, agency_id, publish or [], now())
    if as_json:
        emit({"id": agency_id, "roles": role, "publish": rights})
    else:
        console.print(f"registered [bold]{agency_id}[/bold] ({name}); may publish: {rights or '-'}")


def _view_spec(spec: str) -> tuple[str, list[str] | None]:
    """`grade.revoked` (every field) or `grade.revoked=reason_code,decided_on` (a view). An
    `=` naming no field is refused, as the API refuses an empty view: read as the whole
    contract it would grant the most where the least was written."""
    contract, equals, fields = spec.partition("=")
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if equals and not names:
        raise fail(
            f"{spec!r} names no field (invalid_fields): write {contract.strip()} for the whole"
            f" contract, or {contract.strip()}=FIELD,FIELD for a view"
        )
    return contract.strip(), names or None


@agency_app.command("grant")
def agency_grant(
    agency_id: str,
    types: Annotated[
        list[str] | None, typer.Argument(help="Message types it may publish (as --publish).")
    ] = None,
    publish: Annotated[
        list[str] | None, typer.Option(help="Message type it may publish (repeatable).")
    ] = None,
    subscribe: Annotated[
        list[str] | None,
        typer.Option(help="TYPE or TYPE=field,field: subscribe, seeing those data fields."),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(
            help=f"{' | '.join(QUERY_CONTRACTS)}, optionally =field,field (e.g. grade.level)."
        ),
    ] = None,
    read: Annotated[
        list[str] | None,
        typer.Option(help="TYPE: read the stored messages themselves (the publisher's JWS)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Allow an agency to publish types, subscribe to types, ask queries, each with an
    optional field view, and read stored messages of types whole (deny by default; every
    change is a log entry)."""
    from gateway.registry import rights

    published = [*(types or []), *(publish or [])]
    wanted: list[tuple[str, str, list[str] | None]] = [("publish", t, None) for t in published]
    wanted += [("subscribe", *_view_spec(spec)) for spec in subscribe or []]
    wanted += [("query", *_view_spec(spec)) for spec in query or []]
    wanted += [("read", t, None) for t in read or []]
    if not wanted:
        raise fail("name something to grant: --publish, --subscribe, --query or --read")
    with admin_session() as (runtime, session):
        for action, contract, fields in wanted:
            granted = rights.grant(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                fields=fields,
                now=now(),
            )
    _show_rights(granted, as_json)


@agency_app.command("revoke")
def agency_revoke(
    agency_id: str,
    publish: Annotated[list[str] | None, typer.Option(help="Message type.")] = None,
    subscribe: Annotated[list[str] | None, typer.Option(help="Message type.")] = None,
    query: Annotated[list[str] | None, typer.Option(help=" | ".join(QUERY_CONTRACTS))] = None,
    read: Annotated[list[str] | None, typer.Option(help="Message type.")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Token scope.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Withdraw rights or scopes at once (each a log entry)."""
    from gateway.registry import rights
    from gateway.registry.scopes import revoke_scope

    wanted = [("publish", c) for c in publish or []] + [("subscribe", c) for c in subscribe or []]
    wanted += [("query", c) for c in query or []] + [("read", c) for c in read or []]
    if not wanted and not scope:
        raise fail("name something to revoke: --publish, --subscribe, --query, --read or --scope")
    with admin_session() as (runtime, session):
        for action, contract in wanted:
            rights.revoke(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                now=now(),
            )
        for name in scope or []:
            revoke_scope(session, runtime.signer, agency_id, name, now())
        left = rights.rights_of(session, agency_id)
    _show_rights(left, as_json)


@agency_app.command("rights")
def agency_rights(agency_id: str, as_json: JsonFlag = False) -> None:
    """What an agency may publish, subscribe to and query (with field views), its scopes and
    rate limit."""
    from gateway.registry import rights

    with admin_session(write=False) as (_, session):
        shown = rights.rights_of(session, agency_id)
    _show_rights(shown, as_json)


def _set_status(agency_id: str, status: str, reason: str | None, as_json: bool) -> None:
    from gateway.registry.service import set_agency_status

    with admin_session() as (runtime, session):
        agency = set_agency_status(
            session, runtime.signer, agency_id=agency_id, status=status, reason=reason, now=now()
        )
        shown = {"agency_id": agency.id, "status": agency.status, "reason": agency.status_reason}
    if as_json:
        emit(shown)
    else:
        console.print(f"{agency_id} is {shown['status']}")


@agency_app.command("disable")
def agency_disable(
    agency_id: str,
    reason: Annotated[str | None, typer.Option(help="Why, for the log.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Disable an agency: no token is issued to it, its tokens are refused (every API process
    within about a second), its messages too, and its push deliveries wait (a log entry)."""
    _set_status(agency_id, "disabled", reason, as_json)


@agency_app.command("enable")
def agency_enable(
    agency_id: str,
    reason: Annotated[str | None, typer.Option(help="Why, for the log.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enable a disabled agency again; its waiting push deliveries go out in order (a log
    entry)."""
    _set_status(agency_id, "active", reason, as_json)


@agency_app.command("access-records")
def agency_access_records(
    agency: Annotated[str | None, typer.Option(help="Only this agency's.")] = None,
    address: Annotated[str | None, typer.Option(help="Only from this client address.")] = None,
    refused: Annotated[bool, typer.Option(help="Only the refusals.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Access records, newest first (also GET /v1/access-records): a refusal repeated within
    its window is one record with its count, first and last time and address."""
    from gateway.queries.service import list_access_records

    with admin_session(write=False) as (_, session):
        items = list_access_records(
            session, refused=refused, agency_id=agency, address=address, before=None, limit=limit
        )
    if as_json:
        emit(items)
        return
    table = Table("first", "last", "count", "address", "agency", "action", "what", "result")
    for item in items:
        table.add_row(
            item["at"][:19],
            item["last_at"][:19],
            str(item["count"]),
            item["address"] or "-",
            item["agency_id"] or "-",
            item["action"],
            item["purpose"] or "",
            item["result"],
        )
    print_table(table, console)


@agency_app.command("rate-limit")
def agency_rate_limit(
    agency_id: str,
    per_second: Annotated[float | None, typer.Option(help="Requests per second.")] = None,
    burst: Annotated[int | None, typer.Option(help="Requests at once.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set an agency's own request rate (both options), or without options return it to the
    default (GATEWAY_RATE_LIMIT_PER_SECOND / _BURST). Running API processes apply it within
    seconds."""
    from gateway.registry import rights

    if (per_second is None) != (burst is None):
        raise fail(
            "give both --per-second and --burst to set the agency's rate, or neither to"
            " return it to the default",
            code=2,
        )
    with admin_session() as (runtime, session):
        shown = rights.set_rate_limit(
            session,
            runtime.signer,
            agency_id=agency_id,
            per_second=per_second,
            burst=burst,
            now=now(),
        )
    _show_rights(shown, as_json)


def _show_rights(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(shown)
        return
    table = Table("right", "contract", "fields", title=f"rights of {shown['agency_id']}")
    for message_type in shown["publish"]:
        table.add_row("publish", message_type, "")
    for action in ("subscribe", "query"):
        for contract, fields in shown[action].items():
            table.add_row(action, contract, "all" if fields is None else ", ".join(fields))
    for message_type in shown["read"]:
        table.add_row("read", message_type, "the message as signed")
    print_table(table, console)
    limit = shown["rate_limit"]
    rate = f"{limit['per_second']:g}/s, burst {limit['burst']}" if limit else "default"
    console.print(f"scopes: {', '.join(shown['scopes']) or '-'}; rate limit: {rate}")


@agency_app.command("scopes")
def agency_scopes(
    agency_id: str,
    scopes: Annotated[
        list[str], typer.Argument(help="publish subscribe query ledger.read admin witness")
    ],
) -> None:
    """Allow an agency's access tokens these scopes (recorded in the log). The first operator
    is made this way: `gateway agency add ops … --role operator` then `scopes ops admin`."""
    from gateway.registry.scopes import grant_scopes

    with admin_session() as (runtime, session):
        granted = grant_scopes(session, runtime.signer, agency_id, scopes, now())
    console.print(f"{agency_id} tokens may carry: {', '.join(granted)}")


@agency_app.command("list")
def agency_list(as_json: JsonFlag = False) -> None:
    """Registered agencies, their roles, rights and keys."""
    from gateway.registry.routes import agency_views

    runtime = open_runtime()
    try:
        views = agency_views(runtime)
    finally:
        runtime.close()
    if as_json:
        emit(views)
        return
    table = Table("id", "name", "status", "roles", "may publish", "keys (status)")
    for view in views:
        keys = "\n".join(f"{k['kid']} {k['suite']} {k['status']}" for k in view["keys"])
        table.add_row(
            view["id"],
            view["name"],
            view["status"],
            ", ".join(view["roles"]),
            "\n".join(view["publish"]),
            keys,
        )
    print_table(table, console)
