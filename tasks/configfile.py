"""Reading a YAML configuration file strictly: every problem a one-line ConfigError naming the file, the line
or the key, and what to do.

Refused here, before or beside pydantic: a path that is a directory, a device or a symlink loop; text that
is not UTF-8 (gzip is named); duplicate keys (YAML's last one would silently win); `true`/`false` where a
number is expected (pydantic's lax mode reads `epochs: true` as 1); NaN and infinities (`.inf` would reach
manifest.json as `Infinity`, which strict JSON readers refuse).
"""

from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from providers.errors import ConfigError

_GZIP = b"\x1f\x8b"


def path_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a regular file, in words, or None when it can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno == errno.ENAMETOOLONG:
            return "a name too long for the file system"
        return exc.strerror or str(exc)
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if not stat.S_ISREG(mode):
        return "a device or special file, not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable (permissions)"
    return None


class _UniqueKeys(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in one "
                                  f"mapping (first at line {seen[key] + 1}); YAML would keep the last one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str = "file") -> Any:
    """The parsed document; ConfigError naming `path` (and the line) for anything else."""
    if problem := path_problem(path):
        raise ConfigError(f"{path}: no such {what}" if problem == "no such file" else
                          f"{path}: cannot read the {what}: it is {problem}")
    content = path.read_bytes()
    if content.startswith(_GZIP):
        raise ConfigError(f"{path}: the {what} is gzip-compressed; decompress it (gunzip) first")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{content[exc.start]:02x}); "
                          "save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeys)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def value_problems(raw: Any, validated: Any, where: str = "") -> list[str]:
    """Keys whose value pydantic coerced from a boolean to a number, and keys holding NaN or an infinity.
    `validated` is the validated model dumped to plain data, walked beside `raw`."""
    if isinstance(raw, dict):
        inner = validated if isinstance(validated, dict) else {}
        return [problem for key, value in raw.items()
                for problem in value_problems(value, inner.get(key), f"{where}.{key}" if where else str(key))]
    if isinstance(raw, list):
        others = validated if isinstance(validated, list) else []
        return [problem for index, value in enumerate(raw)
                for problem in value_problems(value, others[index] if index < len(others) else None,
                                              f"{where}.{index}")]
    if isinstance(raw, bool) and isinstance(validated, int | float) and not isinstance(validated, bool):
        return [f"{where}: expected a number, got {str(raw).lower()}"]
    if isinstance(raw, float) and not math.isfinite(raw):
        return [f"{where}: {raw} is not allowed; use a finite number"]
    return []
