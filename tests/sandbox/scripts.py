"""Scripts the sandbox tests run."""

EXAMPLE = '''\
"""Enter on a 5% drop from the 20-day SMA; take profit 7%, stop loss 5%."""
import argparse
import pandas as pd
import vectorbt as vbt
from stratexec_runtime import load_prices, report
PARAMS = {"symbols": ["BTC-USD"], "benchmark": "BTC-USD", "timeframe": "1d", "start_date": "2024-01-01", "end_date": "2024-12-31", "initial_capital": 10000.0, "fees": 0.001, "slippage": 0.0005, "exposure": 1.0}
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data")
    args = parser.parse_args(argv)
    prices = load_prices(args.data, PARAMS["symbols"] + [PARAMS["benchmark"]], PARAMS["start_date"], PARAMS["end_date"], PARAMS["timeframe"])
    ohlc = prices["BTC-USD"]; close = ohlc["close"]
    sma_20 = close.rolling(20).mean()
    entries = close <= 0.95 * sma_20
    exits = pd.Series(False, index=close.index)
    pf = vbt.Portfolio.from_signals(close, entries, exits, open=ohlc["open"], high=ohlc["high"], low=ohlc["low"], tp_stop=0.07, sl_stop=0.05, size=PARAMS["exposure"], size_type="percent", init_cash=PARAMS["initial_capital"], fees=PARAMS["fees"], slippage=PARAMS["slippage"], freq="1D")
    benchmark_pf = vbt.Portfolio.from_holding(prices[PARAMS["benchmark"]]["close"], init_cash=PARAMS["initial_capital"], fees=PARAMS["fees"], slippage=PARAMS["slippage"], freq="1D")
    report(pf, benchmark_pf, PARAMS["initial_capital"])
if __name__ == "__main__":
    main()
'''

# Prints a perfect-looking result on stdout and exits 0 without using the channel.
FAKE_STDOUT_RESULT = '''\
import json
fake = {"metrics": {"total_return": 999.0, "trades": 42}, "equity": [["2024-01-01", 10000.0], ["2024-12-31", 109900.0]], "benchmark_equity": [], "trades": []}
print(json.dumps(fake))
'''

INFINITE_LOOP = '''\
x = 0
while True:
    x += 1
'''

CRASH = '''\
import pandas as pd
raise ValueError("strategy exploded on purpose")
'''

OUTPUT_FLOOD = '''\
for i in range(200000):
    print("flood line", i, "x" * 80)
'''
