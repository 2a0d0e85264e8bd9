"""The ticket benchmark on a small PostgreSQL database: it fills what it
says, measures every figure it reports, and leaves no database behind."""

from __future__ import annotations

import pytest

from eval import bench_tickets

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def _bench_databases() -> set[str]:
    import psycopg

    with psycopg.connect(ADMIN_DSN, connect_timeout=3) as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'citywatch_bench_%'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def before() -> set[str]:
    pytest.importorskip("psycopg", reason="needs the 'postgres' extra")
    try:
        return _bench_databases()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unreachable: {exc}")


def test_a_small_run_reports_every_figure(before: set[str]) -> None:
    bench = bench_tickets.run(tickets=1_000, filed=50, requests=20)
    text = bench_tickets.report(bench)

    assert bench.tickets == 1_000
    assert bench.filing_per_s > 0
    for times_ms in (
        bench.queue_first_ms,
        bench.queue_next_ms,
        bench.overview_ms,
        bench.city_overview_ms,
    ):
        assert len(times_ms) == 20 and min(times_ms) > 0
    # A twentieth of the tickets lie in the reviewer's community; three in
    # ten of the bulk ones and all of those filed one by one wait for review.
    assert 5 <= bench.queue_tickets <= 40
    assert "tickets in database:        1000" in text
    assert "review queue, first page:" in text and "overview, whole city:" in text
    assert text.count("p95") == 4
    assert _bench_databases() == before


def test_filed_must_fit_in_the_total() -> None:
    with pytest.raises(ValueError, match="filed"):
        bench_tickets.run(tickets=10, filed=20)
