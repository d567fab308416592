"""storage.sqlite."""
