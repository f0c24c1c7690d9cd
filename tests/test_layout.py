"""The import rules of the code's layout (README, "Layout"), checked on the source:

    floor (core/) <- plugins <- agent | server <- demo <- cli

A layer imports only from the layers below it and itself; agent and server never import
each other; no module imports itself back through others. Imports under TYPE_CHECKING count
for the layers but not for cycles (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"core": "obslink", "plugins": "obslink.plugins", "agent": "obslink.agent",
           "server": "obslink.server", "demo": "obslink.demo", "cli": "obslink.cli"}
LAYER_OF_FOLDER = {"core": "floor", "plugins": "plugins", "agent": "agent", "server": "server",
                   "demo": "demo", "cli": "cli"}
MAY_IMPORT = {
    "floor": {"floor"},
    "plugins": {"floor", "plugins"},
    "agent": {"floor", "plugins", "agent"},
    "server": {"floor", "plugins", "server"},
    "demo": {"floor", "plugins", "agent", "server", "demo"},
    "cli": {"floor", "plugins", "agent", "server", "demo", "cli"},
}
ENTRY_POINTS = {"obslink.__main__"}  # `python -m obslink` runs the CLI; nothing imports it


def project_modules() -> dict[str, tuple[Path, str]]:
    """module name -> (file, layer)"""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts
                     if p != "__init__"]
            modules[".".join([package, *parts])] = (path, LAYER_OF_FOLDER[folder])
    return modules


def imported_names(name: str, path: Path):
    """(imported module or name, whether only under TYPE_CHECKING) for every import."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test).endswith("TYPE_CHECKING")
                   for statement in block.body for node in ast.walk(statement)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in typing_only
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                yield f"{base}.{alias.name}", id(node) in typing_only


def import_graph(modules) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(every import, the imports that run) between project modules."""
    every, running = {}, {}
    for name, (path, _) in modules.items():
        every[name], running[name] = set(), set()
        for target, typing_only in imported_names(name, path):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]  # a name inside a module
            if target in modules and target != name:
                every[name].add(target)
                if not typing_only:
                    running[name].add(target)
    return every, running


def layer_violations(graph, layer_of) -> list[str]:
    return sorted(f"{module} ({layer_of[module]}) imports {target} ({layer_of[target]})"
                  for module, targets in graph.items() if module not in ENTRY_POINTS
                  for target in targets
                  if layer_of[target] not in MAY_IMPORT[layer_of[module]])


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_each_layer_imports_only_the_layers_below_it():
    modules = project_modules()
    every, _ = import_graph(modules)
    layer_of = {name: layer for name, (_, layer) in modules.items()}
    assert len(modules) > 50 and every["obslink.cli"]  # the walk found the code
    assert layer_violations(every, layer_of) == []


def test_no_module_imports_itself_back():
    _, running = import_graph(project_modules())
    assert cycles(running) == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    layer_of = {"obslink.agent.a": "agent", "obslink.server.s": "server", "obslink.x": "floor",
                "obslink.plugins.p": "plugins", "obslink.cli": "cli"}
    graph = {"obslink.agent.a": {"obslink.server.s"}, "obslink.server.s": {"obslink.x"},
             "obslink.x": {"obslink.plugins.p"}, "obslink.plugins.p": set(),
             "obslink.cli": {"obslink.agent.a"}}
    assert layer_violations(graph, layer_of) == [
        "obslink.agent.a (agent) imports obslink.server.s (server)",
        "obslink.x (floor) imports obslink.plugins.p (plugins)"]
    looped = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(looped) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    source = tmp_path / "probe.py"
    typing_probe = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from obslink.server import verify\nfrom obslink import wire\n")
    source.write_text(typing_probe)
    assert sorted(imported_names("obslink.probe", source)) == [
        ("obslink.server.verify", True), ("obslink.wire", False),
        ("typing.TYPE_CHECKING", False)]
