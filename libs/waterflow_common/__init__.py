"""Code shared by every Waterflow service: the names on NATS, the messages, settings, errors.

Everything that two services must agree on lives here exactly once: a subject is built only by a
function of :mod:`waterflow_common.subjects`, a message shape only by a Struct of
:mod:`waterflow_common.messages`.
"""

__version__ = "0.1.0"
