"""medstack's version, and those of what computes its images (read from package metadata:
nothing is imported, so ``--version`` stays quick)."""

__version__ = "0.1.0"


def dependency_versions() -> str:
    """``numpy 2.4.0, astropy 7.1.0, Python 3.11.9``: the installed versions."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} not installed"

    parts = [installed(name) for name in ("numpy", "astropy")]
    return f"{', '.join(parts)}, Python {platform.python_version()}"


def version_text() -> str:
    """``medstack X (numpy ..., astropy ..., Python ...)``, as ``--version`` says: the
    installed versions, read from the packages' metadata (importing them would take longer
    than the answer is worth)."""
    return f"medstack {__version__} ({dependency_versions()})"
