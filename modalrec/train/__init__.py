"""The Trainer (the only training loop) and the run pipeline that writes run folders."""

from modalrec.train.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer"]
