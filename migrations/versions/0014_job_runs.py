"""job runs: each scheduled job's work for a due time, done once

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:20:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import foundation.database  # noqa: F401


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_runs',
        sa.Column('job_id', sa.String(length=191), nullable=False),
        sa.Column('due_at', foundation.database.UTCDateTime(), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('done_at', foundation.database.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('job_id', 'due_at'),
    )


def downgrade() -> None:
    op.drop_table('job_runs')
