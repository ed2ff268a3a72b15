"""The trace: a run as a ``networkx.DiGraph`` whose nodes are typed ``Call`` records.

An edge u -> v means v's prompt contained u's response (edge attribute ``position`` is the 1-based
number u had among v's references). Each node carries its ``Call`` under the attribute ``call``;
graph attributes hold the user prompt, the config, the final answer, the schema version, the run id
and times.

- ``call``: the ``Call`` record of one node and its ``Usage``, validated field by field;
- ``totals``: ``Totals`` of a run, sent apart from what the cache or a replay supplied;
- ``trace``: the ``Trace`` itself (reading, building);
- ``files``: the file format (node-link JSON, the journal of a run in progress).

Invariant: this package owns the file format. A finished trace is JSON in networkx node-link form
(each node the flat fields of its ``Call``), written atomically; loading checks the schema and every
field's type, so a malformed or foreign file fails with one line naming the field. While a run is in
progress its file is a journal instead (JSON Lines: the graph attributes, then one line per finished
call, each appended as the call finishes), so a run that is killed keeps every call it finished at a
cost per call that does not grow with the run; ``Trace.load`` reads both.
"""

from __future__ import annotations

from moa_lab._trace.call import CALL_FIELDS, Call, Usage, cut_off, node_id
from moa_lab._trace.files import (
    SCHEMA,
    SCHEMA_VERSION,
    TRACE_DIR_ENV,
    default_trace_path,
    describe_os_error,
    new_graph,
    new_run_id,
    prompt_text,
    user_messages,
)
from moa_lab._trace.totals import Totals, sum_known
from moa_lab._trace.trace import InFlight, Trace, set_html_renderer

__all__ = [
    "CALL_FIELDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TRACE_DIR_ENV",
    "Call",
    "InFlight",
    "Totals",
    "Trace",
    "Usage",
    "cut_off",
    "default_trace_path",
    "describe_os_error",
    "new_graph",
    "new_run_id",
    "node_id",
    "prompt_text",
    "set_html_renderer",
    "sum_known",
    "user_messages",
]
