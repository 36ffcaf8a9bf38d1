"""Suites name registered workloads; unknown names are clear errors."""

from __future__ import annotations

import pytest

from optarena.workloads import registry, suites


def test_every_suite_names_registered_workloads():
    for suite in suites.names():
        members = suites.workloads(suite)
        assert members, f"suite {suite!r} is empty"
        assert set(members) <= set(registry.names())
        assert len(members) == len(set(members))


def test_cpu_and_real_split_the_registry_by_where_data_comes_from():
    cpu, real = suites.workloads("cpu"), suites.workloads("real")
    assert sorted(cpu + real) == registry.names()
    assert all(registry.get(name).spec.offline for name in cpu)
    assert not any(registry.get(name).spec.offline for name in real)
    assert set(suites.workloads("quick")) < set(cpu)


def test_unknown_suite():
    with pytest.raises(suites.UnknownSuiteError, match="known: cpu, quick, real"):
        suites.workloads("nightly")
