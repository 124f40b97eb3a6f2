"""``modalrec config keys``: every setting ``--set`` and a config file accept, with its type, default and help."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigKey:
    section: str  # data, train, eval or model
    name: str
    type: str
    default: Any
    help: str


def add_config_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="the settings --set and --config files accept")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    keys = config_sub.add_parser("keys", help="every key with its type, default and help")
    keys.add_argument("--model", metavar="NAME",
                      help="show this model's [model] keys and its own train defaults (default: every model's keys)")
    keys.set_defaults(handler=_keys)


def config_keys(model: str | None = None) -> list[ConfigKey]:
    """The keys of [data], [train], [eval] and [model]: one model's (with its train defaults) or every model's.

    A model field without help of its own borrows the help of a field of the same name elsewhere (most
    models share ``modalities``, ``standardize`` and ``reg_weight``).
    """
    from modalrec.config import DataConfig, EvalConfig, TrainConfig
    from modalrec.models import available_models, get_model

    entries = [get_model(model)] if model else available_models()
    train_defaults = dict(entries[0].defaults_for()) if model else {}
    keys = _section("data", DataConfig) + _section("train", TrainConfig, train_defaults) + _section("eval", EvalConfig)
    for entry in entries:
        keys += _section("model" if model else f"model: {entry.name}", entry.config_class)
    shared: dict[str, str] = {}
    for key in [key for entry in available_models() for key in _section("model", entry.config_class)]:
        if key.help:
            shared.setdefault(key.name, key.help)
    return [dataclasses.replace(key, help=key.help or shared.get(key.name, "")) for key in keys]


def _section(section: str, cls: type, defaults: dict[str, Any] | None = None) -> list[ConfigKey]:
    from modalrec.config import field_help

    helps = field_help(cls)
    keys = []
    for field in dataclasses.fields(cls):
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if defaults and field.name in defaults:
            default = defaults[field.name]
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        keys.append(ConfigKey(section, field.name, kind, default, helps[field.name]))
    return keys


def format_keys(keys: list[ConfigKey]) -> str:
    """One block per section: ``name  type  default  help``, aligned."""
    lines: list[str] = []
    width_name = max(len(key.name) for key in keys)
    width_type = max(len(key.type) for key in keys)
    section = None
    for key in keys:
        if key.section != section:
            section = key.section
            lines += [*([""] if lines else []), f"[{section}]"]
        default = repr(key.default) if isinstance(key.default, str) else str(key.default)
        lines.append(f"  {key.name:<{width_name}}  {key.type:<{width_type}}  {default:<12}  {key.help}".rstrip())
    return "\n".join(lines)


def _keys(args: argparse.Namespace) -> int:
    keys = config_keys(args.model)
    print(format_keys(keys))
    print("\nset one with --set SECTION.KEY=VALUE (or KEY=VALUE when only one section has it), "
          "or in a TOML/YAML file under [SECTION]")
    return 0
