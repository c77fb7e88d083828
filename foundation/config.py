"""Settings: one frozen object, read once from the environment and passed down."""
from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything configurable about one Tiaojie server."""

    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: str = ""
    timezone: str = "Asia/Shanghai"
    # The address people use to reach this server, for links and QR codes (e.g.
    # https://tiaojie.example.gov.cn). Empty: a page's links use the address its request came in
    # on, and messages (e-mail, SMS) the address `tiaojie serve` prints for phones (served_url).
    base_url: str = ""
    # Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses or networks).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # Set by `tiaojie serve` from --host, --port and TLS, never from the environment.
    served_url: str = dataclasses.field(default="http://127.0.0.1:8000", metadata={"env": False})
    # Staff login throttle: this many failures within the window for one user name from one
    # address, or from one address for any names, and that address waits (others do not).
    login_max_failures: int = 5
    login_max_address_failures: int = 20
    login_window_s: int = 15 * 60
    # Guessing spread over many addresses: past this many failures of one account within the
    # window, from anywhere, each try on it waits a delay that doubles up to the maximum (never
    # from a browser the account logged in on before).
    login_max_account_failures: int = 10
    login_max_delay_s: int = 300
    session_max_age_s: int = 12 * 3600
    magic_link_max_age_s: int = 30 * 60
    # Invite links stay valid this long after the session's scheduled end.
    invite_grace_s: int = 2 * 3600
    # Minutes an expert keeps free between two sessions.
    booking_gap_min: int = 15
    # No session sooner than this after now (unless staff override the availability) ...
    booking_notice_min: int = 120
    # ... nor further ahead than this.
    booking_horizon_days: int = 92
    office_name: str = "金山警务室 远程调解中心"
    # Where alerts for staff go (an expert declined); default: the From address.
    office_email: str = ""
    # Parties may sign an agreement from their link for this many days after it is recorded.
    agreement_confirm_days: int = 14
    # Follow-up visits (回访) after an agreement, this many days later.
    follow_up_days: tuple[int, ...] = (7, 30)
    # The weekly review (每周研判) is built on this day and hour (office time) for the week
    # before, and e-mailed to these addresses (default: the office address).
    review_day: str = "mon"
    review_hour: int = 8
    review_recipients: tuple[str, ...] = ()
    # A backup every day at this hour (office time) into this folder, the newest ones kept
    # (foundation/backup.py; empty: no scheduled backup). Put the folder on another disk.
    backup_dir: str = ""
    backup_hour: int = 2
    backup_keep: int = 7
    # A request's body must arrive within this many seconds plus its size at this rate (so a
    # phone's 20 MB photo on a slow link has 10 minutes; a body trickled a byte at a time is cut off).
    request_body_base_s: float = 10.0
    request_body_min_bps: int = 32 * 1024
    # /healthz says "degraded: disk full" when the data folder's disk has less than this free.
    disk_min_free_mb: int = 50
    # Reminders go this many seconds before a session starts.
    reminder_offsets_s: tuple[int, ...] = (24 * 3600, 15 * 60)
    # The room opens this long before the start and closes this long after the end.
    room_open_before_s: int = 10 * 60
    room_close_after_s: int = 30 * 60
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "tiaojie@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    run_scheduler: bool = True
    # The scheduler lease: a node that stops renewing it loses it after this many seconds.
    scheduler_lease_s: int = 30
    # Several nodes on one PostgreSQL database (README "Several nodes"): this node's name, and
    # the address where browsers reach it directly (behind the proxy, e.g.
    # https://mediation.example/n/a). Without a node URL, every room stays on this node.
    node_id: str = ""
    node_url: str = ""
    # A node without a heartbeat for this long is dead: its rooms are placed again.
    node_dead_s: float = 10.0
    # Media worker processes (one per core); 0 keeps the media in the web process.
    media_workers: int = 0
    # ICE for browsers: STUN URLs, and TURN URLs with the shared secret of coturn's
    # use-auth-secret (credentials expire after turn_ttl_s). Empty: host candidates only.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_s: int = 6 * 3600
    # A participant whose connection drops keeps their seat this long.
    reconnect_timeout_s: float = 30.0
    https_only_cookies: bool = False
    # Who may read /metrics (Prometheus): these addresses or networks, or a scraper sending
    # `Authorization: Bearer <metrics_token>`.
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str = ""
    # SMS through a provider (README "SMS"): aliyun or tencent, its keys, the office's sign name,
    # Tencent's SmsSdkAppId, the region, another address for the service (tests), and the
    # approved template for each kind of message (kind=CODE/var/var).
    sms_provider: str = ""
    sms_key_id: str = ""
    sms_key_secret: str = ""
    sms_sign_name: str = ""
    sms_app_id: str = ""
    sms_region: str = ""
    sms_endpoint: str = ""
    sms_templates: tuple[str, ...] = ()
    # Largest evidence file accepted (photos, PDFs, documents, short recordings).
    evidence_max_bytes: int = 20 * 1024 * 1024
    # Evidence quotas: per participant's link, per dispute, and uploads per minute per link.
    evidence_files_per_link: int = 30
    evidence_bytes_per_link: int = 200 * 1024 * 1024
    evidence_files_per_dispute: int = 300
    evidence_bytes_per_dispute: int = 2 * 1024 * 1024 * 1024
    evidence_uploads_per_minute: int = 6

    def link_base(self) -> str:
        """The address in links sent out (e-mail, SMS, calendars), where no request says where people are."""
        return (self.base_url or self.served_url).rstrip("/")

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite+aiosqlite:///{self.data_dir / 'tiaojie.sqlite3'}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from TIAOJIE_* variables; explicit overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = env.get("TIAOJIE_" + field.name.upper())
            if raw is None or not field.metadata.get("env", True):
                continue
            if field.type in ("float",):
                values[field.name] = float(raw)
            elif field.type in ("int",):
                values[field.name] = int(raw)
            elif field.type in ("bool",):
                values[field.name] = raw.lower() in ("1", "true", "yes", "on")
            elif field.type in ("Path",):
                values[field.name] = Path(raw)
            elif field.type.startswith("tuple[int"):
                values[field.name] = tuple(int(part) for part in raw.split(",") if part.strip())
            elif field.type.startswith("tuple[str"):
                values[field.name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[field.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.secret_key:
            settings = dataclasses.replace(settings, secret_key=_stored_secret(settings.data_dir))
        return settings


MIN_SECRET_CHARS = 32
PLACEHOLDER = "CHANGE-ME"  # how every secret in deploy/tiaojie.env.example begins


def start_refusals(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Why a server with these settings must not start (none: it may): a secret left at its
    placeholder from deploy/tiaojie.env.example or too short to resist guessing, or a cluster
    (PostgreSQL) node with a key of its own, whose links and logins no other node would accept."""
    env = os.environ if environ is None else environ
    make = "python3 -c 'import secrets; print(secrets.token_urlsafe(36))'"
    problems = []
    for name, value, optional in (("TIAOJIE_SECRET_KEY", settings.secret_key, False),
                                  ("TIAOJIE_METRICS_TOKEN", settings.metrics_token, True),
                                  ("TIAOJIE_TURN_SECRET", settings.turn_secret, True)):
        if optional and not value:
            continue
        if PLACEHOLDER in value:
            problems.append(f"{name} is still the placeholder of tiaojie.env.example: set a random one ({make})")
        elif len(value) < MIN_SECRET_CHARS:
            problems.append(f"{name} has {len(value)} characters, fewer than {MIN_SECRET_CHARS}: set a random one ({make})")
    if settings.database_url.startswith("postgresql") and not env.get("TIAOJIE_SECRET_KEY"):
        problems.append("TIAOJIE_SECRET_KEY is not set: on PostgreSQL every node needs the same one, or the links and "
                        "logins one node signs are refused by the others")
    return problems


def node_name(settings: Settings) -> str:
    """This node's name in the cluster: TIAOJIE_NODE_ID, else the host name."""
    return settings.node_id or socket.gethostname()


def _stored_secret(data_dir: Path) -> str:
    """A random secret kept in the data folder, so that sessions survive a restart."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
