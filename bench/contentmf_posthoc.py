"""Three post-hoc changes to a trained ContentMF's cold-item scores, measured on cold validation and test.

    python bench/contentmf_posthoc.py SPLIT_SEED SEED [KEY=VALUE ...] [--out FILE]   # one run, one JSON line
    python bench/contentmf_posthoc.py --render [--out FILE]                          # Markdown: means over runs

Trains ContentMF as ``bench/cold_quick.py`` does (20% cold items, 10 epochs, cold-task selection) on
``data.split_seed=SPLIT_SEED`` with model seed ``SEED``, and Content-kNN on the same split, then measures
cold recall@20 of

- ``fusion/gG``: ContentMF's scores plus ``G`` times Content-kNN's, each divided by its standard deviation
  over the cold items;
- ``neighbours/kK-aA``: cold item vectors given ``A`` times the mean ID residual of their ``K`` most similar
  warm items by content cosine;
- ``popularity/only`` and ``popularity/gG``: an explicit popularity prediction, a ridge regression
  (penalty ``RIDGE_PENALTY``) of log(1 + training interactions) on the weighted content of the warm items,
  ranked alone (the same list for every user) and added to ContentMF's scores with weight ``G`` after the same
  scaling as the fusion.

``contentmf`` is ContentMF alone. None of the three is part of the model: the script records whether any
would be worth building. One JSON line per run is appended to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from cold_quick import DATA, quick_overrides  # bench/ is the script's folder, first on sys.path
from modalrec.evaluate.tasks import task_evaluator
from modalrec.train.run import LoadedRun, load_run, resolve_config, train_run

FUSION_WEIGHTS = (0.25, 0.5, 1.0, 2.0)
NEIGHBOURS = (5, 20, 50)
NEIGHBOUR_WEIGHTS = (0.5, 1.0)
RIDGE_PENALTY = 10.0
POPULARITY_WEIGHTS = (0.25, 0.5, 1.0)


def trained(model: str, split_seed: int, seed: int, sets: list[str], runs: Path) -> LoadedRun:
    overrides = quick_overrides(10, [f"data.split_seed={split_seed}", *sets])
    out = runs / f"{model}-{split_seed}-{seed}"
    train_run(resolve_config(DATA, model, overrides=overrides, seed=seed), out, overwrite=True)
    return load_run(out)


def all_scores(run: LoadedRun) -> Tensor:
    """(U, I) scores of every user for every item, from the run's embeddings."""
    model = run.model.eval()
    with torch.no_grad():
        embeddings = model.compute_embeddings()
        return embeddings.users @ embeddings.items.T


def neighbour_residuals(run: LoadedRun, k: int) -> Tensor:
    """(I, d + 1) the mean ID residual of each item's ``k`` most content-similar warm items (never itself)."""
    model = run.model
    with torch.no_grad():
        warm = model.warm_mask.squeeze(1).bool()
        unit = F.normalize(model.content, dim=1)
        similarity = unit @ unit[warm].T
        similarity[torch.nonzero(warm).squeeze(1), torch.arange(int(warm.sum()))] = -2.0
        neighbours = similarity.topk(k, dim=1).indices
        return model.id_residual.weight[warm][neighbours].mean(1)


def predicted_popularity(run: LoadedRun) -> Tensor:
    """(I,) log(1 + training interactions) predicted from content by ridge regression fitted on the warm items."""
    model = run.model
    counts = torch.bincount(torch.from_numpy(run.split.train.items).long(), minlength=model.num_items)
    with torch.no_grad():
        design = torch.cat([model.content.double(), torch.ones(model.num_items, 1, dtype=torch.float64)], dim=1)
        warm = model.warm_mask.squeeze(1).bool()
        gram = design[warm].T @ design[warm] + RIDGE_PENALTY * torch.eye(design.shape[1], dtype=torch.float64)
        weights = torch.linalg.solve(gram, design[warm].T @ torch.log1p(counts[warm].double()))
        return (design @ weights).float()


def measure(contentmf: LoadedRun, contentknn: LoadedRun) -> dict[str, float]:
    knn = all_scores(contentknn)
    model = contentmf.model.eval()
    with torch.no_grad():  # the neighbour scorings do not depend on the part: built once for valid and test
        embeddings = model.compute_embeddings()
        own = embeddings.users @ embeddings.items.T
        cold = 1.0 - model.warm_mask
        neighbours = {}
        for k in NEIGHBOURS:
            residuals = neighbour_residuals(contentmf, k)
            for weight in NEIGHBOUR_WEIGHTS:
                items = embeddings.items + weight * cold * residuals
                neighbours[f"neighbours/k{k}-a{weight}"] = embeddings.users @ items.T
    popularity = predicted_popularity(contentmf)
    result: dict[str, float] = {}
    for part in ("valid", "test"):
        cold_items = torch.from_numpy(contentmf.split.cold_items(part))
        scaled = own / own[:, cold_items].std()  # the fusions scale each score by its spread over the part's cold items
        scorings = {
            "contentmf": own,
            **{f"fusion/g{w}": scaled + w * knn / knn[:, cold_items].std() for w in FUSION_WEIGHTS},
            **neighbours,
            "popularity/only": popularity.expand(len(own), -1),
            **{f"popularity/g{w}": scaled + w * popularity / popularity[cold_items].std() for w in POPULARITY_WEIGHTS},
        }
        evaluator = task_evaluator(contentmf.split, contentmf.config.eval, "cold", part)
        for name, scores in scorings.items():
            table = evaluator.evaluate(lambda users, scores=scores: scores[users])
            result[f"{part}/{name}"] = round(table.mean()["recall@20"], 4)
    return result


def render(out: Path) -> str:
    """One row per scoring, cold recall@20 on valid and test as mean ± std over the runs in ``out``."""
    import statistics

    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    names = [key.split("/", 1)[1] for key in rows[0] if key.startswith("valid/")]
    runs = ",".join(f"{row['split_seed']}:{row['seed']}" for row in rows)
    lines = [f"Runs (split:seed): {runs}", "", "| scoring | cold/valid | cold/test |", "|---|---|---|"]
    for name in names:
        cells = []
        for part in ("valid", "test"):
            values = [float(row[f"{part}/{name}"]) for row in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {spread:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split_seed", type=int, nargs="?")
    parser.add_argument("seed", type=int, nargs="?")
    parser.add_argument("sets", nargs="*", help="KEY=VALUE overrides for ContentMF")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/results/contentmf_posthoc.jsonl"))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/modalrec-contentmf-posthoc"))
    parser.add_argument("--render", action="store_true", help="print the Markdown summary of --out")
    args = parser.parse_args()
    if args.render:
        print(render(args.out))
        return
    if args.split_seed is None or args.seed is None:
        parser.error("give SPLIT_SEED and SEED, or --render")
    torch.set_num_threads(1)
    contentmf = trained("contentmf", args.split_seed, args.seed, args.sets, args.runs)
    contentknn = trained("contentknn", args.split_seed, args.seed, [], args.runs)
    row = {"split_seed": args.split_seed, "seed": args.seed, "sets": args.sets, **measure(contentmf, contentknn)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as file:
        file.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
