"""Command-line options generated from the settings model, so each setting is declared once.

A field of :class:`batch.config.Settings` marked ``Annotated[..., Option(...)]`` becomes an
option of the commands the marker names. Its flag is the field name with dashes, its help
the field's description (with the default in brackets), its type the annotation's: a
``Literal`` is a choice, a ``Path`` a path, an ``int``/``float`` a number, and a ``bool`` a
flag that turns its default around (``--verify-evidence``, ``--no-progress``).

The decorated command does not take one parameter per setting: it receives the settings
given on the command line as one mapping, ``flags``, ready for
``load_settings(flags=flags)``. A setting left off the command line is absent from it, so
the config file and the environment decide.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from batch.config import Option
from batch.durations import short_duration

__all__ = ["Generated", "generated_options", "settings_options"]

Command = Callable[..., None]


@dataclass(frozen=True)
class Generated:
    """One setting as a command-line option."""

    field: str
    flag: str
    option: click.Option
    given: Any  # the setting's value when the flag is given (bool flags only)


def _marker(info: FieldInfo) -> Option | None:
    return next((m for m in info.metadata if isinstance(m, Option)), None)


def _base_type(annotation: Any) -> Any:
    """``X`` of ``X | None``; the annotation itself otherwise."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation


def _click_type(kind: Any, field: str) -> click.ParamType[Any]:
    if typing.get_origin(kind) is Literal:
        return click.Choice([str(choice) for choice in typing.get_args(kind)])
    simple: dict[Any, click.ParamType[Any]] = {
        str: click.STRING,
        int: click.INT,
        float: click.FLOAT,
        Path: click.Path(path_type=Path),
    }
    if kind not in simple:  # a programming error in the model, caught by the tests
        raise TypeError(f"setting {field!r}: no command-line type for {kind!r}")
    return simple[kind]


def _help(info: FieldInfo, *, flag: bool, duration: bool = False) -> str:
    """The description, then the default in brackets (a duration as one: ``[3m]``)."""
    text = info.description or ""
    if not flag and info.default is not None and "[" not in text:
        default = short_duration(info.default) if duration else info.default
        text = f"{text} [{default}]"
    return text


def generated_options(model: type[BaseModel], command: str) -> Iterator[Generated]:
    """The options ``command`` gets from ``model``, in the model's field order."""
    for field, info in model.model_fields.items():
        marker = _marker(info)
        if marker is None or command not in marker.commands:
            continue
        kind = _base_type(info.annotation)
        dashed = field.replace("_", "-")
        if kind is bool:
            flag = f"--{dashed}" if info.default is False else f"--no-{dashed}"
            option = click.Option(
                [flag, f"_flag_{field}"], is_flag=True, help=_help(info, flag=True)
            )
            yield Generated(field, flag, option, not info.default)
            continue
        flag = f"--{dashed}"
        option = click.Option(
            [flag, f"_flag_{field}"],
            # a duration is text ("3m"), turned into seconds by the model's validator
            type=click.STRING if marker.metavar == "DURATION" else _click_type(kind, field),
            metavar=marker.metavar,
            help=_help(info, flag=False, duration=marker.metavar == "DURATION"),
        )
        yield Generated(field, flag, option, None)


def settings_options(model: type[BaseModel], command: str) -> Callable[[Command], Command]:
    """Add ``command``'s settings of ``model`` as options; pass them on as ``flags``."""

    def decorate(function: Command) -> Command:
        options = list(generated_options(model, command))

        @functools.wraps(function)
        def wrapper(**kwargs: Any) -> None:
            flags: dict[str, Any] = {}
            for item in options:
                value = kwargs.pop(item.option.name or "")
                if item.given is not None:
                    value = item.given if value else None
                if value is not None:
                    flags[item.field] = value
            function(**kwargs, flags=flags)

        # click lists __click_params__ in reverse: these come where the decorator stands
        below: list[click.Parameter] = function.__dict__.get("__click_params__", [])
        wrapper.__click_params__ = [*below, *reversed([item.option for item in options])]  # type: ignore[attr-defined]  # click's own attribute
        return wrapper

    return decorate
