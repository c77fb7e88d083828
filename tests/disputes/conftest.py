"""The booking fixtures of tests/scheduling serve here too."""
from tests.scheduling.conftest import pool  # noqa: F401
