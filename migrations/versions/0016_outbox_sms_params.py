"""outbox: an SMS's template variables, and the service's id for a message it took

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 05:20:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('receipt', sa.String(length=100), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('receipt')
        batch.drop_column('params')
