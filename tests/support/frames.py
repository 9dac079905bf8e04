"""Frame comparison for big frames (pandas' assert_frame_equal boxes every timestamp of a tz-aware index)."""

from __future__ import annotations

import pandas as pd


def assert_same_frame(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Assert equal values, columns, dtypes and index (name, dtype, values); fast on millions of rows."""
    assert left.index.name == right.index.name, (left.index.name, right.index.name)
    assert left.index.dtype == right.index.dtype, (left.index.dtype, right.index.dtype)
    assert list(left.columns) == list(right.columns)
    assert list(left.dtypes) == list(right.dtypes)
    if not left.equals(right):  # show where they differ
        pd.testing.assert_frame_equal(left, right)
