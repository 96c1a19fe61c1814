"""Bundled training tasks (offline, seedable). Copy one to start your own."""
