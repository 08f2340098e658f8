"""slices: admitted tag values per (model, key) and per-slice calibration statistics with roll-ups;
request tags stored once (prediction_tags) instead of in every prediction row

Revision ID: 0006
Revises: 0004 (in the slices branch; the lead re-chains after 0005 at merge)
Create Date: 2026-12-04

Self-contained, like 0004. Slices: new tables only (labels committed before slices existed are not
back-filled). Tags: ``predictions.tags`` (a JSON copy per row) becomes ``predictions.tags_id``, the first
128 bits of the SHA-256 of the canonical JSON (sorted keys, orjson) of a ``prediction_tags`` row; existing
rows are moved in chunks. Downgrade copies the tags back into every row.
"""
import hashlib
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
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
    _tags_once()


def _tags_once() -> None:
    op.create_table(
        'prediction_tags',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('tags', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_tags')),
    )
    op.add_column('predictions', sa.Column('tags_id', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    predictions = sa.table('predictions', sa.column('id', sa.String()), sa.column('tags', sa.JSON()),
                           sa.column('tags_id', sa.String()))
    tags = sa.table('prediction_tags', sa.column('id', sa.String()), sa.column('tags', sa.JSON()))
    last = ''
    while True:  # keyset pagination: memory stays bounded on a big prediction log
        chunk = conn.execute(sa.select(predictions.c.id, predictions.c.tags)
                             .where(predictions.c.tags.is_not(None), predictions.c.id > last)
                             .order_by(predictions.c.id).limit(5000)).all()
        if not chunk:
            break
        keys = {}
        for pid, value in chunk:
            if isinstance(value, dict):
                keys[pid] = (hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32], value)
        known = set(conn.execute(sa.select(tags.c.id).where(tags.c.id.in_({k for k, _ in keys.values()}))).scalars())
        new = {k: v for k, v in keys.values() if k not in known}
        if new:
            conn.execute(tags.insert(), [{'id': k, 'tags': v} for k, v in sorted(new.items())])
        if keys:
            conn.execute(predictions.update().where(predictions.c.id == sa.bindparam('pid'))
                         .values(tags_id=sa.bindparam('key')), [{'pid': p, 'key': k} for p, (k, _) in keys.items()])
        last = chunk[-1][0]
    op.drop_column('predictions', 'tags')


def downgrade() -> None:
    op.add_column('predictions', sa.Column('tags', sa.JSON(), nullable=True))
    op.execute('UPDATE predictions SET tags = (SELECT t.tags FROM prediction_tags t WHERE t.id = predictions.tags_id) '
               'WHERE tags_id IS NOT NULL')
    op.drop_column('predictions', 'tags_id')
    op.drop_table('prediction_tags')
    op.drop_table('calibration_slice_stats_rollup')
    op.drop_table('calibration_slice_stats')
    op.drop_table('slice_values')
