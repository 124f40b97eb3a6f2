"""The ``features`` command: content feature extractors."""

from __future__ import annotations

import argparse
from typing import Any


def add_features_parser(sub: Any) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``features`` with its ``list`` subcommand to ``sub``.

    Returns:
        The subparsers of ``features``, so more subcommands (``extract``) can be added with ``add_parser``.
    """
    features = sub.add_parser("features", help="content feature extractors for images, texts, videos and audio")
    features_sub = features.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")
    listing = features_sub.add_parser("list", help="registered extractors: name, kind, dimension and description")
    listing.set_defaults(handler=_features_list)
    return features_sub


def _features_list(args: argparse.Namespace) -> int:
    from modalrec.features.base import available_extractors

    rows = [("name", "kind", "dim", "description")]
    rows += [(entry.name, entry.kind, _default_dim(entry.name), entry.description) for entry in available_extractors()]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for name, kind, dim, description in rows:
        print(f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {dim:>{widths[2]}}  {description}")
    return 0


def _default_dim(name: str) -> str:
    """The output length with default settings, or '' when it needs a model file or a fitted corpus."""
    from modalrec.errors import ModalrecError
    from modalrec.features.base import create_extractor

    try:
        return str(create_extractor(name).dim)
    except ModalrecError:
        return ""
