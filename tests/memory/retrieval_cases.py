"""Retrieval-quality cases: 50 strategy patterns as the Code Executor stores
them (what the strategy was, asset, timeframe, results or failure reason),
and 20 queries written as paraphrases of 20 of them (different words, no
copied phrases where avoidable), each naming the pattern it should find."""

PATTERNS: dict[str, str] = {
    "ma_dip_btc": "Entry when BTC-USD closes 5% below its 20-day simple moving average; take profit 7%, stop loss 5%. "
                  "BTC-USD 1d 2024. Completed: total return 14.2%, Sharpe 1.05, max drawdown -11.3%, 9 trades.",
    "ma_cross_btc": "Entry when BTC-USD close crosses above the 20-day SMA, exit on the cross back below. "
                    "BTC-USD 1d 2023. Completed: total return 38.0%, max drawdown -15.1%, 17 trades.",
    "golden_cross_spy": "Golden cross: 50-day SMA crosses above the 200-day SMA on SPY, exit on the death cross. "
                        "SPY 1d 2010-2024. Completed: total return 210%, 6 trades.",
    "ema_cross_eth": "EMA 12 crosses above EMA 26 on ETH-USD 4h bars, exit on the opposite cross. "
                     "Completed: total return 22.4%, win rate 41%, 63 trades.",
    "rsi_oversold_btc": "RSI(14) below 30 entry, exit when RSI(14) rises above 70, Wilder smoothing. BTC-USD 1d 2024. "
                        "Completed: total return 18.2%, max drawdown -9.5%, 5 trades.",
    "rsi_overbought_short_qqq": "Short QQQ when RSI(14) is above 80, cover when it falls below 50. QQQ 1d 2019-2024. "
                                "Completed: total return -6.1%, 11 trades.",
    "macd_signal_aapl": "MACD(12,26,9) line crosses above its signal line on AAPL daily, exit on the cross below. "
                        "Completed: total return 27.5%, 24 trades.",
    "macd_zero_msft": "MACD line crosses above zero on MSFT daily, exit when it crosses below zero. "
                      "Completed: total return 31.2%, 8 trades.",
    "bb_lower_eth": "Buy when ETH-USD closes below the lower Bollinger Band (20, 2), exit at the middle band. "
                    "ETH-USD 1d 2024. Completed: total return 9.8%, win rate 67%, 12 trades.",
    "bb_squeeze_sol": "Bollinger Band width at a 6-month low, then a close above the upper band on SOL-USD. "
                      "Completed: total return 55.0%, 4 trades.",
    "donchian_breakout_gold": "20-day Donchian channel breakout on GLD, exit on a 10-day low (turtle rules). "
                              "GLD 1d 2015-2024. Completed: total return 41%, 29 trades.",
    "atr_trailing_tsla": "Enter TSLA on a 50-day high, trail a stop 3x ATR(14) below the highest close. "
                         "Completed: total return 64%, max drawdown -28%, 7 trades.",
    "stoch_oversold_eurusd": "Stochastic %K crosses above %D while both are below 20 on EURUSD 1h. "
                             "Completed: total return 3.2%, 140 trades.",
    "volume_spike_nvda": "Enter NVDA when daily volume is 3x its 20-day average volume and the close is up. "
                         "Completed: total return 48%, 15 trades.",
    "gap_down_fade_spy": "Buy SPY at the open after a gap down of more than 1%, sell at the close the same day. "
                         "Completed: total return 12.5%, win rate 58%, 52 trades.",
    "momentum_12m_etf": "Each month hold the 3 ETFs with the highest 12-month total return from a universe of 10 sector ETFs. "
                        "Completed: CAGR 9.1%, max drawdown -24%.",
    "mean_rev_zscore_pairs": "Pairs trade KO versus PEP: short the spread when its 60-day z-score is above 2, "
                             "long below -2, exit at 0. Completed: total return 8.4%, 19 trades.",
    "vwap_reclaim_amzn": "Intraday long when AMZN reclaims VWAP after opening below it, 5-minute bars, exit at the close. "
                         "Completed: total return 6.3%, 88 trades.",
    "ichimoku_btc": "Long BTC-USD when price is above the Ichimoku cloud and Tenkan-sen crosses above Kijun-sen. "
                    "Completed: total return 72%, 10 trades.",
    "adx_trend_crude": "Long crude oil (CL=F) when ADX(14) is above 25 and +DI is above -DI, exit when ADX falls below 20. "
                       "Completed: total return 19%, 13 trades.",
    "week52_high_breakout": "Buy stocks making a new 52-week high, stop loss 8% below the entry price. "
                            "Completed: total return 23%, win rate 38%.",
    "turn_of_month_spy": "Hold SPY from the 4th-last trading day of each month through the 3rd trading day of the next. "
                         "Completed: total return 61% over 2005-2024, exposure 33%.",
    "dca_weekly_btc": "Buy $100 of BTC-USD every Monday, never sell (dollar-cost averaging). "
                      "2020-2024. Completed: total return 180%.",
    "grid_eth": "Grid trading on ETH-USD: buy and sell orders spaced 1% apart inside a 1,800-2,400 range. "
                "Completed: total return 11%, 410 trades.",
    "rsi2_connors_spy": "RSI(2) below 10 while SPY is above its 200-day SMA, exit when the close is above the 5-day SMA. "
                        "Completed: total return 44%, win rate 74%, 120 trades.",
    "keltner_breakout_btc": "Close above the Keltner Channel upper band (EMA 20 + 2x ATR 10) on BTC-USD, "
                            "exit at the EMA 20. Completed: total return 33%, 14 trades.",
    "parabolic_sar_eth": "Parabolic SAR (0.02, 0.2) flips below price on ETH-USD daily: go long, exit on the flip above. "
                         "Completed: total return -4.0%, 37 trades.",
    "williams_r_aapl": "Williams %R(14) drops below -90 then rises back above -80 on AAPL: buy, exit after 10 bars. "
                       "Completed: total return 15%, 21 trades.",
    "cci_gold": "CCI(20) crosses up through -100 on GC=F gold futures, exit when CCI crosses below +100. "
                "Completed: total return 7.7%, 18 trades.",
    "obv_divergence_btc": "Bullish on-balance volume divergence on BTC-USD: price makes a lower low while OBV makes a higher low. "
                          "Completed: total return 26%, 6 trades.",
    "heikin_ashi_trend_sol": "Three consecutive green Heikin-Ashi candles on SOL-USD 4h: enter long, exit on the first red candle. "
                             "Completed: total return 40%, 58 trades.",
    "opening_range_breakout_qqq": "30-minute opening range breakout on QQQ, stop at the opening range low, exit at the close. "
                                  "Completed: total return 9.0%, 150 trades.",
    "inside_bar_eurusd": "Inside bar breakout on EURUSD daily: buy stop above the mother bar high. "
                         "Completed: total return 2.1%, 45 trades.",
    "engulfing_btc": "Bullish engulfing candle after three red daily candles on BTC-USD. "
                     "Completed: total return 12%, win rate 55%, 20 trades.",
    "sma_slope_pullback_eth": "Only long when the 100-day SMA slopes up; enter ETH-USD on a pullback to the 20-day EMA. "
                              "Completed: total return 29%, 11 trades.",
    "vol_target_spy": "Volatility targeting on SPY: scale the position to 10% annualised volatility, rebalance daily. "
                      "Completed: Sharpe 0.9, max drawdown -14%.",
    "risk_parity": "Risk parity portfolio of stocks (SPY), bonds (TLT) and gold (GLD), rebalanced monthly. "
                   "Completed: CAGR 6.8%, max drawdown -19%.",
    "dual_momentum": "Dual momentum: hold SPY or EFA, whichever has the higher 12-month return, if it beats T-bills, else AGG. "
                     "Completed: CAGR 10.2%.",
    "fib_retracement_btc": "Buy BTC-USD at the 61.8% Fibonacci retracement of the last swing, stop below the swing low. "
                           "Completed: total return 17%, 8 trades.",
    "supertrend_nifty": "Supertrend(10, 3) flips to long on the NIFTY 50 index (^NSEI), exit on the flip to short. "
                        "Completed: total return 35%, 16 trades.",
    "halving_cycle_btc": "Buy BTC-USD 6 months before each block reward halving and sell 12 months after it. "
                         "Completed: total return 900% over 2015-2022, 2 trades.",
    "weekend_effect_eth": "Buy ETH-USD at Friday's close and sell at Monday's close every week. "
                          "Completed: total return -3.5%, 104 trades.",
    "failed_rsi_eth_2022": "RSI(14) below 30 dip buying on ETH-USD 1d 2022. Completed but poor: total return -41%, "
                           "max drawdown -48%, entries kept catching a falling market in the bear trend.",
    "failed_data_doge": "SMA crossover on DOGE-USD 1h 2019. Failed: no price data for the requested symbol and range.",
    "failed_parse_rule": "Entry rule 'enter when the moon is full' on BTC-USD. Failed: unsupported phrase, "
                         "the rule grammar knows price, moving averages, RSI, MACD and Bollinger Bands.",
    "mfi_oversold_ltc": "Money Flow Index(14) below 20 on LTC-USD daily: buy, exit above 80. "
                        "Completed: total return 13%, 9 trades.",
    "triple_ema_xrp": "Triple EMA alignment EMA 8 > EMA 21 > EMA 55 on XRP-USD: long while aligned. "
                      "Completed: total return 58%, 12 trades.",
    "aroon_ada": "Aroon Up(25) crosses above Aroon Down on ADA-USD daily: long, exit on the opposite cross. "
                 "Completed: total return 21%, 14 trades.",
    "pivot_bounce_spy": "Bounce off the daily pivot support S1 on SPY 15-minute bars, target the pivot point. "
                        "Completed: total return 5.5%, win rate 61%, 96 trades.",
    "chandelier_exit_aapl": "Enter AAPL on an EMA 20 / EMA 50 cross, exit with a chandelier stop 3x ATR(22) below the 22-day high. "
                            "Completed: total return 39%, 9 trades.",
}

QUERIES: list[tuple[str, str]] = [
    ("buy bitcoin after it falls five percent under the twenty day average price", "ma_dip_btc"),
    ("fifty day average rising through the two hundred day average on the S&P 500 fund", "golden_cross_spy"),
    ("purchase BTC when relative strength is deeply oversold and sell once it is overbought", "rsi_oversold_btc"),
    ("Apple trades triggered by the moving average convergence divergence crossing its trigger line", "macd_signal_aapl"),
    ("ether closing beneath the bottom volatility band, taking profit at the centre line", "bb_lower_eth"),
    ("turtle-style channel breakout trading on the gold fund", "donchian_breakout_gold"),
    ("Nvidia unusual trading activity surge on an up day", "volume_spike_nvda"),
    ("fade a weak opening in the S&P ETF and close out before the session ends", "gap_down_fade_spy"),
    ("rotate every month into the funds with the strongest one-year performance", "momentum_12m_etf"),
    ("Coca-Cola against Pepsi spread statistical arbitrage", "mean_rev_zscore_pairs"),
    ("invest a fixed amount in bitcoin each week whatever the price", "dca_weekly_btc"),
    ("two-period relative strength pullbacks while the index is in a long-term uptrend", "rsi2_connors_spy"),
    ("calendar strategy holding the index around the end and beginning of each month", "turn_of_month_spy"),
    ("Nasdaq 100 fund breaking out of the first half hour's range", "opening_range_breakout_qqq"),
    ("trade bitcoin's four-year supply cut cycle", "halving_cycle_btc"),
    ("which oversold ethereum dip-buying strategy lost heavily in the 2022 crash", "failed_rsi_eth_2022"),
    ("a rule was rejected because the phrase about the lunar cycle was not understood", "failed_parse_rule"),
    ("Tesla trend following with a volatility-based trailing exit", "atr_trailing_tsla"),
    ("euro dollar hourly stochastic oscillator turning up from oversold", "stoch_oversold_eurusd"),
    ("hold ether over the weekend: buy at the end of the week, sell when the week starts", "weekend_effect_eth"),
]

assert len(PATTERNS) == 50 and len(QUERIES) == 20 and all(k in PATTERNS for _, k in QUERIES)
