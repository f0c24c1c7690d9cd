"""The exception hierarchy. Every error a user can see says what, where and what to do."""


class ObslinkError(Exception):
    """Base of every error obslink raises on purpose."""


class ConfigError(ObslinkError):
    """A configuration file or option is wrong. ``problems`` holds one line per error."""

    def __init__(self, problems: list[str] | str, source: str = "") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))


class FormatError(ObslinkError):
    """Input bytes could not be decoded by a format adapter."""


class TransportError(ObslinkError):
    """The broker or the collector could not be reached or refused us."""


class WireError(ObslinkError):
    """A message on the wire is malformed, unsigned or signed by the wrong key."""


class StorageError(ObslinkError):
    """The outbox or the catalog could not be read or written."""


class ToolMissingError(ObslinkError):
    """An external program obslink needs (e.g. mosquitto) is not installed."""
