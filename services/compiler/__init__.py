"""The compiler service: workflow YAML in, validated immutable plan (or diagnostics) out.

The compiling itself (:func:`compile_workflow`) is a pure library function, so ``waterflow
validate`` runs it locally without any service. One module per concept:

=====================  ==========================================================================
``compile``            the entry point: orders the passes, builds the :class:`Plan`
``yaml_source``        YAML with the position of every key and value (libyaml when available)
``schema``             the JSON Schema (``workflow.schema.json``) and readable type/key errors
``graph``              ``needs``: unknown jobs, cycles, topological order, levels
``jobs``               jobs and steps of the plan (defaults, retry, timeouts, fan-out ``runs-on``)
``matrix``             ``strategy.matrix`` expansion with GitHub's include/exclude rules
``nodes``              the node catalog and ``uses:``/``with:`` checks against node schemas
``toplevel``           ``inputs``, ``on``, ``concurrency``
``contexts``           which ``${{ }}`` contexts and functions each field may use
``expression_check``   every expression: syntax, contexts, references, untrusted input in scripts
``reuse``/``rewrite``  reusable workflows and templates, inlined at compile time
``report``             the diagnostics collector
``service``            the NATS request handler
=====================  ==========================================================================
"""

from .compile import compile_workflow
from .nodes import NodeCatalog, default_catalog
from .reuse import FileWorkflows, WorkflowLoader, collect, mapping_loader

__all__ = ["FileWorkflows", "NodeCatalog", "WorkflowLoader", "collect", "compile_workflow", "default_catalog", "mapping_loader"]
