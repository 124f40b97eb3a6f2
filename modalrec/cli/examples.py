"""An example for every subcommand, shown at the end of its ``--help`` (the paths are those ``make demo``
writes, so each example runs as printed after the demo)."""

from __future__ import annotations

import argparse

DATA = "modalrec-demo/data/shop"
RUN = "modalrec-demo/runs/vbpr"

EXAMPLES: dict[str, str] = {
    "": "modalrec demo\nmodalrec train --data DATA_DIR --model freedom --out runs/freedom",
    "data": f"modalrec data info {DATA}",
    "data info": f"modalrec data info {DATA}",
    "data build": "modalrec data build --interactions interactions.csv --items items.csv \\\n"
                  "    --image-col image --text-cols title,description --out my-data",
    "features": "modalrec features list",
    "features list": "modalrec features list",
    "features extract": "modalrec features extract --items items.csv --column title --extractor minilm "
                        "--out title.npy",
    "features merge": "modalrec features merge part0.npy part1.npy --out image_feat.npy",
    "serve": f"modalrec serve --run {RUN} --port 8000\n"
             "modalrec serve --run runs/freedom --items items.csv --page-feedback",
    "ab": "modalrec ab report --db feedback.sqlite",
    "ab report": "modalrec ab report --db feedback.sqlite --json",
    "ab simulate": "modalrec ab simulate --run runs/a --run-b runs/b --db sim.sqlite",
    "models": "modalrec models",
    "config": "modalrec config keys --model freedom",
    "config keys": "modalrec config keys --model freedom\nmodalrec config keys | grep learning_rate",
    "train": f"modalrec train --data {DATA} --model lightgcn --out runs/lightgcn --set epochs=50\n"
             f"modalrec train --data {DATA} --model freedom --out runs/freedom --device cuda:0",
    "evaluate": f"modalrec evaluate --run {RUN} --split valid",
    "recommend": f"modalrec recommend --run {RUN} --user U0001 U0002 -k 5\n"
                 f"modalrec recommend --run {RUN} --all-users --out recommendations.csv",
    "explain": f"modalrec explain --run {RUN} --user U0001 -k 5",
    "benchmark": f"modalrec benchmark --data {DATA} --models popularity,itemknn,lightgcn,vbpr --seeds 3",
    "tune": f"modalrec tune --data {DATA} --model lightgcn --trials 20 --timeout 600",
    "demo": "modalrec demo --out modalrec-demo",
    "runs": "modalrec runs compare runs/a runs/b",
    "runs compare": "modalrec runs compare modalrec-demo/runs/bpr modalrec-demo/runs/vbpr",
}


def subcommands(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """``(path, parser)`` for the parser and every subcommand below it, e.g. ``("data build", ...)``."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += subcommands(child, f"{path} {name}".strip())
    return found


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Put each subcommand's example into its epilog, kept as written (line breaks included)."""
    for path, command in subcommands(parser):
        example = EXAMPLES.get(path)
        if example:
            lines = "\n".join(f"  {line}" for line in example.splitlines())
            command.epilog = f"example{'s' if len(example.splitlines()) > 1 else ''}:\n{lines}"
            command.formatter_class = argparse.RawDescriptionHelpFormatter
