"""Shared test setup. Fixtures live in tests/fixtures/, one module per real part."""

pytest_plugins = [
    "fixtures.env",
    "fixtures.kubectl_bin",
    "fixtures.cluster",
    "fixtures.idp",
]


def pytest_configure() -> None:
    """No warm server (jitkube.warm) from tests that run the CLI with this process's
    environment; tests/guarded/test_warm.py turns it on where it is under test."""
    import os

    os.environ["JITKUBE_WARM"] = "0"
