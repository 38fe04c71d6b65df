"""The typed settings object of every service (pydantic-settings), failing closed.

Each service declares one ``ServiceSettings`` subclass: fields typed with
the accepted values (``Literal`` for closed sets, bounds for numbers), read
from the environment once at start. A value outside them stops the service
with one clear message naming the variable, its value and what is accepted,
instead of running with a fallback (SANDBOX_ISOLATION=bwarp must not run
without namespaces). Empty variables count as unset. One log-level variable,
LOG_LEVEL, for every service.
"""
from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def closed_set(value):
    """Closed sets of words are case-insensitive: ' Pool ' is pool."""
    return value.strip().lower() if isinstance(value, str) else value


class Settings(BaseSettings):
    """A group of settings from the environment (frozen; empty variables are unset)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=False)

    @classmethod
    def env_name(cls, field: str) -> str:
        info = cls.model_fields.get(field)
        alias = getattr(info, "validation_alias", None) if info is not None else None
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def env_names(cls) -> set[str]:
        """Every variable these settings read, nested groups included."""
        names = set()
        for field, info in cls.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, Settings):
                names |= kind.env_names()
            elif isinstance(info.validation_alias, AliasChoices):
                names |= {str(choice) for choice in info.validation_alias.choices}
            else:
                names.add(cls.env_name(field))
        return names

    @classmethod
    def from_env(cls, **overrides):
        """The settings from the environment; SystemExit with every bad variable named otherwise."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SystemExit(config_error(cls, exc)) from None


class ServiceSettings(Settings):
    """The one settings object of a service: its own fields plus LOG_LEVEL."""

    log_level: LogLevel = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if isinstance(value, str) else value


def config_error(cls: type[Settings], exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = field if field.isupper() else cls.env_name(field)
        problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
    return f"{cls.__name__}: invalid configuration, not starting: " + "; ".join(problems)
