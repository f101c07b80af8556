"""The one registry of names on NATS: subjects, streams, consumers, KV buckets, headers.

No other module builds a subject with an f-string; ``docs/architecture.md`` shows the same map and
``tests/unit/test_subjects.py`` checks that the two agree.

Subject tokens are validated here: a run id, job id, group or agent name that contained ``.``,
``*``, ``>`` or white space would silently change which messages a filter matches.
"""

from __future__ import annotations

import re

PREFIX = "wf"

# --- streams ---------------------------------------------------------------------------------
EVENTS_STREAM = "WF_EVENTS"
"""Every state change of every run, in order (limits retention: the run history)."""
TASKS_STREAM = "WF_TASKS"
"""Step tasks waiting for an agent (work-queue retention: a task is gone once acked)."""
LOGS_STREAM = "WF_LOGS"
"""Step output lines, batched (limits retention, pruned by age)."""

DEAD_LETTERS_STREAM = "WF_DEAD_LETTERS"
"""Messages a consumer moved aside because it could not apply them (poison, malformed, forged):
one ``DeadLetter`` each, with the reason (limits retention, bounded in ``limits.py``)."""

TRIGGERS_STREAM = "WF_TRIGGERS"
"""Cron schedules of registered workflows (JetStream message schedules) and the fires they and
webhooks produce (limits retention, a few messages per subject)."""

# --- KV buckets ------------------------------------------------------------------------------
RUNS_BUCKET = "wf_runs"
"""The projection of each run's events: ``<run>`` -> the run and its jobs, ``<run>.<job>.<index>``
-> one step (see ``runstore.py``; written in atomic batches with revision checks)."""
RUNS_STREAM = f"KV_{RUNS_BUCKET}"
"""The stream behind ``wf_runs`` (atomic batches and direct gets address it by name)."""
PLANS_BUCKET = "wf_plans"
"""run id -> Plan, the compiled workflow (written once at submit, never changed)."""
TRIGGERS_BUCKET = "wf_triggers"
"""trigger id -> Trigger: a registered workflow that schedules and webhooks start."""
SECRETS_BUCKET = "wf_secrets"
"""secret name -> value (written through the API, read by schedulers; never returned by the API)."""
CONCURRENCY_BUCKET = "wf_concurrency"
"""concurrency group -> ConcurrencySlot (the run holding the group and the runs queued behind it)."""
AGENTS_BUCKET = "wf_agents"
"""agent name -> AgentInfo, rewritten by each agent's heartbeat; stale entries age out (max_age)."""
REMOVED_AGENTS_BUCKET = "wf_removed_agents"
"""agent name -> AgentRemoval: when an administrator removed it (so one that registers again
afterwards is shown as such); expires like an agent record."""
GROUPS_BUCKET = "wf_groups"
"""group name -> GroupDefinition made through the API (``PUT /v1/groups/{name}``; see
``group_store.py``), merged with server-groups.yml; revision-checked writes."""
KEYS_BUCKET = "wf_keys"
"""The installation's signing key (``signing.py``): services only; agent credentials cannot read it."""
FILES_BUCKET = "wf_files"
"""Object Store: files moved by the ``file/upload`` / ``file/download`` nodes (and the API),
named ``<run id>/<name>`` by default; created on first use."""

# --- consumers -------------------------------------------------------------------------------
SCHEDULER_CONSUMER = "scheduler"
TRIGGERS_CONSUMER = "triggers"
"""Durable pull consumer on WF_TRIGGERS fires, shared by all API services (each fire starts one run)."""
"""Durable pull consumer on WF_EVENTS shared by all schedulers (load-balanced)."""

# --- request/reply ---------------------------------------------------------------------------
COMPILE = f"{PREFIX}.compiler.compile"
"""Request: CompileRequest -> CompileReply. Compilers answer in queue group COMPILER_QUEUE."""
COMPILER_QUEUE = "compilers"

# --- headers ---------------------------------------------------------------------------------
MSG_ID_HEADER = "Nats-Msg-Id"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


MAX_TOKEN_LENGTH = 300
"""Characters of one subject token: a name (limits.MAX_NAME_LENGTH) or two joined (a fan-out
instance ``<job>-<agent>``). Subjects must stay far below the server's control line (4 KB)."""


def check_token(value: str, what: str) -> str:
    """Return ``value`` if it is usable as one subject token, else raise ValueError naming it."""
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(f"invalid {what}: {len(value)} characters long, over the limit of {MAX_TOKEN_LENGTH}")
    if not _TOKEN.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: use only letters, digits, '-' and '_' (no dots or spaces)"
        )
    return value


# --- events ----------------------------------------------------------------------------------
def event(run_id: str, event_type: str) -> str:
    """Subject of one event of a run, e.g. ``wf.events.r-abc.step.finished``."""
    return f"{PREFIX}.events.{check_token(run_id, 'run id')}.{event_type}"


def run_events(run_id: str) -> str:
    """Filter matching every event of one run."""
    return f"{PREFIX}.events.{check_token(run_id, 'run id')}.>"


def events_of_type(event_type: str) -> str:
    """Filter matching one event type across all runs, e.g. ``wf.events.*.run.completed``."""
    return f"{PREFIX}.events.*.{event_type}"


ALL_EVENTS = f"{PREFIX}.events.>"


def run_id_of(subject: str) -> str:
    """The run id inside an event or log subject (``wf.events.<run>...``)."""
    return subject.split(".")[2]


# --- dead letters ----------------------------------------------------------------------------
NO_RUN = "_"
"""The run token of a dead letter that belongs to no (readable) run."""


def dead_letter(consumer: str, run_id: str | None) -> str:
    """Where ``consumer`` puts a message it moved aside, e.g. ``wf.dead.scheduler.r-abc``."""
    run = run_id if run_id and _TOKEN.match(run_id) and len(run_id) <= MAX_TOKEN_LENGTH else NO_RUN
    return f"{PREFIX}.dead.{check_token(consumer, 'consumer')}.{run}"


def run_dead_letters(run_id: str) -> str:
    """Filter matching every dead letter of one run, whichever consumer moved it aside."""
    return f"{PREFIX}.dead.*.{check_token(run_id, 'run id')}"


ALL_DEAD_LETTERS = f"{PREFIX}.dead.>"


# --- triggers --------------------------------------------------------------------------------
def trigger_schedule(trigger_id: str, index: int) -> str:
    """Where the ``index``-th cron schedule of a trigger waits (a JetStream message schedule)."""
    return f"{PREFIX}.triggers.schedule.{check_token(trigger_id, 'trigger id')}.{int(index)}"


def trigger_schedules(trigger_id: str) -> str:
    return f"{PREFIX}.triggers.schedule.{check_token(trigger_id, 'trigger id')}.>"


def trigger_fired(trigger_id: str) -> str:
    """A trigger fired (by its schedule or a webhook): start a run."""
    return f"{PREFIX}.triggers.fired.{check_token(trigger_id, 'trigger id')}"


ALL_TRIGGER_FIRES = f"{PREFIX}.triggers.fired.>"
ALL_TRIGGERS = f"{PREFIX}.triggers.>"


# --- timers ----------------------------------------------------------------------------------
def timer_schedule(run_id: str, timer_id: str) -> str:
    """Where a durable timer waits (a JetStream message schedule, in WF_EVENTS)."""
    return f"{PREFIX}.timers.{check_token(run_id, 'run id')}.{check_token(timer_id, 'timer id')}"


ALL_TIMERS = f"{PREFIX}.timers.>"
SCHEDULE_HEADER = "Nats-Schedule"
SCHEDULE_TARGET_HEADER = "Nats-Schedule-Target"


# --- control (core NATS, not stored) ----------------------------------------------------------
def agent_control(agent_name: str) -> str:
    """Commands for one agent (e.g. CancelStep): fire-and-forget, the agent must be connected."""
    return f"{PREFIX}.control.agent.{check_token(agent_name, 'agent name')}"


# --- tasks -----------------------------------------------------------------------------------
_GROUP = re.compile(r"^[A-Za-z0-9_.-]+$")
_GROUP_DOT = "~"
"""A group name is the user's word and may hold dots (GitHub runner labels: ``ubuntu-22.04``);
a NATS token cannot. In subjects and consumer names a dot is written ``~``, which a group name
may not contain, so the mapping is lossless."""


def check_group(value: str, what: str = "server group") -> str:
    """Return ``value`` if it is a valid server group name, else raise ValueError naming it."""
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(f"invalid {what}: {len(value)} characters long, over the limit of {MAX_TOKEN_LENGTH}")
    if not _GROUP.match(value) or value.strip(".") != value or ".." in value:
        raise ValueError(f"invalid {what} {value!r}: use only letters, digits, '-', '_' and '.' (not at either "
                         "end, not two in a row)")
    return value


def group_token(group: str) -> str:
    """The subject token of a server group (``ubuntu-22.04`` -> ``ubuntu-22~04``)."""
    return check_group(group).replace(".", _GROUP_DOT)


def group_tasks(group: str) -> str:
    """Tasks for any one agent of a server group."""
    return f"{PREFIX}.tasks.group.{group_token(group)}"


def group_consumer(group: str) -> str:
    """Durable consumer shared by the agents of one group (work-queue: one per subject)."""
    return f"group-{group_token(group)}"


def agent_tasks(agent_name: str) -> str:
    """Tasks for one specific agent (fan-out: ``runs-on: {group: g, each: true}``)."""
    return f"{PREFIX}.tasks.agent.{check_token(agent_name, 'agent name')}"


def agent_consumer(agent_name: str) -> str:
    """Durable consumer of one agent's own task subject."""
    return f"agent-{check_token(agent_name, 'agent name')}"


def kv_key_subject(bucket: str, key: str) -> str:
    """The subject a KV put of ``key`` uses (for NATS permissions: an agent may write only its own key)."""
    return f"$KV.{bucket}.{key}"


ALL_TASKS = f"{PREFIX}.tasks.>"


# --- logs ------------------------------------------------------------------------------------
def step_logs(run_id: str, job_id: str, step_index: int) -> str:
    """Log batches of one step of one job."""
    return (
        f"{PREFIX}.logs.{check_token(run_id, 'run id')}."
        f"{check_token(job_id, 'job id')}.{int(step_index)}"
    )


def run_logs(run_id: str) -> str:
    """Filter matching every log batch of one run."""
    return f"{PREFIX}.logs.{check_token(run_id, 'run id')}.>"


ALL_LOGS = f"{PREFIX}.logs.>"
