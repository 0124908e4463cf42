"""The reliability harness's prepared home (every operation has work to do), shared here."""

from tests.reliability.conftest import prepared, prepared_template

__all__ = ["prepared", "prepared_template"]
