"""One `Settings` object for the whole gateway, read from `GATEWAY_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password"}


class PublishSettings(BaseModel):
    """Limits on what one publish request may carry (protocol.md §1)."""

    max_body_bytes: int = 256 * 1024
    max_batch_items: int = 1000
    max_future_skew_seconds: int = 300


class LimitSettings(BaseModel):
    """How large a request body may be, checked before any route reads it (gateway.bodies):
    larger is `413 payload_too_large`. Publishing has its own (PublishSettings)."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)  # the measure catalog is ~47 KB
    # An assertion JWT and three short fields: a few KB (RFC 7523 §2.2).
    max_token_body_bytes: int = Field(default=16 * 1024, ge=1)


class KeySettings(BaseModel):
    """Where the gateway's own signing keys live and how they are protected."""

    passphrase: SecretStr | None = None
    receipt_suite: str = "ed25519"
    # The JWS alg name an Ed25519 receipt key signs receipts, attestations and tokens under:
    # RFC 8037's `EdDSA` (what protocol.md §1 publishes) or RFC 9864's fully-specified
    # `Ed25519`, which current JOSE libraries prefer. Verification accepts both either way.
    jose_alg: Literal["EdDSA", "Ed25519"] = "EdDSA"


class WitnessConfig(BaseModel):
    """A consumer agency's C2SP witness: its name, add-checkpoint URL prefix and vkey."""

    name: str
    url: str
    vkey: str


class WitnessSettings(BaseModel):
    """Witnesses to ask for cosignatures (`GATEWAY_WITNESSES__ENDPOINTS` is a JSON list)."""

    endpoints: list[WitnessConfig] = Field(default_factory=list)
    quorum: int = 0
    interval_seconds: float = 1.0
    timeout_seconds: float = 3.0


class DeliverySettings(BaseModel):
    """Push delivery: the in-process worker, claiming, timeouts and the SSRF allow-list."""

    in_process_worker: bool = True
    allowed_hosts: list[str] = Field(default_factory=list)  # e.g. ["127.0.0.1"] for the demo
    claim_batch: int = 64  # measured: 64 beat 32 by ~7 points of the direct-post baseline
    lease_seconds: float = 60.0
    timeout_seconds: float = 10.0
    max_retry_after_seconds: float = 3600.0
    idle_sleep_seconds: float = 0.2
    parallel: int = 8
    breaker_threshold: int = 5  # consecutive failures that open an endpoint's breaker
    breaker_cooldown_seconds: float = 60.0


class ObservabilitySettings(BaseModel):
    """Process logs (format and level, applied by `gateway serve`) and readiness thresholds."""

    log_format: Literal["json", "text"] = "json"  # json: one object per line, for collectors
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Lines go to stderr in batches at most this far apart (0: one write per line); WARNING
    # and above at once. A write per access line was a tenth of a standing query's CPU.
    log_batch_seconds: float = Field(default=0.05, ge=0.0, le=5.0)
    # FastAPI's own OpenTelemetry spans, metrics and logs (FastAPI 0.16x), which act only when
    # the process has an OpenTelemetry provider configured; off, FastAPI does not look for one
    # on every request. The gateway's metrics are at /metrics, its logs these JSON lines.
    opentelemetry: bool = False
    # /readyz answers 503 when a delivery workers should be posting has been due this long.
    max_outbox_lag_seconds: float = 900.0


class DatabaseSettings(BaseModel):
    """The connections each API process keeps for its requests and threads (the pool has
    `pool_size` more in overflow). A request that waits `pool_timeout_seconds` for one is
    answered 503 `database_busy` with Retry-After. Streamed downloads never take these: they
    read through their own pool (StreamSettings).

    `log_node_cache_mib`: the hashes of the log's Merkle tree each process keeps to answer
    proofs and roots (gateway.transparency.tlog.NodeCache), from the top of the tree down as
    far as they fit; a proof reads the levels below from the database. A tree of n entries
    has about 2n nodes of 32 bytes: the default keeps the whole tree up to about 10^6 entries
    (61 MiB there), where a proof reads nothing from the database; at 10^7 the levels from 4
    up (38 MiB), a proof reading its nodes below them in one statement. Filled from committed
    nodes as proofs are asked, a bounded step each (bench/RESULTS.md, "Log proofs from a node
    cache"). 0: every node from the database, as before the cache; at most 16 GiB."""

    pool_size: int = Field(default=10, ge=1)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    log_node_cache_mib: float = Field(default=64.0, ge=0, le=16_384)


class StreamSettings(BaseModel):
    """Streamed downloads (the ledger CSV export, market regulator snapshot files), which a
    client may read slowly or not at all (issue 20, finding 1). Per API process: at most
    `max_open` at once (more are answered 503 `too_many_streams`); each ends at
    `deadline_seconds`, or when the client takes no bytes for `stall_seconds`; an export reads
    its rows a batch at a time through a pool of its own, `pool_size` connections (no
    overflow) that it holds only while a batch is read, never while the client reads."""

    max_open: int = Field(default=16, ge=1)
    deadline_seconds: float = Field(default=300.0, gt=0)
    # A send waits while uvicorn's buffer drains from 64 KiB to 16 KiB: 30 s of that is a
    # client slower than about 1.6 KB/s, or one that stopped reading.
    stall_seconds: float = Field(default=30.0, gt=0)
    pool_size: int = Field(default=2, ge=1)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)


class ConnectorSettings(BaseModel):
    """The market regulator's full snapshot: taken every `snapshot_interval_seconds` by each
    API process (0: only on demand), kept under data_dir/snapshots/market_regulator."""

    snapshot_interval_seconds: float = 86400.0


class SupervisionSettings(BaseModel):
    """Random draws (双随机): how long after its seed checkpoint a draw's secret may be revealed
    before the draw is void (docs/draws.md §1)."""

    reveal_window_seconds: float = Field(default=86_400, gt=0, le=30 * 86_400)


class ConsoleSettings(BaseModel):
    """The browser console (gateway.console): how long a one-time login link may wait to be
    used, and how long the session it opens lasts (absolute, not renewed by use)."""

    link_seconds: float = Field(default=600.0, gt=0, le=86_400)
    session_seconds: float = Field(default=8 * 3600.0, gt=0, le=7 * 86_400)


class RefusalSettings(BaseModel):
    """Requests refused before any agency was verified, per API process (gateway.access
    .refusals): each client address may have `burst` of them, refilled at `per_second`, and
    is then answered 429 before its token is read; identical refusals within
    `window_seconds` are one access record whose count is brought up to date every
    `flush_seconds`. At most `max_tracked` addresses and records are followed at once."""

    per_second: float = Field(default=1.0, gt=0, le=10_000)
    burst: int = Field(default=30, ge=1, le=1_000_000)
    window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    flush_seconds: float = Field(default=2.0, gt=0, le=3_600)
    max_tracked: int = Field(default=10_000, ge=1, le=1_000_000)


class Settings(BaseSettings):
    """Gateway configuration from `GATEWAY_*` variables (nested groups use `__`)."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("gateway-data")
    database_url: str | None = None
    dev_mode: bool = False
    public_url: str | None = None  # e.g. https://gateway.example; names the token endpoint
    access_token_ttl_seconds: int = 600
    # Each agency's requests with a token, per API process: a token bucket refilled at this
    # rate, holding `burst` (an agency's own limit, set by the admin API or CLI, wins).
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    log_origin: str = "gateway.example/log"
    publish: PublishSettings = Field(default_factory=PublishSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    witnesses: WitnessSettings = Field(default_factory=WitnessSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    connectors: ConnectorSettings = Field(default_factory=ConnectorSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    supervision: SupervisionSettings = Field(default_factory=SupervisionSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    refusals: RefusalSettings = Field(default_factory=RefusalSettings)
    # Proxies whose X-Forwarded-For / -Proto the server trusts (uvicorn's forwarded_allow_ips,
    # e.g. "127.0.0.1" or "10.0.0.5,10.0.0.6"); empty: none, the headers are ignored.
    forwarded_allow_ips: str = ""

    @model_validator(mode="after")
    def _refuse_placeholder_passphrase(self) -> Settings:
        secret = self.keys.passphrase
        placeholder = secret is not None and (
            secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
        )
        if placeholder and not self.dev_mode:
            raise ValueError(
                "GATEWAY_KEYS__PASSPHRASE is a placeholder; set a real passphrase "
                "or unset it (dev mode only allows placeholders)"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def key_passphrase(self) -> bytes | None:
        if self.keys.passphrase is None:
            return None
        return self.keys.passphrase.get_secret_value().encode()
