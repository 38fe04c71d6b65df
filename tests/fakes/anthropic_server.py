"""A fake Anthropic Messages API on loopback, for tests without network.

It speaks the wire protocol the ``anthropic`` SDK speaks: ``POST
/v1/messages`` with the key (``x-api-key``, or ``Authorization: Bearer`` as
SDK 2.x sends it) and an ``anthropic-version`` header, a JSON
body (``model``, ``max_tokens``, ``system``, ``messages``, ``tools``), and a
JSON ``Message`` back (``id``, ``type: "message"``, ``role``, ``model``,
``content`` blocks of type ``text`` / ``tool_use``, ``stop_reason``
``"tool_use"`` or ``"end_turn"``, ``usage``). Errors have the API's shape
(``{"type": "error", "error": {"type": ..., "message": ...}}``) and it
rejects what the real API rejects: a missing key or version header, a
conversation whose ``tool_use`` blocks are not answered by ``tool_result``
blocks right after, tool blocks without ``tools`` defined. It does not
stream: CrewAI's Anthropic provider sends ``stream: false``. It also answers
``POST /v1/messages/count_tokens`` (``{"input_tokens": n}``), which CrewAI
calls to check the context window before a model call.

The "model" is a disciplined Claude for the stratexec crew. It knows which
agent it is talking to from the tools the request offers, and calls that
agent's tools in the designed order, one per turn, with arguments taken
from earlier tool results and from the task (the ``code_sha256`` the Code
Generator reported), then answers in text. It reads only the request, like
the real API: the conversation is the state. This is deliberately written
apart from the orchestrator's offline planner so that the test does not
check the orchestrator against itself.

When the Code Generator is offered ``propose_vectorbt_code`` (and
``read_generated_code``), it also proposes code after validate_python_code:
it reads the compiled script and proposes, according to the fake's
``proposal`` mode (settable between executions):

- ``"equivalent"`` (the default): the same script in other words (local
  variables renamed, comments added), which must be accepted;
- ``"different"``: a subtly different script (the first decimal threshold
  of ``signals`` one unit of its last digit lower: 0.95 becomes 0.94), which
  must be rejected;
- ``"violating"``: the equivalent script plus an ``import os``, which the
  code policy must reject;
- ``"none"``: no proposal, as before.

It then answers with the code_sha256 that propose_vectorbt_code says runs.

Every request is recorded (``recorded()``) so a test can show the path was
taken: which agents asked, which tools they were offered, which tool
results came back.

    with FakeAnthropic(api_key="test-key") as fake:
        env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fake.url}
"""
from __future__ import annotations

import contextlib
import dataclasses
import decimal
import io
import json
import re
import socket
import threading
import tokenize
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANALYZER, GENERATOR, EXECUTOR = "Strategy Analyzer", "Code Generator", "Code Executor"
OPTIMIZER = "Strategy Optimizer"  # OptimizeStrategy only
# The tool that tells each agent apart in the tools a request offers.
AGENT_BY_TOOL = {"analyze_strategy": ANALYZER, "generate_vectorbt_code": GENERATOR, "execute_python_code": EXECUTOR,
                 "run_parameter_sweep": OPTIMIZER}
_SHA = re.compile(r'"?code_sha256"?\s*[:=]\s*"?(?P<sha>[0-9a-f]{64})')
PROPOSAL_MODES = ("equivalent", "different", "violating", "none")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@dataclasses.dataclass
class ToolCall:
    """A tool_use block the model sent and, once it came back, its tool_result."""

    id: str
    name: str
    input: dict
    result: str | None = None
    is_error: bool = False


@dataclasses.dataclass
class Recorded:
    """One request the fake answered (or refused)."""

    path: str  # /v1/messages or /v1/messages/count_tokens
    headers: dict[str, str]
    body: dict
    agent: str | None = None  # which crew agent, from the tools offered
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)  # the conversation's calls so far
    response: dict | None = None
    error: str | None = None

    @property
    def system(self) -> str:
        return _text(self.body.get("system"))

    @property
    def tool_names(self) -> list[str]:
        return [t.get("name", "") for t in self.body.get("tools") or []]


def _text(content: Any) -> str:
    """The text of a string or of a list of content blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(b.get("text", b.get("content"))) if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def _blocks(message: dict) -> list[dict]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) and "type" in b for b in content):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request_error",
                       "messages: content must be a string or a list of content blocks with a type")
    return content


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def check_request(body: Any, counting: bool = False) -> list[ToolCall]:
    """Validate a Messages API request (or a count_tokens one) as the real API does; the
    conversation's tool calls, in order."""

    def bad(message: str):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request_error", message)

    if not isinstance(body, dict):
        bad("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        bad("model: Field required")
    if not counting and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        bad("max_tokens: Field required (a positive integer)")
    if not counting and body.get("stream"):
        bad("stream: this fake Messages API answers only non-streaming requests")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        bad("messages: at least one message is required")
    tools = body.get("tools") or []
    for tool in tools:
        if not isinstance(tool, dict) or not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            bad("tools: each tool needs a name and an input_schema")
        if tool["input_schema"].get("type") != "object":
            bad(f"tools.{tool['name']}.input_schema.type: must be 'object'")
    if messages[0].get("role") != "user":
        bad("messages: the first message must use the 'user' role")

    calls: dict[str, ToolCall] = {}
    ordered: list[ToolCall] = []
    unanswered: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            bad(f"messages.{index}.role: must be 'user' or 'assistant'")
        blocks = _blocks(message)
        if role == "assistant":
            if unanswered:
                bad(f"messages.{index}: tool_use ids were found without tool_result blocks immediately after: "
                    + ", ".join(unanswered))
            for block in blocks:
                if block["type"] == "tool_use":
                    if not block.get("id") or block["id"] in calls or not isinstance(block.get("input"), dict):
                        bad(f"messages.{index}: a tool_use block needs a unique id and an object input")
                    call = ToolCall(block["id"], block.get("name", ""), block["input"])
                    calls[call.id] = call
                    ordered.append(call)
                    unanswered.append(call.id)
        else:
            answered = [b for b in blocks if b["type"] == "tool_result"]
            for block in answered:
                call = calls.get(block.get("tool_use_id", ""))
                if call is None or call.id not in unanswered:
                    bad(f"messages.{index}: unexpected tool_use_id {block.get('tool_use_id')!r} in a tool_result block: "
                        "each tool_result must answer a tool_use of the previous assistant message")
                call.result, call.is_error = _text(block.get("content")), bool(block.get("is_error"))
                unanswered.remove(call.id)
            if unanswered:
                bad(f"messages.{index}: tool_use ids were found without tool_result blocks immediately after: "
                    + ", ".join(unanswered))
    if unanswered:
        bad("messages: the conversation ends with tool_use blocks that have no tool_result")
    if ordered and not tools:
        bad("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    return ordered


# -- the model -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Turn:
    """What the model says: a thought, then a tool call or a final text answer."""

    text: str
    tool: str | None = None
    input: dict | None = None


def _failed(call: ToolCall) -> Turn | None:
    if call.is_error or (call.result or "").startswith("ERROR"):
        return Turn(f"FAILED: {call.name} reported an error, so I stop here: {call.result}")
    return None


# How the fake reads a rule the grammar does not understand: a word it knows, else codegen's near miss.
READINGS = {"oversold": [{"indicator": "rsi", "op": "<", "ref": 30}],
            "overbought": [{"indicator": "rsi", "op": ">", "ref": 70}]}


def _reading(question: dict) -> list[dict] | None:
    rule = question.get("rule", "").lower()
    known = next((conditions for word, conditions in READINGS.items() if word in rule), None)
    near = question.get("near_miss_condition")
    return known or ([near] if near else None)


def analyzer_turn(calls: list[ToolCall], task: str) -> Turn:
    """The analysis (a structured reading proposed for each rule it says is not understood), the user's
    similar strategies, their preferences."""
    if not calls:
        return Turn("First I need the exact interpretation of every rule.", "analyze_strategy", {})
    if failure := _failed(calls[-1]):
        return failure
    last, names = _json(calls[-1].result), [c.name for c in calls]
    if question := last.get("not_understood"):
        reading = _reading(question)
        if reading is None:
            return Turn(f"FAILED: I cannot tell what {question['rule']!r} means, so I propose nothing.")
        return Turn(f"The grammar does not understand {question['rule']!r}; I read it as {json.dumps(reading)}.",
                    "propose_rule_interpretation", {"node_id": question["node"], "rule": question["rule"],
                                                    "conditions": reading, "rationale": "what traders mean by it"})
    if calls[-1].name == "propose_rule_interpretation" and not last.get("accepted"):
        return Turn(f"FAILED: my reading is not applied: {last.get('error')}")
    analysis = _json(calls[0].result)
    if "search_strategy_memory" not in names:
        summary = analysis.get("summary") or last.get("summary") or "trading strategy"
        query = f"{summary} on {', '.join(analysis.get('symbols', []))}"
        return Turn("Now let me look for this user's similar strategies.", "search_strategy_memory", {"query": query})
    if "get_user_preferences" not in names:
        return Turn("And the user's preferences.", "get_user_preferences", {})
    memory = _json(next(c.result for c in calls if c.name == "search_strategy_memory"))
    prefs = _json(calls[-1].result)
    return Turn(json.dumps({"analysis": analysis, "similar_strategies": memory.get("memories", []),
                            "preference_conflicts": prefs.get("conflicts", [])}))


# -- the Code Generator's proposals -----------------------------------------------------------------------------------

# Local variables of the compiled script's main(), and clearer names for them.
RENAMES = {"sig": "signal_frame", "pf": "portfolio", "benchmark_pf": "benchmark_portfolio", "bench": "benchmark_prices"}
RATIONALES = {
    "equivalent": "The compiled script with clearer variable names and comments: the same signals, stops, costs and sizing.",
    "different": "The compiled script, tidied; the same logic.",  # a careless model believes so
    "violating": "The compiled script, with os at hand to locate the data.",
}


def _tokens(code: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(code).readline))


def _after_shebang(code: str, lines: str) -> str:
    head, sep, rest = code.partition("\n")
    return f"{head}{sep}{lines}{rest}" if head.startswith("#!") else lines + code


def equivalent_rewrite(code: str) -> str:
    """The same script in other words: main()'s local variables renamed (names only, never strings or
    attributes: token by token), and comments added."""
    renamed = [t._replace(string=RENAMES[t.string]) if t.type == tokenize.NAME and t.string in RENAMES else t
               for t in _tokens(code)]
    text = tokenize.untokenize(renamed)
    text = text.replace("\ndef signals(", "\n# The rules, exactly as the compiler wrote them.\ndef signals(", 1)
    return _after_shebang(text, "# Proposed by the Code Generator: the compiled script with clearer names.\n")


def different_rewrite(code: str) -> str:
    """Subtly not the same: the first decimal number in signals() one unit of its last digit lower
    (``close <= 0.95 * sma_20`` becomes ``close <= 0.94 * sma_20``); without one, the fees doubled."""
    tokens, in_signals = _tokens(code), False
    for i, t in enumerate(tokens):
        if t.type == tokenize.NAME and tokens[i - 1].string == "def":
            in_signals = t.string == "signals"
        if in_signals and t.type == tokenize.NUMBER and "." in t.string:
            value = decimal.Decimal(t.string)
            lower = value - decimal.Decimal(1).scaleb(value.as_tuple().exponent)
            tokens[i] = t._replace(string=str(lower))
            return tokenize.untokenize(tokens)
    return re.sub(r'("fees":\s*)([0-9.eE+-]+)', lambda m: f"{m[1]}{float(m[2]) * 2!r}", code, count=1)


def violating_rewrite(code: str) -> str:
    """The equivalent script with a module the code policy forbids."""
    return equivalent_rewrite(code).replace("\nimport argparse\n", "\nimport argparse\nimport os  # to locate the data\n", 1)


REWRITES = {"equivalent": equivalent_rewrite, "different": different_rewrite, "violating": violating_rewrite}


def generator_turn(calls: list[ToolCall], task: str, proposal: str = "none") -> Turn:
    """``proposal``: what to propose after validate_python_code (a PROPOSAL_MODES value; "none" when the
    proposal tools were not offered)."""
    if not calls:
        return Turn("First the code templates for these rules.", "search_code_templates",
                    {"query": "moving average deviation entry with take profit and stop loss"})
    if failure := _failed(calls[-1]):
        return failure
    if len(calls) == 1:
        return Turn("I'll compile the analysed strategy into VectorBT code.", "generate_vectorbt_code", {})
    sha = _json(calls[1].result).get("code_sha256", "")
    if len(calls) == 2:
        return Turn("The code has to pass the policy before it may run.", "validate_python_code", {"code_sha256": sha})
    verdict = _json(calls[2].result)
    if not verdict.get("valid"):
        return Turn(f"FAILED: the generated code breaks the policy: {verdict.get('violations') or verdict.get('error')}")
    sha = verdict.get("code_sha256", sha)
    if proposal == "none":
        return Turn(json.dumps({"code_sha256": sha, "valid": True}))
    if len(calls) == 3:
        return Turn("Let me read the compiled script: a version in my own words may read better.",
                    "read_generated_code", {"code_sha256": sha})
    if len(calls) == 4:
        compiled = _json(calls[3].result).get("code")
        if not compiled:
            return Turn(json.dumps({"code_sha256": sha, "valid": True}))  # nothing to base a proposal on
        return Turn("I propose my version; it is used only if it gives the compiled script's results.",
                    "propose_vectorbt_code", {"code": REWRITES[proposal](compiled), "rationale": RATIONALES[proposal]})
    decision = _json(calls[4].result)
    return Turn(json.dumps({"code_sha256": decision.get("code_sha256", sha), "valid": True}))


def executor_turn(calls: list[ToolCall], task: str) -> Turn:
    if not calls:
        match = _SHA.search(task)
        if not match:
            return Turn("FAILED: the task gives me no validated code to run.")
        return Turn("I'll run the validated code in the sandbox.", "execute_python_code", {"code_sha256": match["sha"]})
    run = _json(calls[0].result)
    succeeded = run.get("outcome") == "RUN_OUTCOME_SUCCEEDED"
    if len(calls) == 1:  # success or failure, the outcome is worth remembering
        trades = run.get("metrics", {}).get("trades", 0)
        note = f"{trades} trades in the backtest" if succeeded else "the run failed"
        return Turn("I'll remember how this went for next time.", "store_strategy_memory", {"note": note})
    if not succeeded:
        return Turn(f"FAILED: the backtest did not succeed: {run.get('error') or calls[0].result}")
    return Turn(json.dumps({"metrics": run.get("metrics", {})}))


def optimizer_turn(calls: list[ToolCall], task: str) -> Turn:
    """Memory, the ledger, the requested grid; then, once, the grid narrowed around the winner's first
    parameter (its neighbours one unit away), the walk-forward report, and the winner's code."""
    if not calls:
        return Turn("What worked before for this family?", "search_strategy_memory", {"query": "optimised strategy"})
    if failure := _failed(calls[-1]):
        return failure
    if len(calls) == 1:
        return Turn("How many trials were run already: the honest count.", "read_trial_ledger", {})
    if len(calls) == 2:
        return Turn("The grid the user asked for.", "run_parameter_sweep", {})
    if len(calls) == 3:
        best = _json(calls[2].result).get("best", {}).get("parameters", "")
        values = {name: float(value) for name, value in (part.split("=") for part in best.split(", ") if part)}
        first = next(iter(values))
        ranges = [{"name": n, "values": [v - 1, v, v + 1] if n == first else [v]} for n, v in values.items()]
        return Turn(f"The heatmap peaks at {best}: I narrow the grid around {first} once.", "run_parameter_sweep",
                    {"ranges": ranges})
    if len(calls) == 4:
        return Turn("Does the choice hold out of sample?", "run_walk_forward", {})
    sweep = _json(calls[3].result)
    return Turn(json.dumps({"code_sha256": sweep.get("code_sha256"), "best": sweep.get("best")}))


TURNS = {ANALYZER: analyzer_turn, GENERATOR: generator_turn, OPTIMIZER: optimizer_turn, EXECUTOR: executor_turn}


def agent_for(body: dict) -> str | None:
    offered = {t.get("name") for t in body.get("tools") or []}
    found = [agent for tool, agent in AGENT_BY_TOOL.items() if tool in offered]
    return found[0] if len(found) == 1 else None


def input_tokens(body: dict) -> int:
    """A rough count (four characters a token), enough for CrewAI's context-window preflight."""
    return len(json.dumps({k: body.get(k) for k in ("system", "messages", "tools")})) // 4


def reply(body: dict, calls: list[ToolCall], agent: str | None, proposal: str = "equivalent") -> dict:
    """The Message a disciplined Claude would send back; ``proposal`` is what the Code Generator
    proposes when it is offered the proposal tools."""
    task = _text(body["messages"][0].get("content"))
    offered = {t.get("name") for t in body.get("tools") or []}
    if agent is None:
        turn = Turn("I have no tools for this task, so I answer directly: nothing to do.")
    elif agent == GENERATOR:
        can_propose = {"read_generated_code", "propose_vectorbt_code"} <= offered
        turn = generator_turn(calls, task, proposal if can_propose else "none")
    else:
        turn = TURNS[agent](calls, task)
    if turn.tool is not None and turn.tool not in offered:  # never call a tool the request did not offer
        turn = Turn(f"FAILED: I need the tool {turn.tool}, which I was not given.")
    content: list[dict] = [{"type": "text", "text": turn.text}]
    if turn.tool is not None:
        content.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": turn.tool,
                        "input": turn.input or {}})
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if turn.tool is not None else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens(body), "output_tokens": len(json.dumps(content)) // 4,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


# -- the server ----------------------------------------------------------------------------------------------------

def _credentials(headers) -> set[str]:
    """The key a request carries: ``x-api-key``, or ``Authorization: Bearer`` as SDK 2.x sends it."""
    found = {headers.get("x-api-key") or ""}
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        found.add(token.strip())
    return found - {""}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: "_Server"

    def log_message(self, format, *args):  # quiet
        pass

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: ApiError) -> None:
        self._send(error.status, {"type": "error", "error": {"type": error.kind, "message": error.message}})

    def do_GET(self):
        self._error(ApiError(HTTPStatus.NOT_FOUND, "not_found_error", f"no route for GET {self.path}"))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.split("?")[0]
        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return self._error(ApiError(HTTPStatus.NOT_FOUND, "not_found_error", f"no route for POST {self.path}"))
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError:
            body = None
        record = Recorded(path=path, headers={k.lower(): v for k, v in self.headers.items()},
                          body=body if isinstance(body, dict) else {})
        fake: FakeAnthropic = self.server.fake
        try:
            if fake.api_key is not None and fake.api_key not in _credentials(self.headers):
                raise ApiError(HTTPStatus.UNAUTHORIZED, "authentication_error", "invalid x-api-key")
            if not self.headers.get("anthropic-version"):
                raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request_error", "anthropic-version: header is required")
            counting = path.endswith("/count_tokens")
            record.tool_calls = check_request(body, counting=counting)
            record.agent = agent_for(body)
            record.response = ({"input_tokens": input_tokens(body)} if counting
                               else reply(body, record.tool_calls, record.agent, fake.proposal))
        except ApiError as exc:
            record.error = f"{exc.kind}: {exc.message}"
            fake._record(record)
            return self._error(exc)
        except Exception as exc:  # a bug in the fake: answer like an API error, and keep it for the test
            record.error = f"api_error: {exc!r}"
            fake._record(record)
            return self._error(ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "api_error", repr(exc)))
        fake._record(record)
        self._send(HTTPStatus.OK, record.response)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, fake: "FakeAnthropic"):
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End kept-alive connections so their handler threads return."""
        with self.connections_lock:
            for conn in list(self.open_connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class FakeAnthropic:
    """The fake Messages API: ``start()`` binds 127.0.0.1 on a free port, ``stop()`` ends every thread."""

    def __init__(self, api_key: str | None = "test-key", proposal: str = "equivalent"):
        self.api_key = api_key  # None accepts any key
        self.proposal = proposal  # what the Code Generator proposes, when offered the proposal tools
        if proposal not in PROPOSAL_MODES:
            raise ValueError(f"proposal must be one of {PROPOSAL_MODES}")
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeAnthropic":
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()  # serve_forever returns
        self._thread.join()
        self._server.drop_connections()
        self._server.server_close()  # joins the handler threads
        self._server = self._thread = None

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @contextlib.contextmanager
    def proposing(self, mode: str):
        """Propose ``mode`` code for the duration of the block (one execution at a time), then as before."""
        if mode not in PROPOSAL_MODES:
            raise ValueError(f"proposal must be one of {PROPOSAL_MODES}")
        before, self.proposal = self.proposal, mode
        try:
            yield self
        finally:
            self.proposal = before

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self.requests.append(record)

    def recorded(self, path: str | None = "/v1/messages") -> list[Recorded]:
        """The requests received on ``path`` (every request with ``None``), in order."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]
