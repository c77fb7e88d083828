"""participants.staff_id: the staff account that holds a host link (disabling it ends the host's place)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 13:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('participants') as batch:
        batch.add_column(sa.Column('staff_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_participants_staff_id', 'staff_users', ['staff_id'], ['id'])
    # Existing host links are held by whoever booked the session.
    op.execute("UPDATE participants SET staff_id = (SELECT created_by FROM mediation_sessions"
               " WHERE mediation_sessions.id = participants.session_id) WHERE kind = 'host'")


def downgrade() -> None:
    with op.batch_alter_table('participants') as batch:
        batch.drop_constraint('fk_participants_staff_id', type_='foreignkey')
        batch.drop_column('staff_id')
