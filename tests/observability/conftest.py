"""The real-process fixtures of tests/e2e, for the observability tests."""

from tests.e2e.conftest import shared_engine_project  # noqa: F401  (a fixture)
