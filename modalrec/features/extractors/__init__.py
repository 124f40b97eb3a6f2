"""Built-in extractors; importing this package registers each of them."""

from modalrec.features.extractors import audio, image, text, video  # noqa: F401
