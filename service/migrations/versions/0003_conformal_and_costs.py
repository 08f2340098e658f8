"""conformal calibrators, cost matrices, served sets/decisions, and their per-bucket statistics

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Self-contained on purpose (no imports from service/): the migrations directory may move, and another
branch adds 0004 beside it.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("state = 'active'")


def _bucket_key() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('calibrator_version', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('conformal_calibrators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('calibrator_version', sa.Integer(), nullable=False),
    sa.Column('conformal_version', sa.Integer(), nullable=False),
    sa.Column('score', sa.String(length=16), nullable=False),
    sa.Column('mondrian', sa.Boolean(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('n_fit', sa.Integer(), nullable=False),
    sa.Column('fit_window', sa.JSON(), nullable=True),
    sa.Column('evaluation', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conformal_calibrators')),
    sa.UniqueConstraint('model', 'version', 'conformal_version', name='uq_conformal_calibrators_version')
    )
    with op.batch_alter_table('conformal_calibrators', schema=None) as batch_op:
        batch_op.create_index('uq_conformal_calibrators_one_active', ['model', 'version', 'calibrator_version'],
                              unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE)

    op.create_table('cost_matrices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('cost_matrix_version', sa.Integer(), nullable=False),
    sa.Column('matrix', sa.JSON(), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('n_classes', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cost_matrices')),
    sa.UniqueConstraint('model', 'cost_matrix_version', name='uq_cost_matrices_version')
    )
    with op.batch_alter_table('cost_matrices', schema=None) as batch_op:
        batch_op.create_index('uq_cost_matrices_one_active', ['model'], unique=True,
                              sqlite_where=ACTIVE, postgresql_where=ACTIVE)

    op.create_table('conformal_stats',
    *_bucket_key(),
    sa.Column('conformal_version', sa.Integer(), nullable=False),
    sa.Column('coverage_ppm', sa.Integer(), nullable=False),
    sa.Column('count', sa.Float(), nullable=False),
    sa.Column('covered_sum', sa.Float(), nullable=False),
    sa.Column('set_size_sum', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'bucket', 'conformal_version', 'coverage_ppm',
                            name=op.f('pk_conformal_stats'))
    )
    op.create_table('decision_stats',
    *_bucket_key(),
    sa.Column('cost_matrix_version', sa.Integer(), nullable=False),
    sa.Column('min_confidence_ppm', sa.Integer(), nullable=False),
    sa.Column('count', sa.Float(), nullable=False),
    sa.Column('abstained_sum', sa.Float(), nullable=False),
    sa.Column('accepted_correct_sum', sa.Float(), nullable=False),
    sa.Column('costed_count', sa.Float(), nullable=False),
    sa.Column('expected_cost_sum', sa.Float(), nullable=False),
    sa.Column('realised_cost_sum', sa.Float(), nullable=False),
    sa.Column('cost_gap_sq_sum', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'version', 'calibrator_version', 'bucket', 'cost_matrix_version',
                            'min_confidence_ppm', name=op.f('pk_decision_stats'))
    )
    op.create_table('prediction_decisions',
    sa.Column('prediction_id', sa.String(length=36), nullable=False),
    sa.Column('conformal_version', sa.Integer(), nullable=True),
    sa.Column('coverage_ppm', sa.Integer(), nullable=True),
    sa.Column('set_mask', sa.LargeBinary(), nullable=True),
    sa.Column('cost_matrix_version', sa.Integer(), nullable=True),
    sa.Column('min_confidence_ppm', sa.Integer(), nullable=True),
    sa.Column('action', sa.Integer(), nullable=True),
    sa.Column('expected_cost', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'],
                            name=op.f('fk_prediction_decisions_prediction_id_predictions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('prediction_id', name=op.f('pk_prediction_decisions'))
    )


def downgrade() -> None:
    op.drop_table('prediction_decisions')
    op.drop_table('decision_stats')
    op.drop_table('conformal_stats')
    with op.batch_alter_table('cost_matrices', schema=None) as batch_op:
        batch_op.drop_index('uq_cost_matrices_one_active', sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.drop_table('cost_matrices')
    with op.batch_alter_table('conformal_calibrators', schema=None) as batch_op:
        batch_op.drop_index('uq_conformal_calibrators_one_active', sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.drop_table('conformal_calibrators')
