#!/usr/bin/env python3
"""Runs SQL statements on current ClickHouse in-process (PyPI chdb-core).

Reads a JSON array of statements from stdin, each an object:

    {"sql": "...",            # one statement, without FORMAT or SETTINGS
     "format": "JSONCompact", # optional output format (default: none)
     "settings": {"k": "v"},  # optional query-level settings
     "database": "db"}        # optional database to USE first

and runs them in order in one chdb session on a fresh, empty data directory
(so tables created by earlier statements are there for later ones). Writes a
JSON array to stdout, one object per statement, in the same order:

    {"ok": true, "rows": 3}      # rows: for JSON* formats, as the answer says
    {"ok": false, "error": "Code: 62. DB::Exception: ..."}

A failing statement does not stop the run: the caller compares every
statement's outcome with another server's.

`run_sql.py --version` prints the engine's ClickHouse version instead.
"""

import json
import shutil
import sys
import tempfile

from chdb import session


def rows_in(output: bytes, fmt: str):
    """Row count of an answer when its format tells it, else None."""
    if fmt in ("JSON", "JSONCompact", "JSONStrings", "JSONCompactStrings"):
        try:
            return json.loads(output)["rows"]
        except (ValueError, KeyError):
            return None
    if fmt in ("CSVWithNames", "TSVWithNames"):
        return max(len(output.decode("utf-8", "replace").splitlines()) - 1, 0)
    return None


def with_settings(sql: str, settings: dict) -> str:
    """The statement with its settings in a SETTINGS clause: at the end of a
    query, before FORMAT in an INSERT (whose data follows FORMAT)."""
    if not settings:
        return sql
    pairs = ", ".join(f"{name} = {quote_setting(value)}" for name, value in settings.items())
    if sql.lstrip().upper().startswith("INSERT"):
        at = sql.upper().find(" FORMAT ")
        if at >= 0:
            return f"{sql[:at]} SETTINGS {pairs}{sql[at:]}"
    return f"{sql}\nSETTINGS {pairs}"


def quote_setting(value) -> str:
    text = str(value)
    if text.lstrip("-").isdigit():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        # The engine's own release, e.g. 26.9.2.1 (not the wheel's version).
        print(session.Session().query("SELECT version()", "TSVRaw").bytes().decode().strip())
        return 0
    statements = json.load(sys.stdin)
    data_dir = tempfile.mkdtemp(prefix="citybrain-chdb-")
    results = []
    try:
        sess = session.Session(data_dir)
        current_database = None
        for statement in statements:
            fmt = statement.get("format") or ""
            try:
                database = statement.get("database")
                if database and database != current_database:
                    sess.query(f"USE {database}")
                    current_database = database
                sql = with_settings(statement["sql"], statement.get("settings") or {})
                answer = sess.query(sql, fmt) if fmt else sess.query(sql)
                output = answer.bytes() if answer is not None else b""
                results.append({"ok": True, "rows": rows_in(output, fmt)})
            except Exception as error:  # chdb raises its own error types
                results.append({"ok": False, "error": str(error)})
        sess.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
