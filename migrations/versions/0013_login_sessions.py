"""server-side login sessions; staff accounts can be disabled

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 19:10:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import foundation.database  # noqa: F401


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('expert_id', sa.Integer(), nullable=True),
        sa.Column('created_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('expires_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', foundation.database.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('login_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_sessions_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_sessions_expert_id'), ['expert_id'], unique=False)
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('active')
    op.drop_table('login_sessions')
