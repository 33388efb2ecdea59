"""One local Ray cluster (2 worker CPUs) for every ``ray`` test of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the cluster (no dashboard, temp dir under pytest's); yield its address. Without the
    ``[ray]`` extra this errors (never a skip): the ray stage installs it."""
    import ray

    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
