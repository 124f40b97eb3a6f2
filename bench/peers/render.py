"""Regenerate the Markdown of one or more ``bench/peers/mmrec.py`` result files.

``--coldrec FILE`` renders a ``bench/peers/coldrec.py`` result file instead. One file gives a page of its own; several (``--section HEADING=FILE`` each) give one page with a section
per file, in order. ``--preamble`` puts a hand-written Markdown file's text under the title.

    .venv/bin/python bench/peers/render.py runs/peers/mmrec-X/results.json
    .venv/bin/python bench/peers/render.py --preamble bench/peers/speed_preamble.md \\
        --section "Epoch and evaluation=docs/benchmarks/data/speed-epoch.json" \\
        --section "Time to quality=docs/benchmarks/data/speed-quality.json" --out docs/benchmarks/speed.md
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
    parser.add_argument("results", nargs="?", help="a results.json written by bench/peers/mmrec.py")
    parser.add_argument("--section", action="append", default=[], metavar="HEADING=FILE",
                        help="a result file rendered as a section (repeatable)")
    parser.add_argument("--out", help="where to write the Markdown (default: print it)")
    parser.add_argument("--coldrec", default=None, metavar="FILE",
                        help="instead: the table of a results.json written by bench/peers/coldrec.py")
    parser.add_argument("--title", default=None, help="replace the title, at the same heading level")
    parser.add_argument("--preamble", default=None, help="a Markdown file whose text goes under the title")
    args = parser.parse_args(argv)
    if args.coldrec:
        import coldrec

        text = coldrec.render_markdown(json.loads(Path(args.coldrec).read_text()), source=args.coldrec)
    elif args.section:
        files = []
        for item in args.section:
            heading, _, path = item.partition("=")
            files.append((heading, json.loads(Path(path).read_text()), path))
        text = report.render_pages(files)
    elif args.results:
        text = report.render_markdown(json.loads(Path(args.results).read_text()), source=args.results)
    else:
        parser.error("give a results file or --section HEADING=FILE")
    if args.title or args.preamble:
        head, _, body = text.partition("\n\n")
        level = head[: len(head) - len(head.lstrip("#"))] or "#"  # keep the heading level of the page replaced
        title = f"{level} {args.title}" if args.title else head
        preamble = Path(args.preamble).read_text().strip() + "\n\n" if args.preamble else ""
        text = f"{title}\n\n{preamble}{body}"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
