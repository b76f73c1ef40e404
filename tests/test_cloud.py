"""Object-store inputs and outputs (issue 11): real clients (s3fs, gcsfs, adlfs) against
real local servers started here: moto's S3 server, gcp-storage-emulator and Azurite
(npm, installed by `make venv`; skipped where it is not). The CLI runs as a process."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importer import RunConfig, Secret, StopToken, remote, run_import
from importer.config import SourceOptions
from importer.errors import ConfigError, InputError
from tests.conftest import CUSTOMER_MAPPING, Mock, cli_env, read_report, with_store

pytestmark = pytest.mark.usefixtures("store")

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
SECRET = "s3cret-NEVER-SHOWN-4711"
ROOT = Path(__file__).resolve().parent.parent


def csv_bytes(first: int, n: int) -> bytes:
    lines = ["crm_id,email,total", *(f"C{i},user{i}@example.com,{i}.5" for i in range(first, first + n))]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(first: int, n: int) -> bytes:
    ids = range(first, first + n)
    table = pa.table(
        {
            "crm_id": [f"C{i}" for i in ids],
            "email": [f"user{i}@example.com" for i in ids],
            "total": [f"{i}.5" for i in ids],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=100)
    return out.getvalue()


@dataclass
class S3:
    url: str
    log: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(
            AWS_ACCESS_KEY_ID="AKIATEST", AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=self.url, **extra,
        )  # fmt: skip

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, aws_access_key_id="AKIATEST", aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )  # fmt: skip

    def gets(self, prefix: str) -> int:
        """Object GETs (downloads) under ``/prefix`` seen by the server so far."""
        return sum(1 for line in self.log if f"GET /{prefix}" in line)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)
    server.start()
    host, port = server.get_host_and_port()
    store = S3(f"http://{host}:{port}")
    handler = _Collect(store.log)
    logging.getLogger("werkzeug").addHandler(handler)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    yield store
    logging.getLogger("werkzeug").removeHandler(handler)
    server.stop()


@pytest.fixture
def bucket(s3: S3) -> str:
    name = f"drops-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    return tmp_path


def cli(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "importer", *with_store(args)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(work: Path, env: dict[str, str], mock: Mock, *inputs_and_flags: str) -> subprocess.CompletedProcess[str]:
    return cli(
        work, env, "run", *inputs_and_flags, "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state"
    )


def sent_ids(mock: Mock) -> list[str]:
    return [r["body"]["customerCrmId"] for r in mock.received()]


# --- S3 -------------------------------------------------------------------------------------


def test_s3_glob_of_csv_gzip_and_parquet_then_a_rerun_downloads_nothing(
    work: Path, s3: S3, bucket: str, mock: Mock
) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="ecdp/orders_2026-11-26.parquet", Body=parquet_bytes(201, 300))
    client.put_object(Bucket=bucket, Key="ecdp/orders_2026-11-24.csv", Body=csv_bytes(1, 100))
    client.put_object(Bucket=bucket, Key="ecdp/orders_2026-11-25.csv.gz", Body=gzip.compress(csv_bytes(101, 100)))
    client.put_object(Bucket=bucket, Key="ecdp/other.csv", Body=csv_bytes(900, 5))
    client.put_object(Bucket=bucket, Key="ecdp/orders_old/x.csv", Body=csv_bytes(950, 5))  # a "folder" matches too
    pattern = f"s3://{bucket}/ecdp/orders_*"
    outputs = ("--report", f"s3://{bucket}/reports/r.csv", "--summary-json", f"s3://{bucket}/reports/s.json")
    (work / "tmp").mkdir()
    env = s3.env(TMPDIR=str(work / "tmp"))  # where the spool files go
    res = run(work, env, mock, pattern, *outputs)
    assert res.returncode == 0, res.stderr
    assert sorted(sent_ids(mock), key=lambda c: int(c[1:])) == [f"C{i}" for i in range(1, 501)]
    report = client.get_object(Bucket=bucket, Key="reports/r.csv")["Body"].read().decode().splitlines()
    files = [line.split(",")[0] for line in report[1:]]
    assert files == [f"s3://{bucket}/ecdp/orders_2026-11-2{d}{ext}" for d, ext, n in
                     ((4, ".csv", 100), (5, ".csv.gz", 100), (6, ".parquet", 300)) for _ in range(n)]  # fmt: skip
    summary = json.loads(client.get_object(Bucket=bucket, Key="reports/s.json")["Body"].read())
    assert summary["report"] == f"s3://{bucket}/reports/r.csv" and summary["counts"] == {"sent": 500}
    assert all(i["version"] for i in summary["inputs"])
    downloads = s3.gets(f"{bucket}/ecdp/")
    assert downloads >= 3
    again = run(work, env, mock, pattern, *outputs)
    assert again.returncode == 0, again.stderr
    assert s3.gets(f"{bucket}/ecdp/") == downloads  # finished objects are not downloaded again
    assert len(mock.received()) == 500
    assert SECRET not in res.stderr + res.stdout + again.stderr + again.stdout
    assert not list((work / "tmp").iterdir())  # spool files and local copies of outputs removed


def test_s3_object_replaced_between_runs_sends_only_its_new_events(work: Path, s3: S3, bucket: str, mock: Mock) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="d/orders.csv", Body=csv_bytes(1, 50))
    assert run(work, s3.env(), mock, f"s3://{bucket}/d/orders.csv", "--report", "r.csv").returncode == 0
    client.put_object(Bucket=bucket, Key="d/orders.csv", Body=csv_bytes(1, 80))  # re-exported with 30 more
    res = run(work, s3.env(), mock, f"s3://{bucket}/d/orders.csv", "--report", "r.csv")
    assert res.returncode == 0, res.stderr
    statuses = [r["status"] for r in read_report(work / "r.csv")]
    assert statuses.count("duplicate") == 50 and statuses.count("sent") == 30
    assert sorted(sent_ids(mock), key=lambda c: int(c[1:])) == [f"C{i}" for i in range(1, 81)]


def test_s3_object_rewritten_with_the_same_size_is_imported_again(work: Path, s3: S3, bucket: str, mock: Mock) -> None:
    """A nightly export rewritten under the same name with the same byte count is a new
    version: its new events go out (the size alone must not pass it as already done)."""
    client = s3.client()
    first = csv_bytes(1, 50)
    rewritten = first.replace(b".5\n", b".7\n")  # every total changed, not one byte more or less
    assert len(rewritten) == len(first) and rewritten != first
    client.put_object(Bucket=bucket, Key="d/orders.csv", Body=first)
    assert run(work, s3.env(), mock, f"s3://{bucket}/d/orders.csv", "--report", "r.csv").returncode == 0
    client.put_object(Bucket=bucket, Key="d/orders.csv", Body=rewritten)
    res = run(work, s3.env(), mock, f"s3://{bucket}/d/orders.csv", "--report", "r.csv")
    assert res.returncode == 0, res.stderr
    assert Counter(r["status"] for r in read_report(work / "r.csv")) == {"sent": 50}
    totals = [str(r["body"]["dataFields"][0]["value"]) for r in mock.received()]
    assert len(totals) == 100 and sum(t.endswith(".70") for t in totals) == 50, totals


def test_s3_object_changed_while_it_is_copied_is_refused(s3: S3, bucket: str, monkeypatch: Any) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    client = s3.client()
    client.put_object(Bucket=bucket, Key="d/big.csv", Body=csv_bytes(1, 1000))
    seen = remote.stat(f"s3://{bucket}/d/big.csv")
    client.put_object(Bucket=bucket, Key="d/big.csv", Body=csv_bytes(1, 1001))  # the upload goes on
    with pytest.raises(InputError, match="input changed while reading: is it still being uploaded"):
        remote.download(seen)


def test_s3_min_age_leaves_a_fresh_object_alone(work: Path, s3: S3, bucket: str, mock: Mock) -> None:
    s3.client().put_object(Bucket=bucket, Key="d/now.csv", Body=csv_bytes(1, 5))
    res = run(work, s3.env(), mock, f"s3://{bucket}/d/now.csv", "--min-age", "3600")
    assert res.returncode == 2 and "less than --min-age 3600" in res.stderr
    assert s3.gets(f"{bucket}/d/now.csv") == 0 and mock.stats()["requests"] == 0


def test_s3_missing_bucket_object_or_match_is_a_clear_exit_2(work: Path, s3: S3, bucket: str, mock: Mock) -> None:
    for url, words in (
        (f"s3://no-such-bucket-{bucket}/x.csv", "input not found: s3://no-such-bucket-"),
        (f"s3://{bucket}/missing.csv", f"input not found: s3://{bucket}/missing.csv"),
        (f"s3://{bucket}/none_*.csv", f"no object matches s3://{bucket}/none_*.csv"),
    ):
        res = run(work, s3.env(), mock, url)
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert SECRET not in res.stderr
    assert mock.stats()["requests"] == 0


def test_s3_validate_and_init_mapping_read_urls(work: Path, s3: S3, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="d/x.parquet", Body=parquet_bytes(1, 20))
    url = f"s3://{bucket}/d/x.parquet"
    made = cli(work, s3.env(), "init-mapping", url, "--event-id", "5", "-o", "guessed.yaml")
    assert made.returncode == 0, made.stderr
    assert "crm_id" in (work / "guessed.yaml").read_text()
    checked = cli(work, s3.env(), "validate", url, "--mapping", "m.yaml", "--report", "v.csv")
    assert checked.returncode == 0, checked.stderr
    assert "would send 20 rows" in checked.stdout


def test_an_endpoint_flag_reaches_the_store(work: Path, s3: S3, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="d/x.csv", Body=csv_bytes(1, 3))
    env = s3.env()
    del env["AWS_ENDPOINT_URL"]
    res = cli(work, env, "validate", f"s3://{bucket}/d/x.csv", "--mapping", "m.yaml", "--s3-endpoint-url", s3.url)
    assert res.returncode == 0, res.stderr


def test_a_missing_extra_names_it(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    monkeypatch.setattr(remote, "_filesystems", {})
    with pytest.raises(ConfigError, match=r"needs the gcsfs package: pip install 'ecdp-import\[gcs\]'"):
        remote.open_object("gs://bucket/x.csv", SourceOptions())


# --- GCS ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    # Before gcsfs is imported: the emulator has no storage-control API to ask a bucket's type.
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    pytest.importorskip("gcsfs")
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    port = free_port()
    server = server_mod.create_server("127.0.0.1", port, in_memory=True, default_bucket="drops")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_gcs_happy_path_and_the_rerun_no_op(work: Path, gcs: str, mock: Mock, monkeypatch: Any) -> None:
    env = cli_env(STORAGE_EMULATOR_HOST=gcs, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false")
    for name in ("STORAGE_EMULATOR_HOST", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setattr(remote, "_filesystems", {})
    remote.filesystem("gs://drops/x").pipe("drops/exports/orders-000.csv", csv_bytes(1, 40))
    url = "gs://drops/exports/orders-*.csv"
    first = run(work, env, mock, url, "--summary-json", "s1.json")
    assert first.returncode == 0, first.stderr
    again = run(work, env, mock, url, "--summary-json", "s2.json")
    assert again.returncode == 0, again.stderr
    s1, s2 = (json.loads((work / f"s{i}.json").read_text()) for i in (1, 2))
    assert s1["counts"] == s2["counts"] == {"sent": 40} and s2["rows_this_run"] == 0
    assert s1["inputs"] == s2["inputs"]  # the same object version, recognised
    assert len(mock.received()) == 40


# --- Azure ----------------------------------------------------------------------------------

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def azurite() -> Iterator[str]:
    pytest.importorskip("adlfs")
    exe = ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    found = str(exe) if exe.exists() else shutil.which("azurite-blob")
    if not found:
        pytest.skip("Azurite is not installed (make venv installs it where npm is present)")
    port = free_port()
    proc = subprocess.Popen(
        [found, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--silent",
         "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "Azurite did not start"
            time.sleep(0.1)
    yield (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    proc.terminate()
    proc.wait(10)


def test_azure_happy_path_and_the_rerun_no_op(work: Path, azurite: str, mock: Mock, monkeypatch: Any) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.setattr(remote, "_filesystems", {})
    fs = remote.filesystem("az://drops/x")
    fs.mkdir("drops")
    fs.pipe("drops/exports/orders.parquet", parquet_bytes(1, 250))
    env = cli_env(AZURE_STORAGE_CONNECTION_STRING=azurite)
    first = run(work, env, mock, "az://drops/exports/orders.parquet", "--summary-json", "s1.json")
    assert first.returncode == 0, first.stderr
    again = run(work, env, mock, "az://drops/exports/*.parquet", "--summary-json", "s2.json")
    assert again.returncode == 0, again.stderr
    s2 = json.loads((work / "s2.json").read_text())
    assert s2["counts"] == {"sent": 250} and s2["rows_this_run"] == 0
    assert len(mock.received()) == 250
    assert AZURITE_KEY not in first.stderr + again.stderr


def test_s3_damaged_gzip_object_sends_nothing(work: Path, s3: S3, bucket: str, mock: Mock) -> None:
    whole = gzip.compress(csv_bytes(1, 5000))
    s3.client().put_object(Bucket=bucket, Key="d/cut.csv.gz", Body=whole[: len(whole) // 2])
    res = run(work, s3.env(), mock, f"s3://{bucket}/d/cut.csv.gz")
    assert res.returncode == 2 and f"s3://{bucket}/d/cut.csv.gz: damaged gzip file" in res.stderr, res.stderr
    assert mock.stats()["requests"] == 0


def test_a_stop_while_an_object_is_copied_sends_nothing_and_keeps_no_copy(
    work: Path, s3: S3, bucket: str, mock: Mock, monkeypatch: Any
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(remote, "_filesystems", {})
    monkeypatch.setattr(remote, "COPY_BLOCK", 4096)  # several blocks, so the stop lands mid-copy
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    s3.client().put_object(Bucket=bucket, Key="d/big.csv", Body=csv_bytes(1, 2000))
    with pytest.raises(remote.Stopped):
        remote.download(remote.stat(f"s3://{bucket}/d/big.csv"), stopped=lambda: True)
    assert not list(work.glob("ecdp-import-*"))
    token = StopToken()
    token.stop()
    config = RunConfig(
        inputs=(f"s3://{bucket}/d/big.csv",), mapping=str(work / "m.yaml"), api_key=Secret("k"),
        base_url=mock.url, state_dir=str(work / "state"),
    )  # fmt: skip
    summary = run_import(config, stop=token)
    assert summary.exit_code == 143 and summary.stop_reason == "caller"
    assert mock.stats()["requests"] == 0 and not list(work.glob("ecdp-import-*"))


def test_no_room_for_the_copy_is_one_clear_line(work: Path, s3: S3, bucket: str, monkeypatch: Any) -> None:
    tiny = work / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for name, value in s3.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(remote, "_filesystems", {})
        monkeypatch.setattr(tempfile, "tempdir", str(tiny))
        s3.client().put_object(Bucket=bucket, Key="d/big.csv", Body=csv_bytes(1, 20_000))
        with pytest.raises(InputError, match=rf"s3://{bucket}/d/big.csv: no room to copy it to {tiny} .*TMPDIR"):
            remote.download(remote.stat(f"s3://{bucket}/d/big.csv"))
        assert not list(tiny.iterdir())  # the partial copy is gone
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)


# --- issue 18: an object's import is its content, mapping and target ------------------------


def test_s3_object_finished_under_one_mapping_is_read_again_for_another(
    work: Path, s3: S3, bucket: str, mock: Mock
) -> None:
    s3.client().put_object(Bucket=bucket, Key="in/day1.csv", Body=csv_bytes(1, 5))
    url = f"s3://{bucket}/in/day1.csv"
    assert run(work, s3.env(), mock, url).returncode == 0
    (work / "m.yaml").write_text(CUSTOMER_MAPPING.replace("77", "78"))  # another event: another import
    (work / "m2.yaml").write_text(CUSTOMER_MAPPING.replace("77", "79"))
    assert run(work, s3.env(), mock, url).returncode == 0
    res = cli(work, s3.env(), "run", url, "--mapping", "m2.yaml", "--base-url", mock.url, "--state-dir", "state")
    assert res.returncode == 0, res.stderr
    events = Counter(r["body"]["customEventId"] for r in mock.received())
    assert events == {77: 5, 78: 5, 79: 5}
    before = s3.gets(bucket)
    assert run(work, s3.env(), mock, url).returncode == 0  # finished under it: not even downloaded
    assert s3.gets(bucket) == before and len(mock.received()) == 15


def test_s3_redelivered_drop_in_a_glob_is_skipped_and_the_new_one_imported(
    work: Path, s3: S3, bucket: str, mock: Mock
) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="in/day1.csv", Body=csv_bytes(1, 5))
    assert run(work, s3.env(), mock, f"s3://{bucket}/in/*.csv").returncode == 0
    client.put_object(Bucket=bucket, Key="in/day3-resent.csv", Body=csv_bytes(1, 5))
    client.put_object(Bucket=bucket, Key="in/day4.csv", Body=csv_bytes(6, 3))
    res = run(work, s3.env(), mock, f"s3://{bucket}/in/*.csv")
    assert res.returncode == 0, res.stderr
    assert f"skipping s3://{bucket}/in/day3-resent.csv: the same content as s3://{bucket}/in/day1.csv" in res.stderr
    assert sorted(sent_ids(mock)) == sorted(f"C{i}" for i in range(1, 9))
