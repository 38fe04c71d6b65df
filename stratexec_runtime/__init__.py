"""The small runtime that generated strategy scripts import.

It holds what must not be copied into every script: loading prepared
prices, the execution rules (the fill of every order), the pinned metric
definitions, and the result channel to the sandbox service. Pure pandas and numpy, no service code.
"""
from stratexec_runtime.data import load_prices, resolve_symbol
from stratexec_runtime.execution import order_arrays, plan_trades, target_percents, unfilled
from stratexec_runtime.metrics import compute_metrics
from stratexec_runtime.report import report
from stratexec_runtime.sweep import sweep

__all__ = ["load_prices", "resolve_symbol", "compute_metrics", "report", "plan_trades", "order_arrays", "target_percents", "unfilled", "sweep"]
