"""Suites name registered workloads; unknown names are clear errors."""

from __future__ import annotations

import pytest

from workloads import registry, suites


def test_every_suite_names_registered_workloads():
    for suite in suites.names():
        members = suites.workloads(suite)
        assert members, f"suite {suite!r} is empty"
        assert set(members) <= set(registry.names())
        assert len(members) == len(set(members))


def test_cpu_is_every_workload_and_quick_a_part_of_it():
    assert suites.workloads("cpu") == registry.names()
    assert set(suites.workloads("quick")) < set(suites.workloads("cpu"))


def test_unknown_suite():
    with pytest.raises(suites.UnknownSuiteError, match="known: cpu, quick"):
        suites.workloads("nightly")
