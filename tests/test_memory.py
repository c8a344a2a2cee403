"""Memory: a request with a large photo costs the server a bounded amount above what it already held."""

import pytest

from bench.__main__ import bench_memory, memory_table

LIMIT_MB = 1536  # the bound for one request at 40 MP: a 16 GB Space serves several at once
MEGAPIXELS = 24  # the test's photo: the bound scaled to its pixels (the bench measures 40 MP, README "App" rows)


def test_a_large_request_to_the_full_resolution_endpoints_costs_at_most_the_bound_for_its_pixels():
    # colorize took 1.3 → 6.6 GB at 40 MP (two at once 11.4 GB) when it converted the whole photo to float LAB at
    # once: 5.3 GB above the upload, ~3.2 GB at this size, where the bound is 922 MB
    result = bench_memory(MEGAPIXELS, timeout_s=180, endpoints=("colorize", "mask"), concurrent=None)
    quality = result["quality"]
    assert result["data"].endswith(f"JPEG ({MEGAPIXELS} MP)")
    decoded_mb = MEGAPIXELS * 1e6 * 3 / 2**20  # the photo's RGB pixels
    for endpoint in ("colorize", "mask"):
        assert decoded_mb < quality[f"extra_mb/{endpoint}"] <= LIMIT_MB * MEGAPIXELS / 40, quality
        parts = quality[f"before_mb/{endpoint}"] + quality[f"extra_mb/{endpoint}"]
        assert abs(quality[f"peak_mb/{endpoint}"] - parts) <= 1  # each rounded to a MiB
    assert "| colorize |" in memory_table(quality)


def test_the_peak_is_measured_from_the_request_not_the_process_start():
    from bench.__main__ import process_memory_mb, reset_peak_memory

    def resident(megabytes: int) -> bytearray:
        block = bytearray(megabytes * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page, so that it is resident
        return block

    block = resident(300)
    del block  # a peak before the reset...
    reset_peak_memory("self")
    start = process_memory_mb("self")
    assert start["peak"] < start["rss"] + 100  # ...is forgotten by it
    block = resident(200)
    assert process_memory_mb("self")["peak"] >= start["rss"] + 190
    del block
    with pytest.raises(FileNotFoundError):
        process_memory_mb(2**22 + 12345)  # no such process
