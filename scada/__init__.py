"""Metering dispatch SCADA for apartment buildings: the composition root (see DESIGN.md)."""

#: The version when the package is not installed (``scada --version`` asks the installed metadata first);
#: keep it equal to ``version`` in pyproject.toml.
__version__ = "0.1.0"
