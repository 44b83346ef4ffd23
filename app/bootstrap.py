"""Composition root: turns Settings into a ready Runtime (paths, models, nodes, cache, executor).

Everything with side effects at start-up happens here, explicitly: creating folders,
detecting hardware (through the model manager), importing node modules and custom packs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.settings import Settings
from engine.cache import OutputCache
from engine.executor import Executor
from engine.loader import load_custom_node_packs, load_package_modules
from engine.paths import FolderPaths
from engine.registry import NodeRegistry
from engine.runtime import Services, set_default_services, using_services

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    registry: NodeRegistry
    cache: OutputCache
    services: Services
    executor: Executor
    settings: Settings
    custom_packs: dict[str, dict[str, Any]]

    @property
    def paths(self) -> FolderPaths:
        return self.services.paths


def build_model_manager(settings: Settings) -> Any:
    """The process's model manager; imported here so start-up stays cheap until it is built."""
    from diffusion.memory import ModelManager

    return ModelManager.from_settings(settings)


def build_paths(settings: Settings) -> FolderPaths:
    """The folder layout, with the directories extra_model_paths.yaml files add."""
    from engine.extra_model_paths import default_configs, load_extra_model_paths

    paths = FolderPaths(settings.base_directory, output_directory=settings.output_directory,
                        input_directory=settings.input_directory, temp_directory=settings.temp_directory,
                        user_directory=settings.user_directory)
    for config in default_configs(settings.base_directory, settings.extra_model_paths_config):
        added = load_extra_model_paths(paths, config)
        log.info("%s: %d extra model director%s", config, len(added), "y" if len(added) == 1 else "ies")
    return paths


def create_runtime(settings: Settings | None = None, *, load_custom_nodes: bool | None = None,
                   extra_node_packages: tuple[Any, ...] = ()) -> Runtime:
    """Build everything a front door needs. Node load failures land in `registry.problems`.

    `extra_node_packages` are packages (module objects) loaded like `nodes/` after it, e.g. a
    test node pack.
    """
    settings = settings or Settings()
    paths = build_paths(settings)
    paths.ensure_directories()
    services = Services(paths=paths, model_manager=build_model_manager(settings),
                        settings=settings.node_settings())
    set_default_services(services)
    registry = NodeRegistry()
    services.registry = registry
    custom_packs: dict[str, dict[str, Any]] = {}
    with using_services(services):
        import nodes as builtin_nodes

        load_package_modules(registry, builtin_nodes)
        for package in extra_node_packages:
            load_package_modules(registry, package)
        if load_custom_nodes is None:
            load_custom_nodes = not settings.disable_all_custom_nodes
        if load_custom_nodes:
            custom_packs = load_custom_node_packs(registry, paths.custom_nodes_directory)
    cache = OutputCache(budget_bytes=None if settings.cache_none else settings.cache_budget_bytes(),
                        enabled=not settings.cache_none)
    executor = Executor(registry, cache, services, mutation_check=settings.debug_mutation_check)
    for problem in registry.problems:
        log.warning("%s: %s", problem.source, problem.message)
    return Runtime(registry, cache, services, executor, settings, custom_packs)
