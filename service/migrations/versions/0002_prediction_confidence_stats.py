"""prediction confidence histogram per bucket (label-free drift: KS/PSI, expected accuracy)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('prediction_confidence_stats',
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('calibrator_version', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bin', sa.Integer(), nullable=False),
    sa.Column('count', sa.Float(), nullable=False),
    sa.Column('confidence_sum', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'bucket', 'bin',
                            name=op.f('pk_prediction_confidence_stats'))
    )


def downgrade() -> None:
    op.drop_table('prediction_confidence_stats')
