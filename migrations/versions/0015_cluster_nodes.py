"""cluster: the nodes' heartbeats and the rooms' placements

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:50:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import foundation.database  # noqa: F401


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'nodes',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('started_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('heartbeat_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('draining', sa.Boolean(), nullable=False),
        sa.Column('participants', sa.Integer(), nullable=False),
        sa.Column('streams', sa.Integer(), nullable=False),
        sa.Column('rooms', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'room_placements',
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('node_id', sa.String(length=64), nullable=False),
        sa.Column('placed_at', foundation.database.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['mediation_sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_id'),
    )


def downgrade() -> None:
    op.drop_table('room_placements')
    op.drop_table('nodes')
