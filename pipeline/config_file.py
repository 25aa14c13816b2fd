"""Reading the project's YAML config files (universe, playbook, portfolio, analytics, quality): one
loader that refuses what YAML would let pass silently (a key given twice keeps only its last value)
and files too big to be a config, and errors that name the file, the line or field, and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# The shipped files are under 6 KB; bench/scale.py's 5,000-token universe is 0.6 MB and parses in
# 0.7 s. A file past this is not a config someone wrote (a data export, a log pointed at by mistake):
# a 50 MB one took 12 minutes and 6.9 GB to read.
MAX_CONFIG_BYTES = 2 * 1024 * 1024


class ConfigError(ValueError):
    """A configuration file or setting the pipeline cannot use; the message names the file (or the
    environment variable), the field and what to do. The command line prints it as one line."""


class _UniqueKeyLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives a key twice (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may override: not a repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                line = first.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class names it
                break
            if line != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {line}): give each key once",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, error: type[Exception], what: str) -> object:
    """The YAML document at `path` (None when the file is empty); `error` naming the file otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise error(f"{path}: {size:,} bytes is too big for a {what} file (at most {MAX_CONFIG_BYTES:,}): "
                        "is it the file you meant?")
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, a binary file
        raise error(f"{path}: cannot read the {what} file: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = ": ".join(filter(None, (exc.context, exc.problem)))
        raise error(f"{path}: {where}not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def validate(raw: object, model: type[M], error: type[Exception], origin: str) -> M:
    """`model` validated from a parsed document; `error` naming `origin` and the first bad field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        message = err["msg"].removeprefix("Value error, ")
        raise error(f"{origin}: {field}: {message}") from None


def load_model(path: Path, model: type[M], error: type[Exception], what: str) -> M:
    """`model` validated from the YAML at `path` (an empty file = the defaults); `error` otherwise."""
    return validate(read_yaml(path, error, what) or {}, model, error, str(path))
