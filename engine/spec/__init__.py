"""The spec language: the loader with positions, the schema, the cross-checks and the typed
model. `engine.load` runs them in order (with blueprint expansion between loading and
validating), so this package imports nothing of `engine.blueprints`."""

from engine.spec.model import Spec

__all__ = ["Spec"]
