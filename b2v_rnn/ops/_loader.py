"""Finds the fused kernels: prebuilt module, else a just-in-time build, else the reference.

The backend is chosen once per process, on the first op call or :func:`backend` call:

1. ``compiled``: ``b2v_rnn._C``, built by ``pip install --no-build-isolation -e .``;
2. ``jit``: ``torch.utils.cpp_extension.load`` compiles ``csrc/`` with ninja into
   ``$B2V_BUILD_DIR`` (default: torch's extension cache) and loads it;
3. ``reference``: the pure-PyTorch chains, with one warning that says why 1 and 2 failed.

``B2V_OPS=compiled|jit|reference`` forces one; forcing one that cannot load raises
:class:`BackendError` with the reason, never a silent fallback. Exactly one copy of the
library is ever loaded: a prebuilt module and a JIT build registering the same
``b2v_rnn`` namespace in one process would abort it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

import torch

BACKENDS = ("compiled", "jit", "reference")
CSRC = Path(__file__).resolve().parents[2] / "csrc"
DEFAULT_CUDA_ARCHS = "8.0;9.0"
"""GPU targets when ``TORCH_CUDA_ARCH_LIST`` is unset and no GPU is visible (setup.py's default too):
the kernels' minimum, Ampere (bf16 and TF32 tensor cores), and Hopper."""

_backend: str | None = None


class BackendError(RuntimeError):
    """A forced backend (``B2V_OPS``) could not be loaded."""


def backend() -> str:
    """The active implementation of the fused ops: ``"compiled"``, ``"jit"`` or ``"reference"``."""
    global _backend
    if _backend is None:
        _backend = _choose()
    return _backend


def _choose() -> str:
    forced = os.environ.get("B2V_OPS", "").strip().lower()
    if forced and forced not in BACKENDS:
        raise BackendError(f"B2V_OPS must be one of {BACKENDS}, got {forced!r}")
    if forced == "reference":
        return "reference"
    loaders = {"compiled": _load_compiled, "jit": _load_jit}
    if forced:
        try:
            loaders[forced]()
        except Exception as error:
            raise BackendError(f"B2V_OPS={forced} was requested but could not be loaded: {error}") from error
        return _registered(forced)
    reasons = []
    for name, load in loaders.items():
        try:
            load()
            return _registered(name)
        except Exception as error:
            reasons.append(f"{name}: {error}")
    warnings.warn(
        "b2v_rnn: fused ops unavailable, using the pure-PyTorch reference (slower, same "
        "results). Why:\n  " + "\n  ".join(reasons),
        RuntimeWarning,
        stacklevel=3,
    )
    return "reference"


def _registered(name: str) -> str:
    # Fake kernels and autograd formulas may only be attached once the schemas exist.
    from . import _register

    _register.register_python_parts()
    return name


def _load_compiled() -> None:
    import b2v_rnn._C  # noqa: F401  (importing runs the TORCH_LIBRARY registrations)


def cuda_sources_wanted() -> bool:
    """CUDA kernels are built only with a CUDA PyTorch and a CUDA toolchain at hand."""
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None


@contextlib.contextmanager
def cuda_arch_list() -> Iterator[str | None]:
    """Sets ``TORCH_CUDA_ARCH_LIST`` to :data:`DEFAULT_CUDA_ARCHS` for the duration of a build
    when it is unset and no GPU is visible, and restores the environment afterwards.

    torch derives the targets from the visible GPUs; with none (a CUDA PyTorch on a build node
    or a CPU-only machine) its list is empty and the JIT build dies with an IndexError instead
    of compiling. A visible GPU or a user's own list is left to torch.
    """
    if "TORCH_CUDA_ARCH_LIST" in os.environ or torch.cuda.is_available():
        yield os.environ.get("TORCH_CUDA_ARCH_LIST")
        return
    os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    try:
        yield DEFAULT_CUDA_ARCHS
    finally:
        os.environ.pop("TORCH_CUDA_ARCH_LIST", None)


def sources(with_cuda: bool) -> list[str]:
    """The extension's sources: schemas, CPU kernels, and the CUDA launchers when wanted."""
    found = sorted(glob.glob(str(CSRC / "*.cpp"))) + sorted(glob.glob(str(CSRC / "cpu" / "*.cpp")))
    if with_cuda:
        found += sorted(glob.glob(str(CSRC / "cuda" / "*.cu")))
    return found


def openmp_flags() -> list[str]:
    """``-fopenmp`` where ATen parallelises with OpenMP (Linux wheels).

    ``at::parallel_for`` is a header template: compiled without OpenMP it runs serially.
    The flag also links libgomp, which resolves to the copy torch already loaded.
    """
    parallel = torch.__config__.parallel_info()
    return ["-fopenmp"] if sys.platform.startswith("linux") and "parallel backend: OpenMP" in parallel else []


def _load_jit() -> None:
    from torch.utils import cpp_extension

    if not CSRC.is_dir():
        raise FileNotFoundError(f"no C++ sources to build at {CSRC} (installed without the source tree)")
    with_cuda = cuda_sources_wanted()
    build_dir = os.environ.get("B2V_BUILD_DIR")
    if build_dir:
        os.makedirs(build_dir, exist_ok=True)
    with cuda_arch_list() if with_cuda else contextlib.nullcontext():
        cpp_extension.load(
            name="b2v_rnn_ops",
            sources=sources(with_cuda),
            extra_cflags=["-O3", "-DB2V_JIT", *openmp_flags()],
            extra_ldflags=openmp_flags(),
            extra_cuda_cflags=["-O3"] if with_cuda else None,
            extra_include_paths=[str(CSRC)],
            build_directory=build_dir,
            with_cuda=with_cuda,
            is_python_module=False,
            verbose=os.environ.get("B2V_VERBOSE_BUILD") == "1",
        )
