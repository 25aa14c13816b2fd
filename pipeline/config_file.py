"""Reading a YAML config file into a validated pydantic model, with errors that name the file and
the field (shared by the analytics and the quality config)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_model(path: Path, model: type[M], error: type[Exception], what: str) -> M:
    """`model` validated from the YAML at `path` (an empty file = the defaults); `error` otherwise."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise error(f"{what} config not found: {path}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise error(f"{path}: {field}: {err['msg']}") from None
