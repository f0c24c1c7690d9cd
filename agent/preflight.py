"""Checks of the machine an agent is about to run on: what its config names must exist.

``load_config`` checks what a config says; this checks what it points at (the station key,
the outbox's directory, each source's directory or device), so that ``agent check`` reports
it with the key path and ``agent run`` refuses to start rather than make directories
somewhere a typo pointed. ``parse --config`` on a technician's laptop does not run it.
"""

from __future__ import annotations

import os

from obslink.agent.config import AgentConfig
from obslink.errors import ConfigError
from obslink.keys import load_private_key
from obslink.plugins.registry import PluginRegistry


def deployment_problems(config: AgentConfig, registry: PluginRegistry) -> list[str]:
    """Every problem with its key path; empty when the agent can start."""
    problems = []
    try:
        load_private_key(config.private_key)
    except ConfigError as exc:
        problems.append(f"station.private_key: {exc.problems[0]}")
    directory = config.outbox_path.parent
    if not directory.is_dir():
        problems.append(f"outbox.path: the directory {directory} does not exist; create it "
                        f"(mkdir -p {directory}) or correct the path")
    elif not os.access(directory, os.W_OK | os.X_OK):
        problems.append(f"outbox.path: this user cannot write into {directory}; the outbox "
                        "and its write-ahead log live there")
    for source in config.sources:
        for key, message in registry.sources[source.type].check_environment(source.settings):
            problems.append(f"sources.{source.name}.{key}: {message}")
    for products in config.products:
        path = products.settings["path"]
        if not os.path.isdir(path):
            problems.append(f"products.{products.name}.path: {path} is not a directory; "
                            "correct the path to where the radar writes its products")
    return problems


def check_deployment(config: AgentConfig, registry: PluginRegistry) -> None:
    problems = deployment_problems(config, registry)
    if problems:
        raise ConfigError(problems, str(config.path))
