"""The reference documentation covers what the code offers."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from obslink.agent.config import SECTIONS, SOURCE_KEYS
from obslink.agent.config_docs import declared_tables, marked_tables, with_declared_tables
from obslink.plugins import hookspecs
from obslink.plugins.directory_source import DirectorySource
from obslink.plugins.hj212_codes import FACTORS
from obslink.plugins.tcp_source import TCPSource
from obslink.plugins.vocabulary import ELEMENTS

ROOT = Path(__file__).parent.parent
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("obslink_"))
TESTS_TEXT = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py")
                       if p.name != "test_docs.py")


def test_there_are_hooks():
    assert HOOKS == ["obslink_register_catalog_backends", "obslink_register_formats",
                     "obslink_register_http_routes", "obslink_register_product_formats",
                     "obslink_register_qc_checks", "obslink_register_sources"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docs_section_headed_by_its_signature(hook):
    """The heading names the parameters the spec declares, in its order."""
    parameters = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    headings = re.findall(rf"^### ({hook}\(.*\))$", (ROOT / "docs" / "plugins.md").read_text(),
                          re.M)
    assert headings == [f"{hook}({parameters})"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_typed(hook):
    spec = inspect.signature(getattr(hookspecs, hook))
    assert spec.return_annotation != inspect.Signature.empty
    assert all(p.annotation != inspect.Parameter.empty for p in spec.parameters.values())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_of_its_own(hook):
    """A test named after the hook that registers an implementation of it."""
    tests = re.findall(rf"^def test_{hook}_\w*\(.*?(?=^def |\Z)", TESTS_TEXT, re.M | re.S)
    assert any(f"{hook} = hookimpl" in body or f"def {hook}(" in body for body in tests), \
        f"no test_{hook}_… registers an implementation of {hook}"


def test_every_element_is_documented():
    text = (ROOT / "docs" / "elements.md").read_text()
    assert all(f"`{element}`" in text for element in ELEMENTS)


def test_every_element_an_adapter_produces_is_in_the_vocabulary():
    assert {element for element, _unit in FACTORS.values()} <= set(ELEMENTS)


def test_every_config_key_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text()
    keys = set().union(*SECTIONS.values(), SOURCE_KEYS,
                       *({s.key for s in source.declared_settings}
                         for source in (DirectorySource, TCPSource)))
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"undocumented config keys: {missing}"


def test_the_settings_tables_are_the_declared_settings():
    """docs/configuration.md shows each setting as declared (key, default, meaning): the
    tables are written from the declarations, and this fails when someone edits either
    alone (fix: .venv/bin/python -m obslink.agent.config_docs)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    tables = declared_tables()
    assert sorted(marked_tables(text)) == sorted(tables)
    assert with_declared_tables(text, tables) == text, \
        "docs/configuration.md differs from the declared settings: run " \
        ".venv/bin/python -m obslink.agent.config_docs"
    edited = text.replace("| `keepalive` | `30` |", "| `keepalive` | `60` |")
    assert edited != text and with_declared_tables(edited, tables) == text


def test_every_format_and_option_is_documented():
    from obslink.plugins.registry import load_registry

    text = (ROOT / "docs" / "formats.md").read_text()
    for name, adapter in load_registry().formats.items():
        assert re.search(rf"^## {name}$", text, re.M), f"format {name} has no section"
        for option in adapter.options:
            assert f"`{option}`" in text, f"option {option} of {name} is not documented"
