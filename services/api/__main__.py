"""``python -m waterflow_api``: run one API server."""

from waterflow_common.runner import run_service
from waterflow_common.settings import ApiSettings

from .service import serve

if __name__ == "__main__":
    run_service("api", ApiSettings, serve)
