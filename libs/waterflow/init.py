"""``waterflow init``: a starter workflow and agent configuration in a directory, to edit."""

from __future__ import annotations

from pathlib import Path

from waterflow_common.errors import UserError

WORKFLOW = """\
# A starter workflow: `waterflow validate workflow.yml`, then `waterflow run --embedded workflow.yml`
# (or `waterflow up` in another terminal and `waterflow run workflow.yml`).
# Every field: docs/reference/dsl.md in the Waterflow sources.
name: starter
inputs:
  environment: {type: string, default: staging}
jobs:
  build:
    runs-on: local            # the server group whose agents run this job
    outputs:
      artifact: ${{ steps.pack.outputs.file }}
    steps:
      - name: Prepare
        run: echo "building for $ENVIRONMENT" > build.txt
        env:
          ENVIRONMENT: ${{ inputs.environment }}
      - id: pack
        run: echo "file=app-$WATERFLOW_RUN_ID.tar.gz" >> "$WATERFLOW_OUTPUT"
  deploy:
    runs-on: local
    needs: build
    steps:
      - name: Deploy
        retry: {attempts: 3, initial-interval: 5s}
        run: echo "deploying ${{ needs.build.outputs.artifact }}"
      - if: always()
        run: echo "cleanup runs even after a failure"
"""

AGENT = """\
# agent.yml for `waterflow agent --config agent.yml` on a server (docs/guides/agents.md).
# Every key can also be set as WATERFLOW_<KEY> in the environment.
agent_name: web-1
groups: [web]
labels: {env: staging}
nats_url: nats://127.0.0.1:4222
max_concurrent_steps: 4
# With `waterflow up --secure` or a secured NATS: credentials from `waterflow auth init`.
# nats_user: web-1
# nats_password: ...
"""

FILES = {"workflow.yml": WORKFLOW, "agent.yml": AGENT}


def init(directory: Path, force: bool = False) -> list[Path]:
    """Write the starter files; refuse to overwrite unless ``force``."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [directory / name for name in FILES if (directory / name).exists()]
    if existing and not force:
        raise UserError(f"{', '.join(str(p) for p in existing)} already exist(s): use --force to overwrite")
    written = []
    for name, text in FILES.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
