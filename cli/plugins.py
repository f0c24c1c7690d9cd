"""``obslink plugins``: what is installed, with the hooks each plugin implements."""

from __future__ import annotations

import json

from obslink.cli.options import command


def add_commands(commands) -> None:
    command(commands, "plugins", cmd_plugins, "list installed plugins with their hooks",
            json=True)


def cmd_plugins(args) -> int:
    from obslink.plugins.registry import describe_plugins, load_registry, make_plugin_manager

    manager = make_plugin_manager()
    infos = describe_plugins(manager)
    registry = load_registry(manager)
    if args.json:
        print(json.dumps({"plugins": [info.__dict__ for info in infos],
                          "formats": {n: c.summary for n, c in registry.formats.items()},
                          "sources": {n: c.summary for n, c in registry.sources.items()},
                          "qc_checks": {n: c.summary for n, c in registry.qc_checks.items()}},
                         indent=2))
        return 0
    for info in infos:
        print(f"{info.name} {info.version or ''}".rstrip())
        print(f"    hooks: {', '.join(info.hooks)}")
    print("\nformats:")
    for name, cls in sorted(registry.formats.items()):
        print(f"    {name:<12} {cls.summary}")
    print("source types:")
    for name, cls in sorted(registry.sources.items()):
        print(f"    {name:<12} {cls.summary}")
    print("QC checks:")
    for name, cls in sorted(registry.qc_checks.items()):
        print(f"    {name:<12} {cls.summary}")
    return 0
