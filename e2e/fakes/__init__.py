"""Fakes of the outside services dayzero talks to, served on loopback for tests and the demo.

e2e/ is not a package (pytest puts the folder on sys.path), so this imports as ``fakes``.
"""

from .hub import FakeHub, FakeModel, Fault, RecordedRequest, fake_sha, models_from_config_dir

__all__ = ["FakeHub", "FakeModel", "Fault", "RecordedRequest", "fake_sha", "models_from_config_dir"]
