"""slices: admitted tag values per (model, key) and per-slice calibration statistics with roll-ups

Revision ID: 0006
Revises: 0004 (in the slices branch; the lead re-chains after 0005 at merge)
Create Date: 2026-12-04

Self-contained, like 0004. New tables only: predictions served before this migration have no slice
statistics (their labels arrived before slices existed), so there is nothing to back-fill.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ('count', 'confidence_sum', 'correct_sum')


def _key() -> list[sa.Column]:
    return [
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('calibrator_version', sa.Integer(), nullable=False),
        sa.Column('slice_key', sa.String(length=64), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        'slice_values',
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('slice_key', sa.String(length=64), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('slice_value', sa.String(length=128), nullable=False),
        sa.Column('admitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('model', 'slice_key', 'slot', name=op.f('pk_slice_values')),
        sa.UniqueConstraint('model', 'slice_key', 'slice_value', name='uq_slice_values_value'),
    )
    op.create_table(
        'calibration_slice_stats', *_key(),
        sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
        sa.Column('slice_value', sa.String(length=128), nullable=False),
        sa.Column('bin', sa.Integer(), nullable=False),
        *[sa.Column(c, sa.Float(), nullable=False) for c in SUMS],
        sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'slice_key', 'bucket', 'slice_value',
                                'bin', name=op.f('pk_calibration_slice_stats')),
    )
    op.create_table(
        'calibration_slice_stats_rollup', *_key(),
        sa.Column('span', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
        sa.Column('slice_value', sa.String(length=128), nullable=False),
        sa.Column('bin', sa.Integer(), nullable=False),
        *[sa.Column(c, sa.Float(), nullable=False) for c in SUMS],
        sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'slice_key', 'span', 'bucket',
                                'slice_value', 'bin', name=op.f('pk_calibration_slice_stats_rollup')),
    )


def downgrade() -> None:
    op.drop_table('calibration_slice_stats_rollup')
    op.drop_table('calibration_slice_stats')
    op.drop_table('slice_values')
