"""The `tiaojie` command: serve, demo, create-staff, reset-password, migrate, drain, nodes."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from accounts.models import ROLES
from audit.log import AuditedSession
from foundation import aio
from foundation.config import Settings, start_refusals
from foundation.database import DataInUse, create_engine, create_session_factory, hold_sqlite, upgrade_database
from server.links import is_loopback

DATABASE_HELP = "SQLAlchemy URL (default: TIAOJIE_DATABASE_URL, else sqlite+aiosqlite:///var/tiaojie.sqlite3)"


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=getattr(args, "database_url", None), media_workers=getattr(args, "media_workers", None)
    )


async def _in_transaction(settings: Settings, work):
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine, AuditedSession)() as db, db.begin():
            return await work(db)
    finally:
        await engine.dispose()


def _load_demo(settings: Settings) -> str:
    """Load the demo once; the line about the admin login to print."""
    from server.demo import load_demo

    password = asyncio.run(_in_transaction(settings, lambda db: load_demo(db, office_name=settings.office_name)))
    if password is None:
        print("Demo data is already loaded.")
        return "Staff login: user 'admin' keeps its password (a new one: tiaojie reset-password admin)"
    print("Demo data loaded: offices 金山警务室 and 朝阳警务室, 20 experts, 15 disputes (9 already mediated),"
          " a session starting in a few minutes.")
    return f"Staff login: user 'admin', password '{password}'"


def _banner(*lines: str) -> str:
    rule = "=" * 72
    return "\n".join([rule, *(f"  {line}" for line in lines), rule])


def office_address() -> str | None:
    """This computer's address on the office network (the one its default route leaves by), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a route is looked up, nothing is sent
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if is_loopback(address) else address


def served_url(host: str, port: int, tls: bool) -> str:
    """The address others use to reach a server listening on host:port (all addresses: the office one)."""
    if host in ("", "0.0.0.0", "::"):
        host = office_address() or "127.0.0.1"
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if port == (443 if tls else 80) else f":{port}")


def _where(settings: Settings, host: str, port: int, tls: bool) -> list[str]:
    """The banner's lines on where to open the server, from this computer and from a phone."""
    here = served_url("127.0.0.1" if host in ("", "0.0.0.0", "::") else host, port, tls)
    lines = [f"Tiaojie is running. Open {here}/login"]
    phones = settings.served_url
    if is_loopback(urlsplit(phones).hostname):
        lines.append("Only this computer can open it. For phones on the office network: "
                     "--host 0.0.0.0 --tls-cert F --tls-key F (README: Try it from a phone)")
    else:
        lines.append(f"Phones and other computers on the office network: {phones}/")
        if not tls:
            lines.append("(a phone's browser allows its camera only over HTTPS: add --tls-cert F --tls-key F)")
    if settings.base_url:
        lines.append(f"Links and QR codes point to TIAOJIE_BASE_URL: {settings.base_url}")
    return lines


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn
    from sqlalchemy.engine import make_url

    from server.app import create_app
    from server.protocol import TimedHeaders

    tls = bool(args.tls_cert or args.tls_key)
    if tls and not (args.tls_cert and args.tls_key):
        sys.exit("HTTPS needs both --tls-cert and --tls-key.")
    for path in (args.tls_cert, args.tls_key) if tls else ():
        if not Path(path).is_file():
            sys.exit(f"No such file: {path}")
    settings = dataclasses.replace(_settings(args), served_url=served_url(args.host, args.port, tls))
    if tls:
        settings = dataclasses.replace(settings, https_only_cookies=True)
    if problems := start_refusals(settings):
        sys.exit("Tiaojie will not start:\n" + "\n".join(f"- {problem}" for problem in problems))
    try:
        lock = hold_sqlite(settings.database_url, f"tiaojie serve (pid {os.getpid()}, {settings.served_url}, on {socket.gethostname()})")
    except DataInUse as exc:
        sys.exit(str(exc))
    upgrade_database(settings.database_url)
    login = _load_demo(settings) if args.demo else ""
    server = uvicorn.Server(uvicorn.Config(
        create_app(settings), host=args.host, port=args.port, log_level="info",
        forwarded_allow_ips=list(settings.trusted_proxies), ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
        http=TimedHeaders,
    ))

    async def serve() -> None:
        # The login lines come last, after uvicorn's start-up output, where a newcomer sees them.
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            database = make_url(settings.database_url).render_as_string(hide_password=True)
            print(_banner(*_where(settings, args.host, args.port, tls), *([login] if login else []),
                          f"Database: {database}"), flush=True)
        await task

    aio.run(serve())
    del lock  # held until here


def cmd_demo(args: argparse.Namespace) -> None:
    settings = _settings(args)
    upgrade_database(settings.database_url)
    print(_load_demo(settings))


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    upgrade_database(settings.database_url)
    print("Database schema is up to date.")


def cmd_create_staff(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from accounts.service import create_staff
    from experts.models import Office
    from experts.offices import first_office
    from foundation.errors import AppError

    settings = _settings(args)
    upgrade_database(settings.database_url)
    password = args.password or getpass.getpass("Password: ")
    if len(password) < 8:
        sys.exit("The password needs at least 8 characters.")
    role = "admin" if args.admin else args.role

    async def create(db: Any) -> str:
        if args.office:
            unit = await db.scalar(select(Office).where(Office.name == args.office))
            if unit is None:
                sys.exit(f"No office or level is named '{args.office}' (a system administrator adds them on the 单位 page, /offices).")
            unit_id, unit_name = unit.id, unit.name
        else:
            unit_id = await first_office(db, settings.office_name)
            unit_name = (await db.get(Office, unit_id)).name
        await create_staff(db, args.username, password, role=role, display_name=args.display_name or args.username,
                           office_id=unit_id)
        return str(unit_name)

    try:
        unit_name = asyncio.run(_in_transaction(settings, create))
    except AppError as exc:
        sys.exit(exc.message)
    print(f"Staff account '{args.username}' ({role}) created in {unit_name}.")


def cmd_reset_password(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from accounts.models import StaffUser
    from accounts.service import set_active, set_password

    settings = _settings(args)
    upgrade_database(settings.database_url)
    password = args.password or secrets.token_urlsafe(9)
    if len(password) < 10:
        sys.exit("The password needs at least 10 characters.")

    async def reset(db):
        user = await db.scalar(select(StaffUser).where(StaffUser.username == args.username))
        if user is None:
            return None
        if user.active or args.enable:
            await set_password(db, user, password)
            await set_active(db, user, True)
        return user.active

    active = asyncio.run(_in_transaction(settings, reset))
    if active is None:
        sys.exit(f"There is no staff account '{args.username}'.")
    if not active:
        sys.exit(f"The staff account '{args.username}' is disabled: a new password would not let it log in. "
                 f"Run 'tiaojie reset-password {args.username} --enable' to enable it with a new password.")
    print(f"New password for '{args.username}' (every session of this account has ended): password '{password}'")


def cmd_drain(args: argparse.Namespace) -> None:
    import time

    from foundation.config import node_name
    from foundation.database import database_now
    from signaling.cluster.placement import alive, set_draining

    settings = _settings(args)
    node_id = args.node or node_name(settings)

    async def mark(db):
        node = await set_draining(db, node_id, not args.undo)
        return None if node is None else (len(node.rooms), node.participants, alive(node, await database_now(db), settings.node_dead_s))

    state = asyncio.run(_in_transaction(settings, mark))
    if state is None:
        sys.exit(f"There is no node '{node_id}' in this cluster (see: tiaojie nodes).")
    if args.undo:
        print(f"Node {node_id} takes new rooms again.")
        return
    print(f"Node {node_id} is draining: no new rooms go there; {state[0]} room(s) with {state[1]} participant(s) still running.",
          flush=True)
    while args.wait and state[0] and state[2]:
        time.sleep(2)
        state = asyncio.run(_in_transaction(settings, mark))
        assert state is not None
    if args.wait:
        print(f"Node {node_id} drained: no rooms left; it can be stopped." if state[2] else
              f"Node {node_id} has stopped (no heartbeat): its rooms move as their people rejoin.")


def cmd_nodes(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from foundation.database import database_now
    from signaling.cluster.placement import NodeRow, alive, describe, forget_node

    settings = _settings(args)
    if args.forget:
        async def forget(db):
            node = await db.get(NodeRow, args.forget)
            if node is None:
                return None
            if alive(node, await database_now(db), settings.node_dead_s):
                return False
            return await forget_node(db, node.id)

        forgotten = asyncio.run(_in_transaction(settings, forget))
        if forgotten is None:
            sys.exit(f"There is no node '{args.forget}' in this cluster (see: tiaojie nodes).")
        if not forgotten:
            sys.exit(f"Node '{args.forget}' is alive (its heartbeat is recent): stop it first, or drain it.")
        print(f"Node {args.forget} is forgotten; its rooms are placed again as their people come back.")
        return

    async def rows(db):
        now = await database_now(db)
        return [describe(n, now, settings.node_dead_s) for n in await db.scalars(select(NodeRow).order_by(NodeRow.id))]

    nodes = asyncio.run(_in_transaction(settings, rows))
    if not nodes:
        print("No nodes (a node joins the cluster when it runs with TIAOJIE_NODE_URL set).")
    for n in nodes:
        state = "draining" if n["draining"] else "taking rooms"
        print(f"{n['id']:<16} {'alive' if n['alive'] else 'DEAD':<6} {state:<13} rooms {n['rooms']:>3}  "
              f"participants {n['participants']:>4}  streams {n['streams']:>5}  {n['url']}"
              + ("  overloaded: shedding video, new rooms go elsewhere" if n["overloaded"] else ""))


def cmd_verify(args: argparse.Namespace) -> None:
    """Check a signed PDF: its office signature, and whether it is the valid version."""
    from server.pages.signing import check_file

    settings = _settings(args)
    pdf = Path(args.file).read_bytes()
    engine = create_engine(settings.database_url)

    async def check() -> dict[str, Any]:
        try:
            return await check_file(create_session_factory(engine, AuditedSession), pdf)
        finally:
            await engine.dispose()

    result = asyncio.run(check())
    says = {"intact": "the file is unchanged and its office signature is valid",
            "tampered": "the file was changed after signing: its signature is broken",
            "changed": "content was added to the file after signing", "unsigned": "the file carries no signature",
            "untrusted": "the signature is not by an office of this server"}
    print(f"signature: {result['signature']} ({says[result['signature']]})" + (f", by {result['signer']}" if result["signer"] else ""))
    if result["found"]:
        print(f"document: {result['title']}, version {result['version']}, issued {result['issued_at']}: {result['status']}"
              + (f" (now version {result['current_version']})" if result["status"] == "superseded" else ""))
    else:
        print("document: not a file this server issued")
    sys.exit(0 if result["signature"] == "intact" and result.get("status") == "valid" else 1)


def cmd_office_key(args: argparse.Namespace) -> None:
    """Import an office's own signing key and certificate (PEM), replacing the one made for it."""
    from sqlalchemy import select

    from experts.models import Office
    from outcomes import pades, signing

    settings = _settings(args)
    password = os.environ.get("TIAOJIE_KEY_PASSWORD", "").encode() or None
    key_pem, cert_pem = pades.import_key(Path(args.key).read_bytes(), Path(args.cert).read_bytes(), password, settings.secret_key)

    async def store(db: Any) -> str:
        office_id = await db.scalar(select(Office.id).where(Office.name == args.office))
        if office_id is None:
            raise SystemExit(f"no office named {args.office!r}")
        row = await signing.office_signing(db, office_id)
        row.key_pem, row.cert_pem = key_pem, cert_pem
        return f"The signing key of {args.office} is replaced; PDFs issued from now on carry it."

    print(asyncio.run(_in_transaction(settings, store)))


def cmd_backup(args: argparse.Namespace) -> None:
    """Write one backup archive (the database, the secret key, evidence, recordings)."""
    from foundation import backup
    from server.backups import source

    settings = _settings(args)
    try:
        archive = backup.create(source(settings), Path(args.folder))
    except backup.BackupError as exc:
        sys.exit(f"Backup failed: {exc}")
    print(f"Backup written: {archive} ({archive.stat().st_size / 1048576:.1f} MB). "
          f"{backup.describe(backup.read_manifest(archive))}. Copy it off this machine; it holds the secret key.")


def cmd_restore(args: argparse.Namespace) -> None:
    """Put a backup back: check it, refuse to overwrite data unless forced, upgrade the schema."""
    from foundation import backup
    from server.backups import source

    # Not _settings(): it would make a new secret key in an empty data folder, where the backup's goes.
    settings = Settings.from_env(database_url=args.database_url, secret_key="-")
    try:
        manifest = backup.restore(Path(args.archive), source(settings), force=args.force)
    except backup.BackupError as exc:
        sys.exit(f"Restore refused: {exc}")
    upgrade_database(settings.database_url)
    print(f"Restored {backup.describe(manifest)} into {settings.data_dir}; the schema is up to date.")
    if os.environ.get("TIAOJIE_SECRET_KEY"):
        print("TIAOJIE_SECRET_KEY is set: make it the backup's key (now in the data folder's secret_key), "
              "or the restored links and logins are refused.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # it reports each rendering step at INFO
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    # It reports every job added or removed at INFO (four of each a session); runs stay at INFO.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="tiaojie", description="Tiaojie remote mediation server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="upgrade the database and run the server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM; phones need HTTPS for the camera)")
    serve.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serve.add_argument("--database-url", help=DATABASE_HELP)
    serve.add_argument("--demo", action="store_true", help="load the demo data first")
    serve.add_argument(
        "--media-workers", type=int, default=os.cpu_count() or 1,
        help="media worker processes, one per core (default: the number of cores); 0: media in the web process",
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="load the demo data set")
    demo.add_argument("--database-url", help=DATABASE_HELP)
    demo.set_defaults(func=cmd_demo)

    migrate = sub.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--database-url", help=DATABASE_HELP)
    migrate.set_defaults(func=cmd_migrate)

    staff = sub.add_parser("create-staff", help="add a staff account")
    staff.add_argument("username")
    staff.add_argument("--display-name", help="the name shown on pages (default: the user name)")
    staff.add_argument("--role", choices=ROLES, default="staff",
                       help="staff: a clerk (调解员); admin: their office's admin; supervisor: looks at every office "
                            "under their level; sysadmin: offices and accounts everywhere")
    staff.add_argument("--admin", action="store_true", help="the same as --role admin")
    staff.add_argument("--office", help="the office (or, for a supervisor, the level) by name; default: the first office")
    staff.add_argument("--password", help="default: asked for")
    staff.add_argument("--database-url", help=DATABASE_HELP)
    staff.set_defaults(func=cmd_create_staff)

    reset = sub.add_parser("reset-password", help="give a staff account a new password and end its sessions")
    reset.add_argument("username")
    reset.add_argument("--password", help="default: a new random one, printed")
    reset.add_argument("--enable", action="store_true", help="also enable the account if it is disabled")
    reset.add_argument("--database-url", help=DATABASE_HELP)
    reset.set_defaults(func=cmd_reset_password)

    drain = sub.add_parser("drain", help="stop placing new rooms on a node; its running rooms finish there")
    drain.add_argument("--node", help="the node's name (default: TIAOJIE_NODE_ID, else this host's name)")
    drain.add_argument("--wait", action="store_true", help="return once the node's rooms have all ended")
    drain.add_argument("--undo", action="store_true", help="let the node take new rooms again (a restart does too)")
    drain.add_argument("--database-url", help=DATABASE_HELP)
    drain.set_defaults(func=cmd_drain)

    nodes = sub.add_parser("nodes", help="list the cluster's nodes with their load")
    nodes.add_argument("--database-url", help=DATABASE_HELP)
    nodes.add_argument("--forget", metavar="NODE", help="remove a dead node from the list")
    nodes.set_defaults(func=cmd_nodes)

    backup_cmd = sub.add_parser("backup", help="write a dated backup archive of the database, the secret key and the files")
    backup_cmd.add_argument("folder", help="where to put the archive (best on another disk)")
    backup_cmd.add_argument("--database-url", help=DATABASE_HELP)
    backup_cmd.set_defaults(func=cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup archive into the data folder and database")
    restore.add_argument("archive")
    restore.add_argument("--force", action="store_true", help="replace a database that holds data, and the secret key")
    restore.add_argument("--database-url", help=DATABASE_HELP)
    restore.set_defaults(func=cmd_restore)

    verify = sub.add_parser("verify", help="check a signed PDF: changed or not, valid or superseded")
    verify.add_argument("file")
    verify.add_argument("--database-url", help=DATABASE_HELP)
    verify.set_defaults(func=cmd_verify)

    office_key = sub.add_parser("office-key", help="import an office's own signing key and certificate (PEM)")
    office_key.add_argument("office", help="the office's name")
    office_key.add_argument("key", help="the private key (PEM; its password in TIAOJIE_KEY_PASSWORD)")
    office_key.add_argument("cert", help="the certificate (PEM)")
    office_key.add_argument("--database-url", help=DATABASE_HELP)
    office_key.set_defaults(func=cmd_office_key)

    args = parser.parse_args(argv)
    args.func(args)
