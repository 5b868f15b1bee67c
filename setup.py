"""Builds b2v_rnn and its C++ (and, with a CUDA toolchain and CUDA PyTorch, CUDA) extension.

Install against the torch already in the environment:
    pip install --no-build-isolation -e .
``TORCH_CUDA_ARCH_LIST`` selects the GPU architectures (default: 8.0 and 9.0).
"""

import glob
import os
import sys

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def extension():
    cpp = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    with_cuda = torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("B2V_NO_CUDA") != "1"
    # at::parallel_for is a header template: without OpenMP it would run serially.
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info() else []
    args = {"cxx": ["-O3", *openmp]}
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")  # as b2v_rnn/ops/_loader.py for JIT builds
        args["nvcc"] = ["-O3"]
        return CUDAExtension(
            "b2v_rnn._C",
            cpp + sorted(glob.glob("csrc/cuda/*.cu")),
            include_dirs=[os.path.join(HERE, "csrc")],
            extra_compile_args=args,
            extra_link_args=openmp,
        )
    return CppExtension(
        "b2v_rnn._C",
        cpp,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args=args,
        extra_link_args=openmp,
    )


setup(
    name="b2v_rnn",
    version="0.1.0",
    description="One motion-blurred photo to a short sharp video (Jin et al., CVPR 2018), recurrent variant",
    packages=find_packages(include=["b2v_rnn", "b2v_rnn.*", "data_tools"]),
    python_requires=">=3.10",  # dataclass(kw_only=True) in the model configs
    install_requires=["torch>=2.4", "numpy", "scikit-image", "h5py", "tqdm"],
    extras_require={"test": ["pytest", "pytest-benchmark", "hypothesis"], "video": ["imageio", "imageio-ffmpeg"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    package_data={"b2v_rnn": ["weights/*.pt", "weights/*.sha256", "samples/*.png"]},
    zip_safe=False,
)
