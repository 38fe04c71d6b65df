"""Overfitting statistics of a sweep (scipy only).

- Probabilistic Sharpe Ratio (Bailey & López de Prado 2012, "The Sharpe Ratio
  Efficient Frontier"): the probability that the true Sharpe ratio exceeds a
  benchmark, given the sample's length, skewness and (raw) kurtosis.
- Deflated Sharpe Ratio (Bailey & López de Prado 2014): the PSR against the
  Sharpe ratio the best of N independent trials reaches by luck alone, from
  the variance of the trials' Sharpe ratios.
- Probability of Backtest Overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, López de Prado & Zhu 2017): the returns
  cut into S blocks (16: 12,870 splits); for every split into halves the
  in-sample best is ranked out of sample; PBO is the share of splits where
  it ranks in the bottom half, with the performance degradation slope.

Sharpe ratios here are per bar (not annualised), as the papers define them.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def moments(returns) -> tuple[float, float, float, int]:
    """(per-bar Sharpe, skewness, raw kurtosis, observations): sample estimators as pandas/QuantStats compute them."""
    r = np.asarray(returns, dtype=float)
    sr = float(np.mean(r) / np.std(r, ddof=1))
    return sr, float(stats.skew(r, bias=False)), float(stats.kurtosis(r, fisher=False, bias=False)), len(r)


def psr(sharpe: float, observations: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0) -> float:
    """P[true SR > benchmark]; ``kurtosis`` is raw (3 for normal returns), not excess."""
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(variance)))


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """E[max SR] of ``trials`` independent trials with true SR 0 and this variance of their estimates."""
    if trials < 2:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def dsr(sharpe: float, observations: int, skew: float, kurtosis: float, trials: int, sharpe_variance: float) -> tuple[float, float]:
    """(DSR, the deflated benchmark SR0)."""
    sr0 = expected_max_sharpe(trials, sharpe_variance)
    return psr(sharpe, observations, skew, kurtosis, sr0), sr0


@dataclasses.dataclass(frozen=True)
class PBO:
    pbo: float  # share of splits whose in-sample best ranks in the bottom half out of sample
    splits: int
    blocks: int
    slope: float  # performance degradation: OOS Sharpe ~ slope * IS Sharpe + intercept over splits
    intercept: float
    probability_of_loss: float  # share of splits where the in-sample best loses out of sample
    logits: np.ndarray


def pbo_from_blocks(bars: np.ndarray, sums: np.ndarray, squares: np.ndarray, chunk: int = 512) -> PBO:
    """CSCV from per-block sufficient statistics: ``bars`` (S,), ``sums`` and ``squares`` (S x N).

    The Sharpe ratio of any union of blocks is exact from these sums, so the
    bars x N returns matrix never has to leave the sandbox."""
    s, n = sums.shape
    splits = np.array([c for c in itertools.combinations(range(s), s // 2)], dtype=int)
    mask = np.zeros((len(splits), s))
    mask[np.arange(len(splits))[:, None], splits] = 1.0
    totals = (bars.astype(float), sums, squares)
    logits, is_best, oos_best = [], [], []
    for a in range(0, len(mask), chunk):
        m = mask[a:a + chunk]
        sharpe = {}
        for side, w in (("is", m), ("oos", 1.0 - m)):
            count = w @ totals[0]
            total = w @ totals[1]
            square = w @ totals[2]
            mean = total / count[:, None]
            var = (square - total ** 2 / count[:, None]) / (count[:, None] - 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                sharpe[side] = np.where(var > 0, mean / np.sqrt(np.maximum(var, 0)), 0.0)
        best = np.argmax(sharpe["is"], axis=1)
        rows = np.arange(len(m))
        oos = sharpe["oos"][rows, best]
        rank = (sharpe["oos"] < oos[:, None]).sum(axis=1) + 1  # 1 = worst, N = best
        omega = rank / (n + 1.0)
        logits.append(np.log(omega / (1.0 - omega)))
        is_best.append(sharpe["is"][rows, best])
        oos_best.append(oos)
    lam, x, y = np.concatenate(logits), np.concatenate(is_best), np.concatenate(oos_best)
    fit = stats.linregress(x, y) if np.ptp(x) > 0 else None
    return PBO(pbo=float(np.mean(lam <= 0)), splits=len(lam), blocks=s,
               slope=float(fit.slope) if fit else 0.0, intercept=float(fit.intercept) if fit else float(np.mean(y)),
               probability_of_loss=float(np.mean(y < 0)), logits=lam)


def block_sums(returns: np.ndarray, blocks: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bars, sums, squares) of a bars x N returns matrix cut into equal consecutive blocks."""
    edges = np.linspace(0, returns.shape[0], blocks + 1).astype(int)
    parts = [returns[a:b] for a, b in zip(edges[:-1], edges[1:])]
    return (np.array([len(p) for p in parts]), np.stack([p.sum(axis=0) for p in parts]),
            np.stack([(p ** 2).sum(axis=0) for p in parts]))


def pbo(returns: np.ndarray, blocks: int = 16) -> PBO:
    """CSCV on a bars x N matrix of per-bar returns."""
    return pbo_from_blocks(*block_sums(np.asarray(returns, dtype=float), blocks))


def dsr_words(value: float, trials: int, confidence: float = 0.95) -> str:
    verdict = "significant" if value >= confidence else "not significant"
    return f"DSR {value:.2f} after {trials:,} trials: {verdict} at {confidence:.0%}"


def pbo_words(result: PBO) -> str:
    verdict = "likely overfit" if result.pbo > 0.5 else ("at risk of overfitting" if result.pbo > 0.2 else "not likely overfit")
    return (f"PBO {result.pbo:.2f} over {result.splits:,} CSCV splits ({result.blocks} blocks): {verdict}; "
            f"out-of-sample Sharpe degrades with slope {result.slope:.2f}, loses in {result.probability_of_loss:.0%} of splits")
