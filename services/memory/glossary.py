"""Domain glossary for embeddings: tickers and indicator abbreviations get
their plain names appended before a text is embedded.

all-MiniLM-L6-v2 knows "Tesla" and "relative strength" but not what "TSLA"
or "RSI(14)" mean, so a pattern stored as "RSI(14) below 30 on TSLA" and a
query for "oversold Tesla" would not meet. Expansion is applied to every
text mem0 embeds (stored memories, updates and queries alike), through
``GlossaryEmbedder``; stored content is returned unchanged. Changing the
glossary changes future vectors only: bump GLOSSARY_VERSION and re-embed
if old and new must rank alike.
"""
from __future__ import annotations

import re

GLOSSARY_VERSION = 1

# Indicators and trading terms (matched case-sensitively, as written in rules).
TERMS: dict[str, str] = {
    "SMA": "simple moving average",
    "EMA": "exponential moving average",
    "MA": "moving average",
    "RSI": "relative strength index momentum oscillator",
    "MACD": "moving average convergence divergence",
    "ATR": "average true range volatility",
    "ADX": "average directional index trend strength",
    "DI": "directional indicator",
    "CCI": "commodity channel index",
    "MFI": "money flow index",
    "OBV": "on-balance volume",
    "VWAP": "volume weighted average price",
    "SAR": "stop and reverse",
    "BB": "Bollinger Bands",
    "TP": "take profit",
    "SL": "stop loss",
    "DCA": "dollar-cost averaging",
    "CAGR": "compound annual growth rate",
    "OHLCV": "open high low close volume",
}

# Symbols: crypto pairs, ETFs, indices and large stocks.
SYMBOLS: dict[str, str] = {
    "BTC": "Bitcoin crypto", "ETH": "Ethereum ether crypto", "SOL": "Solana crypto", "XRP": "Ripple crypto",
    "ADA": "Cardano crypto", "DOGE": "Dogecoin crypto", "LTC": "Litecoin crypto", "BNB": "Binance coin crypto",
    "SPY": "S&P 500 index ETF fund", "QQQ": "Nasdaq 100 index ETF fund", "DIA": "Dow Jones index ETF fund",
    "IWM": "Russell 2000 small caps ETF fund", "GLD": "gold ETF fund", "SLV": "silver ETF fund",
    "TLT": "long-term Treasury bonds ETF fund", "AGG": "aggregate bonds ETF fund", "EFA": "international developed stocks ETF fund",
    "EEM": "emerging markets ETF fund", "VTI": "total US stock market ETF fund", "XLE": "energy sector ETF fund",
    "AAPL": "Apple stock", "MSFT": "Microsoft stock", "TSLA": "Tesla stock", "NVDA": "Nvidia stock",
    "AMZN": "Amazon stock", "GOOGL": "Google Alphabet stock", "GOOG": "Google Alphabet stock", "META": "Meta Facebook stock",
    "NFLX": "Netflix stock", "KO": "Coca-Cola stock", "PEP": "Pepsi PepsiCo stock", "JPM": "JPMorgan stock",
    "EURUSD": "euro US dollar forex", "GBPUSD": "British pound US dollar forex", "USDJPY": "US dollar Japanese yen forex",
    "GC=F": "gold futures", "CL=F": "crude oil futures", "SI=F": "silver futures",
    "^GSPC": "S&P 500 index", "^NDX": "Nasdaq 100 index", "^NSEI": "NIFTY 50 India index",
}

_ALL = {**TERMS, **SYMBOLS}
# Longest first so "GOOGL" wins over "GOOG"; a symbol may carry a quote
# currency ("BTC-USD") or parameters ("RSI(14)"), which stay in place.
_PATTERN = re.compile(
    r"(?<![A-Za-z0-9^=])(" + "|".join(re.escape(k) for k in sorted(_ALL, key=len, reverse=True)) + r")(?![A-Za-z0-9=])"
)


def expand(text: str) -> str:
    """``text`` with each known abbreviation followed by its meaning in brackets."""
    return _PATTERN.sub(lambda m: f"{m.group(1)} [{_ALL[m.group(1)]}]", text)


class GlossaryEmbedder:
    """Wraps a mem0 embedder: same interface, texts expanded first."""

    def __init__(self, inner):
        self.inner = inner

    def embed(self, text, memory_action=None):
        return self.inner.embed(expand(text) if isinstance(text, str) else text, memory_action)

    def embed_batch(self, texts, memory_action="add"):
        return self.inner.embed_batch([expand(t) if isinstance(t, str) else t for t in texts], memory_action)

    def __getattr__(self, name):
        return getattr(self.inner, name)
