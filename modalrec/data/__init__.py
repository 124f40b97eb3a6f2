"""Interactions, item content, readers, filtering, splits and negative sampling."""

from modalrec.data.dataset import Dataset, FeatureTable, IdMap
from modalrec.data.readers import load_dataset
from modalrec.data.split import Split, make_split

__all__ = ["Dataset", "FeatureTable", "IdMap", "Split", "load_dataset", "make_split"]
