"""check_code: the AST policy, table-driven."""
import pytest

from services.common.code_policy import Violation, check_code
from .scripts import EXAMPLE

ALLOWED = [
    EXAMPLE,
    "import numpy as np\nx = np.sqrt(4)",
    "import math, json, datetime\nprint(json.dumps({'a': math.pi}), json.loads('1'))",
    "from datetime import datetime, timedelta\nprint(datetime(2024, 1, 1) + timedelta(days=1))",
    "import pandas as pd\ndf = pd.DataFrame({'a': [1]}).rename(columns={'a': 'b'})",
    "import vectorbt as vbt\nrsi = vbt.RSI.run",
    "x = getattr(object(), 'real', None)",
    "print('{:.2f}'.format(1.5))",
    "if __name__ == '__main__':\n    print(__doc__)",
]

REJECTED = [
    # (source, rule, line)
    ("import os", "import-not-allowed", 1),
    ("import subprocess as sp", "import-not-allowed", 1),
    ("from os import system", "import-not-allowed", 1),
    ("import numpy.ctypeslib", "import-not-allowed", 1),
    ("from . import x", "import-not-allowed", 1),
    ("import pickle", "import-not-allowed", 1),
    ("import ctypes", "import-not-allowed", 1),
    ("import socket", "network-module", 1),
    ("import urllib.request", "network-module", 1),
    ("import yfinance", "network-module", 1),
    ("from numpy import *", "import-star", 1),
    ("from stratexec_runtime import channel", "name-not-importable", 1),
    ("from numpy import load", "io-method", 1),
    ("from pandas import read_pickle", "io-method", 1),
    ("x = 1\neval('1+1')", "forbidden-builtin", 2),
    ("exec('print(1)')", "forbidden-builtin", 1),
    ("f = open('/etc/passwd')", "forbidden-builtin", 1),
    ("__import__('os')", "forbidden-builtin", 1),
    ("c = compile('1', 'x', 'eval')", "forbidden-builtin", 1),
    ("g = globals()", "forbidden-builtin", 1),
    ("e = eval", "forbidden-builtin", 1),
    ("breakpoint()", "forbidden-builtin", 1),
    ("v = vars()", "forbidden-builtin", 1),
    ("getattr(x, name)", "dynamic-attribute", 1),
    ("setattr(x, 'a' + 'b', 1)", "dynamic-attribute", 1),
    ("g = getattr", "dynamic-attribute", 1),
    ("getattr(x, '__class__')", "dunder-attribute", 1),
    ("().__class__.__bases__[0].__subclasses__()", "dunder-attribute", 1),
    ("x = __builtins__", "dunder-attribute", 1),
    ("f.__globals__", "dunder-attribute", 1),
    ("getattr(pd, 'read_csv')", "io-method", 1),
    ("import pandas as pd\ndf = pd.read_csv('/etc/passwd')", "io-method", 2),
    ("df.to_csv('out.csv')", "io-method", 1),
    ("df.to_pickle('x')", "io-method", 1),
    ("import numpy as np\nnp.save('x', a)", "io-method", 2),
    ("import numpy as np\na = np.load('x.npy', allow_pickle=True)", "io-method", 2),
    ("a.tofile('x')", "io-method", 1),
    ("import numpy as np\nnp.fromfile('x')", "io-method", 2),
    ("import numpy as np\nm = np.memmap('x')", "io-method", 2),
    ("import vectorbt as vbt\npf = vbt.Portfolio.loads(b'x')", "io-method", 2),
    ("df.eval('a + b')", "io-method", 1),
    ("import vectorbt as vbt\nd = vbt.YFData.download('BTC-USD')", "data-download", 2),
    ("import vectorbt as vbt\nd = vbt.data", "data-download", 2),
    ("from vectorbt import data", "data-download", 1),
    ("import numpy as np\nnp.ctypeslib", "forbidden-attribute", 2),
    ("import pandas as pd\npd.io.common", "forbidden-attribute", 2),
    ("x.os.system('id')", "forbidden-attribute", 1),
    ("'{0.__class__}'.format(1)", "format-attribute", 1),
    ("def f(:\n  pass", "syntax-error", 1),
    ("x = 1\n\ny = (", "syntax-error", 3),
]


@pytest.mark.parametrize("source", ALLOWED)
def test_allowed_code_passes(source):
    assert check_code(source) == []


@pytest.mark.parametrize("source,rule,line", REJECTED)
def test_rejected_code_names_rule_and_line(source, rule, line):
    violations = check_code(source)
    assert violations, source
    assert rule in {v.rule for v in violations}, violations
    assert any(v.rule == rule and v.line == line for v in violations), violations
    assert all(isinstance(v, Violation) and v.message for v in violations)


def test_syntax_error_is_a_single_violation_with_its_line():
    [v] = check_code("import math\nx = = 1\n")
    assert (v.rule, v.line) == ("syntax-error", 2)


def test_every_violation_is_reported_in_source_order():
    violations = check_code("import os\nimport socket\neval('1')\n")
    assert [(v.line, v.rule) for v in violations] == [(1, "import-not-allowed"), (2, "network-module"), (3, "forbidden-builtin")]


def test_violation_is_frozen():
    v = Violation("r", 1, 0, "m")
    with pytest.raises(Exception):
        v.rule = "other"  # type: ignore[misc]


def test_huge_source_is_rejected():
    [v] = check_code("x = 1\n" * 50000)
    assert v.rule == "code-too-large"
