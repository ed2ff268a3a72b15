"""Starting a run: ``arun`` / ``run`` for users, ``execute_run`` for every run moa_lab makes.

Invariant: every run (a mixture, a replay, a dry run, an experiment's item) goes through
``execute_run``: nothing is written before every key and endpoint is ready, and the trace is
finished (saved, or the reason it could not be) whatever happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moa_lab._backend import Backend
from moa_lab._cache import CallCache, open_cache
from moa_lab._calls import check_ready
from moa_lab._config import RunSettings
from moa_lab._engine import OnCall, RunState
from moa_lab._errors import RunError
from moa_lab._presets import preset
from moa_lab._strategies import Strategy
from moa_lab._sync import blocking
from moa_lab._trace import Trace, default_trace_path, new_run_id, prompt_text, user_messages

__all__ = ["DEFAULT_PRESET", "arun", "execute_run", "run"]

#: The preset used when no config is given.
DEFAULT_PRESET = "local"


async def arun(
    prompt: str | Sequence[dict[str, Any]],
    config: RunSettings | str | None = None,
    *,
    cache: CallCache | str | Path | bool = True,
    trace_path: str | Path | bool = True,
    progress: bool = True,
    sample: int = 0,
    on_call: OnCall | None = None,
    backend: Backend | None = None,
    strategy: Strategy | None = None,
) -> Trace:
    """Run a strategy (MoA by default) on a prompt and return its trace (await it in a notebook).

    ``config`` is a config (``MoAConfig``, ``DebateConfig``, ``ToTConfig``, or a ``StrategyConfig``
    for a ``strategy`` you wrote) or a preset name. ``cache`` is True (the default directory), False,
    a directory or a CallCache. ``trace_path`` is True (``traces/<time>-<slug>-<run id>.json``),
    False (keep it in memory only) or a path. ``sample`` makes the n-th independent sample of the
    same run. ``backend`` shares one Backend (its HTTP clients and its cap on calls in flight)
    across runs. Raises ``ConfigError`` before anything is sent, ``RunError`` when the run cannot
    finish (its ``trace`` keeps every finished call).
    """
    config = preset(config or DEFAULT_PRESET) if not isinstance(config, RunSettings) else config
    messages = user_messages(prompt)
    run_id = new_run_id()
    if trace_path is True:
        path: Path | None = default_trace_path(prompt_text(messages), run_id)
    else:
        path = Path(trace_path) if trace_path else None
    return await execute_run(
        messages,
        config,
        cache=cache,
        trace_path=path,
        exclusive=trace_path is True,
        progress=progress,
        sample=sample,
        on_call=on_call,
        backend=backend,
        run_id=run_id,
        strategy=strategy,
    )


async def execute_run(
    messages: list[dict[str, Any]],
    config: RunSettings,
    *,
    cache: CallCache | str | Path | bool,
    trace_path: Path | None,
    exclusive: bool = False,
    allow_hosts: Sequence[str] = (),
    **options: Any,
) -> Trace:
    """The one way a run happens (``arun`` and replays): execute, then finish the trace.

    ``options`` are those of ``RunState``: with ``basis`` unchanged calls are reused from a source
    trace; with ``stand_in`` nothing is sent and no cache entry is written (a dry run); ``check``
    lists the agents whose endpoint and key must be ready before the first call (default: every
    agent of the config); ``backend`` is shared with other runs. ``exclusive`` creates the trace
    file only if nothing is at ``trace_path`` yet (names moa_lab chose). A replay (a ``basis``)
    sends a key only to a host the user approved or named in ``allow_hosts``.

    Nothing is written before every key and endpoint is ready, so a run that fails its pre-flight
    check leaves the file at ``trace_path`` as it was.
    """
    store, owned = open_cache(cache)
    state = RunState(messages, config, cache=store, trace_path=trace_path, **options)
    state.owns_cache = owned
    try:
        if state.stand_in is None:  # a dry run sends nothing, so it needs no key or endpoint
            check_ready(state.check, record_keys=state.basis is None, allow_hosts=allow_hosts)
        if trace_path is not None:
            state.trace.start_journal(trace_path, exclusive=exclusive)
    except BaseException:
        await state.close()
        raise
    try:
        trace = await state.execute()
    except RunError as exc:
        await state.finish("failed")
        exc.trace = state.trace
        raise
    except BaseException:
        await state.finish("failed")
        raise
    await state.finish("complete")
    return trace


def run(
    prompt: str | Sequence[dict[str, Any]],
    config: RunSettings | str | None = None,
    *,
    cache: CallCache | str | Path | bool = True,
    trace_path: str | Path | bool = True,
    progress: bool = True,
    sample: int = 0,
    on_call: OnCall | None = None,
    backend: Backend | None = None,
    strategy: Strategy | None = None,
) -> Trace:
    """Blocking ``arun`` for scripts; also works inside a running event loop (Jupyter).

    Returns the finished trace; raises ``ConfigError`` before anything is sent (a bad config, a
    missing key) and ``RunError`` when the run cannot finish (its ``trace`` keeps the calls made).
    """
    return blocking(
        arun(
            prompt,
            config,
            cache=cache,
            trace_path=trace_path,
            progress=progress,
            sample=sample,
            on_call=on_call,
            backend=backend,
            strategy=strategy,
        )
    )
