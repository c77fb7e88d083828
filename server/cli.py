"""The `tiaojie` command: serve, demo, create-staff, migrate."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from audit.log import AuditedSession
from server.config import Settings
from server.database import create_engine, create_session_factory, upgrade_database


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        database_url=getattr(args, "database_url", None), media_workers=getattr(args, "media_workers", None)
    )


async def _in_transaction(settings: Settings, work):  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine, AuditedSession)() as db, db.begin():
            return await work(db)
    finally:
        await engine.dispose()


def _load_demo(settings: Settings) -> None:
    from server.demo import load_demo

    password = asyncio.run(_in_transaction(settings, load_demo))
    if password is None:
        print("Demo data is already loaded (staff user 'admin' keeps its password).")
    else:
        print("Demo data loaded: offices 金山警务室 and 朝阳警务室, 20 experts, 15 disputes (9 already mediated).")
        print(f"Staff login: user 'admin', password '{password}'")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from server.app import create_app

    settings = _settings(args)
    upgrade_database(settings.database_url)
    if args.demo:
        _load_demo(settings)
    print(f"Tiaojie on http://{args.host}:{args.port}/  (database {settings.database_url})")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def cmd_demo(args: argparse.Namespace) -> None:
    settings = _settings(args)
    upgrade_database(settings.database_url)
    _load_demo(settings)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    upgrade_database(settings.database_url)
    print("Database schema is up to date.")


def cmd_create_staff(args: argparse.Namespace) -> None:
    from server.accounts import create_staff
    from server.errors import AppError

    settings = _settings(args)
    upgrade_database(settings.database_url)
    password = args.password or getpass.getpass("Password: ")
    if len(password) < 8:
        sys.exit("The password needs at least 8 characters.")
    try:
        asyncio.run(_in_transaction(
            settings,
            lambda db: create_staff(db, args.username, password, role="admin" if args.admin else "staff",
                                    display_name=args.display_name or args.username),
        ))
    except AppError as exc:
        sys.exit(exc.message)
    print(f"Staff account '{args.username}' created.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("weasyprint").setLevel(logging.WARNING)  # it reports each rendering step at INFO
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="tiaojie", description="Tiaojie remote mediation server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="upgrade the database and run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--database-url", help="default: TIAOJIE_DATABASE_URL or var/tiaojie.sqlite3")
    serve.add_argument("--demo", action="store_true", help="load the demo data first")
    serve.add_argument(
        "--media-workers", type=int, default=os.cpu_count() or 1,
        help="media worker processes, one per core (default: the number of cores); 0: media in the web process",
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="load the demo data set")
    demo.add_argument("--database-url")
    demo.set_defaults(func=cmd_demo)

    migrate = sub.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--database-url")
    migrate.set_defaults(func=cmd_migrate)

    staff = sub.add_parser("create-staff", help="add a staff account")
    staff.add_argument("username")
    staff.add_argument("--display-name")
    staff.add_argument("--admin", action="store_true")
    staff.add_argument("--password", help="default: asked for")
    staff.add_argument("--database-url")
    staff.set_defaults(func=cmd_create_staff)

    args = parser.parse_args(argv)
    args.func(args)
