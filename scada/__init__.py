"""Metering dispatch SCADA for apartment buildings: the composition root (see DESIGN.md)."""

#: The version when the package is not installed (``scada --version`` asks the installed metadata first);
#: keep it equal to ``version`` in pyproject.toml.
__version__ = "0.1.0"


def installed_version() -> str:
    """Return the installed version of ``scada-metering`` (``__version__`` in a source tree not installed).

    The one answer of ``scada --version``, ``/metrics``' ``scada_build_info`` and the OpenAPI description.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scada-metering")
    except PackageNotFoundError:
        return __version__
