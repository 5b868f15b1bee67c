"""How the fused ops' backend is chosen: B2V_OPS, the JIT build, failures that say why."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ops_helpers import require_fused

from b2v_rnn import ops
from b2v_rnn.ops import _loader

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (the backend is chosen once per process)."""
    environment = {**os.environ, **env}
    for name, value in env.items():
        if value is None:
            environment.pop(name)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_backend_is_known_and_fused_unless_forced():
    assert ops.backend() in ops.BACKENDS
    require_fused()


COMPARE = textwrap.dedent(
    """
    import sys, torch
    from b2v_rnn import ops
    x, w = torch.randn(2, 1, 12, 8), torch.randn(3, 16, 3, 3)
    s, t, w2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(ops.resample_conv2d(x, w, None, 4, 1), ops.resample_conv2d_reference(x, w, None, 4, 1))
    h = torch.randn(2, 3, 7, 9)
    torch.testing.assert_close(ops.preact_dilated_conv2d(h, s, t, w2, None, 2), ops.preact_dilated_conv2d_reference(h, s, t, w2, None, 2))
    print("backend", ops.backend())
    print("libraries", sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'b2v_rnn' in l and '.so' in l}))
    """
)


def test_forced_reference_loads_nothing():
    result = run_python(COMPARE + "\nprint('registered', hasattr(torch.ops.b2v_rnn, 'resample_conv2d'))", B2V_OPS="reference")
    assert result.returncode == 0, result.stderr
    assert "backend reference" in result.stdout
    assert "registered False" in result.stdout and "libraries []" in result.stdout


def test_bogus_backend_raises_with_value():
    result = run_python("from b2v_rnn import ops; ops.backend()", B2V_OPS="bogus")
    assert result.returncode != 0
    assert "BackendError" in result.stderr and "'bogus'" in result.stderr and "B2V_OPS" in result.stderr


def test_forced_compiled_that_cannot_load_raises(monkeypatch):
    monkeypatch.setenv("B2V_OPS", "compiled")
    monkeypatch.setitem(sys.modules, "b2v_rnn._C", None)  # import of the prebuilt module fails
    with pytest.raises(ops.BackendError, match="B2V_OPS=compiled was requested but could not be loaded: .*b2v_rnn._C"):
        _loader._choose()


def test_forced_jit_without_sources_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("B2V_OPS", "jit")
    monkeypatch.setattr(_loader, "CSRC", tmp_path / "missing")
    with pytest.raises(ops.BackendError, match="B2V_OPS=jit .*no C\\+\\+ sources to build"):
        _loader._choose()


def test_failed_jit_build_reports_the_compiler_message(monkeypatch, tmp_path):
    """A broken source: the BackendError carries the compiler's own words."""
    csrc = tmp_path / "csrc"
    (csrc / "cpu").mkdir(parents=True)
    (csrc / "broken_op.cpp").write_text("int broken( { return 0; }\n")
    monkeypatch.setenv("B2V_OPS", "jit")
    monkeypatch.setenv("B2V_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(_loader, "CSRC", csrc)
    monkeypatch.setattr(_loader, "cuda_sources_wanted", lambda: False)
    with pytest.raises(ops.BackendError) as error:
        _loader._choose()
    message = str(error.value)
    assert "B2V_OPS=jit" in message and "broken_op.cpp" in message and "error" in message


def test_cuda_arch_list_defaults_only_without_gpu_or_user_list(monkeypatch):
    """Without a visible GPU torch's own arch list is empty and a CUDA JIT build dies; the
    loader then supplies sm_80/sm_90 for the build only, and never overrides a user's list."""
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(_loader.torch.cuda, "is_available", lambda: False)
    with _loader.cuda_arch_list() as archs:
        assert archs == _loader.DEFAULT_CUDA_ARCHS == os.environ["TORCH_CUDA_ARCH_LIST"]
    assert "TORCH_CUDA_ARCH_LIST" not in os.environ

    monkeypatch.setattr(_loader.torch.cuda, "is_available", lambda: True)
    with _loader.cuda_arch_list() as archs:
        assert archs is None and "TORCH_CUDA_ARCH_LIST" not in os.environ

    monkeypatch.setattr(_loader.torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.6")
    with _loader.cuda_arch_list() as archs:
        assert archs == "8.6" == os.environ["TORCH_CUDA_ARCH_LIST"]
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "8.6"


def test_auto_mode_warns_once_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.delenv("B2V_OPS", raising=False)
    monkeypatch.setitem(sys.modules, "b2v_rnn._C", None)
    monkeypatch.setattr(_loader, "CSRC", tmp_path / "missing")
    monkeypatch.setattr(_loader, "_backend", None)
    with pytest.warns(RuntimeWarning) as record:
        assert _loader.backend() == "reference"
        assert _loader.backend() == "reference"
    assert len(record) == 1
    message = str(record[0].message)
    assert "compiled:" in message and "jit:" in message and "no C++ sources" in message


def test_register_python_parts_is_idempotent():
    require_fused()
    if ops.backend() == "reference":
        pytest.skip("B2V_OPS=reference: nothing registered")
    from b2v_rnn.ops import _register

    _register.register_python_parts()
    _register.register_python_parts()


@pytest.mark.slow
def test_jit_build_in_fresh_directory(tmp_path):
    """B2V_OPS=jit compiles csrc/ with ninja into B2V_BUILD_DIR and loads only that copy."""
    result = run_python(COMPARE, timeout=900, B2V_OPS="jit", B2V_BUILD_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend jit" in result.stdout
    assert "libraries ['b2v_rnn_ops.so']" in result.stdout, result.stdout
    assert (tmp_path / "b2v_rnn_ops.so").exists()
