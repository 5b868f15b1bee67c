"""Reading pytest-benchmark's timings in a way that also works in smoke runs."""


def mean_seconds(benchmark) -> float:
    """Mean seconds per round, or NaN under ``--benchmark-disable`` (CI's smoke run), where
    the benchmarked function runs once and no statistics exist."""
    stats = benchmark.stats
    return stats.stats.mean if stats is not None else float("nan")
