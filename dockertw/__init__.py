"""dockertw: a Docker Engine API daemon and client on Twisted."""

__version__ = "0.1.0"

__all__ = ["__version__"]
