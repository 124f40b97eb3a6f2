"""Regenerate the Markdown table of a ``bench/peers/mmrec.py`` result file.

    .venv/bin/python bench/peers/render.py docs/benchmarks/data/speed-mmrec.json --out docs/benchmarks/speed.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a results.json written by bench/peers/mmrec.py")
    parser.add_argument("--out", help="where to write the Markdown (default: print it)")
    parser.add_argument("--title", default=None, help="replace the page title")
    parser.add_argument("--preamble", default=None, help="a Markdown file whose text goes under the title")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    text = report.render_markdown(results, source=args.results)
    if args.title or args.preamble:
        head, _, body = text.partition("\n\n")
        title = f"# {args.title}" if args.title else head
        preamble = Path(args.preamble).read_text().strip() + "\n\n" if args.preamble else ""
        text = f"{title}\n\n{preamble}{body}"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
