"""Where run directories live: a local folder or an object store, behind fsspec.

`run_root` (and LORAFLOW_RUN_ROOT, its default) is a path or a URL such as `s3://bucket/prefix` or
`gs://bucket/prefix`. A path stays a `pathlib.Path`, so one machine works as it always has: every file is
written to a temporary name and renamed. A URL becomes a `UPath` (universal_pathlib over fsspec), with the
same `/`, `open`, `read_text`, `exists` and `glob`; there each file is written by one PUT, which an object
store shows whole or not at all, and large files are streamed in parts. Credentials come from the storage
library's own chain (AWS_* variables or ~/.aws for S3, google-auth for GCS; AWS_ENDPOINT_URL for an
S3-compatible server), never from the URL.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePath
from urllib.parse import urlsplit

from upath import UPath

from providers.errors import ConfigError

RUN_ROOT_ENV = "LORAFLOW_RUN_ROOT"
# the fsspec protocols of the stores loraflow documents, with the extra that installs each
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}

RunPath = Path | UPath  # a local path, or a path in an object store


def default_run_root() -> str:
    """LORAFLOW_RUN_ROOT, else `runs` under the working directory."""
    return os.environ.get(RUN_ROOT_ENV) or "runs"


def check_location(location: str) -> None:
    """Refuse a URL that carries credentials or names a store fsspec cannot open here, in one line that
    never repeats the credentials."""
    if "://" not in location:
        return
    parts = urlsplit(location)
    if parts.username or parts.password:
        shown = f"{parts.scheme}://***@{parts.hostname or ''}{parts.path}"
        raise ConfigError(f"{shown}: credentials do not belong in the run root's URL; give them the usual "
                          "way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws for s3://, "
                          "GOOGLE_APPLICATION_CREDENTIALS or gcloud for gs://)")
    import fsspec

    try:
        fsspec.get_filesystem_class(parts.scheme)
    except ValueError:
        raise ConfigError(f"{parts.scheme}://: not a storage protocol fsspec knows; use a local path, "
                          "s3://bucket/prefix or gs://bucket/prefix") from None
    except ImportError:
        extra = _EXTRAS.get(parts.scheme)
        hint = (f"pip install 'loraflow[{extra}]'" if extra
                else f"install the fsspec package for {parts.scheme}")
        raise ConfigError(f"{parts.scheme}:// run storage needs its fsspec package: {hint}") from None


def run_path(location: str | os.PathLike[str]) -> RunPath:
    """The path for `location`: a `Path` for a local one (as given, relative to the working directory), a
    `UPath` for a URL."""
    text = os.fspath(location)
    if "://" not in text:
        return Path(text)
    check_location(text)
    return UPath(text)


def is_remote(path: RunPath) -> bool:
    return not isinstance(path, PurePath)


def absolute(path: RunPath) -> RunPath:
    """A local path resolved against the working directory; a URL as it is."""
    return path if is_remote(path) else path.resolve()


def download(source: RunPath, target: Path) -> Path:
    """A real file at `target` with `source`'s bytes, streamed; `source` itself when it is local."""
    if not is_remote(source):
        return source
    target.parent.mkdir(parents=True, exist_ok=True)
    source.fs.get_file(source.path, str(target))
    return target


def upload(source: Path, target: RunPath) -> None:
    """Copy a local file to `target`, streamed (multipart on S3): one object appears when it is complete."""
    if not is_remote(target):
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return
    target.fs.put_file(str(source), target.path)


def upload_tree(source: Path, target: RunPath) -> None:
    """Every file under the local folder `source` to the same relative place under `target`."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        upload(path, target.joinpath(*path.relative_to(source).parts))
