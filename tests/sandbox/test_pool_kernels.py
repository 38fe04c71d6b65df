"""Every kernel family the compiler emits runs in the warm pool, already compiled by the warm parent."""
import pytest

from stratexec.sandbox.v1 import sandbox_pb2

from .kernel_families import FAMILIES, params, script
from .scripts import EXAMPLE
from .test_execute_code import PARAMS


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_kernel_family_runs_warm_in_the_pool(pool_stub, family):
    reply = pool_stub.ExecuteCode(
        sandbox_pb2.ExecuteCodeRequest(code=script(family), params=params(family), execution_id=f"kernels-{family}"),
        timeout=300,
    )
    logs = list(reply.logs)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED, (reply.error, logs[-20:])
    assert len(reply.result.equity) > 0
    # The run compiled nothing itself: a kernel the warm parent missed is named in the run's logs.
    assert not [line for line in logs if "not warm" in line], logs


def test_a_kernel_the_parent_never_compiled_compiles_in_the_run(pool_stub):
    # float32 input: a signature of diff_nb no warm-up compiles. The run cannot use (or write) the
    # parent's numba cache; it compiles the kernel itself and says so in its logs.
    marker = "from stratexec_runtime import load_prices, report\n"
    code = EXAMPLE.replace(marker, marker + "import numpy as np\n"
                           "print('diff', vbt.generic.nb.diff_nb(np.arange(6, dtype=np.float32).reshape(3, 2), 1)[2].tolist())\n")
    reply = pool_stub.ExecuteCode(sandbox_pb2.ExecuteCodeRequest(code=code, params=PARAMS, execution_id="kernels-cold"),
                                  timeout=300)
    logs = list(reply.logs)
    assert reply.outcome == sandbox_pb2.RUN_OUTCOME_SUCCEEDED, (reply.error, logs[-20:])
    assert "diff [2.0, 2.0]" in logs
    assert any("not warm" in line and "vectorbt.generic.nb.diff_nb" in line for line in logs), logs
