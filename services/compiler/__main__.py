"""``python -m waterflow_compiler``: run one compiler service."""

from waterflow_common.runner import run_service
from waterflow_common.settings import CompilerSettings

from .service import serve

if __name__ == "__main__":
    run_service("compiler", CompilerSettings, serve)
