"""Shared test setup. Fixtures live in tests/fixtures/, one module per real part."""

pytest_plugins = [
    "fixtures.env",
    "fixtures.kubectl_bin",
    "fixtures.cluster",
    "fixtures.idp",
]
