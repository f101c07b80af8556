"""``python -m waterflow_scheduler``: run one scheduler (several may run at once)."""

from waterflow_common.runner import run_service
from waterflow_common.settings import SchedulerSettings

from .service import serve

if __name__ == "__main__":
    run_service("scheduler", SchedulerSettings, serve)
