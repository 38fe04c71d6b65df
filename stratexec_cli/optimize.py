"""`stratexec optimize`: the grid from --param flags, and the optimization's results as text.

    --param entry.window=10:60:5      start:stop:step (stop included)
    --param tp.target_pct=4,7,10      a list of values
"""
from __future__ import annotations

import math

from stratexec.codegen.v1 import codegen_pb2
from stratexec_cli import render


class ParamSpecError(ValueError):
    """A --param flag that is not NAME=START:STOP:STEP or NAME=V1,V2,..."""


def parse_param(text: str) -> codegen_pb2.ParameterRange:
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ParamSpecError(f"--param {text!r}: use NAME=START:STOP:STEP or NAME=V1,V2,... (such as entry.window=10:60:5)")
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            if len(parts) != 3:
                raise ValueError
            return codegen_pb2.ParameterRange(name=name.strip(), start=parts[0], stop=parts[1], step=parts[2])
        return codegen_pb2.ParameterRange(name=name.strip(), values=[float(x) for x in spec.split(",")])
    except ValueError:
        raise ParamSpecError(f"--param {text!r}: {spec!r} is not START:STOP:STEP or a list of numbers") from None


def _f(value: float, fmt: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def combination_words(c) -> str:
    return ", ".join(f"{v.name}={v.value:g}" for v in c.values)


def summary_lines(reply) -> list[str]:
    """The optimization in a few lines and two tables: best, statistics, top combinations, walk-forward."""
    s = reply.summary
    st = s.statistics
    lines = [f"Optimization: {s.combinations:,} combinations in {s.chunks} sandbox job(s), by {s.objective}"
             + (f", at least {s.min_trades} trades" if s.min_trades else "")
             + (f", max drawdown {s.max_drawdown:g}%" if s.HasField("max_drawdown") else "")]
    if s.HasField("best"):
        b = s.best
        lines.append(f"  Best              {combination_words(b)}")
        lines.append(f"                    {s.objective} {_f(b.objective)}, return {b.total_return:.2f}%, "
                     f"max drawdown {b.max_drawdown:.2f}%, {b.trades} trades")
    lines += [f"  PSR               {st.psr:.3f}", f"  DSR               {st.dsr_verdict}",
              f"  PBO               {st.pbo_verdict}", ""]
    rows = [[str(c.rank or "-"), combination_words(c), _f(c.objective if c.HasField("objective") else None),
             f"{c.total_return:.2f}%", f"{c.max_drawdown:.2f}%", str(c.trades)] for c in reply.combinations]
    lines.append(render.table(["RANK", "PARAMETERS", s.objective.upper(), "RETURN", "MAX DD", "TRADES"], rows))
    if s.HasField("walk_forward"):
        wf = s.walk_forward
        names = [p for p in s.parameters]
        shape = [len(p.values) for p in names]

        def chosen(index: int) -> str:
            if index < 0:
                return "(none met the constraints)"
            out = []
            for p, n in zip(reversed(names), reversed(shape)):
                index, i = divmod(index, n)
                out.append(f"{p.name}={p.values[i]:g}")
            return ", ".join(reversed(out))

        lines += ["", f"Walk-forward: {len(wf.segments)} segments, {wf.in_sample_fraction:.0%} in sample"]
        lines.append(render.table(
            ["IN SAMPLE", "OUT OF SAMPLE", "CHOSEN", "IS SHARPE", "OOS SHARPE", "OOS RETURN"],
            [[f"{g.in_sample_start}..{g.in_sample_end}", f"{g.out_of_sample_start}..{g.out_of_sample_end}",
              chosen(g.chosen_combination), _f(g.in_sample.sharpe_ratio if g.in_sample.HasField("sharpe_ratio") else None),
              _f(g.out_of_sample.sharpe_ratio if g.out_of_sample.HasField("sharpe_ratio") else None),
              f"{g.out_of_sample.total_return:.2f}%"] for g in wf.segments]))
        lines.append(f"  Out of sample, stitched: return {wf.out_of_sample.total_return:.2f}%, Sharpe "
                     f"{_f(wf.out_of_sample.sharpe_ratio if wf.out_of_sample.HasField('sharpe_ratio') else None)}; "
                     f"in sample (best, whole window): return {wf.in_sample.total_return:.2f}%, Sharpe "
                     f"{_f(wf.in_sample.sharpe_ratio if wf.in_sample.HasField('sharpe_ratio') else None)}")
    return lines
