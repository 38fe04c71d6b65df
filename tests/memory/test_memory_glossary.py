"""Glossary expansion before embedding (services/memory/glossary.py)."""
from __future__ import annotations

from services.memory.glossary import GlossaryEmbedder, expand


def test_known_symbols_and_indicators_get_their_names():
    text = expand("RSI(14) below 30 on TSLA and BTC-USD, exit on the SMA; GC=F and ^NSEI too")
    assert "RSI [relative strength index" in text and "(14)" in text
    assert "TSLA [Tesla stock]" in text
    assert "BTC [Bitcoin crypto]-USD" in text
    assert "SMA [simple moving average]" in text
    assert "GC=F [gold futures]" in text and "^NSEI [NIFTY 50 India index]" in text


def test_only_whole_tokens_are_expanded():
    assert expand("SMART money, MAD ideas, Sol the cat, BTCUSD, KOALA") == "SMART money, MAD ideas, Sol the cat, BTCUSD, KOALA"
    assert expand("SMA") == "SMA [simple moving average]"  # not "S" + "MA [moving average]"
    assert expand("GOOGL") == "GOOGL [Google Alphabet stock]"  # longest match wins over GOOG


def test_embedder_wrapper_embeds_the_expanded_text():
    seen = []

    class Inner:
        dims = 3

        def embed(self, text, memory_action=None):
            seen.append(text)
            return [0.0]

        def embed_batch(self, texts, memory_action="add"):
            seen.extend(texts)
            return [[0.0]] * len(texts)

    wrapped = GlossaryEmbedder(Inner())
    wrapped.embed("buy SPY", "search")
    wrapped.embed_batch(["sell QQQ"])
    assert seen == ["buy SPY [S&P 500 index ETF fund]", "sell QQQ [Nasdaq 100 index ETF fund]"]
    assert wrapped.dims == 3
