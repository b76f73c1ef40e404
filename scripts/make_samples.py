"""Regenerate sample_data/ (deterministic): a customer-event CSV and a segments Parquet.

A handful of rows in each are deliberately invalid, so the demo shows every outcome.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "sample_data"
FIRST = ["Anna", "Jan", "Zofia", "Piotr", "Łucja", "Marek", "Ewa", "Tomasz", "Kasia", "Adam"]
DOMAINS = ["example.com", "example.org", "shop.example.net"]


def orders(rng: random.Random, n: int = 300) -> None:
    start = datetime(2026, 11, 1, 8, 0, 0)
    broken = {17: "email", 42: "ordered_at", 99: "total", 150: "product_url", 222: "ids", 287: "first_order"}
    with (OUT / "orders.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "customer_id",
                "crm_id",
                "email",
                "phone",
                "total",
                "ordered_at",
                "order_day",
                "product_url",
                "first_order",
                "note",
            ]
        )
        for i in range(1, n + 1):
            name = rng.choice(FIRST)
            row = {
                "customer_id": str(1000 + i),
                "crm_id": f"CRM-{i:05d}",
                "email": f"  {name}.{i}@{rng.choice(DOMAINS)} ".replace("Ł", "L"),
                "phone": f"6{rng.randint(10_000_000, 99_999_999)}",
                "total": f"{rng.randint(100, 99_999) / 100:.2f}",
                "ordered_at": (start + timedelta(minutes=37 * i)).strftime("%Y-%m-%d %H:%M:%S"),
                "order_day": (start + timedelta(minutes=37 * i)).strftime("%d.%m.%Y"),
                "product_url": f"https://shop.example.com/p/{rng.randint(1, 500)}",
                "first_order": rng.choice(["yes", "no", "true", "0"]),
                "note": rng.choice(["", "gift, wrapped", 'said "thanks"', "line one\nline two"]),
            }
            if i % 7 == 0:
                row["customer_id"] = row["crm_id"] = ""
            kind = broken.get(i)
            if kind == "email":
                row["email"] = "not-an-email"
            elif kind == "ordered_at":
                row["ordered_at"] = "31/02/2024 25:61"
            elif kind == "total":
                row["total"] = "12,3,4"
            elif kind == "product_url":
                row["product_url"] = "javascript:alert(1)"
            elif kind == "ids":
                row.update(customer_id="", crm_id="", email="", phone="")
            elif kind == "first_order":
                row["first_order"] = "maybe"
            w.writerow(row.values())


def campaigns(rng: random.Random, n: int = 200) -> None:
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    segs, names, sends, budgets, actives, urls, discounts = [], [], [], [], [], [], []
    for i in range(1, n + 1):
        segs.append(",".join(str(rng.randint(1, 40)) for _ in range(rng.randint(1, 3))))
        names.append(f"campaign-{i:03d}")
        sends.append(t0 + timedelta(hours=i))
        budgets.append(Decimal(rng.randint(1000, 999_999)) / 100)
        actives.append(rng.random() < 0.8 if i % 11 else None)
        urls.append(f"https://shop.example.com/c/{i}")
        discounts.append(None if i % 5 == 0 else rng.randint(5, 50))
    segs[12], segs[77], urls[140], names[190] = "", "3;x", "ftp://example.com/file", None
    table = pa.table(
        {
            "campaign": pa.array(names, pa.string()),
            "segment_ids": pa.array(segs, pa.string()),
            "send_at": pa.array(sends, pa.timestamp("us", tz="UTC")),
            "budget": pa.array(budgets, pa.decimal128(12, 2)),
            "active": pa.array(actives, pa.bool_()),
            "landing_url": pa.array(urls, pa.string()),
            "discount_pct": pa.array(discounts, pa.int64()),
        }
    )
    pq.write_table(table, OUT / "campaigns.parquet")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    rng = random.Random(20261126)
    orders(rng)
    campaigns(rng)
