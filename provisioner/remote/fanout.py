"""The one way to do something on many nodes at once: a thread per node, results by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def fan_out(names: Sequence[str], work: Callable[[str], T], parallel: int | None = None) -> dict[str, T | Exception]:
    """WORK(name) for each name at once (at most PARALLEL at a time); each result or its error.

    The answer is in the order of NAMES, so callers report nodes in the lab file's order.
    """
    if not names:
        return {}
    workers = max(1, min(parallel or len(names), len(names)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(work, name) for name in names}
    results: dict[str, T | Exception] = {}
    for name, future in futures.items():
        error = future.exception()
        results[name] = error if isinstance(error, Exception) else future.result()
    return results


def first_failure(results: dict[str, T | Exception]) -> dict[str, T]:
    """The results, or the first error (in order) raised again."""
    settled: dict[str, T] = {}
    for name, result in results.items():
        if isinstance(result, Exception):
            raise result
        settled[name] = result
    return settled
