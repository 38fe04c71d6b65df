"""Which language model the crew runs on."""
from __future__ import annotations

from crewai import BaseLLM

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.crew.planner import OfflinePlanner


def make_llm(config: OrchestratorConfig) -> BaseLLM:
    """Claude through CrewAI's Anthropic support when a key is configured,
    the deterministic offline planner otherwise."""
    if config.anthropic_api_key:
        from crewai import LLM

        # No temperature: the Messages API of anthropic 2.x takes no sampling parameters
        # (Messages.create() rejects ``temperature``). The SDK reads ANTHROPIC_BASE_URL.
        return LLM(model=config.llm_model, api_key=config.anthropic_api_key)
    return OfflinePlanner()


def llm_name(llm: BaseLLM) -> str:
    return getattr(llm, "model", type(llm).__name__)
