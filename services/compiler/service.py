"""The compiler as a service: answers CompileRequest on ``wf.compiler.compile``.

Several compilers may run at once: they share a queue group, so each request is answered by one.
The API keeps no compiler in-process so that compiling (CPU-bound, user-controlled input) scales
and fails separately from serving HTTP.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg
from waterflow_common import bus, subjects
from waterflow_common.diagnostics import Diagnostic
from waterflow_common.log import get_logger
from waterflow_common.messages import CompileReply, CompileRequest, encode
from waterflow_common.settings import CompilerSettings
from waterflow_common.state import encode_plan

from .compile import compile_workflow
from .nodes import NodeCatalog, default_catalog, with_specs
from .reuse import builtin_loader, first_found, mapping_loader

log = get_logger("waterflow.compiler")
_request_decoder = msgspec.json.Decoder(CompileRequest)


def handle(data: bytes, nodes: NodeCatalog | None = None) -> CompileReply:
    """Compile one request; a malformed request is a diagnostic too, never a crash.

    ``nodes``: the catalog to check ``uses:`` against (default: the built-in nodes).
    """
    try:
        request = _request_decoder.decode(data)
    except msgspec.DecodeError as error:
        bad = Diagnostic(path="<request>", line=1, col=1, rule="request", message=f"malformed compile request: {error}")
        return CompileReply(diagnostics=[msgspec.to_builtins(bad)])
    try:
        # Files the client sent (what its workflow calls) first, then the built-in templates.
        workflows = first_found(mapping_loader(request.workflows), builtin_loader())
        plan, diagnostics = compile_workflow(request.source, request.filename, nodes=nodes, workflows=workflows)
    except Exception:  # noqa: BLE001 - a compiler bug must not take the service down; the user sees a diagnostic
        log.exception("compile.crashed", filename=request.filename)
        bug = Diagnostic(path=request.filename, line=1, col=1, rule="internal",
                         message="the compiler failed on this file; this is a Waterflow bug, please report it")
        return CompileReply(diagnostics=[msgspec.to_builtins(bug)])
    return CompileReply(
        plan=encode_plan(plan) if plan is not None else None,
        diagnostics=[msgspec.to_builtins(d) for d in diagnostics],
    )


class _RegisteredNodes:
    """Built-in nodes plus those agents register (plugins), re-read at most every few seconds.

    Plugin nodes exist only on the agents that load them; their registrations in KV ``wf_agents``
    carry each node's schema, so a workflow using a plugin compiles once an agent offers it.
    """

    REFRESH_SECONDS = 5.0

    def __init__(self, js: object) -> None:
        self._js = js
        self._catalog: NodeCatalog = default_catalog()
        self._read_at = float("-inf")

    async def get(self) -> NodeCatalog:
        now = asyncio.get_running_loop().time()
        if now - self._read_at >= self.REFRESH_SECONDS:
            self._read_at = now
            try:
                from waterflow_common.agents import list_agents

                records = await list_agents(self._js)  # type: ignore[arg-type]
                specs = [spec for record in records if record.status != "offline" for spec in record.info.nodes]
                self._catalog = with_specs(default_catalog(), specs)
            except Exception as error:  # noqa: BLE001 - NATS trouble: keep the last catalog
                log.warning("compile.nodes_unavailable", error=str(error) or type(error).__name__)
        return self._catalog


async def serve(settings: CompilerSettings, stop: asyncio.Event) -> None:
    nc = await bus.connect(settings, "waterflow-compiler")
    # Compiling needs no JetStream (only the plugin catalog reads it, and copes without): answer
    # at once, and provision in the background, however long a forming cluster takes.
    provisioning = asyncio.create_task(bus.until_ready(
        lambda: bus.provision(nc.jetstream(), settings.stream_replicas), "compiler", stop))

    catalog = _RegisteredNodes(nc.jetstream())

    async def on_request(msg: Msg) -> None:
        reply = handle(msg.data, await catalog.get())
        await msg.respond(encode(reply))
        log.debug("compile.done", errors=len(reply.diagnostics), ok=reply.plan is not None)

    await nc.subscribe(subjects.COMPILE, queue=subjects.COMPILER_QUEUE, cb=on_request)
    log.info("compiler.ready", subject=subjects.COMPILE)
    await stop.wait()
    provisioning.cancel()
    await bus.close(nc)
