"""modalrec: multimodal recommendation from interactions and item content."""

__version__ = "0.1.0"
