"""nodes.overloaded: every media worker of the node sheds video (new rooms go elsewhere)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 00:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nodes') as batch:
        batch.add_column(sa.Column('overloaded', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('nodes') as batch:
        batch.drop_column('overloaded')
