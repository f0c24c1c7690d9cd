"""The settings tables of docs/configuration.md, written from their declarations
(obslink.agent.settings, each source type's ``declared_settings``), so the docs say what
the reader does. ``python -m obslink.agent.config_docs [FILE]`` rewrites the tables between
``<!-- settings: NAME -->`` and ``<!-- end settings -->``; tests/test_docs.py fails when they
differ."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from obslink.agent.settings import OUTBOX, PRODUCTS, SOURCE, STATION, UPLINK
from obslink.plugins.registry import load_registry
from obslink.settings import markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
_TABLE = re.compile(r"(<!-- settings: ([\w .-]+) -->\n)(.*?)(<!-- end settings -->)", re.S)


def declared_tables(registry=None) -> dict[str, str]:
    tables = {"station": STATION, "outbox": OUTBOX, "uplink": UPLINK, "sources": SOURCE,
              "products": PRODUCTS}
    for name, source in (registry or load_registry()).sources.items():
        tables[f"source {name}"] = source.declared_settings
    return {name: markdown_table(settings) for name, settings in tables.items()}


def with_declared_tables(text: str, tables: dict[str, str]) -> str:
    """``text`` with each marked table replaced by the declared one; an unknown marker name
    raises KeyError."""
    return _TABLE.sub(lambda m: m.group(1) + tables[m.group(2)] + m.group(4), text)


def marked_tables(text: str) -> list[str]:
    return [m.group(2) for m in _TABLE.finditer(text)]


def main(path: Path = DOCS) -> int:
    text = path.read_text()
    path.write_text(with_declared_tables(text, declared_tables()))
    print(f"{path}: {len(marked_tables(text))} settings tables written")
    return 0


if __name__ == "__main__":
    sys.exit(main(*map(Path, sys.argv[1:2])))
