"""Every secret rule of pfflake in one place: what counts as a secret, how it is hidden.

PANOSETI configs can hold credentials (a power-switch URL with ``user:password``, API
tokens). Anything config-derived that leaves the process -- Parquet and Zarr metadata,
sidecar copies, log lines, error messages -- passes through this module first.

Two kinds of input, two entry points:

* **Structured data** (dicts, lists, strings, pydantic models): :func:`redact` returns a
  deep copy with the value of every secret-looking key (:func:`is_secret_key`) and every
  URL password / secret ``name=value`` pair replaced by ``***``; :func:`find_secrets`
  says where they were (never what they were).
* **Free text** (messages, logs, TOML/INI files that do not parse, hk data): the same text
  rules (:func:`redact_text`), two more for quoted ``"key": value`` pairs and
  ``key = value`` lines (:func:`redact_free_text`), then :func:`scrub` removes the raw
  secret values already known from the structured configs.

``scrub(..., min_len=)`` is the one difference between callers, and it is deliberate:
error messages remove every known secret value (``min_len=0``: a message is short and
read by people), while logs, sidecars and hk copies only remove values of at least
:data:`MIN_SCRUB_LEN` characters, because replacing ``"1"`` or ``"on"`` everywhere would
corrupt numbers and words in the data being copied.

This module imports nothing of pfflake and not pydantic: a pydantic model is recognised
only if pydantic is already loaded (it has to be, for a model to exist), so the lake and
the Zarr writer use it without paying for pydantic's import.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
import sys
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

#: What every redacted value is replaced with.
REDACTED = "***"

#: Shortest known secret value :func:`scrub` removes from logs, sidecars and hk copies.
MIN_SCRUB_LEN = 6

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "token",
        "tokens",
        "secret",
        "secrets",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
    }
)
# Words of a key name: snake_case, kebab-case, dotted and camelCase all split.
_KEY_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# scheme://user:password@host -- the password runs to the last '@' of the authority.
_URL_PASSWORD_RE = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):(?P<password>[^\s/?#]*)@"
)
# name=value pairs (URL query strings, free text); redacted when the name looks secret.
_NAME_VALUE_RE = re.compile(r"(?P<name>[A-Za-z_][\w.\-]*)=(?P<value>[^\s&#;,]+)")
# "key": "value" / 'key': value (JSON, Python reprs in logs) and TOML/INI ``key = value`` lines.
_QUOTED_PAIR_RE = re.compile(
    r"""(?P<q>["'])(?P<key>[^"'\n]{1,80})(?P=q)(?P<sep>\s*:\s*)(?P<vq>["']?)(?P<val>[^"'\n,}]*)(?P=vq)"""
)
_ASSIGN_RE = re.compile(r"(?m)^(?P<head>[ \t]*(?P<key>[A-Za-z0-9_.\-]+)[ \t]*=[ \t]*)(?P<val>.*\S)")


class Redacted(dict):  # type: ignore[type-arg]
    """A dict that already passed through :func:`redact` (so it is not redacted twice)."""


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: object) -> bool:
    """Whether a key name looks like it holds a secret (case-insensitive).

    True when one word of the name is password/passwd/pwd/passphrase, token,
    secret, apikey, credential(s), auth or authorization, or when the last of
    several words is ``key`` (``api_key``, ``ssh-key``, ``privateKey``). Words
    are split on ``_ - .`` and camelCase, so ``author`` or ``wps`` are not
    secrets but ``db_password`` and ``X-Auth-Token`` are.
    """
    words = [w.lower() for w in _KEY_WORD_RE.findall(str(name))]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return len(words) > 1 and words[-1] == "key"


def is_blank(value: object) -> bool:
    """Nothing to hide: absent, empty, or already redacted."""
    return value is None or value == "" or value == REDACTED


def _redact_text(text: str, values: set[str] | None) -> str:
    def url(m: re.Match[str]) -> str:
        password = m["password"]
        if is_blank(password):
            return m[0]
        if values is not None:
            values.update({password, urllib.parse.unquote(password)})
        return f"{m['head']}:{REDACTED}@"

    def pair(m: re.Match[str]) -> str:
        if not is_secret_key(m["name"]) or is_blank(m["value"]):
            return m[0]
        if values is not None:
            values.add(m["value"])
        return f"{m['name']}={REDACTED}"

    return _NAME_VALUE_RE.sub(pair, _URL_PASSWORD_RE.sub(url, text))


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret ``name=value`` pairs replaced by ``***``.

    ``http://admin:pw@host`` -> ``http://admin:***@host``;
    ``https://h/x?token=abc`` -> ``https://h/x?token=***``. Idempotent.
    """
    return _redact_text(text, None)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def leaves(obj: Any) -> Iterator[str]:
    """Every scalar of a nested structure, as strings (``None`` skipped)."""
    if isinstance(obj, Mapping):
        for v in obj.values():
            yield from leaves(v)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from leaves(v)
    elif obj is not None:
        yield str(obj)


def _is_model(obj: Any) -> bool:
    # No model can exist before pydantic.main has defined BaseModel, so look it up without
    # importing anything. Not ``sys.modules["pydantic"].BaseModel``: while another thread
    # is importing pydantic (convert_run's pool loading configs) that module is only
    # partially initialised and the attribute lookup raises.
    main = sys.modules.get("pydantic.main")
    base = getattr(main, "BaseModel", None) if main is not None else None
    return base is not None and isinstance(obj, base)


def redact_tree(
    obj: Any,
    path: str = "",
    *,
    found: list[str] | None = None,
    values: set[str] | None = None,
    keep_models: bool = False,
) -> Any:
    """Redacted deep copy of ``obj``; optionally records paths (``found``) and raw secret
    values (``values``). ``keep_models`` returns nested pydantic models as they are (their
    own repr redacts itself: the ``ConfigModel.__repr_args__`` path)."""
    if _is_model(obj):
        if keep_models:
            return obj
        reveal = getattr(obj, "reveal", None)  # ConfigModel: the raw dump, then one pass here
        raw = reveal() if callable(reveal) else obj.model_dump()
        return redact_tree(raw, path, found=found, values=values)
    if isinstance(obj, str):
        out = _redact_text(obj, values)
        if out != obj and found is not None:
            found.append(path)
        return out
    if isinstance(obj, Mapping):
        result = {}
        for key, value in obj.items():
            sub = _join(path, key)
            if is_secret_key(key) and not is_blank(value):
                if found is not None:
                    found.append(sub)
                if values is not None:
                    values.update(leaves(value))
                result[key] = REDACTED
            else:
                result[key] = redact_tree(
                    value, sub, found=found, values=values, keep_models=keep_models
                )
        return result
    if isinstance(obj, list | tuple | set | frozenset):
        items = [
            redact_tree(v, f"{path}[{i}]", found=found, values=values, keep_models=keep_models)
            for i, v in enumerate(obj)
        ]
        return items if isinstance(obj, list) else type(obj)(items)
    return copy.deepcopy(obj)


def redact(obj: Any) -> Any:
    """Deep copy of ``obj`` (dicts, lists, tuples, strings, models) with secrets as ``***``.

    Use it on anything config-derived before it leaves the process (Parquet or
    Zarr metadata, logs). A pydantic model comes back as a redacted plain dict.
    Values of secret-looking keys are replaced whole, whatever their type;
    ``None``, ``""`` and ``"***"`` are left alone (nothing to hide), so
    ``find_secrets(redact(x)) == []``.
    """
    return redact_tree(obj)


def find_secrets(obj: Any) -> list[str]:
    """Paths (``wps.url``, ``domes[0].token``) of every item :func:`redact` would change.

    Reports where secrets are, never what they are; for tests, logs and a
    lake's integrity check. A config model is inspected on its raw values.
    """
    found: list[str] = []
    redact_tree(obj, found=found)
    return found


def secret_values(obj: Any) -> set[str]:
    """The raw secret values :func:`redact` would remove from ``obj`` (to scrub free text)."""
    values: set[str] = set()
    redact_tree(obj, values=values)
    values.discard("")
    return values


def removed_strings(raw: Any, clean: Any, out: set[str]) -> None:
    """Collect into ``out`` what redaction removed from ``raw`` (whole values, or the parts
    of strings that differ from ``clean``)."""
    if isinstance(raw, str) and isinstance(clean, str):
        if raw != clean:
            sm = difflib.SequenceMatcher(None, raw, clean, autojunk=False)
            out.update(raw[i1:i2] for op, i1, i2, _, _ in sm.get_opcodes() if op != "equal")
    elif isinstance(raw, Mapping) and isinstance(clean, Mapping):
        for k, v in raw.items():
            removed_strings(v, clean.get(k), out)
    elif isinstance(raw, list | tuple) and isinstance(clean, list | tuple):
        for a, b in zip(raw, clean, strict=False):
            removed_strings(a, b, out)
    elif raw != clean:
        out.update(leaves(raw))


def scrub(text: str, secrets: set[str], *, min_len: int = 0) -> str:
    """``text`` with every known secret value of at least ``min_len`` characters replaced
    by ``***`` (longest first, so a secret that contains another goes whole)."""
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= min_len:
            text = text.replace(s, REDACTED)
    return text


def scrub_bytes(data: bytes, secrets: set[str], *, min_len: int = MIN_SCRUB_LEN) -> bytes:
    """:func:`scrub` for binary data (hk.pff copies): only known values, no text rules."""
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= min_len:
            data = data.replace(s.encode(), REDACTED.encode())
    return data


def scrub_message(text: str, secrets: set[str]) -> str:
    """An error message made safe to show: text rules, then every known secret value."""
    return scrub(redact_text(text), secrets, min_len=0)


def redact_free_text(text: str, secrets: set[str]) -> str:
    """Logs and config text that did not parse: URL passwords, ``secret=value``,
    ``"secret": value``, ``secret = value`` lines, then the configs' known secret values
    of at least :data:`MIN_SCRUB_LEN` characters, all replaced by ``***``."""

    def quoted(m: re.Match[str]) -> str:
        if not is_secret_key(m["key"]) or m["val"].strip() in ("", REDACTED):
            return m[0]
        return f"{m['q']}{m['key']}{m['q']}{m['sep']}{m['vq']}{REDACTED}{m['vq']}"

    def assign(m: re.Match[str]) -> str:
        if not is_secret_key(m["key"]) or m["val"].strip("\"' ") in ("", REDACTED):
            return m[0]
        return f'{m["head"]}"{REDACTED}"'

    text = _ASSIGN_RE.sub(assign, _QUOTED_PAIR_RE.sub(quoted, redact_text(text)))
    return scrub(text, secrets, min_len=MIN_SCRUB_LEN)


__all__ = [
    "MIN_SCRUB_LEN",
    "REDACTED",
    "Redacted",
    "find_secrets",
    "is_blank",
    "is_secret_key",
    "leaves",
    "redact",
    "redact_free_text",
    "redact_text",
    "redact_tree",
    "removed_strings",
    "scrub",
    "scrub_bytes",
    "scrub_message",
    "secret_values",
]
