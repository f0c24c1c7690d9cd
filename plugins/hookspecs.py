"""Every hook obslink calls, grouped by when in a process's life it is called.

Plugins implement these with ``@obslink.plugins.hookimpl``. Each hook is documented in
docs/plugins.md under its signature; tests/test_docs.py checks that each one has a section
with the signature below and a test of its own (``test_<hook name>_…``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from obslink.plugins.markers import hookspec

if TYPE_CHECKING:  # the registry imports this module
    from obslink.plugins.registry import PluginRegistry


# --- every process's start-up (agent, parse, collector): what the pipeline is made of ----------


@hookspec
def obslink_register_formats(registry: PluginRegistry) -> None:
    """Register format adapters: classes that turn source bytes into readings.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_format(AdapterClass)`` once per adapter. ``AdapterClass`` subclasses
        :class:`obslink.plugins.formats.FormatAdapter` and has a unique ``name``.
    :return: nothing; the registry raises if two plugins claim the same format name.
    """


@hookspec
def obslink_register_product_formats(registry: PluginRegistry) -> None:
    """Register product formats: classes that read a large binary product's metadata (a
    radar volume, tilt or real-time chunk), which then travels whole as chunks.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_product_format(FormatClass)`` once per format. ``FormatClass``
        subclasses :class:`obslink.plugins.products.ProductFormat` and has a unique ``name``.
    :return: nothing; the registry raises if two plugins claim the same product format name.
    """


@hookspec
def obslink_register_sources(registry: PluginRegistry) -> None:
    """Register source types: where an agent gets raw bytes from (directory, TCP, …).

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_source(SourceClass)`` once per source type. ``SourceClass`` subclasses
        :class:`obslink.plugins.sources.Source` and has a unique ``type``.
    :return: nothing; the registry raises if two plugins claim the same source type.
    """


@hookspec
def obslink_register_qc_checks(registry: PluginRegistry) -> None:
    """Register QC checks: classes that flag readings without changing them.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_qc_check(CheckClass)`` once per check. ``CheckClass`` subclasses
        :class:`obslink.plugins.qc.QCCheck` and has a unique ``name`` (it names the check in
        configs, in batches and in the catalog, so never rename a published check).
    :return: nothing; the registry raises if two plugins claim the same check name.
    """


# --- the centre's start-up (collector, catalog commands, HTTP API): where data is kept ---------


@hookspec
def obslink_register_catalog_backends(registry: PluginRegistry) -> None:
    """Register catalog backends: where the collector stores what it accepts.

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_catalog_backend(BackendClass)`` once per backend. ``BackendClass``
        implements :class:`obslink.server.catalog.Catalog`, lists the URL schemes it opens
        in ``schemes`` ("" for a bare path) and opens one with the classmethod
        ``open(url)``; ``obslink.server.catalog.open_catalog(url)`` picks it by scheme.
    :return: nothing; the registry raises if two plugins claim the same scheme.
    """


@hookspec
def obslink_register_http_routes(registry: PluginRegistry) -> None:
    """Register routes of the collector's HTTP API (``obslink collector http``).

    :param registry: a :class:`obslink.plugins.registry.PluginRegistry`; call
        ``registry.add_http_routes(router)`` with a ``fastapi.APIRouter``. Its handlers find
        the catalog's location, the broker URL and the collector's keys with
        ``obslink.server.http_api.context_of(request)``. Import FastAPI inside the hook:
        every obslink process calls it, and a gateway has no FastAPI.
    :return: nothing; the API refuses to start if two routes claim the same method and path.
    """
