"""10-minute, 6-hour and week roll-up levels; roll-ups of the conformal and decision statistics

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-04

Self-contained (a migration keeps meaning what it meant when written). The calibration roll-up tables are
keyed by ``span`` already: upgrade back-fills the new levels with one INSERT … SELECT … GROUP BY per table and
span — 600 s from the fine buckets, 21600 s from the hour rows, 604800 s (weeks from Thursday 00:00 UTC, the
epoch's weekday) from the day rows — exact, every sum is on its 2^-b grid since 0004. A table of ``OPTIONAL``
is back-filled only if it exists (another branch's roll-up that ``add_sums`` also writes). New tables
``conformal_stats_rollup`` and ``decision_stats_rollup`` (``RollupKey``), filled at all five spans from the
fine rows after the cost sums are put on their 2^-20 grid. Downgrade drops those two tables and deletes the
rows of the new spans (the gridded cost sums stay: a change < 2^-20 per row).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# new span → the level it is summed from (None: the fine table)
NEW_SPANS = ((600, None), (21600, 3600), (604800, 86400))
# fine table → (extra key columns, summed columns)
TABLES = {
    'calibration_stats': (('bin',), ('count', 'confidence_sum', 'correct_sum')),
    'calibration_class_stats': (('class_index', 'bin'), ('count', 'prob_sum', 'label_sum')),
    'calibration_totals': ((), ('count', 'nll_sum', 'brier_sum')),
    'prediction_counts': ((), ('count',)),
    'prediction_confidence_stats': (('bin',), ('count', 'confidence_sum')),
}
OPTIONAL = {
    'calibration_slice_stats': (('slice_key', 'slice_value', 'bin'), ('count', 'confidence_sum', 'correct_sum')),
}
KEY = ('model', 'version', 'calibrator_version')
ALL_SPANS = (600, 3600, 21600, 86400, 604800)
NEW_TABLES = {
    'conformal_stats': (('conformal_version', 'coverage_ppm'), ('count', 'covered_sum', 'set_size_sum')),
    'decision_stats': (('cost_matrix_version', 'min_confidence_ppm'),
                       ('count', 'abstained_sum', 'accepted_correct_sum', 'costed_count', 'expected_cost_sum',
                        'realised_cost_sum', 'cost_gap_sq_sum')),
}
BITS = {'expected_cost_sum': 20, 'realised_cost_sum': 20, 'cost_gap_sq_sum': 20}


def _floored(dialect: str, span: int) -> str:
    """SQL for the bucket floored to ``span`` seconds since the epoch (UTC), in the column's storage form."""
    if dialect == 'postgresql':
        return f'to_timestamp(floor(extract(epoch from bucket) / {span}) * {span})'
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here)
    return (f"strftime('%Y-%m-%d %H:%M:%S.000000', "
            f"(CAST(strftime('%s', bucket) AS INTEGER) / {span}) * {span}, 'unixepoch')")


def _fill(dialect: str, fine: str, extra: tuple[str, ...], sums: tuple[str, ...], span: int,
          source: int | None) -> None:
    """INSERT the ``span`` rows of ``fine``'s roll-up, summed from the fine rows or the ``source`` level."""
    src = fine if source is None else f'{fine}_rollup'
    where = '' if source is None else f' WHERE span = {source}'
    floored = _floored(dialect, span)
    keys = ', '.join((*KEY, *extra))
    op.execute(
        f"INSERT INTO {fine}_rollup ({', '.join((*KEY, 'span', 'bucket', *extra, *sums))}) "
        f"SELECT {', '.join(KEY)}, {span}, {floored}, {', '.join(extra) + ', ' if extra else ''}"
        f"{', '.join(f'sum({c})' for c in sums)} FROM {src}{where} GROUP BY {keys}, {floored}"
    )


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    tables = {**TABLES, **{t: v for t, v in OPTIONAL.items() if inspector.has_table(f'{t}_rollup')}}
    for fine, (extra, sums) in tables.items():
        for span, source in NEW_SPANS:
            _fill(bind.dialect.name, fine, extra, sums, span, source)
    for fine, (extra, sums) in NEW_TABLES.items():
        op.create_table(
            f'{fine}_rollup',
            sa.Column('model', sa.String(length=128), nullable=False),
            sa.Column('version', sa.Integer(), nullable=False),
            sa.Column('calibrator_version', sa.Integer(), nullable=False),
            sa.Column('span', sa.Integer(), nullable=False),
            sa.Column('bucket', sa.DateTime(timezone=True), nullable=False),
            *[sa.Column(c, sa.Integer(), nullable=False) for c in extra],
            *[sa.Column(c, sa.Float(), nullable=False) for c in sums],
            sa.PrimaryKeyConstraint(*KEY, 'span', 'bucket', *extra, name=op.f(f'pk_{fine}_rollup')),
        )
        grid = [f'{c} = round({c} * {2.0 ** BITS[c]!r}) / {2.0 ** BITS[c]!r}' for c in sums if c in BITS]
        if grid:
            op.execute(f"UPDATE {fine} SET {', '.join(grid)}")
        for span in ALL_SPANS:
            _fill(bind.dialect.name, fine, extra, sums, span, None)


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for fine in reversed(list(NEW_TABLES)):
        op.drop_table(f'{fine}_rollup')
    for fine in [*TABLES, *OPTIONAL]:
        if inspector.has_table(f'{fine}_rollup'):
            op.execute(f"DELETE FROM {fine}_rollup WHERE span IN ({', '.join(str(s) for s, _ in NEW_SPANS)})")
