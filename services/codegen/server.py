"""gRPC server of stratexec.codegen.v1.CodegenService.

AnalyzeStrategy and GenerateCode compile the strategy (schema check, rule
grammar, analysis); GenerateCode also emits the script and its sha256.
ValidateCode runs the shared code policy (services.common.code_policy).
ValidateCode is small and runs inline. Compiling is bounded: the request size
and total rule text are checked first, then the compile runs in a worker
thread (the event loop keeps answering other calls and health) under the
smaller of the caller's deadline and CODEGEN_COMPILE_TIMEOUT_S.
"""
from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf import json_format

from services.codegen import compiler, emit, grid as grid_mod, parameters as parameters_mod
from services.codegen.sweeps import generate_sweep
from services.codegen.config import CodegenConfig
from services.common import code_policy, errors, logs, request_limits
from services.common.env import quiet_libraries
from services.common.server import ServerSpec, serve
from stratexec.backtest.v1 import backtest_pb2
from stratexec.codegen.v1 import codegen_pb2, codegen_pb2_grpc

SERVICE_NAME = codegen_pb2.DESCRIPTOR.services_by_name["CodegenService"].full_name
MAX_CODE_BYTES = 1_000_000


def _schema(request) -> dict:
    if not request.HasField("schema"):
        raise errors.invalid_argument("schema is required", [("schema", "the strategy graph is missing")], reason="SCHEMA_INVALID")
    return json_format.MessageToDict(request.schema)


def _with_values(schema: dict, request) -> dict:
    """The schema with GenerateCode's parameter_values put in place (checked first)."""
    if not getattr(request, "parameter_values", None):
        return schema
    base = compiler.analyze(schema, _params(request))  # a valid schema before its numbers are named
    named = parameters_mod.extract(base.doc, base.params.timeframe)
    values = dict(request.parameter_values)
    grid_mod.assign(named, values)
    return parameters_mod.substitute(base.doc, named, values)


def _params(request):
    return request.params if request.HasField("params") else None


class CodegenServicer(codegen_pb2_grpc.CodegenServiceServicer):
    def __init__(self, logger: logging.Logger | None = None, config: CodegenConfig | None = None):
        self.logger = logger or logging.getLogger("codegen")
        self.config = config or CodegenConfig()

    async def _analyze(self, request, context) -> compiler.Analysis:
        """The compile, bounded in size, off the event loop, within a deadline."""
        request_limits.check_request_size(request, self.config.max_request_bytes)
        schema = _schema(request)
        request_limits.check_rule_text(schema, self.config.max_rule_text_chars)
        timeout = self.config.compile_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)

        def compile_it() -> compiler.Analysis:
            return compiler.analyze(_with_values(schema, request), _params(request))

        try:
            return await asyncio.wait_for(asyncio.to_thread(compile_it), timeout)
        except asyncio.TimeoutError:
            raise errors.invalid_argument(
                f"compiling this strategy took longer than {timeout:.1f} s", [("nodes", "fewer or shorter rules")],
                reason="COMPILE_TOO_COSTLY") from None

    async def AnalyzeStrategy(self, request, context):
        analysis = await self._analyze(request, context)
        logs.log(self.logger, logging.INFO, "analyzed", rules=len(analysis.rules), symbols=list(analysis.params.symbols))
        return codegen_pb2.AnalyzeStrategyResponse(analysis=analysis.to_proto())

    async def GenerateCode(self, request, context):
        analysis = await self._analyze(request, context)
        code = emit.emit(analysis)
        digest = emit.sha256(code)
        # The one policy check of the compiler's output (the crew's validate tool reads this answer; the
        # sandbox still checks whatever it is asked to run, as its own boundary)
        if found := code_policy.check_code(code):
            raise errors.ApiError(grpc.StatusCode.INTERNAL, f"the compiled script breaks the code policy: "
                                  f"line {found[0].line}: {found[0].message}", reason="COMPILED_CODE_REJECTED")
        logs.log(self.logger, logging.INFO, "generated", sha256=digest, lines=code.count("\n"), policy="passed")
        reply = codegen_pb2.GenerateCodeResponse(code=code, sha256=digest, analysis=analysis.to_proto())
        if request.parameter_values:
            reply.schema.update(analysis.doc)
        return reply

    async def GenerateSweepCode(self, request, context):
        response = generate_sweep(_schema(request), _params(request), request.ranges, request.max_combinations,
                                  request.walk_forward if request.HasField("walk_forward") else None)
        logs.log(self.logger, logging.INFO, "generated sweep", sha256=response.sha256, combinations=response.combinations)
        return response

    async def ValidateCode(self, request, context):
        if len(request.code.encode("utf-8")) > MAX_CODE_BYTES:
            raise errors.invalid_argument("code is too large", [("code", f"more than {MAX_CODE_BYTES} bytes")], reason="CODE_TOO_LARGE")
        found = code_policy.check_code(request.code)
        violations = [
            backtest_pb2.CodeViolation(rule=v.rule, line=v.line, column=v.column, message=v.message) for v in found
        ]
        logs.log(self.logger, logging.INFO, "validated", valid=not violations, violations=len(violations))
        return codegen_pb2.ValidateCodeResponse(valid=not violations, violations=violations)


async def main() -> None:
    quiet_libraries()
    config = CodegenConfig.from_env()
    logger = logs.setup("codegen", config.log_level)
    servicer = CodegenServicer(logger, config)
    await serve(
        ServerSpec(name="codegen", host=config.host, port=config.port, service_names=[SERVICE_NAME], grace_seconds=config.grace_seconds),
        register=lambda server: codegen_pb2_grpc.add_CodegenServiceServicer_to_server(servicer, server),
        logger=logger,
    )
