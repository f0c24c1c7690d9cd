"""pluggy's markers for obslink's hooks: ``hookspec`` in plugins/hookspecs.py, ``hookimpl``
in every plugin (importable as ``obslink.plugins.hookimpl``)."""

import pluggy

PROJECT = "obslink"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
