"""obslink's plugin system and its built-in plugins (registered exactly like third-party ones).

A plugin implements the hooks of ``obslink.plugins.hookspecs`` with ``@obslink.plugins.hookimpl``
(docs/plugins.md)."""

from obslink.plugins.markers import hookimpl

__all__ = ["hookimpl"]
