"""The sandbox service: market data preparation and isolated execution of
untrusted backtest code (see isolation.py for every layer in one place)."""
