"""The bench harness: a fresh database with the benchmark's agency, the gateway and its peers
(baseline, stub, receivers, `gateway worker`) as processes on loopback, and the lines every
report opens with. Only 127.0.0.1 is ever bound or asked."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from common import register_bench_agency
from populate import fresh_database
from sqlalchemy import func, select

from contracts.uscc import complete_uscc
from gateway.delivery.subscriptions import create_subscription
from gateway.models import Delivery, Subscription
from gateway.registry import rights, service
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.signing import ensure_gateway_keys
from keys.jws import sign_compact
from keys.suites import SigningKey, get_suite

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
HOST = "127.0.0.1"
JOSE = "application/jose"
# The SSRF guard refuses loopback unless allowed: every bench receiver is on it.
LOOPBACK_DELIVERY = {"GATEWAY_DELIVERY__ALLOWED_HOSTS": f'["{HOST}"]'}


# --- the database ------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A migrated database with the gateway's keys and the agency `bench` (`key` its key)."""

    url: str
    data_dir: Path
    key: SigningKey

    @property
    def env(self) -> dict[str, str]:
        """What a gateway process needs to serve this database."""
        return {"GATEWAY_DATA_DIR": str(self.data_dir), "GATEWAY_DATABASE_URL": self.url}

    def settings(self, **groups: Any) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.url, **groups)


# bench/publish.py's agency, a stand-in for every role: it publishes registrations and
# (bench/deliver.py) subscribes to them itself, and is an operator too.
PUBLISHER: dict[str, Any] = {
    "name": "bench",
    "uscc": complete_uscc("11350000MB000001"),
    "roles": ["grading_authority"],
    "scopes": ["publish", "admin"],
    "publish": ["enterprise.registered"],
    "subscribe": ["enterprise.registered"],
}


def prepare(backend: str, *, database: str, directory: Path, **agency: Any) -> Prepared:
    """A fresh database (PostgreSQL `database`, dropped first, or `directory/database.db`),
    the gateway's keys in `directory`, and `bench` registered with `agency` (the keywords of
    common.register_bench_agency)."""
    url = fresh_database(backend, name=database, directory=directory)
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=directory, database_url=url)
    ensure_gateway_keys(settings)
    return Prepared(url, directory, register_bench_agency(settings, **agency))


def subscribe(
    settings: Settings,
    url: str,
    *,
    agency_id: str = "bench",
    types: Sequence[str] = ("enterprise.registered",),
    **options: Any,
) -> None:
    """A push subscription of `agency_id` (which holds the subscribe rights) to `url`."""
    runtime = Runtime.open(settings)
    try:
        with runtime.db.transaction() as session:
            create_subscription(
                session,
                agency_id=agency_id,
                url=url,
                types=list(types),
                now=runtime.clock.now(),
                allowed_hosts=[HOST],
                **options,
            )
    finally:
        runtime.close()


def add_subscribers(
    settings: Settings,
    endpoints: Mapping[str, str],
    *,
    types: Sequence[str] = ("enterprise.registered",),
    **options: Any,
) -> list[dict[str, str | None]]:
    """Per agency id in `endpoints` a receiving agency (role insurer, the whole contracts of
    `types`) with a push subscription to its URL; each subscription's id and `whsec_` secret
    (None unless signed v1), in the order of `endpoints`."""
    runtime = Runtime.open(settings)
    now = runtime.clock.now()
    made: list[Subscription] = []
    try:
        with runtime.db.transaction() as session:
            for agency, url in endpoints.items():
                service.add_agency(
                    session,
                    runtime.signer,
                    agency_id=agency,
                    name=agency,
                    uscc=complete_uscc("91350100MA000RCR"),
                    roles=["insurer"],
                    now=now,
                )
                service.add_key(
                    session,
                    runtime.signer,
                    agency_id=agency,
                    jwk=get_suite("ed25519").generate().public_key.jwk(),
                    suite="ed25519",
                    now=now,
                    valid_from=now - dt.timedelta(days=1),
                )
                for contract in types:
                    rights.grant(
                        session,
                        runtime.signer,
                        agency_id=agency,
                        action="subscribe",
                        contract=contract,
                        fields=None,
                        now=now,
                    )
                session.flush()
                made.append(
                    create_subscription(
                        session,
                        agency_id=agency,
                        url=url,
                        types=list(types),
                        now=now,
                        allowed_hosts=[HOST],
                        **options,
                    )
                )
            return [{"id": s.id, "hmac_secret": s.hmac_secret} for s in made]
    finally:
        runtime.close()


def registrations(
    key: SigningKey,
    first: int,
    count: int,
    *,
    prefix: str = "91350100",
    name: str = "福州基准测试第{n}有限公司",
    region_code: str = "350102",
) -> list[bytes]:
    """`count` signed `enterprise.registered` messages (compact JWS) of new enterprises,
    codes `prefix` + n (8 digits) for n from `first`."""
    issued = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).isoformat(timespec="seconds")
    return [
        sign_message(
            key,
            "enterprise.registered",
            complete_uscc(f"{prefix}{n:08d}"),
            {
                "name": name.format(n=n),
                "region_code": region_code,
                "industry_section": "C",
                "scheme": "industry_trade",
                "required": True,
                "registered_on": "2022-03-01",
            },
            issued_at=issued,
        )
        for n in range(first, first + count)
    ]


def sign_message(
    key: SigningKey,
    message_type: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    issued_at: str,
    message_id: str | None = None,
) -> bytes:
    """A message from `bench` as the publishing API takes it: a compact JWS of the envelope
    (a new random id unless `message_id`)."""
    envelope = {
        "id": message_id or str(uuid.uuid4()),
        "type": message_type,
        "contract": 1,
        "issuer": "bench",
        "issued_at": issued_at,
        "subject": subject,
        "data": dict(data),
    }
    payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    return sign_compact(payload, key, typ="gateway-message+jws").encode()


# --- processes on loopback ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(cpu: str | None, command: Sequence[str]) -> list[str]:
    """`command` run on CPU `cpu` only (taskset), or anywhere when `cpu` is None."""
    return ["taskset", "-c", cpu, *command] if cpu is not None else list(command)


class Server:
    """A process serving HTTP on 127.0.0.1:`port`, started and waited for until its /healthz
    answers 200 (`timeout` seconds at most). Its output goes to `log` if given."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
        log: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.port = port
        self.log: IO[bytes] | None = log.open("ab") if log is not None else None
        self.process = subprocess.Popen(
            list(command),
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{command} did not start" + (f"; see {log}" if log else ""))

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the process and its descendants (Granian's worker is a
        child process), from /proc."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)
        if self.log is not None:
            self.log.close()


def uvicorn(
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    app_dir: Path = ROOT,
    cpu: str | None = "0",
    log: Path | None = None,
    options: Sequence[str] = (),
    tree: Path | None = None,
    port: int | None = None,
) -> Server:
    """The factory `app` (module:function, found in `app_dir`) under uvicorn on `port` (a free
    one if None), pinned to `cpu`, without access log: the way every bench server runs. With
    `tree`, the gateway's code is imported from that checkout (run there, first on
    PYTHONPATH)."""
    port = port or free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--app-dir", str(app_dir)]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    env = dict(env or {})
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    cwd = tree or ROOT
    return Server(pinned(cpu, [*command, *options]), port=port, env=env, cwd=cwd, log=log)


def gateway_serve(
    env: Mapping[str, str], *, cpu: str | None = None, log: Path | None = None
) -> Server:
    """`gateway serve` as deployed (its own HTTP stack and settings), on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "gateway.cli", "serve", "--host", HOST, "--port", str(port)]
    return Server(pinned(cpu, command), port=port, env=env, log=log)


def start_worker(
    env: Mapping[str, str],
    *,
    cpu: str | None = "0",
    log: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """One `gateway worker` process (it delivers until terminated); its stderr discarded, or
    written to `log`, and then it is waited for (`timeout` seconds at most) until it says it
    runs: a worker still importing would add its start-up to the first deliveries' latency."""
    out = log.open("ab") if log is not None else None
    worker = subprocess.Popen(
        pinned(cpu, [sys.executable, "-m", "gateway.cli", "worker"]),
        env={**os.environ, **env},
        cwd=ROOT,
        stderr=out if out is not None else subprocess.DEVNULL,
    )
    if out is None or log is None:
        return worker
    out.close()  # the child holds its own copy
    deadline = time.monotonic() + timeout
    while "delivery worker running" not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_process(worker)
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(0.1)
    return worker


_UNDELIVERED = select(func.count()).select_from(Delivery).where(Delivery.status != "delivered")


def drain_with_worker(runtime: Runtime, env: Mapping[str, str], cpu: str = "0") -> float:
    """Start one `gateway worker` process (pinned to `cpu`, `env` over this one's), wait until
    no delivery is left undelivered, stop it; the seconds that took."""
    began = time.perf_counter()
    worker = start_worker(env, cpu=cpu)
    try:
        while True:
            with runtime.db.reader() as session:
                if not session.scalar(_UNDELIVERED):
                    return time.perf_counter() - began
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(30)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def process_cpu_seconds(pid: int) -> float:
    total, pending = 0.0, [pid]
    while pending:
        pid = pending.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return total


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of the process from /proc (VmRSS now, VmHWM its peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


# --- the report --------------------------------------------------------------------------------


def machine_line() -> str:
    """What the figures were measured on: a 2-core machine shared with other work moves them."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"


def print_json(results: Any) -> None:
    print(json.dumps(results, indent=2))
