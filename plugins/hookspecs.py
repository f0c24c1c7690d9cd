"""Every hook obslink calls, grouped by the stage of the pipeline that calls it.

Plugins implement these with ``@obslink.plugins.hookimpl``. Each hook is documented in
docs/plugins.md; tests/test_docs.py checks that each one has a section and a test.
"""

import pluggy

hookspec = pluggy.HookspecMarker("obslink")


# --- start-up: registration ------------------------------------------------------------------


@hookspec
def obslink_register_formats(registry):
    """Register format adapters: classes that turn source bytes into readings.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_format(AdapterClass)`` once per adapter. ``AdapterClass`` subclasses
        :class:`obslink.plugins.formats.FormatAdapter` and has a unique ``name``.
    :return: nothing; the registry raises if two plugins claim the same format name.
    """


@hookspec
def obslink_register_sources(registry):
    """Register source types: where an agent gets raw bytes from (directory, TCP, …).

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_source(SourceClass)`` once per source type. ``SourceClass`` subclasses
        :class:`obslink.plugins.sources.Source` and has a unique ``type``.
    :return: nothing; the registry raises if two plugins claim the same source type.
    """


@hookspec
def obslink_register_qc_checks(registry):
    """Register QC checks: classes that flag readings without changing them.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_qc_check(CheckClass)`` once per check. ``CheckClass`` subclasses
        :class:`obslink.plugins.qc.QCCheck` and has a unique ``name`` (it names the check in
        configs, in batches and in the catalog, so never rename a published check).
    :return: nothing; the registry raises if two plugins claim the same check name.
    """
