"""Balance of building meters (ОДПУ) against apartment meters (ИПУ): numba kernels.

See `scada.balance.kernels` for the definitions; `scada.balance.reference`
holds the same maths in plain Python for the tests.
"""

from scada.balance.kernels import (
    BACKFILLED,
    CALCULATED,
    MANUAL,
    MEASURED,
    MISSING,
    SOURCE_NAMES,
    BalanceArrays,
    aggregate,
    aggregate_balance,
    balance,
    interval_volumes,
    source_of,
)

__all__ = [
    "BACKFILLED",
    "CALCULATED",
    "MANUAL",
    "MEASURED",
    "MISSING",
    "SOURCE_NAMES",
    "BalanceArrays",
    "aggregate",
    "aggregate_balance",
    "balance",
    "interval_volumes",
    "source_of",
]
