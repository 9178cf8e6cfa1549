"""Base classes of every pfflake model: strict headers, redacting configs.

:class:`ConfigModel` is where redaction meets pydantic: its serializer and
``repr`` apply :mod:`pfflake.redact`'s rules, and :meth:`ConfigModel.reveal` is
the one raw dump. Import the models from :mod:`pfflake.models`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from ..redact import REDACTED, is_blank, is_secret_key, redact_tree

# model_dump context key behind ConfigModel.reveal(); private on purpose.
_REVEAL = "_pfflake_reveal_secrets"


def describe_error(error: ValidationError) -> str:
    """``loc: msg`` for each error, without pydantic's ``input_value=`` echo."""
    parts = []
    for err in error.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class BaseStrictModel(BaseModel):
    """Disallows extra fields and mutation (headers and frame geometry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys kept, secrets never shown.

    ``repr``/``str``/``model_dump``/``model_dump_json`` redact (see the module
    docstring); :meth:`reveal` is the explicit raw dump. Validation errors do
    not echo input values (``hide_input_in_errors``).
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    @model_serializer(mode="wrap")
    def _redacting_serializer(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if info.context and info.context.get(_REVEAL):
            return data
        return redact_tree(data)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name is not None and is_secret_key(name) and not is_blank(value):
                yield name, REDACTED
            else:
                yield name, redact_tree(value, keep_models=True)

    def reveal(self, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """The raw dump, secrets included: the one explicit way to get them.

        Same as ``model_dump(mode=mode)`` without redaction. Do not log or
        store the result; use :func:`redact` on anything derived from it.
        """
        return self.model_dump(mode=mode, context={_REVEAL: True})


class FrozenConfigModel(ConfigModel):
    """Config parts pypff made strict: still frozen, but unknown keys allowed."""

    model_config = ConfigDict(frozen=True)


class RawConfig(ConfigModel):
    """Any config file without a dedicated model (``sw_info.json``, ``*.toml``).

    Keys are attributes; ``cfg["key"]``/``cfg.get("key")`` read raw values
    like the plain dict pypff returns.
    """

    def __getitem__(self, key: str) -> Any:
        extra = self.model_extra or {}
        if key not in extra:
            raise KeyError(key)
        return extra[key]

    def __contains__(self, key: object) -> bool:
        return key in (self.model_extra or {})

    def get(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)

    def keys(self) -> list[str]:
        return list(self.model_extra or {})
