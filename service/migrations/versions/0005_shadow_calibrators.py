"""shadow calibrators: the shadow set, per-bucket paired loss sums and both sides' bins, and the evidence

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Self-contained on purpose (no imports from service/). No roll-ups: shadow comparisons read fine buckets over
their (short) windows, and the promotion policy reads the one-row-per-pair ``shadow_evidence``.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKET_KEY = ('model', 'version', 'calibrator_version', 'bucket')


def _bucket_key() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('calibrator_version', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
    ]


def _floats(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(n, sa.Float(), nullable=False) for n in names]


def upgrade() -> None:
    op.create_table('shadow_calibrators',
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('calibrator_version', sa.Integer(), nullable=False),
    sa.Column('policy', sa.String(length=32), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', name=op.f('pk_shadow_calibrators'))
    )
    op.create_table('shadow_pair_stats',
    *_bucket_key(),
    sa.Column('active_version', sa.Integer(), nullable=False),
    *_floats('count', 'nll_sum', 'nll_sq_sum', 'nll_clipped_sum', 'brier_sum', 'brier_sq_sum', 'brier_clipped_sum',
            'nll_active_sum', 'brier_active_sum'),
    sa.PrimaryKeyConstraint(*BUCKET_KEY, 'active_version', name=op.f('pk_shadow_pair_stats'))
    )
    op.create_table('shadow_pair_bins',
    *_bucket_key(),
    sa.Column('active_version', sa.Integer(), nullable=False),
    sa.Column('side', sa.Integer(), nullable=False),
    sa.Column('bin', sa.Integer(), nullable=False),
    *_floats('count', 'confidence_sum', 'correct_sum'),
    sa.PrimaryKeyConstraint(*BUCKET_KEY, 'active_version', 'side', 'bin', name=op.f('pk_shadow_pair_bins'))
    )
    op.create_table('shadow_evidence',
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('calibrator_version', sa.Integer(), nullable=False),
    sa.Column('active_version', sa.Integer(), nullable=False),
    *_floats('count', 'nll_sum', 'nll_sq_sum', 'nll_clipped_sum', 'nll_clipped_sq_sum'),
    sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'active_version',
                            name=op.f('pk_shadow_evidence'))
    )


def downgrade() -> None:
    op.drop_table('shadow_evidence')
    op.drop_table('shadow_pair_bins')
    op.drop_table('shadow_pair_stats')
    op.drop_table('shadow_calibrators')
