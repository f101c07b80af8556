"""The compiler service: workflow YAML in, validated immutable plan (or diagnostics) out.

The compiling itself (:func:`waterflow_compiler.compile.compile_workflow`) is a pure library
function, so ``waterflow validate`` runs it locally without any service.
"""

from .compile import compile_workflow
from .nodes import NodeCatalog, default_catalog

__all__ = ["NodeCatalog", "compile_workflow", "default_catalog"]
