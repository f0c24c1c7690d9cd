"""Settings declared once: each key of a configuration file with its kind, default, meaning
and check. The agent's config reader and ``agent check`` (obslink.agent.config), each source
type's settings (obslink.plugins.sources) and the tables of docs/configuration.md
(``python -m obslink.agent.config_docs`` writes them, tests/test_docs.py keeps them equal)
all come from these declarations. Checks that relate several keys stay with the code that
reads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from obslink.errors import ObslinkError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a setting's default when the file must give it
KINDS = ("text", "int", "number", "bool", "path")


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any  # REQUIRED, None (unset means absent), or the value
    help: str  # its meaning, as docs/configuration.md shows it
    kind: str = "text"  # one of KINDS; a path is resolved relative to the config file
    minimum: float = 0  # numbers must be greater
    zero_means: str | None = None  # numbers: 0 is allowed too and means this
    required: str = "a value"  # what to give, said when a required setting is missing
    # turns the checked value into what the program uses; raises ValueError (or another
    # obslink error) whose text is the problem
    parse: Callable[[Any], Any] | None = None
    shown_default: str | None = None  # how the docs show the default, if not as the value

    def read(self, table: dict, prefix: str, fail: Callable[[str, str], None],
             base: Path | None = None) -> Any:
        """The setting's value in ``table`` (or its default), checked and parsed. A problem
        goes to ``fail(key path, message)`` and the parsed default is returned instead."""
        where = prefix + self.key
        value = table.get(self.key)
        if value is None:
            if self.default is REQUIRED:
                fail(where, f"required: {self.required}")
                return None
            value = self.default
        problem = self._kind_problem(value)
        if problem is None and self.kind == "path" and value is not None:
            value = str(((base or Path()) / Path(value).expanduser()).resolve())
        if problem is None and self.parse is not None and value is not None:
            try:
                return self.parse(value)
            except (ValueError, ObslinkError) as exc:
                problem = str(exc)
        if problem is None:
            return float(value) if self.kind == "number" else value
        fail(where, problem)
        return self._fallback()

    def _kind_problem(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.kind in ("int", "number"):
            whole = self.kind == "int"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) \
                    or not (value > self.minimum or (self.zero_means and value == 0)):
                also = f" (or 0: {self.zero_means})" if self.zero_means else ""
                return (f"must be a {'whole ' if whole else ''}number greater than "
                        f"{self.minimum:g}{also}, not {value!r}")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                return f"must be true or false, not {value!r}"
        elif self.kind == "path":
            if not isinstance(value, str) or not value:
                return "must be a file path (relative paths are relative to the config)"
        elif not isinstance(value, str):
            return f"must be text in quotes, not {value!r}"
        return None

    def _fallback(self) -> Any:
        """What the reader carries on with after a problem (the file is refused anyway)."""
        if self.default is REQUIRED or self.default is None:
            return None
        try:
            return self.parse(self.default) if self.parse else self.default
        except (ValueError, ObslinkError):  # a default that is not a usable value: "" ids
            return self.default

    def shown(self) -> str:
        """The default as docs/configuration.md shows it."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is REQUIRED:
            return "required"
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, float):
            return f"`{self.default:g}`"
        return f"`{self.default}`"


def read_settings(settings: tuple[Setting, ...], table: dict, prefix: str,
                  fail: Callable[[str, str], None], base: Path | None = None) -> dict[str, Any]:
    return {s.key: s.read(table, prefix, fail, base) for s in settings}


def declared(settings: tuple[Setting, ...], key: str) -> Setting:
    return next(s for s in settings if s.key == key)


def default_of(settings: tuple[Setting, ...], key: str) -> Any:
    return declared(settings, key).default


def markdown_table(settings: tuple[Setting, ...]) -> str:
    """The docs' table of ``settings``: key, default, meaning."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.key}` | {s.shown()} | {s.help} |" for s in settings]
    return "\n".join(rows) + "\n"
