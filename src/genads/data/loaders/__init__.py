"""Loaders: one module per input format, each returning a Source for the importer."""

from __future__ import annotations

from genads.data.loaders.amazon import S3RecSource
from genads.data.loaders.recbole import RecBoleSource
from genads.data.loaders.servedlog import ServedLogSource
from genads.data.loaders.tabular import TabularSource, parse_column_map
from genads.data.loaders.tencentgr import TencentGRSource

FORMATS: dict[str, type] = {
    "s3rec": S3RecSource,
    "recbole": RecBoleSource,
    "tencentgr": TencentGRSource,
    "csv": TabularSource,
    "parquet": TabularSource,
    "served-log": ServedLogSource,
}
"""Format name (``genads data import --format``) -> Source class."""

__all__ = ["FORMATS", "RecBoleSource", "S3RecSource", "ServedLogSource", "TabularSource", "TencentGRSource", "parse_column_map"]
