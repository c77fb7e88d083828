"""login_failures: the client address of each failure (the throttle counts per account and address)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 06:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('login_failures') as batch:
        batch.add_column(sa.Column('address', sa.String(length=64), nullable=False, server_default=''))
        batch.create_index('ix_login_failures_address', ['address'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures') as batch:
        batch.drop_index('ix_login_failures_address')
        batch.drop_column('address')
