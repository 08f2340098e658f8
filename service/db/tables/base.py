"""Shared declarative base and the key mixins of the additive statistics tables. Every change here needs an
Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

class BucketKey:
    """The key shared by every per-bucket statistics table: (model, version, calibrator_version, bucket)."""

    # sort_order: the key comes first, as in the migrations (the primary key's column order is its index order)
    model: Mapped[str] = mapped_column(String(128), primary_key=True, sort_order=-4)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-3)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-2)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, sort_order=-1)

class RollupKey:
    """The key of the hour/day roll-ups (migration 0004): the bucket key plus ``span``, the roll-up width in
    seconds (3600 or 86400). A roll-up row is the sum of the fine buckets whose start lies in
    [bucket, bucket + span); it is written by the same additive upsert, in the same transaction."""

    model: Mapped[str] = mapped_column(String(128), primary_key=True, sort_order=-5)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-4)
    calibrator_version: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-3)
    span: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-2)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, sort_order=-1)
