"""obslink: signed, buffered transport of station observations into a data catalog."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("obslink")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
