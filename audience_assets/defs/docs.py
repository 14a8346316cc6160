"""dbt-style docs: table and column descriptions from dbt_style_docs/*.yml, and their generic tests.

The descriptions become asset descriptions and column schemas in the Dagster UI; the generic
tests (not_null, unique, accepted_values, unique_combination_of_columns) run as asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import dagster as dg
import duckdb
import yaml

from audience_assets.warehouse import resource_dir


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str
    tests: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TableDoc:
    name: str
    layer: str
    description: str
    columns: dict[str, ColumnDoc] = field(default_factory=dict)
    tests: tuple[Any, ...] = ()


class DocsError(ValueError):
    """A docs file that does not follow the expected shape."""


SHARED_FILE = "_shared_columns.yml"


def _load_yaml(path) -> dict:
    try:
        # libyaml's loader when present: the pure-Python one spends ~0.3 s on these files at every start.
        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as err:
        raise DocsError(f"{path.name}: not valid YAML ({err})") from None


@cache
def shared_columns() -> dict[str, str]:
    """Descriptions of columns that mean the same in every table (keys, common metrics)."""
    path = resource_dir("dbt_style_docs") / SHARED_FILE
    data = _load_yaml(path) if path.is_file() else {}
    return {c["name"]: " ".join(c["description"].split()) for c in data.get("columns", [])}


@cache
def all_docs() -> dict[str, TableDoc]:
    """Every documented table, by name; a column may take its description from the shared file."""
    shared = shared_columns()
    out: dict[str, TableDoc] = {}
    for path in sorted(resource_dir("dbt_style_docs").glob("*.yml")):
        if path.name == SHARED_FILE:
            continue
        data = _load_yaml(path)
        for model in data.get("models", []):
            name = model.get("name")
            if not name or not model.get("description"):
                raise DocsError(f"{path.name}: every model needs a name and a description")
            cols: dict[str, ColumnDoc] = {}
            for col in model.get("columns", []):
                cname = col.get("name")
                text = col.get("description") or shared.get(cname or "")
                if not cname or not text:
                    raise DocsError(f"{path.name}: {name}.{cname} has no description here or in {SHARED_FILE}")
                cols[cname] = ColumnDoc(cname, " ".join(text.split()), tuple(col.get("tests", ())))
            if name in out:
                raise DocsError(f"{path.name}: {name} is documented twice")
            out[name] = TableDoc(
                name, path.stem, " ".join(model["description"].split()), cols, tuple(model.get("tests", ()))
            )
    return out


def table_doc(name: str) -> TableDoc:
    docs = all_docs()
    if name not in docs:
        raise DocsError(f"table {name} is not documented in dbt_style_docs/")
    return docs[name]


def column_schema(conn: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    """The table's real columns and types, with their documented descriptions."""
    doc = table_doc(table)
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=n, type=t, description=doc.columns[n].description if n in doc.columns else None)
            for n, t in rows
        ]
    )


def _quote(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _row_tests(doc: TableDoc) -> list[tuple[str, str]]:
    """(test name, aggregate counting failing rows) for the tests one scan can count."""
    out: list[tuple[str, str]] = []
    for col in doc.columns.values():
        c = f'"{col.name}"'
        for test in col.tests:
            if test == "not_null":
                out.append((f"not_null({col.name})", f"count_if({c} IS NULL)"))
            elif test == "unique":
                out.append((f"unique({col.name})", f"count({c}) - count(DISTINCT {c})"))
            elif isinstance(test, dict) and "accepted_values" in test:
                values = ", ".join(_quote(v) for v in test["accepted_values"]["values"])
                out.append(
                    (
                        f"accepted_values({col.name})",
                        f"count_if({c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({values}))",
                    )
                )
            else:
                raise DocsError(f"{doc.name}.{col.name}: unknown test {test!r}")
    return out


def _test_queries(doc: TableDoc, where: str) -> list[tuple[str, str]]:
    """(test name, SQL counting failing rows) for the tests that need their own query."""
    t = f'"{doc.name}"'
    out: list[tuple[str, str]] = []
    for test in doc.tests:
        if isinstance(test, dict) and "unique_combination_of_columns" in test:
            cols = test["unique_combination_of_columns"]["combination_of_columns"]
            key = ", ".join(f'"{c}"' for c in cols)
            out.append(
                (
                    f"unique_combination({', '.join(cols)})",
                    f"SELECT count(*) FROM (SELECT {key} FROM {t} WHERE {where} GROUP BY {key} HAVING count(*) > 1)",
                )
            )
        else:
            raise DocsError(f"{doc.name}: unknown table test {test!r}")
    return out


def run_generic_tests(
    conn: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE", params: list[Any] | None = None
) -> dict[str, int]:
    """Failing-row counts per generic test (0 = pass): the per-row tests in one scan."""
    doc = table_doc(table)
    results: dict[str, int] = {}
    row_tests = _row_tests(doc)
    if row_tests:
        counts = conn.execute(
            "SELECT " + ", ".join(sql for _name, sql in row_tests) + f' FROM "{doc.name}" WHERE {where}', params or []
        ).fetchone()
        results |= {name: int(n or 0) for (name, _sql), n in zip(row_tests, counts, strict=True)}
    results |= {name: int(conn.execute(sql, params or []).fetchone()[0]) for name, sql in _test_queries(doc, where)}
    return results
