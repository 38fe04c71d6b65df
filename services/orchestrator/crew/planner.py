"""The deterministic offline planner: a CrewAI LLM (``BaseLLM``) that
drives each agent through its tools in the designed order.

It speaks CrewAI's ReAct text protocol (``Thought / Action / Action
Input`` then ``Final Answer``) and decides each step only from the
messages CrewAI sends it, so the same strategy gives the same steps:
reproducible runs without an API key or a network.
"""
from __future__ import annotations

import json
import re
from typing import Any

from crewai import BaseLLM

ANALYZER, GENERATOR, EXECUTOR = "Strategy Analyzer", "Code Generator", "Code Executor"
OPTIMIZER = "Strategy Optimizer"  # OptimizeStrategy only, between the Code Generator and the Code Executor
_ACTION = re.compile(r"Action:\s*(?P<tool>[\w.-]+)\s*\nAction Input:.*?\nObservation:\s*(?P<obs>.*)", re.S)
_SHA = re.compile(r'"code_sha256":\s*"(?P<sha>[0-9a-f]{64})"')
_SUMMARY = re.compile(r'"summary":\s*"(?P<summary>[^"]*)"')


def _steps(messages: list[dict]) -> list[tuple[str, str]]:
    """(tool, observation) pairs of the current task, in order."""
    steps = []
    for message in messages[2:]:
        if message.get("role") != "assistant":
            continue
        match = _ACTION.search(str(message.get("content", "")))
        if match:
            steps.append((match["tool"], match["obs"].strip()))
    return steps


def _json(observation: str) -> dict:
    """The JSON object a tool returned (CrewAI may append a reminder after it)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(observation.strip())
        return value if isinstance(value, dict) else {}
    except json.JSONDecodeError:
        return {}


def _act(thought: str, tool: str, args: dict) -> str:
    return f"Thought: {thought}\nAction: {tool}\nAction Input: {json.dumps(args)}"


def _final(thought: str, answer: Any) -> str:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return f"Thought: {thought}\nFinal Answer: {text}"


def _failed(observation: str) -> str:
    return _final("A tool failed; the execution cannot go on.", f"FAILED: {observation.removeprefix('ERROR: ')}")


def plan_analyzer(steps: list[tuple[str, str]], task: str) -> str:
    if not steps:
        return _act("I need the exact interpretation of every rule before anything else.", "analyze_strategy", {})
    if steps[-1][1].startswith("ERROR"):
        return _failed(steps[-1][1])
    if len(steps) == 1:
        analysis = _json(steps[0][1])
        query = f"{analysis.get('summary', '')} on {', '.join(analysis.get('symbols', []))}".strip()
        return _act("Let me check what this user's similar strategies did before.", "search_strategy_memory",
                    {"query": query})
    if len(steps) == 2:
        return _act("And what the user prefers: risk, drawdown, assets.", "get_user_preferences", {})
    analysis, memory, prefs = _json(steps[0][1]), _json(steps[1][1]), _json(steps[2][1])
    return _final("I understand the strategy, its history and the user's preferences.",
                  {"analysis": analysis, "similar_strategies": memory.get("memories", []),
                   "preference_conflicts": prefs.get("conflicts", [])})


def plan_generator(steps: list[tuple[str, str]], task: str) -> str:
    if not steps:
        summary = _SUMMARY.search(task)
        return _act("Let me look up the code templates for these rule families.", "search_code_templates",
                    {"query": summary["summary"] if summary else "VectorBT entry rule, take profit, stop loss"})
    if steps[-1][1].startswith("ERROR"):
        return _failed(steps[-1][1])
    if len(steps) == 1:
        return _act("I compile the analysed strategy into a VectorBT script.", "generate_vectorbt_code", {})
    if len(steps) == 2:
        code = _json(steps[1][1])
        return _act("The code must pass the policy before it may run.", "validate_python_code",
                    {"code_sha256": code.get("code_sha256", "")})
    verdict = _json(steps[2][1])
    if not verdict.get("valid"):
        return _failed(f"the generated code breaks the policy: {verdict.get('violations')}")
    return _final("The code is generated and passes the policy.",
                  {"code_sha256": verdict.get("code_sha256"), "valid": True})


def plan_optimizer(steps: list[tuple[str, str]], task: str) -> str:
    """Memory, the ledger, the request's grid, the walk-forward report; then the best combination's code."""
    order = [("search_strategy_memory", "What worked before for this strategy family?"),
             ("read_trial_ledger", "How many trials of this family were run already: the honest count."),
             ("run_parameter_sweep", "I sweep the requested grid in the sandbox."),
             ("run_walk_forward", "Do the parameters chosen in sample hold out of sample?")]
    if steps and steps[-1][1].startswith("ERROR"):
        return _failed(steps[-1][1])
    if len(steps) < len(order):
        tool, thought = order[len(steps)]
        if tool == "search_strategy_memory":
            summary = _SUMMARY.search(task)
            return _act(thought, tool, {"query": f"optimised {summary['summary'] if summary else 'strategy'}"})
        return _act(thought, tool, {})
    sweep = _json(steps[2][1])
    if "error" in sweep:
        return _failed(sweep["error"])
    return _final("The best combination is chosen; its script runs next.",
                  {"code_sha256": sweep.get("code_sha256"), "best": sweep.get("best"), "pbo": sweep.get("pbo"),
                   "walk_forward": _json(steps[3][1])})


def plan_executor(steps: list[tuple[str, str]], task: str) -> str:
    if not steps:
        match = _SHA.search(task)
        if not match:
            return _final("There is no validated code to run.", "FAILED: the Code Generator produced no validated code")
        return _act("I run the validated code in the sandbox.", "execute_python_code", {"code_sha256": match["sha"]})
    run_observation = steps[0][1]
    run = _json(run_observation)
    succeeded = run.get("outcome") == "RUN_OUTCOME_SUCCEEDED"
    if len(steps) == 1:
        if run_observation.startswith("ERROR: the execution was cancelled"):
            return _failed(run_observation)
        thought = ("The backtest ran; I remember its result for next time." if succeeded
                   else "The run failed; a failure is worth remembering too.")
        return _act(thought, "store_strategy_memory", {"note": ""})
    if not succeeded:
        return _failed(run.get("error") or run_observation)
    return _final("The backtest is complete.", {"metrics": run.get("metrics", {})})


PLANS = {ANALYZER: plan_analyzer, GENERATOR: plan_generator, OPTIMIZER: plan_optimizer, EXECUTOR: plan_executor}


class OfflinePlanner(BaseLLM):
    """CrewAI's LLM interface, answered by the plans above."""

    def __init__(self, **data: Any):
        super().__init__(model="stratexec-offline-planner", **data)

    def call(self, messages, tools=None, callbacks=None, available_functions=None, from_task=None,
             from_agent=None, response_model=None, **kwargs) -> str:
        if isinstance(messages, str):
            messages = [{"role": "system", "content": ""}, {"role": "user", "content": messages}]
        role = getattr(from_agent, "role", "")
        plan = PLANS.get(role)
        if plan is None:
            return _final("I have no plan for this agent.", f"FAILED: no offline plan for agent {role!r}")
        task = str(messages[1].get("content", "")) if len(messages) > 1 else ""
        return plan(_steps(messages), task)

    def supports_function_calling(self) -> bool:
        return False

    def supports_stop_words(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 200_000
