"""The behaviour every Warehouse must show, written once and run against each implementation.

A test module subclasses `WarehouseContract` and provides a `warehouse` fixture (and, when the
backend is shared, a `dataset` fixture naming a fresh dataset it cleans up afterwards).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from backfill.errors import BadInput, WarehouseError
from backfill.warehouse import TableSchema, Warehouse, schema

D1, D2, D3, D4 = (dt.date(2024, 1, d) for d in (10, 11, 12, 13))
UTC = dt.UTC


def events(dataset: str, name: str = "events") -> TableSchema:
    return schema(f"{dataset}.{name}", "game_date",
                  ("game_date", "DATE", True), ("player", "STRING", True), ("points", "INT64"),
                  ("minutes", "FLOAT64"), ("starter", "BOOL"), ("loaded_at", "TIMESTAMP"),
                  cluster=("player",))


def row(day: dt.date, player: str, points: int | None, *, minutes: float | None = 30.5,
        starter: bool | None = True) -> dict[str, Any]:
    return {"game_date": day, "player": player, "points": points, "minutes": minutes, "starter": starter,
            "loaded_at": dt.datetime(2024, 2, 1, 12, 30, 15, tzinfo=UTC)}


def key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["game_date"], r["player"], r["points"])


SELECT_SOURCE = ("SELECT game_date, player, points, minutes, starter, loaded_at FROM {source} "
                 "WHERE game_date BETWEEN @start_date AND @end_date")
# Fails while it runs, after it has produced rows: the cast of 'oops' to INT64 errors.
SELECT_FAILING = ("SELECT game_date, player, CAST(CASE WHEN player = 'Bad Cast' THEN 'oops' "
                  "ELSE CAST(points AS STRING) END AS INT64) AS points, minutes, starter, loaded_at "
                  "FROM {source} WHERE game_date BETWEEN @start_date AND @end_date")


class WarehouseContract:
    """Subclass this in a `test_*.py` module and provide the `warehouse` fixture."""

    @pytest.fixture
    def warehouse(self) -> Iterator[Warehouse]:
        raise NotImplementedError("a contract test module must provide a `warehouse` fixture")

    @pytest.fixture
    def dataset(self) -> str:
        return "contract"

    # -- helpers ---------------------------------------------------------------------------
    def table_rows(self, wh: Warehouse, table: TableSchema) -> list[tuple[Any, ...]]:
        rows = wh.query(f"SELECT {', '.join(table.column_names)} FROM {table.name} ORDER BY game_date, player")
        return [tuple(r[c] for c in table.column_names) for r in rows]

    def source(self, wh: Warehouse, dataset: str, rows: list[dict[str, Any]]) -> TableSchema:
        src = events(dataset, "source")
        wh.create_table(src)
        wh.insert_rows(src.name, rows)
        return src

    def seeded_target(self, wh: Warehouse, dataset: str) -> TableSchema:
        target = events(dataset)
        wh.create_table(target)
        wh.insert_rows(target.name, [row(d, "Old Row", 1) for d in (D1, D2, D3, D4)])
        return target

    def replace(self, wh: Warehouse, target: TableSchema, src: TableSchema, dates: list[dt.date],
                sql: str = SELECT_SOURCE) -> int:
        return wh.replace_partitions(target, dates, sql.format(source=src.name),
                                     {"start_date": min(dates), "end_date": max(dates)},
                                     labels={"run_id": "Contract-Run", "task_id": "events:2024-01-10"})

    # -- tables ----------------------------------------------------------------------------
    def test_created_table_exists_with_declared_columns(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset)
        assert not warehouse.table_exists(table.name)
        warehouse.create_table(table)
        warehouse.create_table(table)  # creating again is harmless
        assert warehouse.table_exists(table.name)
        assert warehouse.table_columns(table.name) == {c.name: c.type for c in table.columns}

    def test_add_columns_adds_only_missing_columns_null_in_old_rows(self, warehouse: Warehouse,
                                                                    dataset: str) -> None:
        full = events(dataset)
        old = TableSchema(full.name, tuple(c for c in full.columns if c.name not in ("minutes", "loaded_at")),
                          full.partition)
        warehouse.create_table(old)
        warehouse.insert_rows(full.name, [{k: v for k, v in row(D1, "Old", 1).items()
                                           if k not in ("minutes", "loaded_at")}])
        assert warehouse.add_columns(full) == ["minutes", "loaded_at"]
        assert warehouse.add_columns(full) == []  # again: nothing to add
        assert warehouse.table_columns(full.name) == {**{c.name: c.type for c in old.columns},
                                                      "minutes": "FLOAT64", "loaded_at": "TIMESTAMP"}
        warehouse.insert_rows(full.name, [row(D2, "New", 2)])
        got = {r["player"]: (r["minutes"], r["loaded_at"]) for r in warehouse.query(f"SELECT * FROM {full.name}")}
        assert got == {"Old": (None, None), "New": (30.5, row(D2, "New", 2)["loaded_at"])}

    # -- bulk inserts ----------------------------------------------------------------------
    def test_insert_rows_round_trips_types_nulls_and_unicode(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset)
        warehouse.create_table(table)
        rows = [row(D1, "Nikola Jokić", 32, minutes=35.25, starter=True),
                row(D1, "Luka Dončić", None, minutes=None, starter=None),
                row(D2, "Bench Guy", 0, minutes=0.0, starter=False)]
        rows[1]["loaded_at"] = None
        assert warehouse.insert_rows(table.name, rows) == 3
        got = {r["player"]: r for r in warehouse.query(f"SELECT * FROM {table.name}")}
        assert set(got) == {"Nikola Jokić", "Luka Dončić", "Bench Guy"}
        for want in rows:
            have = got[want["player"]]
            assert have == want, f"{want['player']}: wrote {want}, read {have}"
            assert type(have["game_date"]) is dt.date
            assert have["starter"] is want["starter"]

    def test_insert_rows_writes_many_rows_in_one_call(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset)
        warehouse.create_table(table)
        rows = [row(D1 + dt.timedelta(days=i % 20), f"Player {i}", i) for i in range(5000)]
        assert warehouse.insert_rows(table.name, rows) == 5000
        assert warehouse.query(f"SELECT COUNT(*) AS n, SUM(points) AS s FROM {table.name}") == [
            {"n": 5000, "s": sum(range(5000))}]

    def test_insert_rows_into_unknown_column_is_schema_drift(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset)
        warehouse.create_table(table)
        with pytest.raises(WarehouseError) as err:
            warehouse.insert_rows(table.name, [{**row(D1, "A", 1), "rebounds": 3}])
        assert err.value.category == "schema_drift"

    # -- parameterised queries -------------------------------------------------------------
    def test_query_binds_date_int_and_string_params(self, warehouse: Warehouse, dataset: str) -> None:
        src = self.source(warehouse, dataset, [row(D1, "A", 10), row(D2, "B", 20), row(D2, "C", 5)])
        got = warehouse.query(f"SELECT player FROM {src.name} WHERE game_date = @day AND points >= @min "
                              f"AND player != @not ORDER BY player", {"day": D2, "min": 5, "not": "C"})
        assert got == [{"player": "B"}]

    def test_query_binds_array_params_for_in_unnest(self, warehouse: Warehouse, dataset: str) -> None:
        src = self.source(warehouse, dataset, [row(D1, "A", 10), row(D2, "B", 20), row(D3, "C", 5)])
        got = warehouse.query(f"SELECT player FROM {src.name} WHERE player IN UNNEST(@names) "
                              f"AND game_date IN UNNEST(@days) ORDER BY player",
                              {"names": ["A", "B", "Z"], "days": [D1, D2, D4]})
        assert got == [{"player": "A"}, {"player": "B"}]
        ints = warehouse.query(f"SELECT player FROM {src.name} WHERE points IN UNNEST(@pts)", {"pts": [5]})
        assert ints == [{"player": "C"}]

    def test_execute_runs_dml(self, warehouse: Warehouse, dataset: str) -> None:
        src = self.source(warehouse, dataset, [row(D1, "A", 10), row(D2, "B", 20)])
        warehouse.execute(f"DELETE FROM {src.name} WHERE game_date = @day", {"day": D1})
        assert [r["player"] for r in warehouse.query(f"SELECT player FROM {src.name}")] == ["B"]

    # -- atomic, idempotent partition replacement ------------------------------------------
    @pytest.mark.parametrize("dates", [[D2], [D2, D3]], ids=["one-date", "several-dates"])
    def test_replace_partitions_twice_leaves_one_copy(self, warehouse: Warehouse, dataset: str,
                                                      dates: list[dt.date]) -> None:
        src = self.source(warehouse, dataset, [row(d, p, i) for i, d in enumerate(dates) for p in ("A", "B")])
        target = events(dataset)
        first = self.replace(warehouse, target, src, dates)
        once = self.table_rows(warehouse, target)
        second = self.replace(warehouse, target, src, dates)
        assert first == second == 2 * len(dates)
        assert self.table_rows(warehouse, target) == once
        assert len(once) == 2 * len(dates)

    @pytest.mark.parametrize("dates", [[D2], [D2, D3]], ids=["one-date", "several-dates"])
    def test_replace_partitions_touches_only_its_dates(self, warehouse: Warehouse, dataset: str,
                                                       dates: list[dt.date]) -> None:
        target = self.seeded_target(warehouse, dataset)
        # The source has new rows for every date; only the task's dates may change.
        src = self.source(warehouse, dataset, [row(d, "New Row", 9) for d in (D1, D2, D3, D4)])
        warehouse.replace_partitions(target, dates, SELECT_SOURCE.format(source=src.name),
                                     {"start_date": D1, "end_date": D4})
        got = {(r[0], r[1]) for r in self.table_rows(warehouse, target)}
        want = {(d, "New Row" if d in dates else "Old Row") for d in (D1, D2, D3, D4)}
        assert got == want

    def test_replace_partitions_with_rows_swaps_only_its_dates(self, warehouse: Warehouse, dataset: str) -> None:
        target = self.seeded_target(warehouse, dataset)
        computed = [row(D2, "Py Row", 7), row(D3, "Outside", 8)]  # a row outside the dates is discarded
        n = warehouse.replace_partitions_with_rows(target, [D2], computed)
        again = warehouse.replace_partitions_with_rows(target, [D2], computed)
        got = {(r[0], r[1]) for r in self.table_rows(warehouse, target)}
        assert n == again == 1
        assert got == {(D1, "Old Row"), (D2, "Py Row"), (D3, "Old Row"), (D4, "Old Row")}

    def test_replace_partitions_with_rows_typed_none_and_failing(self, warehouse: Warehouse, dataset: str) -> None:
        """Values come back typed as the schema says; no rows empties the dates; a value that does not
        fit its column fails the whole write and leaves every partition as it was."""
        target = self.seeded_target(warehouse, dataset)
        typed = [row(D2, "Typed", 12, minutes=33.25, starter=False), row(D2, "Nulls", None, minutes=None, starter=None)]
        assert warehouse.replace_partitions_with_rows(target, [D2, D3], typed) == 2
        got = {r["player"]: r for r in warehouse.query(f"SELECT * FROM {target.name} WHERE game_date = @d", {"d": D2})}
        assert (got["Typed"]["points"], got["Typed"]["minutes"], got["Typed"]["starter"]) == (12, 33.25, False)
        assert (got["Nulls"]["points"], got["Nulls"]["minutes"], got["Nulls"]["starter"]) == (None, None, None)
        assert got["Typed"]["loaded_at"] == dt.datetime(2024, 2, 1, 12, 30, 15, tzinfo=UTC)
        assert warehouse.row_counts(target.name, "game_date") == {D1: 1, D2: 2, D4: 1}  # D3 emptied
        assert warehouse.replace_partitions_with_rows(target, [D4], []) == 0
        before = self.table_rows(warehouse, target)
        with pytest.raises(WarehouseError):
            warehouse.replace_partitions_with_rows(target, [D1, D2], [row(D1, "Good", 1), row(D2, "Bad", "many")])  # type: ignore[arg-type]
        assert self.table_rows(warehouse, target) == before

    def test_replace_partitions_with_no_rows_empties_the_partition(self, warehouse: Warehouse,
                                                                   dataset: str) -> None:
        target = self.seeded_target(warehouse, dataset)
        src = self.source(warehouse, dataset, [row(D1, "Elsewhere", 1)])
        assert self.replace(warehouse, target, src, [D3]) == 0
        assert warehouse.row_counts(target.name, "game_date") == {D1: 1, D2: 1, D4: 1}

    @pytest.mark.parametrize("dates", [[D2], [D2, D3]], ids=["one-date", "several-dates"])
    def test_replace_partitions_failing_query_leaves_table_unchanged(self, warehouse: Warehouse, dataset: str,
                                                                     dates: list[dt.date]) -> None:
        target = self.seeded_target(warehouse, dataset)
        before = self.table_rows(warehouse, target)
        src = self.source(warehouse, dataset, [row(D2, f"Good {i}", i) for i in range(50)]
                          + [row(dates[-1], "Bad Cast", 1)])
        with pytest.raises(WarehouseError):
            self.replace(warehouse, target, src, dates, SELECT_FAILING)
        assert self.table_rows(warehouse, target) == before

    # -- merges and counts -----------------------------------------------------------------
    def test_merge_rows_upserts_by_key(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset, "history")
        assert warehouse.merge_rows(table, [row(D1, "A", 1), row(D1, "B", 2)], ["game_date", "player"]) == 2
        warehouse.merge_rows(table, [row(D1, "B", 20), row(D2, "A", 3)], ["game_date", "player"])
        warehouse.merge_rows(table, [row(D1, "B", 20), row(D2, "A", 3)], ["game_date", "player"])
        assert [(r[0], r[1], r[2]) for r in self.table_rows(warehouse, table)] == [
            (D1, "A", 1), (D1, "B", 20), (D2, "A", 3)]

    def test_merge_rows_collapses_duplicate_keys_to_the_last_row(self, warehouse: Warehouse, dataset: str) -> None:
        table = events(dataset, "history")
        rows = [row(D1, "A", 1), row(D1, "A", 2), row(D2, "A", 3)]
        assert warehouse.merge_rows(table, rows, ["game_date", "player"]) == 2
        assert [(r[0], r[1], r[2]) for r in self.table_rows(warehouse, table)] == [(D1, "A", 2), (D2, "A", 3)]

    def test_row_counts_per_date_within_range(self, warehouse: Warehouse, dataset: str) -> None:
        src = self.source(warehouse, dataset, [row(D1, "A", 1), row(D2, "A", 1), row(D2, "B", 1),
                                               row(D4, "A", 1)])
        assert warehouse.row_counts(src.name, "game_date") == {D1: 1, D2: 2, D4: 1}
        assert warehouse.row_counts(src.name, "game_date", D2, D3) == {D2: 2}

    # -- identifiers -----------------------------------------------------------------------
    def test_bad_identifiers_are_refused_before_any_sql(self, warehouse: Warehouse, dataset: str) -> None:
        evil = f"{dataset}.events; DROP TABLE x"
        with pytest.raises(BadInput):
            warehouse.insert_rows(evil, [row(D1, "A", 1)])
        with pytest.raises(BadInput):
            warehouse.table_exists(evil)
        with pytest.raises(BadInput):
            warehouse.table_columns(evil)
        with pytest.raises(BadInput):
            warehouse.row_counts(f"{dataset}.events", "game_date; DROP TABLE x")
        with pytest.raises(BadInput):
            schema(evil, "game_date", ("game_date", "DATE"))
        with pytest.raises(BadInput):
            warehouse.merge_rows(events(dataset), [row(D1, "A", 1)], ["player; --"])
        with pytest.raises(BadInput):
            warehouse.insert_rows(f"{dataset}.events", [{"game_date; --": D1}])
        assert not warehouse.table_exists(f"{dataset}.events")

    # -- explicit casts ----------------------------------------------------------------------
    def test_replace_partitions_casts_to_the_declared_types(self, warehouse: Warehouse, dataset: str) -> None:
        """Every warehouse writes through the same explicit casts: a FLOAT computed for an INT64
        column is rounded half away from zero, an INT for a FLOAT64 column reads back a float."""
        target = events(dataset)
        sql = ("SELECT DATE '2024-01-11' AS game_date, 'Cast' AS player, 2.5 AS points, 30 AS minutes, "
               "1 = 1 AS starter, TIMESTAMP '2024-02-01 12:30:15+00' AS loaded_at "
               "UNION ALL SELECT DATE '2024-01-11', 'Neg', -2.5, 0, FALSE, NULL")
        assert warehouse.replace_partitions(target, [D2], sql) == 2
        got = {r["player"]: r for r in warehouse.query(f"SELECT player, points, minutes FROM {target.name}")}
        assert got["Cast"]["points"] == 3 and type(got["Cast"]["points"]) is int
        assert got["Neg"]["points"] == -3
        assert got["Cast"]["minutes"] == 30.0 and type(got["Cast"]["minutes"]) is float
