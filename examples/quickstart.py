"""Quickstart: train three models on the embedded demo shop, compare them, recommend and explain."""

import pandas as pd

import modalrec

# the demo shop: 2,500 users, 400 items with a picture and a text each; drop fast_features for
# EfficientNet-Lite0 and MiniLM features (about a minute more on 2 cores)
shop = modalrec.load_dataset("demo", fast_features=True)
print(shop)

runs = {name: modalrec.train(shop, name, config={"epochs": 10}, out=f"runs/{name}", overwrite=True)
        for name in ["bpr", "lightgcn", "vbpr"]}
print(pd.DataFrame({name: run.evaluate("test") for name, run in runs.items()}).T[["recall@20", "ndcg@20"]])
print("cold-item recall@20 of vbpr:", runs["vbpr"].evaluate("test", cold_items=True)["recall@20"])

vbpr = modalrec.load_run("runs/vbpr")
print(vbpr.recommend("U0001", k=5)[["rank", "item_id", "title", "score"]])
print(vbpr.explain("U0001", k=5)[["rank", "item_id", "image", "text"]].round(3))
