"""PSR, DSR and PBO against the papers' worked example and independent implementations."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from services.research import statistics as st


def test_dsr_matches_the_worked_example_of_the_paper():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annualised SR 2.5 over
    # 1,250 daily observations, 100 trials whose annualised Sharpe ratios have variance 0.5, skewness -3,
    # kurtosis 10: E[max SR] = 0.1132 per day and DSR = 0.9004.
    value, sr0 = st.dsr(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert value == pytest.approx(0.9004, abs=5e-5)
    assert st.dsr_words(value, 100) == "DSR 0.90 after 100 trials: not significant at 95%"


def test_psr_matches_quantstats_with_raw_kurtosis():
    rng = np.random.default_rng(3)
    r = pd.Series(rng.standard_t(4, 1500) * 0.01 + 0.0008)
    sr, skew, kurt, n = st.moments(r)
    assert kurt > 3  # fat tails: raw kurtosis, not excess
    assert st.psr(sr, n, skew, kurt) == pytest.approx(qs.stats.probabilistic_ratio(r, base="sharpe"), rel=1e-12)
    # Subtracting 3 from an already excess kurtosis (the old QuantStats bug) gives a different answer.
    assert st.psr(sr, n, skew, kurt - 3) != pytest.approx(st.psr(sr, n, skew, kurt), rel=1e-6)


def test_psr_of_normal_returns_reduces_to_lo():
    sr, n = 0.05, 1000
    lo = 0.5 * (1 + math.erf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr ** 2 / 2) / math.sqrt(2)))
    assert st.psr(sr, n, 0.0, 3.0) == pytest.approx(lo, rel=1e-12)


def brute_force_pbo(returns: np.ndarray, blocks: int) -> float:
    """CSCV as the paper states it, on the raw matrix with pandas (no sufficient statistics)."""
    frame = pd.DataFrame(returns)
    parts = np.array_split(np.arange(len(frame)), blocks)
    below = 0
    splits = list(itertools.combinations(range(blocks), blocks // 2))
    for chosen in splits:
        is_rows = np.concatenate([parts[b] for b in chosen])
        oos_rows = np.concatenate([parts[b] for b in range(blocks) if b not in chosen])
        ins, oos = frame.iloc[is_rows], frame.iloc[oos_rows]
        is_sr, oos_sr = ins.mean() / ins.std(), oos.mean() / oos.std()
        best = is_sr.idxmax()
        omega = (oos_sr < oos_sr[best]).sum() + 1
        omega /= len(frame.columns) + 1
        below += math.log(omega / (1 - omega)) <= 0
    return below / len(splits)


def test_pbo_from_block_sums_equals_brute_force_cscv():
    rng = np.random.default_rng(11)
    returns = rng.normal(0, 0.01, (800, 40))
    returns[:, 5] += 0.0004
    assert st.pbo(returns, blocks=8).pbo == pytest.approx(brute_force_pbo(returns, 8), abs=1e-12)


def test_pbo_on_noise_is_near_one_half_and_a_real_edge_is_not_overfit():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, (1600, 100))
    result = st.pbo(noise)
    assert result.splits == 12870 and result.blocks == 16
    assert 0.3 < result.pbo < 0.7
    edge = noise.copy()
    edge[:, 0] += 0.003
    strong = st.pbo(edge)
    assert strong.pbo < 0.05
    assert "not likely overfit" in st.pbo_words(strong)
