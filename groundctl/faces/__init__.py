"""Faces: the CLI, the HTTP API and the map page."""
