"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios."""
import statistics
import time


def interleaved(fns: dict, repeats: int = 7, warmup: int = 2) -> dict:
    """Median seconds of each callable, alternating between them so drift and load hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
