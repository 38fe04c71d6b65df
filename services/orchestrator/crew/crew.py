"""The crew: three agents, three sequential tasks, and the callbacks that
turn their progress into status changes and agent-step events."""
from __future__ import annotations

import json
import warnings

from crewai import Agent, BaseLLM, Crew, Process, Task

from services.orchestrator.crew import interpretations
from services.orchestrator.crew.context import ExecutionContext
from services.orchestrator.crew.planner import ANALYZER, EXECUTOR, GENERATOR, OPTIMIZER
from services.orchestrator.crew.research_tools import optimizer_tools
from services.orchestrator.crew.tools import SearchMemoryTool, tools_for
from stratexec.orchestrator.v1 import execution_pb2

warnings.filterwarnings("ignore", message="function callbacks cannot be serialized")
SUMMARY_CHARS = 300
PROPOSAL_STEPS = (
    " Optionally, you may then propose a version of your own: read the compiled script with read_generated_code, "
    "write an equivalent one (clearer, or built on a template found in memory) and submit it with "
    "propose_vectorbt_code. It is used only if it passes the code policy and gives exactly the compiled script's "
    "results on this data; otherwise the compiled script runs. Report the code_sha256 that runs: "
    "propose_vectorbt_code's code_sha256 when you proposed, the validated one otherwise.")


class StopCrew(Exception):
    """Raised from a task callback to end the crew after a failure or a cancel."""


def _summary(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _rules_text(schema: dict) -> str:
    lines = []
    for node in schema.get("nodes", []):
        meta = node.get("meta", {})
        rules = meta.get("rules") or [json.dumps({k: v for k, v in meta.items()}, sort_keys=True)]
        lines.append(f"- {node.get('id')} ({node.get('type')}): " + "; ".join(map(str, rules)))
    return "\n".join(lines)


def _tool_step_event(ctx: ExecutionContext, role: str, thought: str, tool: str, arguments, result) -> None:
    agent_step = execution_pb2.AgentStep(agent=role, thought=thought, tool=tool, arguments=_summary(arguments),
                                         result=_summary(result), duration_ms=round(ctx.last_tool_ms, 1))
    message = f"{role}: {tool}({agent_step.arguments}) -> {agent_step.result[:120]}"
    ctx.events.append(ctx.execution_id, execution_pb2.EVENT_TYPE_AGENT_STEP, ctx.status, message, agent_step=agent_step)


def _step_callback(ctx: ExecutionContext, role: str):
    """An event per tool call when the model writes ReAct text (CrewAI calls this after each agent step)."""

    def on_step(step) -> None:
        tool = getattr(step, "tool", None)
        if tool is None:
            return  # a bare ToolResult or the final answer: the AgentAction that carries a tool call follows
        thought = str(getattr(step, "thought", "")).removeprefix("Thought:").strip()
        # CrewAI's step.result is the observation it feeds the model, which may carry its own prompt text
        # ("You ONLY have access to the following tools ..."): the event shows what the tool returned.
        result, ctx.last_tool_result = ctx.last_tool_result, None
        _tool_step_event(ctx, role, thought, tool, getattr(step, "tool_input", ""),
                         result if result is not None else getattr(step, "result", ""))

    return on_step


def _native_tool_step(ctx: ExecutionContext, role: str):
    """An event per tool call when the model calls tools natively (Claude): CrewAI then passes
    only the final answer to the step callback, so each tool reports its own call."""

    def on_tool_step(tool: str, arguments: dict, result: str) -> None:
        _tool_step_event(ctx, role, "", tool, arguments, result)

    return on_tool_step


def _task_done(ctx: ExecutionContext, role: str, next_status: str | None = None, message: str = ""):
    """An event for the agent's final answer, then the next status (or the end of the crew)."""

    def on_task_done(output) -> None:
        answer = _summary(getattr(output, "raw", output))
        ctx.events.append(ctx.execution_id, execution_pb2.EVENT_TYPE_AGENT_STEP, ctx.status,
                          f"{role}: final answer: {answer[:120]}",
                          agent_step=execution_pb2.AgentStep(agent=role, thought="final answer", result=answer))
        if ctx.error is not None or ctx.cancel.is_set():
            raise StopCrew()
        if next_status:
            ctx.enter_stage(next_status)
            ctx.events.status_change(ctx.execution_id, next_status, message)

    return on_task_done


def build_crew(ctx: ExecutionContext, llm: BaseLLM) -> Crew:
    p = ctx.params
    setting = f"{', '.join(p.symbols)} on {p.timeframe} bars from {p.start_date} to {p.end_date}"

    native_tools = llm.supports_function_calling()
    # A language model may propose code of its own; the offline planner never does (and is not offered to).
    ctx.proposals_enabled = native_tools
    tools = tools_for(ctx, with_proposals=native_tools)

    def agent(role: str, goal: str, backstory: str, toolset: list) -> Agent:
        if native_tools:
            for tool in toolset:
                tool.on_step = _native_tool_step(ctx, role)
        return Agent(role=role, goal=goal, backstory=backstory, llm=llm, tools=toolset, allow_delegation=False,
                     verbose=False, max_iter=8, step_callback=_step_callback(ctx, role))

    analyzer = agent(ANALYZER, "Interpret every rule of a trading strategy exactly, and recall similar past strategies.",
                     "A quant who never guesses what a rule means.", tools["analyzer"])
    generator = agent(GENERATOR, "Turn the analysed strategy into correct, readable VectorBT code that passes the policy.",
                      "A quant developer who writes backtests without look-ahead.", tools["generator"])
    executor = agent(EXECUTOR, "Run the validated code in the sandbox and remember the outcome.",
                     "An engineer who trusts only results the sandbox checked.", tools["executor"])

    analyze_steps = "Call analyze_strategy"
    if native_tools and ctx.rule_interpretation:
        analyze_steps += (" (if it says a rule is not understood and the rule's meaning is clear, propose structured "
                          "conditions for it with propose_rule_interpretation, once per rule it names)")
    analyzed = _task_done(ctx, ANALYZER, "GENERATING_CODE", "generating code")

    def on_analyzed(output) -> None:
        interpretations.settle(ctx)  # a rule still not understood fails the execution here
        analyzed(output)

    analyze = Task(
        description=f"Analyse this strategy for {setting}. Its nodes:\n{_rules_text(ctx.schema)}\n"
                    f"{analyze_steps}, then search_strategy_memory with a description of the strategy, "
                    "then get_user_preferences.",
        expected_output="JSON with the analysis and similar past strategies",
        agent=analyzer, callback=on_analyzed,
    )
    generate_steps = ("Look up code templates with search_code_templates, generate the VectorBT code with "
                      "generate_vectorbt_code, then check it with validate_python_code.")
    if native_tools:
        generate_steps += PROPOSAL_STEPS
    research = ctx.research
    after_generate = ("OPTIMIZING", f"optimizing: sweeping {research.sweep.combinations:,} combinations") if research \
        else ("EXECUTING", "executing the backtest in the sandbox")
    generate = Task(
        description=generate_steps,
        expected_output='JSON {"code_sha256": ..., "valid": true}',
        agent=generator, context=[analyze],
        callback=_task_done(ctx, GENERATOR, *after_generate),
    )
    agents, tasks = [analyzer, generator], [analyze, generate]
    if research is not None:
        optimizer = agent(OPTIMIZER, "Find the parameters that work, and say honestly whether they are luck.",
                          "A quant who counts every trial and trusts only out-of-sample results.",
                          optimizer_tools(ctx, SearchMemoryTool(ctx=ctx)))
        grid = "; ".join(f"{p.name} in {', '.join(f'{v:g}' for v in p.values)}" for p in research.sweep.parameters)
        optimize = Task(
            description=f"Optimise the strategy by {research.objective} over {research.sweep.combinations:,} "
                        f"combinations ({grid}). Call search_strategy_memory for what worked before, read_trial_ledger, "
                        "run_parameter_sweep (with no ranges for the requested grid; you may narrow or widen it once "
                        "from the first sweep), then run_walk_forward. Answer with the code_sha256 of the best combination.",
            expected_output='JSON {"code_sha256": ..., "best": ...}',
            agent=optimizer, context=[generate],
            callback=_task_done(ctx, OPTIMIZER, "EXECUTING", "executing the best combination in the sandbox"),
        )
        agents.append(optimizer)
        tasks.append(optimize)
    execute = Task(
        description="Run the validated code with execute_python_code (pass its code_sha256), "
                    "then store the outcome with store_strategy_memory, whether the run succeeded or failed.",
        expected_output="JSON with the backtest metrics",
        agent=executor, context=[tasks[-1]], callback=_task_done(ctx, EXECUTOR),
    )
    return Crew(agents=agents + [executor], tasks=tasks + [execute], process=Process.sequential, verbose=False)
