"""Built-in extractors; importing this package registers each of them."""
