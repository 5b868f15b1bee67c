"""How the code is laid out: short functions, one error type, one check of T, test files
named after what they test."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("b2v_rnn", "data_tools", "bench")
MAX_LINES = 60
"""Longest function body worth reading in one go; argparse option tables (`build_parser`) are
lists, not logic, and are exempt."""


def python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_60_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in python_files() for node in functions(path)
            if node.end_lineno - node.lineno + 1 > MAX_LINES and node.name != "build_parser"]
    assert not long, "\n".join(long)


def test_one_user_error_type_and_one_check_of_T():
    classes, checks = [], []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                classes.append(f"{path.relative_to(ROOT)}:{node.name}")
            if isinstance(node, ast.FunctionDef) and node.name == "check_T":
                checks.append(str(path.relative_to(ROOT)))
    # BackendError: the compiled ops failing to load, a fault of the installation, not of input
    assert sorted(classes) == ["b2v_rnn/errors.py:UserError", "b2v_rnn/ops/_loader.py:BackendError"], classes
    assert checks == ["b2v_rnn/errors.py"], checks


def test_test_files_are_named_after_what_they_test():
    """tests/test_X*.py: X is a module or package of the repository (b2v_rnn.X, b2v_rnn.*.X,
    data_tools.X, bench.X, or the README)."""
    modules = {p.stem for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules |= {p.name for package in PACKAGES for p in (ROOT / package).rglob("*") if p.is_dir()}
    modules |= {"readme", "repository", "default_weights", "gpu_run"}
    unnamed = []
    for test in sorted((ROOT / "tests").glob("test_*.py")):
        words = test.stem[len("test_"):].split("_")
        if not any("_".join(words[:i]) in modules for i in range(1, len(words) + 1)):
            unnamed.append(test.name)
    assert not unnamed, unnamed
