"""10-minute, 6-hour and week roll-up levels (same ``…_rollup`` tables, new ``span`` values)

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-04

Self-contained (a migration keeps meaning what it meant when written). No table changes: the roll-up tables
are keyed by ``span`` already. Upgrade back-fills the new levels with one INSERT … SELECT … GROUP BY per
table and span: 600 s from the fine buckets, 21600 s from the hour rows, 604800 s (weeks from Thursday 00:00
UTC, the epoch's weekday) from the day rows — exact, every sum is on its 2^-b grid since 0004. A table of
``OPTIONAL`` is back-filled only if it exists (another branch's roll-up that ``add_sums`` also writes).
Downgrade deletes the rows of the new spans.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0004'
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


def _floored(dialect: str, span: int) -> str:
    """SQL for the bucket floored to ``span`` seconds since the epoch (UTC), in the column's storage form."""
    if dialect == 'postgresql':
        return f'to_timestamp(floor(extract(epoch from bucket) / {span}) * {span})'
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here)
    return (f"strftime('%Y-%m-%d %H:%M:%S.000000', "
            f"(CAST(strftime('%s', bucket) AS INTEGER) / {span}) * {span}, 'unixepoch')")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    tables = {**TABLES, **{t: v for t, v in OPTIONAL.items() if inspector.has_table(f'{t}_rollup')}}
    for fine, (extra, sums) in tables.items():
        for span, source in NEW_SPANS:
            src = fine if source is None else f'{fine}_rollup'
            where = '' if source is None else f' WHERE span = {source}'
            floored = _floored(bind.dialect.name, span)
            keys = ', '.join((*KEY, *extra))
            op.execute(
                f"INSERT INTO {fine}_rollup ({', '.join((*KEY, 'span', 'bucket', *extra, *sums))}) "
                f"SELECT {', '.join(KEY)}, {span}, {floored}, {', '.join(extra) + ', ' if extra else ''}"
                f"{', '.join(f'sum({c})' for c in sums)} FROM {src}{where} GROUP BY {keys}, {floored}"
            )


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for fine in [*TABLES, *OPTIONAL]:
        if inspector.has_table(f'{fine}_rollup'):
            op.execute(f"DELETE FROM {fine}_rollup WHERE span IN ({', '.join(str(s) for s, _ in NEW_SPANS)})")
