"""Inputs and outputs in object stores: ``s3://``, ``gs://`` (``gcs://``), ``az://``
(``abfs://``, ``abfss://``), through fsspec with s3fs, gcsfs or adlfs (optional extras).

An object is identified by (URL, version, size), its version being the generation (GCS),
else the version id or ETag. A run reads one version of each object: it copies the
object to a local spool file once, then checks that the object's version and size did
not move while it was copied (else "input changed while reading", exit 2), and reads
the spool from then on: the scan (content hash, structure) and the sending read the same
bytes, and the bucket is read once. An object whose (URL, version, size) belongs to a
finished import is not downloaded at all.

Credentials come only from each SDK's own chain (environment, profile, instance role or
workload identity, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``); none is a
flag, and messages name only the URL. ``AWS_ENDPOINT_URL`` or ``--s3-endpoint-url``
reaches S3-compatible stores.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from importer.config import SourceOptions
from importer.errors import ConfigError, InputError, OutputError
from importer.source import Row, Source, Stamp, open_source

SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "abfs", "abfs": "abfs", "abfss": "abfs"}
EXTRAS = {"s3": ("s3fs", "s3"), "gcs": ("gcsfs", "gcs"), "abfs": ("adlfs", "azure")}
COPY_BLOCK = 8 << 20
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")
_filesystems: dict[str, Any] = {}


def is_url(name: object) -> bool:
    """An object-store URL (a local path, even one with a colon, is not)."""
    match = _URL.match(name) if isinstance(name, str) else None
    return bool(match and match.group(1).lower() in SCHEMES)


def _protocol(url: str) -> str:
    match = _URL.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported URL scheme {scheme!r}: use s3://, gs://, az:// or abfs://")
    return SCHEMES[scheme]


def filesystem(url: str, s3_endpoint_url: str | None = None) -> Any:
    """The fsspec filesystem for ``url``'s store; a missing extra is a one-line error."""
    protocol = _protocol(url)
    key = f"{protocol}|{s3_endpoint_url or ''}"
    if key in _filesystems:
        return _filesystems[key]
    module, extra = EXTRAS[protocol]
    if protocol == "gcs" and os.environ.get("STORAGE_EMULATOR_HOST"):
        # An emulator has no storage-control API: gcsfs would wait 60 s for its answer.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        import fsspec

        __import__(module)
    except ImportError:
        raise ConfigError(
            f"reading {url.split('://')[0]}:// URLs needs the {module} package: pip install 'ecdp-import[{extra}]'"
        ) from None
    options: dict[str, Any] = {}
    endpoint = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if protocol == "s3" and endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    if protocol == "gcs" and os.environ.get("STORAGE_EMULATOR_HOST"):
        options["endpoint_url"] = os.environ["STORAGE_EMULATOR_HOST"]
        options["token"] = "anon"
    fs = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    _filesystems[key] = fs
    return fs


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]


class Stopped(Exception):
    """A stop came while an object was being copied: nothing was sent, nothing is kept."""


def _reason(exc: BaseException) -> str:
    """A store error's first line, unless it may carry a credential (then its type)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if any(marker in text for marker in ("Signature", "secret", "Secret", "token", "Token", "key=", "sig=")):
        return type(exc).__name__
    return text


def _failure(url: str, exc: BaseException) -> InputError:
    """One line for a store's error, with no credential in it (only the URL and the kind)."""
    if isinstance(exc, FileNotFoundError):
        return InputError(f"input not found: {url}")
    if isinstance(exc, PermissionError):
        return InputError(f"access denied to {url}: check the credentials in the environment")
    return InputError(f"cannot read {url}: {_reason(exc)}")


def expand(name: str, s3_endpoint_url: str | None = None) -> list[str]:
    """A URL as given, or the objects a glob in it matches, in name order."""
    if not _GLOB.search(name.split("://", 1)[1]):
        return [name]
    fs = filesystem(name, s3_endpoint_url)
    try:
        found = sorted(path for path, info in fs.glob(name, detail=True).items() if info.get("type") != "directory")
    except Exception as exc:  # stores raise their own types
        raise _failure(name, exc) from exc
    if not found:
        raise InputError(f"no object matches {name}")
    return [f"{_scheme(name)}://{path}" for path in found]


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One version of an object: what a finished import is recognised by."""

    url: str
    version: str
    size: int
    mtime: float  # seconds since the epoch, for --min-age


def stat(url: str, s3_endpoint_url: str | None = None) -> RemoteObject:
    fs = filesystem(url, s3_endpoint_url)
    try:
        fs.invalidate_cache()
        info = fs.info(url)
    except Exception as exc:
        raise _failure(url, exc) from exc
    if info.get("type") == "directory":
        raise InputError(f"input is not an object: {url} (a prefix? add a glob such as {url.rstrip('/')}/*.csv)")
    version = str(
        info.get("generation")
        or info.get("VersionId")
        or info.get("ETag")
        or info.get("etag")
        or info.get("md5Hash")
        or ""
    )
    return RemoteObject(url, version, int(info.get("size") or 0), _mtime(fs, url, info))


def _mtime(fs: Any, url: str, info: dict[str, Any]) -> float:
    for key in ("LastModified", "last_modified", "mtime", "updated", "timeCreated"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
        if isinstance(value, (int, float)):
            return float(value)
    try:
        return float(fs.modified(url).timestamp())
    except Exception:  # no modification time: --min-age cannot hold it back
        return 0.0


def download(
    obj: RemoteObject, s3_endpoint_url: str | None = None, stopped: Callable[[], bool] = lambda: False
) -> Path:
    """Copy one version of the object to a spool file (removed when the run ends); raise
    InputError if the object changed while it was copied, ``Stopped`` when ``stopped``
    turned true first. The spool lives in $TMPDIR (or the system's)."""
    fs = filesystem(obj.url, s3_endpoint_url)
    fd, name = tempfile.mkstemp(prefix="ecdp-import-", suffix=Path(obj.url).suffix or ".bin")
    path = Path(name)
    _spools.append(path)
    try:
        with os.fdopen(fd, "wb") as out, fs.open(obj.url, "rb", block_size=COPY_BLOCK) as src:
            while block := src.read(COPY_BLOCK):
                try:
                    out.write(block)
                except OSError as exc:  # the spool's disk, not the store
                    raise InputError(
                        f"{obj.url}: no room to copy it to {path.parent} ({exc.strerror}); set TMPDIR to a larger disk"
                    ) from exc
                if stopped():
                    raise Stopped
        now = stat(obj.url, s3_endpoint_url)
        if (now.version, now.size) != (obj.version, obj.size) or path.stat().st_size != obj.size:
            raise InputError(f"{obj.url}: input changed while reading: is it still being uploaded?")
    except (InputError, Stopped):
        _forget(path)
        raise
    except Exception as exc:
        _forget(path)
        raise _failure(obj.url, exc) from exc
    return path


_spools: list[Path] = []


def cleanup() -> None:
    """Remove every spool file and output folder still there (at exit)."""
    while _spools:
        _forget(_spools[-1])


atexit.register(cleanup)


def release(sources: list[Source], uploads: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
    """Remove the spool files of these sources and the local copies of these outputs."""
    for source in sources:
        if source.remote is not None and not isinstance(source, FinishedObject):
            _forget(source.path)
    for local, _ in uploads:
        _forget(Path(local).parent)


def _forget(path: Path) -> None:
    if path in _spools:
        _spools.remove(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_age(name: str, mtime: float, min_age: float) -> None:
    """``--min-age``: an input modified less than ``min_age`` seconds ago is left alone."""
    age = time.time() - mtime
    if min_age and age < min_age:
        raise InputError(
            f"{name} was modified {max(age, 0):.0f} s ago, less than --min-age {min_age:g}: "
            "it may still be being written; it is left for a later run"
        )


class FinishedObject(Source):
    """An object version whose import finished: nothing to read, nothing downloaded.
    Its rows' fates are in the journal; it yields no row."""

    def __init__(self, obj: RemoteObject, fingerprint: str, total_rows: int) -> None:
        self.remote = obj
        self.name = obj.url
        self.path = Path(obj.url)
        self.columns = []
        self.total_rows = total_rows
        self.stamp = Stamp(obj.size, int(obj.mtime * 1e9), 0)
        self._fingerprint = fingerprint

    def rows(self) -> Iterator[Row]:
        return iter(())

    def estimate_rows(self) -> int:
        return int(self.total_rows or 0)

    def scan(self, stopped: Callable[[], bool] = lambda: False) -> str:
        return self._fingerprint

    def check_unchanged(self) -> None:
        """The object is not read: nothing can change under us."""


Known = Callable[[RemoteObject], tuple[str, int] | None]


def open_object(
    url: str, options: SourceOptions, known: Known | None = None, stopped: Callable[[], bool] = lambda: False
) -> Source:
    """An object as a Source: checked against --min-age, recognised when ``known`` gives
    the fingerprint and row count of its finished import (then nothing is downloaded),
    else copied once to a spool file and opened from there under its URL."""
    obj = stat(url, options.s3_endpoint_url)
    check_age(url, obj.mtime, options.min_age)
    done = known(obj) if known else None
    if done is not None:
        return FinishedObject(obj, *done)
    spool = download(obj, options.s3_endpoint_url, stopped)
    source = open_source(url, options.encoding, options.delimiter, path=spool)
    source.remote = obj
    return source


def publish(local: str, url: str, s3_endpoint_url: str | None = None) -> None:
    """Upload a finished output file (a report, --errors, --summary-json) to ``url``."""
    fs = filesystem(url, s3_endpoint_url)
    try:
        fs.put_file(local, url)
    except Exception as exc:
        raise OutputError(f"cannot write {url}: {_reason(exc)}") from exc


def local_output(url: str) -> str:
    """A local file to write ``url``'s content into before ``publish``."""
    folder = tempfile.mkdtemp(prefix="ecdp-import-out-")
    _spools.append(Path(folder))
    return os.path.join(folder, Path(url.split("://", 1)[1]).name or "output")
