"""The memory service: mem0 behind gRPC (stratexec.memory.v1.MemoryService).

Embedded by default (mem0 open source, local Qdrant on disk, the packaged
all-MiniLM-L6-v2 embedder, no LLM); see docs/memory.md.
"""
