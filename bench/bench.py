"""`make bench`: the importer against the ceiling of a bare aiohttp client, on this machine.

Generates its own inputs under bench/data/, then measures in one run:
  a. the ceiling: a bare aiohttp client (fixed pool of workers) posting pre-rendered bodies;
  b. the importer as a user runs it (`ecdp-import run` subprocess, journal and report on),
     with fsynced journal commits (the default) and with --no-fsync;
     both against the bundled mock server with 20 ms latency and with none, at concurrency 64;
  c. `ecdp-import validate` on 200k and 1M CSV rows and the 1M rows as Parquet (the
     faster of two runs), and on 1M rows with issue 13's typical mapping and a different
     phone number on every row: rows/s, with the phone path of today and with the one
     before issue 21 (phonenumbers alone), in the same run;
  c2. `ecdp-import run` of 30k rows of that mapping against the instant mock: CPU a row,
     with both phone paths;
  c3. the phone differential (issue 21): 10 million generated numbers through the fast
     phone paths and through phonenumbers alone, on both cores (must differ nowhere);
  d. peak RSS of (b) and (c);
  d2. the differential check: every row of the 1M-row CSV through the batch renderer and
     the row renderer, report fields and body bytes compared (must differ nowhere);
  e. the delivery ledger with 10 million identities: bytes per identity on disk, the cost
     of one lookup (a new event, a duplicate), and how long a journal that size takes to
     open and check;
  f. `validate` of a 1M-row Parquet file from local disk and as an object on a local S3
     server (moto, with s3fs): the object store's cost;
  g. `run` of 30k rows against the 20 ms mock with the state in PostgreSQL (a throw-away
     server on loopback, started as tests do) and in the state directory, alternating,
     the best of three each (issue 23: PostgreSQL >= 0.8x SQLite).
Prints a table and writes bench/results.json. Targets are goals, never test failures.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from importer.mockserver import spawn
from importer.pipeline import run_async

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
KEY = "bench-key"
CONCURRENCY = 64
MAPPING = """\
endpoint: customer
custom_event_id: 31
timezone: Europe/Warsaw
customer:
  crm_id: crm_id
  email_md5: {hash_of: email}
  email_sha256: {hash_of: email}
data_fields:
  - {name: total, type: Money, column: total}
  - {name: orderedAt, type: DateTime, column: ordered_at}
  - {name: day, type: Date, column: day}
  - {name: url, type: URL, column: url}
  - {name: paid, type: Boolean, column: paid}
  - {name: channel, type: String, value: web}
"""


def make_csv(path: Path, rows: int) -> Path:
    if path.exists():
        return path
    rng = random.Random(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["crm_id", "email", "total", "ordered_at", "day", "url", "paid", "note"])
        for i in range(1, rows + 1):
            w.writerow(
                [
                    f"CRM-{i:08d}",
                    f" User.{i}@Example.com",
                    f"{rng.randint(1, 99999) / 100}",
                    f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00",
                    f"2026-10-{1 + i % 28:02d}",
                    f"https://shop.example.com/p/{i % 977}",
                    "yes" if i % 3 else "no",
                    "plain text note",
                ]
            )
    return path


def start_mock(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    return spawn("--api-key", KEY, "--latency-ms", str(latency_ms))


def validate_cmd(path: Path | str, report: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "importer", "validate", str(path), "--mapping", str(DATA / "m.yaml"),
            "--report", str(DATA / report), *extra]  # fmt: skip


def rendered_bodies(path: Path) -> list[bytes]:
    """The importer's own bodies for the file (via validate --show), so (a) and (b) post
    byte-identical requests."""
    out = subprocess.run(
        validate_cmd(path, "bodies.report.csv", "--show", "10000000"), capture_output=True, text=True, check=False
    ).stdout
    return [line.encode() for line in out.splitlines() if line.startswith("{")]


async def bare_client(url: str, bodies: list[bytes]) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY), headers=headers) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url + "/scenariocustomevents", data=body) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(bodies) / (time.perf_counter() - started)


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command; return (seconds, peak RSS MiB, stdout).

    Peak RSS is the child's own VmHWM, polled: ``ru_maxrss`` would include this
    process's memory, which a forked child inherits.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    with ThreadPoolExecutor(1) as pool:
        output = pool.submit(proc.communicate)
        while proc.poll() is None:
            peak = max(peak, vm_hwm_kib(proc.pid))
            time.sleep(0.02)
        out, err = output.result()
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return elapsed, peak / 1024, out


def vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def importer_run(url: str, path: Path, tag: str, *extra: str, state_url: str = "") -> tuple[float, float]:
    state = DATA / f"state-{tag}"
    subprocess.run(["rm", "-rf", str(state)], check=True)
    where = ["--state-url", state_url, "--state-schema", f"bench_{tag}"] if state_url else ["--state-dir", str(state)]
    rows = sum(1 for _ in path.open()) - 1
    elapsed, rss, out = run_measured(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(path),
            "--mapping",
            str(DATA / "m.yaml"),
            "--base-url",
            url,
            *where,
            "--report",
            str(DATA / f"{tag}.report.csv"),
            "--concurrency",
            str(CONCURRENCY),
            "--no-progress",
            *extra,
        ]
    )
    assert re.search(rf"^  sent +{rows:,}$", out, re.M), out
    return rows / elapsed, rss


def main() -> None:
    DATA.mkdir(exist_ok=True)
    (DATA / "m.yaml").write_text(MAPPING)
    os.environ["ECDP_API_KEY"] = KEY
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "concurrency": CONCURRENCY,
                               "load_average_at_start": os.getloadavg()[0]}  # fmt: skip
    for latency, rows in ((20.0, 30_000), (0.0, 60_000)):
        path = make_csv(DATA / f"http_{rows}.csv", rows)
        bodies = rendered_bodies(path)
        assert len(bodies) == rows, len(bodies)
        mock, url = start_mock(latency)
        try:
            run_async(bare_client(url, bodies[:2000]))  # warm the server up first
            # The best of two runs, on the same event loop as the importer.
            ceiling = max(run_async(bare_client(url, bodies)) for _ in range(2))
            rate, rss = importer_run(url, path, f"lat{int(latency)}")
            # What fsyncing each in-flight mark costs (the default; --no-fsync trades it away).
            unsynced, _ = importer_run(url, path, f"lat{int(latency)}-nofsync", "--no-fsync")
        finally:
            mock.terminate()
            mock.wait()
        results[f"latency_{int(latency)}ms"] = {
            "rows": rows,
            "bare_client_rps": round(ceiling),
            "importer_rps": round(rate),
            "ratio": round(rate / ceiling, 3),
            "importer_no_fsync_rps": round(unsynced),
            "fsync_cost": round(1 - rate / unsynced, 3),
            "importer_peak_rss_mib": round(rss, 1),
        }
    for rows in (200_000, 1_000_000):
        path = make_csv(DATA / f"validate_{rows}.csv", rows)
        results[f"validate_{rows}"] = best_validate(validate_cmd(path, f"validate_{rows}.report.csv"), rows)
    parquet = make_parquet(DATA / "validate_1000000.csv")
    results["validate_1000000_parquet"] = best_validate(validate_cmd(parquet, "validate_parquet.report.csv"), 10**6)
    results["validate_with_phones"] = validate_with_phones(PHONE_ROWS)
    results["run_with_phones"] = run_with_phones(30_000)
    results["phone_differential"] = phone_differential(int(os.environ.get("BENCH_PHONE_VALUES", "10000000")))
    results["differential"] = differential(DATA / "validate_1000000.csv")
    results["object_store"] = object_store_cost(make_csv(DATA / "validate_1000000.csv", 1_000_000))
    results["ledger"] = ledger_cost(int(os.environ.get("BENCH_LEDGER_IDENTITIES", "10000000")))
    results["postgres"] = postgres_vs_sqlite(30_000)
    results["load_average_at_end"] = os.getloadavg()[0]
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def best_validate(cmd: list[str], rows: int) -> dict[str, Any]:
    """The faster of two runs (this machine's speed wanders by a third between minutes),
    and the larger peak RSS."""
    runs = [run_measured(cmd) for _ in range(2)]
    elapsed = min(r[0] for r in runs)
    return {"rows": rows, "rows_per_s": round(rows / elapsed), "peak_rss_mib": round(max(r[1] for r in runs), 1)}


def ledger_cost(n: int) -> dict[str, Any]:
    """A state directory whose ledger holds ``n`` identities (written straight into the
    journal, as ``n`` sent rows of one import would leave it), then lookups through the
    journal's own ``holder`` as a run makes them."""
    from importer.journal import Journal
    from importer.ledger import body_identity

    state = DATA / "state-ledger"
    subprocess.run(["rm", "-rf", str(state)], check=True)
    journal = Journal(str(state), durable=False)
    import_id = journal.resolve_import(DATA / "m.yaml", "0" * 64, 0, False)

    def size() -> int:
        journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(f.stat().st_size for f in state.iterdir() if f.name.startswith("journal"))

    empty = size()
    chunk = 500_000
    for start in range(0, n, chunk):
        numbers = range(start + 1, min(n, start + chunk) + 1)
        journal.db.execute("BEGIN")
        journal.db.executemany(
            "INSERT INTO rows (import_id, row_number, status, attempts) VALUES (?, ?, 'sent', 1)",
            ((import_id, i) for i in numbers),
        )
        journal.db.executemany(
            "INSERT INTO ledger (target_id, identity, import_id, row_number) VALUES (?, ?, ?, ?)",
            (
                (journal.target_id, body_identity("/scenariocustomevents", str(i).encode()), import_id, i)
                for i in numbers
            ),
        )
        journal.db.execute("COMMIT")
    per_row = (size() - empty) / n
    rows_only = journal.db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    assert rows_only == n
    probes = 100_000
    new = [body_identity("/scenariocustomevents", f"new{i}".encode()) for i in range(probes)]
    old = [body_identity("/scenariocustomevents", str(1 + i * (n // probes)).encode()) for i in range(probes)]
    started = time.perf_counter()
    assert all(journal.holder(x) is None for x in new)
    miss_us = (time.perf_counter() - started) / probes * 1e6
    started = time.perf_counter()
    assert all(journal.holder(x) is not None for x in old)
    hit_us = (time.perf_counter() - started) / probes * 1e6
    journal.close()
    started = time.perf_counter()
    reopened = Journal(str(state))
    reopened.verified()
    open_s = time.perf_counter() - started
    reopened.close()
    return {
        "identities": n,
        "journal_bytes_per_sent_row_with_ledger": round(per_row, 1),
        "lookup_new_event_us": round(miss_us, 2),
        "lookup_duplicate_us": round(hit_us, 2),
        "open_and_check_s": round(open_s, 2),
    }


def make_parquet(csv_path: Path) -> Path:
    """The CSV's rows as Parquet (every column text, row groups of 65,536 rows)."""
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    local = csv_path.with_suffix(".parquet")
    if not local.exists():
        names = pv.read_csv(csv_path, read_options=pv.ReadOptions(block_size=1 << 20)).column_names
        table = pv.read_csv(csv_path, convert_options=pv.ConvertOptions(column_types=dict.fromkeys(names, "string")))
        pq.write_table(table, local, row_group_size=65_536)
    return local


PHONE_MAPPING = """\
custom_event_id: 31
timezone: Europe/Warsaw
customer:
  id: customer_id
  email: email
  email_md5: {hash_of: email}
  email_sha256: {hash_of: email}
  phone: {column: phone, default_region: PL}
data_fields:
  - {name: total, type: Money, column: total}
  - {name: orderedAt, type: DateTime, column: ordered_at}
  - {name: day, type: Date, column: day}
  - {name: items, type: Number, column: items}
  - {name: paid, type: Boolean, column: paid}
  - {name: note, type: String, column: note}
"""


PHONE_ROWS = 1_000_000
# The importer with the phone path it had before issue 21: every number parsed by
# phonenumbers (the same function, now the tests' oracle, behind the same cache), and no
# whole-column phone converter. Same process otherwise, so the two measure only phones.
OLD_PHONES = (
    "import functools, runpy, sys\n"
    "import importer.batch as b, importer.identity as i\n"
    "i._e164 = functools.lru_cache(maxsize=1 << 16)(i._phone_reference)\n"
    "del b.VECTORS[i.to_e164]\n"
    "sys.argv[0] = 'ecdp-import'\n"
    "runpy.run_module('importer', run_name='__main__', alter_sys=True)\n"
)


def phones_csv(rows: int) -> Path:
    """Issue 13's typical columns, a different phone number on every row."""
    path = DATA / f"phones_{rows}.csv"
    if not path.exists():
        rng = random.Random(rows)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["customer_id", "email", "phone", "total", "ordered_at", "day", "items", "paid", "note"])
            for i in range(1, rows + 1):
                at = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}"
                phone = f"+48 {500_000_000 + i:,}".replace(",", " ")
                total, items = f"{rng.randint(1, 99999) / 100}", rng.randint(1, 9)
                paid = "true" if i % 3 else "false"
                day = f"2026-10-{1 + i % 28:02d}"
                w.writerow([i, f"user.{i}@example.com", phone, total, at, day, items, paid, "x"])
    (DATA / "phones.yaml").write_text(PHONE_MAPPING)
    return path


def old_phones(cmd: list[str]) -> list[str]:
    """The same ``python -m importer ...`` command with the phone path before issue 21."""
    assert cmd[1:3] == ["-m", "importer"], cmd
    return [cmd[0], "-c", OLD_PHONES, *cmd[3:]]


def validate_with_phones(rows: int) -> dict[str, Any]:
    """Issue 13's typical mapping (customer id, email and both hashes, a phone with a
    default region, Money, DateTime, Date, Number, Boolean, String), every phone number
    different: what parsing phone numbers costs when no value repeats. Today's phone path
    and the one before issue 21, alternating, each the faster of two runs."""
    path = phones_csv(rows)
    commands = {}
    for tag in ("new", "old"):
        cmd = validate_cmd(path, f"phones-{tag}.report.csv")
        cmd[cmd.index("--mapping") + 1] = str(DATA / "phones.yaml")
        commands[tag] = cmd if tag == "new" else old_phones(cmd)
    new, old = [], []
    for _ in range(2):  # alternating: this machine's speed wanders between minutes
        new.append(run_measured(commands["new"])[0])
        old.append(run_measured(commands["old"])[0])
    reports = [(DATA / f"phones-{tag}.report.csv").read_bytes() for tag in ("new", "old")]
    return {
        "rows": rows,
        "rows_per_s": round(rows / min(new)),
        "old_phone_path_rows_per_s": round(rows / min(old)),
        "speedup": round(min(old) / min(new), 2),
        "reports_identical": reports[0] == reports[1],
    }


def run_with_phones(rows: int) -> dict[str, Any]:
    """``ecdp-import run`` of the typical mapping with distinct phones against the instant
    mock: the CPU a row of the importer process (user + system, start-up included), with
    today's phone path and the one before issue 21, alternating, the lower of two each."""
    import resource

    path = phones_csv(rows)
    mock, url = start_mock(0.0)
    cpu: dict[str, list[float]] = {"new": [], "old": []}
    try:
        for _ in range(2):
            for tag in ("new", "old"):
                state = DATA / f"state-phones-{tag}"
                subprocess.run(["rm", "-rf", str(state)], check=True)
                report = DATA / f"phones-run-{tag}.report.csv"
                cmd = [sys.executable, "-m", "importer", "run", str(path), "--mapping", str(DATA / "phones.yaml"),
                       "--base-url", url, "--state-dir", str(state), "--report", str(report),
                       "--concurrency", str(CONCURRENCY), "--no-progress"]  # fmt: skip
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(cmd if tag == "new" else old_phones(cmd), capture_output=True, text=True).stdout
                after = resource.getrusage(resource.RUSAGE_CHILDREN)  # only the run was reaped between
                assert re.search(rf"^  sent +{rows:,}$", out, re.M), out
                used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                cpu[tag].append(used / rows * 1e6)
    finally:
        mock.terminate()
        mock.wait()
    new, old = min(cpu["new"]), min(cpu["old"])
    return {"rows": rows, "cpu_us_per_row": round(new, 1), "old_phone_path_cpu_us_per_row": round(old, 1),
            "cpu_saved": round(1 - new / old, 3)}  # fmt: skip


def phone_differential(values: int) -> dict[str, Any]:
    """Issue 21's exactness check at scale: ``values`` generated numbers (bench/phone_cases.py)
    through the fast phone paths and through phonenumbers alone, on two processes."""
    from multiprocessing import Pool

    import phone_cases

    chunk = 50_000
    tasks = [(seed, min(chunk, values - start), 256) for seed, start in enumerate(range(0, values, chunk))]
    started = time.perf_counter()
    with Pool(2) as pool:
        parts = pool.map(phone_cases.compare, tasks, chunksize=1)
    total = {key: sum(p[key] for p in parts) for key in ("values", "differing", "fast", "patterned")}
    total["examples"] = [e for p in parts for e in p["examples"]][:5]
    total["seconds"] = round(time.perf_counter() - started, 1)
    return total


def differential(csv_path: Path) -> dict[str, Any]:
    """Every row of the 1M-row CSV through both renderers: the batch renderer (what runs)
    and the row renderer (every earlier release's). Report fields and body bytes compared."""
    import orjson

    from importer.batch import BatchRenderer
    from importer.mapping import load_mapping
    from importer.payload import PayloadBuilder
    from importer.source import open_source

    builder = PayloadBuilder(load_mapping(str(DATA / "m.yaml")))
    renderer = BatchRenderer(builder)
    rows = differing = 0
    for batch in open_source(str(csv_path)).batches():
        refs, others = renderer.verdicts(batch)
        for i, (fast, row) in enumerate(zip(renderer.render(batch), batch.rows(), strict=True)):
            slow = builder.render(row)
            rows += 1
            same_body = (fast.body and orjson.dumps(fast.body)) == (slow.body and orjson.dumps(slow.body))
            verdict = refs[i] if refs[i] is not None else others[i].detail
            wanted = slow.customer_ref if slow.body is not None else slow.detail
            differing += not (same_body and fast == slow and verdict == wanted)
    return {"rows": rows, "differing": differing}


def object_store_cost(csv_path: Path) -> dict[str, Any]:
    """``validate`` of the same Parquet file from disk and from a local S3 server."""
    from moto.server import ThreadedMotoServer

    local = make_parquet(csv_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                              aws_secret_access_key="bench", region_name="us-east-1")  # fmt: skip
        client.create_bucket(Bucket="bench")
        client.upload_file(str(local), "bench", "validate.parquet")
        from_disk, _, _ = run_measured(validate_cmd(local, "parquet_local.report.csv"))
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from_s3, rss, _ = run_measured(validate_cmd("s3://bench/validate.parquet", "parquet_s3.report.csv"))
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    finally:
        server.stop()
    return {
        "rows": 1_000_000,
        "object_mib": round(local.stat().st_size / 2**20, 1),
        "local_s": round(from_disk, 2),
        "s3_s": round(from_s3, 2),
        "ratio": round(from_s3 / from_disk, 3),
        "s3_peak_rss_mib": round(rss, 1),
    }


def postgres_vs_sqlite(rows: int) -> dict[str, Any]:
    """Issue 23: the state in PostgreSQL over loopback against the state directory, at 20 ms."""
    sys.path.insert(0, str(HERE.parent))
    from tests import pgserver

    path = make_csv(DATA / f"http_{rows}.csv", rows)
    server = pgserver.start()
    mock, url = start_mock(20.0)
    rates: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    try:
        for attempt in range(3):
            rates["sqlite"].append(importer_run(url, path, f"sqlite{attempt}")[0])
            rates["postgres"].append(importer_run(url, path, f"pg{attempt}", state_url=server.url())[0])
    finally:
        mock.terminate()
        mock.wait()
        server.stop()
    sqlite, postgres = max(rates["sqlite"]), max(rates["postgres"])
    ratio = round(postgres / sqlite, 3)
    return {"rows": rows, "sqlite_rps": round(sqlite), "postgres_rps": round(postgres), "ratio": ratio}


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{'measure':<44}{'value':>14}   target")
    for lat, target in (("20", 0.95), ("0", 0.9)):  # issue 13's targets
        x = r[f"latency_{lat}ms"]
        print(f"{f'{lat} ms API: bare aiohttp client rows/s':<44}{x['bare_client_rps']:>14,}")
        print(f"{f'{lat} ms API: ecdp-import run rows/s':<44}{x['importer_rps']:>14,}")
        ok = "met" if x["ratio"] >= target else "NOT met"
        print(f"{f'{lat} ms API: importer / ceiling':<44}{x['ratio']:>14.2f}   >= {target} ({ok})")
        print(f"{f'{lat} ms API: run --no-fsync rows/s':<44}{x['importer_no_fsync_rps']:>14,}")
        print(f"{f'{lat} ms API: cost of fsynced in-flight marks':<44}{x['fsync_cost']:>14.1%}")
        print(f"{f'{lat} ms API: importer peak RSS MiB':<44}{x['importer_peak_rss_mib']:>14}")
    for rows in (200_000, 1_000_000):
        x = r[f"validate_{rows}"]
        ok = "met" if x["rows_per_s"] >= 250_000 else "NOT met"
        print(f"{f'validate {rows:,} rows: rows/s':<44}{x['rows_per_s']:>14,}   >= 250,000 ({ok})")
        ok = "met" if x["peak_rss_mib"] <= 250 else "NOT met"
        print(f"{f'validate {rows:,} rows: peak RSS MiB':<44}{x['peak_rss_mib']:>14}   <= 250 ({ok})")
    x = r["validate_1000000_parquet"]
    ok = "met" if x["rows_per_s"] >= 250_000 else "NOT met"
    print(f"{'validate 1,000,000 rows Parquet: rows/s':<44}{x['rows_per_s']:>14,}   >= 250,000 ({ok})")
    print(f"{'validate 1,000,000 rows Parquet: peak RSS MiB':<44}{x['peak_rss_mib']:>14}   <= 250")
    growth = r["validate_1000000"]["peak_rss_mib"] / r["validate_200000"]["peak_rss_mib"]
    ok = "met" if growth <= 1.25 else "NOT met"
    print(f"{'validate CSV RSS, 1M / 200k rows':<44}{growth:>14.2f}   <= 1.25 ({ok})")
    x = r["validate_with_phones"]
    print(f"{'validate 1M, typical mapping + distinct phones':<44}")
    print(f"{'  before issue 21 (phonenumbers), rows/s':<44}{x['old_phone_path_rows_per_s']:>14,}")
    print(f"{'  now, rows/s':<44}{x['rows_per_s']:>14,}   >= 80,000 ({verdict(x['rows_per_s'], 80_000)})")
    print(f"{'  now / before':<44}{x['speedup']:>14.2f}   >= 4.00 ({verdict(x['speedup'], 4.0)})")
    print(f"{'  reports byte-identical':<44}{x['reports_identical']!s:>14}")
    x = r["run_with_phones"]
    print(f"{'run 30k, same mapping: CPU us a row before':<44}{x['old_phone_path_cpu_us_per_row']:>14}")
    print(f"{'  now':<44}{x['cpu_us_per_row']:>14}")
    print(f"{'  CPU a row saved':<44}{x['cpu_saved']:>14.1%}   >= 25% ({verdict(x['cpu_saved'], 0.25)})")
    x = r["phone_differential"]
    label = "phones vs phonenumbers, values differing"
    print(f"{label:<44}{x['differing']:>14,}   of {x['values']:,} (must be 0) in {x['seconds']} s")
    shares = f"{x['fast'] / x['values']:.1%} / {x['patterned'] / x['values']:.1%}"
    print(f"{'  answered by phones.e164 / the patterns':<44}{shares:>14}")
    for example in x["examples"]:
        print(f"  differs: {example}")
    x = r["differential"]
    print(f"{'batch vs row renderer, rows differing':<44}{x['differing']:>14,}   of {x['rows']:,} (must be 0)")
    print(f"{'load average at start / end':<44}{r['load_average_at_start']:>7.2f} / {r['load_average_at_end']:.2f}")
    x = r["object_store"]
    ok = "met" if x["ratio"] <= 1.3 else "NOT met"
    print(f"{'validate 1M-row Parquet: local disk, s':<44}{x['local_s']:>14}")
    print(f"{'validate 1M-row Parquet: from S3 (moto), s':<44}{x['s3_s']:>14}")
    print(f"{'  S3 / local':<44}{x['ratio']:>14.2f}   <= 1.3 ({ok})")
    x = r["ledger"]
    label = f"ledger of {x['identities']:,}: journal bytes a sent row"
    print(f"{label:<44}{x['journal_bytes_per_sent_row_with_ledger']:>14}")
    print(f"{'ledger: lookup of a new event, us':<44}{x['lookup_new_event_us']:>14}   <= 5")
    print(f"{'ledger: lookup of a duplicate, us':<44}{x['lookup_duplicate_us']:>14}")
    print(f"{'ledger: open and page-check the journal, s':<44}{x['open_and_check_s']:>14}")
    x = r["postgres"]
    print(f"{'run 30k at 20 ms, state directory rows/s':<44}{x['sqlite_rps']:>14,}")
    print(f"{'  state in PostgreSQL (loopback) rows/s':<44}{x['postgres_rps']:>14,}")
    print(f"{'  PostgreSQL / state directory':<44}{x['ratio']:>14.2f}   >= 0.80 ({verdict(x['ratio'], 0.8)})")
    print("\nwritten to bench/results.json")


def verdict(value: float, target: float) -> str:
    """'met', or 'NOT met' and by how much (a share of the target)."""
    return "met" if value >= target else f"NOT met, {1 - value / target:.0%} short"


if __name__ == "__main__":
    main()
