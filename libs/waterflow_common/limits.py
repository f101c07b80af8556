"""Every bound on what users (and agents) may send, in one place: names, sizes, counts, floors.

Each limit is checked at the edge where the value comes in (compiler, API, agent) and a value
over it is a diagnostic with line and column, an RFC 7807 400, or a failed step saying which
limit was hit — never a 500, a closed connection or a run that hangs. docs/reference/limits.md
lists them; ``tests/unit/test_limits.py`` keeps that table and this module in agreement.
"""

from __future__ import annotations

MAX_NAME_LENGTH = 128
"""Characters in a server group, job, step, input, output, secret, agent or trigger name: each
may end up in a NATS subject, whose control line the server bounds (4 KB by default)."""

MAX_PATH_PARAMETER = 1024
"""Characters in one URL path parameter (a run id, an agent, secret, trigger or file name)."""

MAX_STEP_RESULT_BYTES = 512 * 1024
"""Encoded bytes of one step's result (its outputs, error): it must fit in one NATS message
(``max_payload``, 1 MB by default) with room to spare; a step over it fails, saying so."""

MAX_JOB_TASK_BYTES = 896 * 1024
"""Encoded bytes of one job task (the job's plan, contexts and the outputs of its earlier steps
that have an ``id``): it travels in one NATS message (``max_payload``, 1 MB by default); a step
whose task would be larger fails without running, saying so."""

MAX_MATRIX_COMBINATIONS = 256
"""Jobs one matrix may expand to (GitHub's limit), checked before expanding."""

MIN_RETRY_INTERVAL_SECONDS = 1.0
"""Floor of a retry's ``initial-interval`` and ``max-interval``: ``0s`` would retry in a tight
loop, and durable timers have one-second resolution anyway."""

MAX_RETRY_ATTEMPTS = 100
"""Attempts one ``retry:`` may ask for."""

MAX_DURATION_TEXT = 64
"""Characters of a duration (``1h30m``) or cron expression."""

MAX_WEBHOOK_PAYLOAD_BYTES = 64 * 1024
"""Bytes of a webhook's JSON body (it is kept with the run as ``github.event``)."""

MAX_GROUP_DEFINITION_BYTES = 256 * 1024
"""Encoded bytes of one server group defined through the API (it is one KV value in
``wf_groups``): a few thousand agent names."""

MAX_DESCRIPTION_LENGTH = 1024
"""Characters of a server group's description."""

MAX_PLAN_BYTES = 512 * 1024
"""Encoded bytes of a compiled workflow: it travels in one NATS message and is stored as one
KV value (``max_payload``: 1 MB by default)."""

DEAD_LETTER_PAYLOAD_BYTES = 16 * 1024
"""Bytes of a moved-aside message's payload kept in its dead letter; the rest is cut, marked."""

DEAD_LETTERS_MAX_MSGS = 10_000
"""Dead letters kept (``WF_DEAD_LETTERS``); the oldest go first."""

DEAD_LETTERS_MAX_BYTES = 256 * 1024 * 1024
"""Bytes the dead-letter stream may hold; the oldest go first."""

DEAD_LETTERS_MAX_AGE_DAYS = 30
"""Days a dead letter is kept (as long as the run history it belongs to)."""
