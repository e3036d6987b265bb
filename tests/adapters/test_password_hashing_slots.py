"""argon2id runs through bounded, process-wide slots (adapters/passwords.py, docs/performance.md).

Forty request threads checking payment passwords at once must not run forty 64-MiB hashes side by
side: at most ``max_concurrent`` (default: one per CPU) run, the rest wait their turn. The slots
count who runs and who waits, so the bound is shown without timing anything.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tianpay.adapters.passwords import Argon2PasswordHasher, HashingSlots, shared_slots


def _cheap(slots: HashingSlots) -> Argon2PasswordHasher:
    return Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1, slots=slots)


def _wait_until(condition: object, deadline_s: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the condition never came true")
        time.sleep(0.005)


def test_hashers_share_one_set_of_slots_per_process_sized_by_the_cpus_by_default() -> None:
    default = Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)
    assert default.slots is shared_slots()
    assert default.slots.size == (os.cpu_count() or 1)
    configured = Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1, max_concurrent=3)
    assert configured.slots is shared_slots(3)
    assert configured.slots.size == 3


def test_a_check_waits_while_every_slot_is_taken_and_runs_when_one_frees() -> None:
    slots = HashingSlots(2)
    hasher = _cheap(slots)
    hashed = hasher.hash("135790")
    results: list[bool] = []
    with slots.held(), slots.held():
        checker = threading.Thread(target=lambda: results.append(hasher.verify(hashed, "135790")))
        checker.start()
        _wait_until(lambda: slots.waiting == 1)
        assert results == []
        assert slots.in_use == 2
    checker.join(timeout=30)
    assert results == [True]
    assert (slots.in_use, slots.waiting) == (0, 0)


def test_forty_concurrent_checks_never_run_more_than_the_bound_at_once() -> None:
    slots = HashingSlots(2)
    hasher = _cheap(slots)
    hashed = hasher.hash("135790")
    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(lambda i: hasher.verify(hashed, "135790" if i % 2 else "246801"), range(40)))
    assert outcomes == [bool(i % 2) for i in range(40)]
    assert 1 <= slots.peak_in_use <= 2
    assert (slots.in_use, slots.waiting) == (0, 0)


def test_a_wrong_or_malformed_hash_frees_its_slot() -> None:
    slots = HashingSlots(1)
    hasher = _cheap(slots)
    assert not hasher.verify("not-an-argon2-hash", "135790")
    assert not hasher.verify(hasher.hash("135790"), "246801")
    assert slots.in_use == 0


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HashingSlots(0)
