"""The internal query API (FastAPI): ``app`` wires the routers; ``schemas`` is the contract."""

from .app import create_app
from .security import load_tokens

__all__ = ["create_app", "load_tokens"]
