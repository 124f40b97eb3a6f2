"""Entry point: builds the argument parser from the command modules and turns errors into one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modalrec import __version__
from modalrec.cli import commands
from modalrec.cli.config_cmd import add_config_parser
from modalrec.cli.examples import add_examples
from modalrec.cli.runs_cmd import add_runs_parser
from modalrec.errors import ModalrecError, one_line, shorten

MAX_ERROR_LINE = 800  # the one line an error prints, whatever it quotes
QUIET_LIBRARIES = ("faiss", "sentence_transformers")  # their INFO lines ("Successfully loaded faiss.") tell a user nothing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modalrec", description="Multimodal recommendation from the command line.")
    parser.add_argument("--version", action="version", version=f"modalrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.register(sub)
    add_runs_parser(sub)
    add_config_parser(sub)
    add_examples(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        for library in QUIET_LIBRARIES:
            logging.getLogger(library).setLevel(logging.WARNING)
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that went away (`modalrec ... | head`) shows here, not at exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except ModalrecError as exc:
        print(f"modalrec: error: {shorten(one_line(str(exc)), MAX_ERROR_LINE)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modalrec: interrupted", file=sys.stderr)
        return 130


def _reader_went_away() -> int:
    """Standard output's reader closed it (``| head``): stop quietly, as ``cat`` does, with status 141."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush then has nowhere to fail
    return 141
