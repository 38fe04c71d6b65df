"""The code policy: an AST check of backtest scripts before they run.

Used by codegen's ValidateCode and by the sandbox before every ExecuteCode.
It is a first filter that gives clear messages for what a backtest never
needs; it is not the security boundary (the sandbox's isolation is).

    check_code(source) -> [Violation(rule, line, column, message), ...]

Rules (stable names):
  syntax-error          the source does not parse (one violation, its line)
  code-too-large        more than MAX_SOURCE_BYTES
  import-not-allowed    a module outside ALLOWED_MODULES, a submodule, or a relative import
  network-module        a network module (socket, urllib, requests, yfinance ...)
  import-star           ``from x import *``
  name-not-importable   a private or I/O name imported from an allowed module
  forbidden-builtin     eval, exec, compile, open, __import__, input, breakpoint,
                        globals, locals, vars (called or merely referenced)
  dynamic-attribute     getattr/setattr/delattr/hasattr without a constant, allowed name
  dunder-attribute      ``x.__class__`` and friends; dunder names other than __name__, __doc__
  io-method             pandas/numpy/vectorbt readers and writers, pickling, memmaps
  data-download         vectorbt data downloads (vbt.YFData ...) and messaging
  forbidden-attribute   module handles reachable as attributes (``np.ctypeslib``, ``x.os``)
  format-attribute      a format string that reaches attributes (``"{0.__class__}"``)
"""
from __future__ import annotations

import ast
import dataclasses
import re

MAX_SOURCE_BYTES = 200_000

ALLOWED_MODULES = frozenset(
    {"vectorbt", "pandas", "numpy", "math", "json", "datetime", "argparse", "stratexec_runtime"}
)

NETWORK_MODULES = frozenset(
    {
        "socket", "ssl", "select", "selectors", "asyncio", "urllib", "urllib2", "urllib3", "http",
        "httpx", "requests", "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib",
        "xmlrpc", "socketserver", "websocket", "websockets", "yfinance", "ccxt", "grpc", "paramiko",
        "dns", "webbrowser",
    }
)

# Names a script may import from stratexec_runtime (its public API).
RUNTIME_NAMES = frozenset({"load_prices", "report", "resolve_symbol", "compute_metrics", "plan_trades", "order_arrays", "target_percents", "unfilled", "sweep"})

FORBIDDEN_BUILTINS = frozenset(
    {"eval", "exec", "compile", "open", "__import__", "input", "breakpoint", "globals", "locals", "vars"}
)
ATTR_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__"})

# Readers and writers of pandas, numpy and vectorbt, pickling, memory maps.
IO_NAMES = frozenset(
    {
        # pandas writers
        "to_csv", "to_pickle", "to_excel", "to_json", "to_parquet", "to_feather", "to_hdf", "to_sql",
        "to_stata", "to_html", "to_latex", "to_markdown", "to_clipboard", "to_xml", "to_orc",
        "to_gbq", "to_string_file", "HDFStore", "ExcelWriter", "ExcelFile",
        # numpy
        "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "genfromtxt", "fromfile",
        "tofile", "memmap", "open_memmap", "fromregex", "DataSource", "recfromcsv", "recfromtxt",
        # pickling and serialisation helpers (vectorbt's Pickleable.dumps/loads are pickle)
        "dumps", "loads", "dump", "pickle", "unpickle",
        # code evaluation that pandas offers
        "eval", "query",
    }
)
# pandas readers: every attribute starting with "read_" (read_csv, read_pickle, read_parquet ...).
IO_PREFIXES = ("read_",)
# json.dumps / json.loads are plain string functions: allowed on the json module only.
JSON_SAFE = frozenset({"dumps", "loads"})

DATA_DOWNLOAD_NAMES = frozenset(
    {
        "YFData", "BinanceData", "CCXTData", "AlpacaData", "GBMData", "SyntheticData", "Data",
        "download", "download_symbol", "TelegramBot",
    }
)
# Attributes of the vectorbt module itself that reach data downloads, messaging or pickling.
VECTORBT_MODULE_ATTRIBUTES = frozenset({"data", "messaging", "utils"})

# Module handles that libraries expose as attributes (np.ctypeslib, some_module.os ...).
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "os", "sys", "subprocess", "shutil", "socket", "pickle", "cPickle", "marshal", "ctypes",
        "ctypeslib", "cffi", "importlib", "builtins", "inspect", "gc", "codeop", "pty",
        "threading", "multiprocessing", "concurrent", "requests", "urllib", "pathlib",
        "tempfile", "io", "glob", "dill", "cloudpickle", "joblib", "yfinance", "f2py",
        "distutils", "numba", "llvmlite", "resource", "fcntl", "mmap", "sysconfig", "runpy",
        "zipimport", "webbrowser", "npyio", "func_globals", "f_globals", "f_locals", "f_back",
        "f_builtins", "gi_frame", "cr_frame", "ag_frame", "tb_frame", "co_code", "mro",
        "system", "popen", "environ", "getenv", "putenv",
    }
)

_FORMAT_ATTR = re.compile(r"\{[^{}]*?(\.|\[)[^{}]*\}")


@dataclasses.dataclass(frozen=True)
class Violation:
    """One breach of the policy: stable rule name, 1-based line, 0-based column, message."""

    rule: str
    line: int
    column: int
    message: str


def check_code(source: str) -> list[Violation]:
    """Every breach of the policy in ``source``, in source order."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        return [Violation("code-too-large", 1, 0, f"code is larger than {MAX_SOURCE_BYTES} bytes")]
    try:
        tree = ast.parse(source, filename="strategy.py", mode="exec")
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = max((exc.offset or 1) - 1, 0)
        return [Violation("syntax-error", line, column, f"syntax error: {exc.msg}")]
    except ValueError as exc:  # null bytes and the like
        return [Violation("syntax-error", 1, 0, f"syntax error: {exc}")]
    checker = _Checker()
    checker.visit(tree)
    return sorted(set(checker.violations), key=lambda v: (v.line, v.column, v.rule))


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.json_aliases: set[str] = set()
        self.vectorbt_aliases: set[str] = set()
        self.callees: set[int] = set()  # ids of Name nodes that are the function of a Call

    def add(self, node: ast.AST, rule: str, message: str) -> None:
        self.violations.append(
            Violation(rule, getattr(node, "lineno", 1), getattr(node, "col_offset", 0), message)
        )

    # imports ---------------------------------------------------------------

    def _check_module(self, node: ast.AST, module: str) -> bool:
        top = module.split(".")[0]
        if top in NETWORK_MODULES:
            self.add(node, "network-module", f"network module {module!r} is not allowed: jailed code has no network")
            return False
        if top not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            self.add(node, "import-not-allowed", f"import of {module!r} is not allowed (allowed: {allowed})")
            return False
        if "." in module:
            self.add(node, "import-not-allowed", f"import of submodule {module!r} is not allowed: import {top!r} itself")
            return False
        return True

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self._check_module(node, alias.name):
                if alias.name == "json":
                    self.json_aliases.add(alias.asname or "json")
                elif alias.name == "vectorbt":
                    self.vectorbt_aliases.add(alias.asname or "vectorbt")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.add(node, "import-not-allowed", "relative imports are not allowed")
            return
        module = node.module or ""
        if not self._check_module(node, module):
            return
        for alias in node.names:
            name = alias.name
            if name == "*":
                self.add(node, "import-star", f"'from {module} import *' is not allowed: import names explicitly")
            elif module == "stratexec_runtime" and name not in RUNTIME_NAMES:
                self.add(node, "name-not-importable", f"stratexec_runtime exports {', '.join(sorted(RUNTIME_NAMES))}, not {name!r}")
            elif name.startswith("_"):
                self.add(node, "name-not-importable", f"private name {name!r} cannot be imported")
            elif module == "vectorbt" and name in VECTORBT_MODULE_ATTRIBUTES:
                self.add(node, "data-download", f"vectorbt.{name} (data downloads, messaging, pickling) is not allowed")
            elif module != "json" and self._attr_rule(name) is not None:
                rule, message = self._attr_rule(name)
                self.add(node, rule, message)

    # names and calls -------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self.callees.add(id(func))
            if func.id in ATTR_BUILTINS:
                self._check_dynamic_attribute(node, func.id)
        self.generic_visit(node)

    def _check_dynamic_attribute(self, node: ast.Call, builtin: str) -> None:
        if len(node.args) < 2 or not (isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            self.add(node, "dynamic-attribute", f"{builtin}() needs a constant attribute name")
            return
        name = node.args[1].value
        if _is_dunder(name) or name.startswith("_"):
            self.add(node, "dunder-attribute", f"{builtin}() of private attribute {name!r} is not allowed")
            return
        found = self._attr_rule(name)
        if found is not None:
            self.add(node, found[0], f"{builtin}(): {found[1]}")

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in FORBIDDEN_BUILTINS:
            self.add(node, "forbidden-builtin", f"{name} is not allowed")
        elif name in ATTR_BUILTINS and id(node) not in self.callees:
            self.add(node, "dynamic-attribute", f"{name} may only be called directly with a constant name")
        elif _is_dunder(name) and name not in ALLOWED_DUNDER_NAMES:
            self.add(node, "dunder-attribute", f"dunder name {name} is not allowed")

    # attributes ------------------------------------------------------------

    def _attr_rule(self, name: str) -> tuple[str, str] | None:
        if name in IO_NAMES or name.startswith(IO_PREFIXES):
            return "io-method", f"{name!r} reads or writes files or evaluates code: prices come from load_prices, results from report"
        if name in DATA_DOWNLOAD_NAMES:
            return "data-download", f"{name!r} is vectorbt data access or messaging: the sandbox prepares the data, jailed code has no network"
        if name in FORBIDDEN_ATTRIBUTES:
            return "forbidden-attribute", f"attribute {name!r} reaches a module or function that backtests never need"
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if _is_dunder(name):
            self.add(node, "dunder-attribute", f"dunder attribute {name} is not allowed")
        elif name in JSON_SAFE and isinstance(node.value, ast.Name) and node.value.id in self.json_aliases:
            pass
        elif name in VECTORBT_MODULE_ATTRIBUTES and isinstance(node.value, ast.Name) and node.value.id in self.vectorbt_aliases:
            self.add(node, "data-download", f"vectorbt.{name} (data downloads, messaging, pickling) is not allowed")
        else:
            found = self._attr_rule(name)
            if found is not None:
                self.add(node, *found)
        self.generic_visit(node)

    # strings ----------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "{" in node.value and _FORMAT_ATTR.search(node.value):
            # "{0.__class__}".format(x) reaches attributes without an Attribute node.
            if "_" in "".join(m.group(0) for m in _FORMAT_ATTR.finditer(node.value)):
                self.add(node, "format-attribute", "format fields may not reach private attributes")
