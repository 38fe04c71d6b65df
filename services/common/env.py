"""Process environment that every service sets before importing libraries.

CrewAI, mem0, OpenTelemetry and Hugging Face all phone home by default; on
a machine without network that costs seconds per call (CrewAI tracing adds
about 5 s to each crew run). Telemetry of every library is off.
"""
import os

QUIET = {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "OTEL_SDK_DISABLED": "true",
    "MEM0_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
}


def quiet_libraries() -> None:
    """Turn library telemetry off; values already set by the operator win."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
