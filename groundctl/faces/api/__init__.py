"""The HTTP face: create_app(settings) and serve(...). See README.md in this directory."""

from groundctl.faces.api.app import create_app
from groundctl.runtime.services import Settings

__all__ = ["Settings", "create_app", "serve"]


def serve(*args, **kwargs):
    from groundctl.faces.api.serve import serve as _serve

    return _serve(*args, **kwargs)
