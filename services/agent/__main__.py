"""``python -m waterflow_agent``: run one agent (settings from WATERFLOW_* variables and the
optional agent.yml named by WATERFLOW_CONFIG; see waterflow_agent.config)."""

import sys

from .config import run

if __name__ == "__main__":
    sys.exit(run())
