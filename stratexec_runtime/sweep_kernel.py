"""The numba kernel of stratexec_runtime.sweep: every column's equity from vectorbt's order records.

A module of its own so that importing stratexec_runtime (codegen, the orchestrator) does not import
numba and vectorbt; the sandbox's warm parent compiles it before it forks (services/sandbox/warm_parent.py).
"""
from __future__ import annotations

from numba import njit
from vectorbt.utils.math_ import add_nb


@njit(cache=True, nogil=True)
def equity_nb(close, records, initial, out):
    """The value of every column at every bar from the order records, into ``out`` (columns x (1 + bars)).

    The arithmetic of vectorbt's Portfolio.value() for ungrouped columns, in one pass and without the
    bars x columns intermediates: per bar the asset and cash flows of its orders (add_nb), cash and
    position carried with add_nb from the initial cash, value = cash + close * position (close taken as
    0 when flat). ``records`` must be in column order, and in bar order within a column (as the
    simulation writes them); returns how many records were used, so a caller can check that all were."""
    used = 0
    total = records.shape[0]
    for c in range(out.shape[0]):
        out[c, 0] = initial
        cash = initial
        position = 0.0
        for i in range(close.shape[0]):
            asset_flow = 0.0
            cash_flow = 0.0
            while used < total and records[used]["col"] == c and records[used]["idx"] == i:
                size = records[used]["size"]
                if records[used]["side"] == 1:  # OrderSide.Sell
                    size *= -1
                asset_flow = add_nb(asset_flow, size)
                cash_flow = add_nb(cash_flow, -size * records[used]["price"] - records[used]["fees"])
                used += 1
            cash = add_nb(cash, cash_flow)
            position = add_nb(position, asset_flow)
            out[c, i + 1] = cash + (close[i] if position != 0 else 0.0) * position
    return used
