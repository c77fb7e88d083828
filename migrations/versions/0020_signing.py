"""The session record, documents people sign, identity checks, one-time codes, signatures, the
office's seal and signing key, the signed PDFs as issued; the typed-name confirmations become
signatures of method typed_name (kept, never counted as signed)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 16:30:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import foundation.database

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

UTC = foundation.database.UTCDateTime


def upgrade() -> None:
    op.create_table('session_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['mediation_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_id')
    )
    op.create_table('sign_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outcome_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('sealed_at', UTC(), nullable=True),
    sa.Column('sealed_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['outcome_id'], ['outcomes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('outcome_id', 'kind')
    )
    with op.batch_alter_table('sign_documents') as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_documents_outcome_id'), ['outcome_id'], unique=False)
    op.create_table('issued_pdfs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('issued_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['sign_documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('issued_pdfs') as batch_op:
        batch_op.create_index(batch_op.f('ix_issued_pdfs_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_pdfs_sha256'), ['sha256'], unique=False)
    op.create_table('identity_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('document_type', sa.String(length=16), nullable=False),
    sa.Column('number_last4', sa.String(length=4), nullable=False),
    sa.Column('full_number', sa.String(length=32), nullable=False),
    sa.Column('checked_by', sa.String(length=80), nullable=False),
    sa.Column('checked_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('participant_id')
    )
    op.create_table('signing_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('shown_code', sa.String(length=6), nullable=False),
    sa.Column('sent_at', UTC(), nullable=False),
    sa.Column('expires_at', UTC(), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('used_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['sign_documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signing_codes') as batch_op:
        batch_op.create_index(batch_op.f('ix_signing_codes_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signing_codes_participant_id'), ['participant_id'], unique=False)
    op.create_table('signatures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('image_png', sa.LargeBinary(), nullable=True),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('identity', sa.JSON(), nullable=False),
    sa.Column('phone_masked', sa.String(length=32), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=400), nullable=False),
    sa.Column('signed_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['sign_documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_id', 'version', 'participant_id')
    )
    with op.batch_alter_table('signatures') as batch_op:
        batch_op.create_index(batch_op.f('ix_signatures_document_id'), ['document_id'], unique=False)
    op.create_table('office_signing',
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('seal_png', sa.LargeBinary(), nullable=True),
    sa.Column('seal_updated_at', UTC(), nullable=True),
    sa.Column('key_pem', sa.Text(), nullable=False),
    sa.Column('cert_pem', sa.Text(), nullable=False),
    sa.Column('court', sa.String(length=120), nullable=False),
    sa.Column('full_id_numbers', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], ),
    sa.PrimaryKeyConstraint('office_id')
    )
    # Each agreement with a typed-name confirmation gets its document, and each confirmation
    # becomes a signature of method typed_name: kept as evidence of what was done, never counted.
    op.execute("INSERT INTO sign_documents (outcome_id, kind, version, text_sha256, sealed_by, created_at)"
               " SELECT DISTINCT outcome_id, 'agreement', 1, '', '', MIN(confirmed_at)"
               " FROM agreement_confirmations GROUP BY outcome_id")
    op.execute("INSERT INTO signatures (document_id, version, participant_id, capacity, name, method, text_sha256,"
               " identity, phone_masked, ip_address, user_agent, signed_at)"
               " SELECT d.id, 1, c.participant_id, 'party', c.typed_name, 'typed_name', '', '{}', '', c.ip_address,"
               " c.user_agent, c.confirmed_at FROM agreement_confirmations c"
               " JOIN sign_documents d ON d.outcome_id = c.outcome_id AND d.kind = 'agreement'")
    op.drop_table('agreement_confirmations')


def downgrade() -> None:
    op.create_table('agreement_confirmations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outcome_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('typed_name', sa.String(length=80), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=400), nullable=False),
    sa.Column('confirmed_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['outcome_id'], ['outcomes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('outcome_id', 'participant_id')
    )
    with op.batch_alter_table('agreement_confirmations') as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_confirmations_outcome_id'), ['outcome_id'], unique=False)
    op.execute("INSERT INTO agreement_confirmations (outcome_id, participant_id, typed_name, ip_address, user_agent,"
               " confirmed_at) SELECT d.outcome_id, s.participant_id, s.name, s.ip_address, s.user_agent, s.signed_at"
               " FROM signatures s JOIN sign_documents d ON d.id = s.document_id"
               " WHERE d.kind = 'agreement' AND s.capacity = 'party' AND s.version = d.version")
    for table in ('office_signing', 'signatures', 'signing_codes', 'identity_checks', 'issued_pdfs', 'sign_documents',
                  'session_records'):
        op.drop_table(table)
