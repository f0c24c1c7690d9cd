"""Loading plugins and collecting what they register.

Built-in plugins are listed in ``DEFAULT_PLUGINS`` and loaded through the same
``register`` call as third-party plugins found through the ``obslink`` entry-point group.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from obslink.errors import ConfigError, ObslinkError, StorageError
from obslink.plugins import hookspecs
from obslink.plugins.markers import PROJECT, hookimpl

__all__ = ["hookimpl", "PluginRegistry", "load_registry", "make_plugin_manager"]

ENTRY_POINT_GROUP = "obslink"
DEFAULT_PLUGINS = (
    "obslink.plugins.toa5",
    "obslink.plugins.tob1",
    "obslink.plugins.hj212",
    "obslink.plugins.delimited",
    "obslink.plugins.bufr",
    "obslink.plugins.cma_hourly",
    "obslink.plugins.cma_minute",
    "obslink.plugins.cinrad",
    "obslink.plugins.nexrad2",
    "obslink.plugins.directory_source",
    "obslink.plugins.tcp_source",
    "obslink.plugins.qc_range",
    "obslink.plugins.qc_step",
    "obslink.plugins.qc_persistence",
    "obslink.plugins.qc_consistency",
    "obslink.plugins.qc_source_flags",
    "obslink.plugins.qc_time",
)


class PluginConflictError(ObslinkError):
    """Two plugins registered the same format name, source type or QC check name."""


@dataclass
class PluginRegistry:
    """What the plugins registered. Handed to every ``obslink_register_*`` hook."""

    formats: dict[str, type] = field(default_factory=dict)
    product_formats: dict[str, type] = field(default_factory=dict)
    sources: dict[str, type] = field(default_factory=dict)
    qc_checks: dict[str, type] = field(default_factory=dict)
    catalog_backends: dict[str, type] = field(default_factory=dict)
    http_routes: list = field(default_factory=list)  # fastapi.APIRouter, in load order

    def add_format(self, adapter_class: type) -> None:
        self._add(self.formats, adapter_class.name, adapter_class, "format")

    def add_product_format(self, format_class: type) -> None:
        self._add(self.product_formats, format_class.name, format_class, "product format")

    def add_source(self, source_class: type) -> None:
        self._add(self.sources, source_class.type, source_class, "source type")

    def add_qc_check(self, check_class: type) -> None:
        self._add(self.qc_checks, check_class.name, check_class, "QC check")

    def add_catalog_backend(self, backend_class: type) -> None:
        """A catalog backend: a class with ``schemes`` (the URL schemes it opens; "" for a
        bare path) and a classmethod ``open(url)``."""
        for scheme in backend_class.schemes:
            self._add(self.catalog_backends, scheme, backend_class, "catalog backend for")

    def add_http_routes(self, router) -> None:
        """A ``fastapi.APIRouter`` whose routes join the collector's HTTP API."""
        self.http_routes.append(router)

    @staticmethod
    def _add(table: dict[str, type], name: str, cls: type, what: str) -> None:
        if name in table and table[name] is not cls:
            raise PluginConflictError(
                f"{what} {name!r} is registered twice: by {table[name].__module__} and by "
                f"{cls.__module__}; uninstall or rename one of them"
            )
        table[name] = cls

    def format(self, name: str) -> type:
        try:
            return self.formats[name]
        except KeyError:
            known = ", ".join(sorted(self.formats)) or "none"
            raise ConfigError(
                f"unknown format {name!r}; installed formats: {known} (see `obslink plugins`)"
            ) from None

    def product_format(self, name: str) -> type:
        try:
            return self.product_formats[name]
        except KeyError:
            known = ", ".join(sorted(self.product_formats)) or "none"
            raise ConfigError(f"unknown product format {name!r}; installed product formats: "
                              f"{known} (see `obslink plugins`)") from None

    def source(self, name: str) -> type:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ConfigError(
                f"unknown source type {name!r}; installed source types: {known}"
            ) from None


    def catalog_backend(self, scheme: str) -> type:
        try:
            return self.catalog_backends[scheme]
        except KeyError:
            pass
        known = ", ".join(f"{name}://" for name in sorted(self.catalog_backends) if name)
        raise StorageError(f"no catalog backend opens {scheme}:// URLs; installed: "
                           f"{known or 'none'} (or a SQLite file's path)")


def make_plugin_manager(load_entry_points: bool = True,
                        extra_builtins: tuple[str, ...] = ()) -> pluggy.PluginManager:
    """The built-in plugins (and ``extra_builtins``: the centre's, where it runs), then
    those installed through the entry-point group."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS + extra_builtins:
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    manager.check_pending()  # a misspelt hook name fails loudly here
    return manager


def load_registry(manager: pluggy.PluginManager | None = None) -> PluginRegistry:
    manager = manager or make_plugin_manager()
    registry = PluginRegistry()
    manager.hook.obslink_register_formats(registry=registry)
    manager.hook.obslink_register_product_formats(registry=registry)
    manager.hook.obslink_register_sources(registry=registry)
    manager.hook.obslink_register_qc_checks(registry=registry)
    manager.hook.obslink_register_catalog_backends(registry=registry)
    manager.hook.obslink_register_http_routes(registry=registry)
    return registry


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]


def describe_plugins(manager: pluggy.PluginManager) -> list[PluginInfo]:
    """One entry per registered plugin, for ``obslink plugins``."""
    distributions = {
        id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()
    }
    infos = []
    for plugin in manager.get_plugins():
        name = manager.get_name(plugin) or repr(plugin)
        dist = distributions.get(id(plugin))
        version = dist.version if dist is not None else _own_version(name)
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        infos.append(PluginInfo(name, version, hooks))
    return sorted(infos, key=lambda info: info.name)


def _own_version(module_name: str) -> str | None:
    if module_name.startswith("obslink."):
        try:
            return metadata.version("obslink")
        except metadata.PackageNotFoundError:
            return None
    return None
