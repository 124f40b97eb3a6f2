"""Rewrite the generated sections of docs/benchmarks/cold-start.md from the result files beside it.

Each ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->`` section becomes the tables that
``modalrec benchmark --protocol NAME --render`` makes from ``docs/benchmarks/results/NAME/results.json``.
Run it after copying new result files: ``python docs/benchmarks/cold_start_tables.py``.

The page's sections: ``cold-items`` (item cold start under epoch caps), ``cold-items-uncapped`` (the
cold-start models at their training defaults on a BPR backbone), ``cold-items-idle`` (the same runs timed on
an idle machine), ``cold-items-cheaper-epochs`` (those timings again after CLCRec's and DropoutNet's epochs
got cheaper), ``cold-items-coldrec-scheme`` and ``cold-items-trainer-defaults`` (all six timed again after
CLCRec, DropoutNet and GAR took ColdRec's batch size and patience, and those three at the Trainer's defaults),
``cold-items-aldi-patience`` (ALDI after its cheaper epoch and ColdRec's patience),
``cold-items-dropoutnet-rows`` (DropoutNet with its item tower once per distinct (item, dropout) pair),
``cold-items-gar-coldrec`` (GAR with ColdRec's training scheme), ``cold-items-clcrec-own`` (CLCRec learning
its own ID embeddings), ``cold-items-bf16`` (the five refiners with their content layers in bfloat16),
``sparsity``, ``sparsity-full``, ``sparsity-graph`` (FREEDOM and LGMRec against LightGCN), ``sparsity-more``
(LATTICE, SMORE and BM3 against LightGCN), ``sparsity-classic`` (MMGCN, MMAL and MMDFM against LightGCN),
``sparsity-svd-start`` (VBPR and FREEDOM started from the SVD, against LightGCN), ``sparsity-vbpr-svd01``
(VBPR from a smaller SVD start), ``sparsity-bf16`` (VBPR and FREEDOM with the bfloat16 training step,
against LightGCN), ``sparsity-freedom-lr2`` (FREEDOM at its step size of 0.002, against LightGCN) and
``sparsity-freedom-defaults`` (FREEDOM at its present defaults, against LightGCN).
"""

from __future__ import annotations

import re
from pathlib import Path

from modalrec.experiments.protocols import read_results, render_markdown

PAGE = Path(__file__).with_name("cold-start.md")
RESULTS = Path(__file__).with_name("results")


def generated_page(text: str) -> str:
    """``text`` with every generated section rendered again from its result file."""

    def section(match: re.Match[str]) -> str:
        name = match.group(1)
        tables = render_markdown(read_results(RESULTS / name / "results.json")).strip()
        return f"<!-- generated: {name} -->\n{tables}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->.*?<!-- end: \1 -->", section, text, flags=re.S)


if __name__ == "__main__":
    PAGE.write_text(generated_page(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
