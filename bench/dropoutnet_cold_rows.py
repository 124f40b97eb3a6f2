"""Does a random preference input for cold items hurt DropoutNet? ColdRec's DropoutNet reads its MF backbone's
cold rows, which are their random initialisation, where the paper feeds zeros.

    python bench/dropoutnet_cold_rows.py BACKBONE_RUN   # a finished BPR run on the cold split, model seed 1

Trains our DropoutNet as the cold-start benchmark does (ml100k-posters, 20% cold items, split seed 2024, model
seed 1, the frozen backbone) for 2 epochs (its cold validation chose epoch 1 there), then prints its cold test
recall@20 twice: with a zero preference input for cold items, and with random rows at the scale ColdRec's MF
initialises them (Xavier uniform over the item table).
"""

from __future__ import annotations

import sys

import torch

import modalrec.models  # noqa: F401  (registers the models)
from modalrec.data.prepare import prepare_data
from modalrec.evaluate.tasks import task_evaluator
from modalrec.train.run import build_model, configure_threads, model_inputs, resolve_config
from modalrec.train.trainer import Trainer


def main(backbone_run: str) -> None:
    configure_threads(1)
    overrides = ["data.cold_item_fraction=0.2", "train.epochs=2", "train.patience=0", "train.progress=false",
                 f"model.backbone_run={backbone_run}"]
    config = resolve_config("../shared/datasets/ml100k-posters/mmrec", "dropoutnet", overrides=overrides, seed=1)
    prepared = prepare_data(config.data_path, config.data)
    model = build_model(config, model_inputs(prepared.dataset, prepared.split))
    Trainer(model, prepared.split, config.train, config.eval, seed=1).fit(evaluate_test=False)
    model.eval()
    evaluator = task_evaluator(prepared.split, config.eval, "cold", "test")
    users, items = model.backbone.vectors()  # cold items' rows are zero
    cold = 1 - model.backbone.warm

    def cold_recall(preference: torch.Tensor) -> float:
        with torch.no_grad():
            user = model.user_tower(users)
            item = model.item_vectors(preference, model.item_content_layer(model.content))
        return float(evaluator.evaluate(lambda rows: user[rows] @ item.T).mean()["recall@20"])

    bound = (6.0 / sum(items.shape)) ** 0.5  # Xavier uniform on an (items, d) table
    noise = (torch.rand(items.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * bound
    print(f"cold test recall@20, zero preference input for cold items: {cold_recall(items):.4f}")
    print(f"cold test recall@20, random rows for cold items:           {cold_recall(items + cold * noise):.4f}")
    print(f"mean norm of the warm rows {items[cold[:, 0] == 0].norm(dim=1).mean():.3f}, "
          f"of the random rows {noise.norm(dim=1).mean():.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
