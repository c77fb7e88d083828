"""offices apart: levels above offices, experts shared by offices, office columns where rows had none

Every row that had no office gets the first office (one is made if there is none), so that
existing accounts and cases stay where they were: a single-office install stays one office.
Weekly reviews and agreement templates become one per office; audit rows and notifications carry
the office they belong to (old audit rows: the office of the staff member who acted).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import foundation.database


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def _copy_with_office(table: str, columns: list[sa.Column], unique: tuple[str, ...], office: int) -> None:
    """Rebuild a table with an office_id column and a unique key that includes it (a unique
    constraint without a name cannot be dropped alike on SQLite and PostgreSQL)."""
    names = [c.name for c in columns]
    op.create_table(f"{table}_new", *columns, sa.Column('office_id', sa.Integer(), sa.ForeignKey('offices.id'), nullable=False),
                    sa.UniqueConstraint('office_id', *unique, name=f"uq_{table}_office"))
    listed = ", ".join(names)
    op.execute(f"INSERT INTO {table}_new ({listed}, office_id) SELECT {listed}, {office} FROM {table}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
    if op.get_bind().dialect.name == "postgresql":  # the copied ids continue from the highest
        op.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('offices') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='office'))
        batch.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_offices_parent', 'offices', ['parent_id'], ['id'])
    office = bind.execute(sa.text("SELECT min(id) FROM offices")).scalar()
    needs_one = any(bind.execute(sa.text(f"SELECT 1 FROM {t} WHERE office_id IS NULL LIMIT 1")).first()
                    for t in ('staff_users', 'disputes', 'mediation_sessions', 'experts'))
    needs_one = needs_one or any(bind.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first()
                                 for t in ('weekly_reviews', 'agreement_templates'))
    if office is None and needs_one:
        bind.execute(sa.text("INSERT INTO offices (name, timezone, kind) VALUES ('本警务室', 'Asia/Shanghai', 'office')"))
        office = bind.execute(sa.text("SELECT min(id) FROM offices")).scalar()
    if office is not None:
        for table in ('staff_users', 'disputes', 'mediation_sessions', 'experts'):
            op.execute(f"UPDATE {table} SET office_id = {int(office)} WHERE office_id IS NULL")
    for table in ('disputes', 'mediation_sessions', 'staff_users'):
        op.create_index(f'ix_{table}_office_id', table, ['office_id'])

    # The expert pool is shared: an expert serves one or more offices (their first: the one they had).
    op.create_table('expert_offices',
        sa.Column('expert_id', sa.Integer(), sa.ForeignKey('experts.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('office_id', sa.Integer(), sa.ForeignKey('offices.id', ondelete='CASCADE'), primary_key=True),
    )
    op.create_index('ix_expert_offices_office_id', 'expert_offices', ['office_id'])
    op.execute("INSERT INTO expert_offices (expert_id, office_id) SELECT id, office_id FROM experts WHERE office_id IS NOT NULL")

    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('office_id', sa.Integer(), nullable=True))
        batch.create_index('ix_outbox_office_id', ['office_id'])
    op.execute("UPDATE outbox SET office_id = (SELECT s.office_id FROM mediation_sessions s WHERE s.id = outbox.session_id)")
    if office is not None:
        op.execute(f"UPDATE outbox SET office_id = {int(office)} WHERE office_id IS NULL")

    # The audit log is append-only: its triggers step aside for this one backfill.
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_log_no_update")
    else:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.add_column('audit_log', sa.Column('office_id', sa.Integer(), nullable=True))
    op.create_index('ix_audit_log_office_id', 'audit_log', ['office_id'])
    concat = "'staff:' || CAST(u.id AS VARCHAR)" if bind.dialect.name == "postgresql" else "'staff:' || u.id"
    op.execute(f"UPDATE audit_log SET office_id = (SELECT u.office_id FROM staff_users u WHERE {concat} = audit_log.actor)")
    if bind.dialect.name == "sqlite":
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                   "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")
    else:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")

    # With no office yet these tables are empty: nothing is copied.
    first = int(office or 0)
    _copy_with_office('weekly_reviews', [
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('week_start', sa.Date(), nullable=False),
        sa.Column('generated_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
    ], ('week_start',), first)
    _copy_with_office('agreement_templates', [
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('dispute_type', sa.String(length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_at', foundation.database.UTCDateTime(), nullable=False),
    ], ('dispute_type',), first)


def downgrade() -> None:
    raise NotImplementedError("offices apart cannot be undone without losing which office owns what; restore a backup")
