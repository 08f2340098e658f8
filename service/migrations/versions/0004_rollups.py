"""hour and day roll-ups of the per-bucket statistics; sums on their 2^-b grid

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01

Self-contained: the table list, grid and bucket arithmetic are repeated here on purpose (a migration must
keep meaning what it meant when it was written, whatever ``service.db`` becomes).

Upgrade: create the five ``…_rollup`` tables; put the existing non-integer sums on their 2^-b grid (the
grid ``service.db.stats.QUANTUM_BITS`` writes from now on, so that every later sum is exact); fill the roll-ups
from the fine buckets with one INSERT … SELECT … GROUP BY per table and span. Downgrade drops the roll-ups
(the quantised sums stay: they differ from the old ones by < 2^-24 per row).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPANS = (3600, 86400)
BITS = {'confidence_sum': 28, 'prob_sum': 28, 'brier_sum': 28, 'nll_sum': 24}
# fine table → (extra key columns, summed columns)
TABLES = {
    'calibration_stats': (('bin',), ('count', 'confidence_sum', 'correct_sum')),
    'calibration_class_stats': (('class_index', 'bin'), ('count', 'prob_sum', 'label_sum')),
    'calibration_totals': ((), ('count', 'nll_sum', 'brier_sum')),
    'prediction_counts': ((), ('count',)),
    'prediction_confidence_stats': (('bin',), ('count', 'confidence_sum')),
}
KEY = ('model', 'version', 'calibrator_version')


def _floored(dialect: str, span: int) -> str:
    """SQL for the bucket floored to ``span`` seconds since the epoch (UTC), in the column's storage form."""
    if dialect == 'postgresql':
        return f'to_timestamp(floor(extract(epoch from bucket) / {span}) * {span})'
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here)
    return ("substr(bucket, 1, 13) || ':00:00.000000'" if span == 3600
            else "substr(bucket, 1, 10) || ' 00:00:00.000000'")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for fine, (extra, sums) in TABLES.items():
        columns = [
            sa.Column('model', sa.String(length=128), nullable=False),
            sa.Column('version', sa.Integer(), nullable=False),
            sa.Column('calibrator_version', sa.Integer(), nullable=False),
            sa.Column('span', sa.Integer(), nullable=False),
            sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
            *[sa.Column(c, sa.Integer(), nullable=False) for c in extra],
            *[sa.Column(c, sa.Float(), nullable=False) for c in sums],
        ]
        op.create_table(f'{fine}_rollup', *columns,
                        sa.PrimaryKeyConstraint(*KEY, 'span', 'bucket', *extra, name=op.f(f'pk_{fine}_rollup')))
        grid = [f'{c} = round({c} * {2.0 ** BITS[c]!r}) / {2.0 ** BITS[c]!r}' for c in sums if c in BITS]
        if grid:
            op.execute(f"UPDATE {fine} SET {', '.join(grid)}")
        keys = ', '.join((*KEY, *extra))
        for span in SPANS:
            floored = _floored(dialect, span)
            op.execute(
                f"INSERT INTO {fine}_rollup ({', '.join((*KEY, 'span', 'bucket', *extra, *sums))}) "
                f"SELECT {', '.join(KEY)}, {span}, {floored}, {', '.join(extra) + ', ' if extra else ''}"
                f"{', '.join(f'sum({c})' for c in sums)} FROM {fine} GROUP BY {keys}, {floored}"
            )


def downgrade() -> None:
    for fine in reversed(list(TABLES)):
        op.drop_table(f'{fine}_rollup')
