"""``python -m waterflow_agent``: run one agent (settings from WATERFLOW_* variables)."""

from waterflow_common.runner import run_service
from waterflow_common.settings import AgentSettings

from .service import serve

if __name__ == "__main__":
    run_service("agent", AgentSettings, serve)
