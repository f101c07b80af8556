"""The nodes this machine's agent would offer, for ``waterflow validate`` and ``dry-run``: the
built-ins plus the plugins it would load (entry points, its plugin directory). The CLI may use
the agent's code; the compiler service never does (it gets plugin schemas from registrations).
"""

from __future__ import annotations

from pathlib import Path

from waterflow_common.nodes import NodeCatalog
from waterflow_compiler.nodes import default_catalog, with_specs


def local_catalog(plugin_dir: Path | None = None) -> NodeCatalog:
    """Best effort: a broken plugin is simply missing (the agents check them again).

    ``plugin_dir`` defaults to the local agent's (``WATERFLOW_WORK_DIR``/../plugins).
    """
    try:
        from waterflow_agent.nodes.catalog import describe
        from waterflow_agent.nodes.registry import NodeRegistry, default_plugin_dir
        from waterflow_common.settings import AgentSettings, load

        if plugin_dir is None:
            plugin_dir = default_plugin_dir(load(AgentSettings))
        specs = describe(NodeRegistry(plugin_dir if plugin_dir is not None and plugin_dir.is_dir() else None))
    except Exception:  # noqa: BLE001 - plugins are optional here
        return default_catalog()
    return with_specs(default_catalog(), specs)
