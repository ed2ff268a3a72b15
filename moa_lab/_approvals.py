"""Which hosts may receive which API key: keys go only where the user sent them.

A trace names endpoints and the *variable* holding each key (``OPENAI_API_KEY``), never the key.
Replaying a trace someone shared would send the user's own key to whatever host the trace names; so
before a key leaves, the (host, variable) pair must be one the user has used (every run from the
user's own config records its pairs), one they approved (``moa-lab approve HOST VARIABLE``), a
provider's own (``OPENAI_API_KEY`` to api.openai.com), or allowed for this one replay.

A key sent over plain http to another machine travels unencrypted: such an endpoint is named with its
scheme (``http://host:port``), so only an approval of exactly that scheme and host lets a key go
there; ``host`` alone means https (or http on loopback, where nothing leaves the machine).

Invariant: the record holds host names and variable names only, never a key, in one small JSON file
in the user's config folder (``$MOA_LAB_CONFIG_DIR`` moves it), written atomically.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import platformdirs

from moa_lab._errors import ConfigError
from moa_lab._trace.files import write_atomically

__all__ = [
    "CONFIG_ENV",
    "KNOWN_PAIRS",
    "approvals_file",
    "approve",
    "approved",
    "approved_pairs",
    "check_keys",
    "host_of",
    "named_host",
]

CONFIG_ENV = "MOA_LAB_CONFIG_DIR"
#: A provider's own key variable may always go to that provider.
KNOWN_PAIRS = frozenset({("api.openai.com", "OPENAI_API_KEY"), ("api.together.xyz", "TOGETHER_API_KEY")})


def approvals_file() -> Path:
    """``$MOA_LAB_CONFIG_DIR/approved-keys.json``, else in the user's config folder."""
    folder = os.environ.get(CONFIG_ENV) or platformdirs.user_config_dir("moa_lab")
    return Path(folder).expanduser() / "approved-keys.json"


def host_of(base_url: str) -> str:
    """The host (with its port, if any) a base URL sends to; ``local`` for the embedded model;
    ``http://host[:port]`` for plain http to a host that is not loopback (a key would go in clear)."""
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https"):
        return "local"
    host = parsed.netloc.rsplit("@", 1)[-1].lower()
    return f"http://{host}" if parsed.scheme == "http" and not _loopback(parsed.hostname) else host


def _loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return hostname == "localhost"


def named_host(text: str) -> str:
    """A host as the user names it (``moa-lab approve``, ``--allow-host``): ``host[:port]``, or a URL
    (``http://host:8000/v1``), named as ``host_of`` names the endpoints it sends to."""
    text = text.strip()
    return host_of(text) if "://" in text else text.lower().rstrip("/")


def approved_pairs() -> set[tuple[str, str]]:
    """The (host, variable) pairs recorded as approved (the providers' own pairs not included)."""
    return _load()


def _load() -> set[tuple[str, str]]:
    path = approvals_file()
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return set()  # no record yet, or an unreadable one: nothing is approved
    pairs = data.get("approved") if isinstance(data, dict) else None
    return {
        (p["host"], p["key_env"])
        for p in pairs or []
        if isinstance(p, dict) and isinstance(p.get("host"), str) and isinstance(p.get("key_env"), str)
    }


def approved(host: str, key_env: str) -> bool:
    """Whether the key in ``key_env`` may be sent to ``host``."""
    return (host, key_env) in KNOWN_PAIRS or (host, key_env) in _load()


def approve(pairs: Iterable[tuple[str, str]], *, strict: bool = False) -> None:
    """Record (host, variable) pairs as approved; a record that cannot be written is skipped quietly
    (the pairs are then asked about again next time, which is safe), or with ``strict`` (the user
    asked for this approval) is a ``ConfigError`` saying why."""
    new = {(h, k) for h, k in pairs if (h, k) not in KNOWN_PAIRS}
    known = _load()
    if new <= known:
        return
    path = approvals_file()
    entries = [{"host": h, "key_env": k} for h, k in sorted(known | new)]
    text = json.dumps({"approved": entries}, indent=1) + "\n"
    try:
        write_atomically(path, text)
    except OSError as exc:
        if strict:
            raise ConfigError(
                f"cannot record the approval in {path} ({exc.strerror or exc}); make its folder "
                f"writable or set ${CONFIG_ENV} to another folder"
            ) from None


def check_keys(
    agents: Iterable[object], *, record: bool, allow: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Every (host, variable) a key would go to; record them, or refuse the unapproved ones.

    ``record`` is for runs from the user's own config (their pairs become approved); otherwise a pair
    that is neither approved nor for a host in ``allow`` raises ``ConfigError`` naming the host and
    how to approve it, before anything is sent.
    """
    pairs = sorted(
        {
            (host_of(agent.base_url), agent.key_env)  # type: ignore[attr-defined]
            for agent in agents
            if agent.key_env and host_of(agent.base_url) != "local"  # type: ignore[attr-defined]
        }
    )
    if record:
        approve(pairs)
        return pairs
    allowed = {named_host(h) for h in allow}
    for host, key_env in pairs:
        if host not in allowed and not approved(host, key_env):
            why = (
                "the trace names that endpoint over plain http, so the key would travel unencrypted"
                if host.startswith("http://")
                else "the trace names that endpoint and you have not used this key with it here"
            )
            raise ConfigError(
                f"refusing to send ${key_env} to {host}: {why}; allow it once with --allow-host {host} "
                f"(replay(..., allow_hosts=[{host!r}])) or for good with "
                f"'moa-lab approve {host} {key_env}'"
            )
    return pairs
