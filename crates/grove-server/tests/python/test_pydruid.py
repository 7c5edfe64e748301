"""pydruid (PyPI) against a real Grove: its DB-API and its SQLAlchemy `druid://` dialect.

pydruid's DB-API posts `{"query", "context", "header"}` to the SQL endpoint (default
resultFormat `object`), streams the JSON array back and parses it chunk by chunk. It has
paramstyle `pyformat`: `%(name)s` parameters are escaped and interpolated client side,
so Grove sees plain SQL. The dialect lists schemas, tables and columns with
INFORMATION_SCHEMA queries (SCHEMATA, TABLES, COLUMNS with JDBC_TYPE).
"""

import warnings

import pytest
from pydruid.db import connect, exceptions
from sqlalchemy import (
    BigInteger, Float, MetaData, String, Table, TIMESTAMP, create_engine, func, inspect,
    select, text,
)

# pydruid 0.6.9 predates SQLAlchemy 2: it still has `dbapi()` (not `import_dbapi()`)
# and does not set `supports_statement_cache`. Both only warn.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning",
                                        "ignore::DeprecationWarning")


@pytest.fixture
def cursor(grove):
    conn = connect(host=grove.host, port=grove.port, path="/druid/v2/sql/", scheme="http")
    yield conn.cursor()
    conn.close()


@pytest.fixture
def engine(grove):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eng = create_engine(f"druid://{grove.host}:{grove.port}/druid/v2/sql/")
    yield eng
    eng.dispose()


def test_dbapi_rows_and_description(cursor):
    cursor.execute("SELECT __time, page, n, \"user\", score FROM wiki ORDER BY __time")
    # Types are inferred from the first row's JSON values: strings (and nulls) are 1,
    # numbers 2; only strings are nullable.
    assert [(d[0], d[1], d[6]) for d in cursor.description] == [
        ("__time", 1, True), ("page", 1, True), ("n", 2, False), ("user", 1, True),
        ("score", 2, False),
    ]
    rows = cursor.fetchall()
    assert [tuple(r) for r in rows] == [
        ("2015-09-12T00:46:58.771Z", "Rust", 5, "alice", 7.5),
        ("2015-09-12T01:00:00.000Z", "a,b", 7, None, 10.5),
        ("2015-09-12T02:00:00.000Z", "Zig", 9, "bob", 13.5),
        ("2015-09-13T03:00:00.000Z", "O'Brien", 11, "alice", 16.5),
        ("2015-09-13T04:30:00.000Z", "Zürich", 13, "carol", 19.5),
    ]
    # Rows are namedtuples; `__time` is not a valid field name, so it is renamed.
    assert rows[0].page == "Rust" and rows[0]._0 == "2015-09-12T00:46:58.771Z"


def test_dbapi_aggregates_fetchone_fetchmany(cursor):
    cursor.execute(
        "SELECT TIME_FLOOR(__time, 'P1D') AS d, COUNT(*) AS c, SUM(n) AS s, AVG(score) AS a "
        "FROM wiki GROUP BY 1 ORDER BY 1"
    )
    assert cursor.fetchone() == ("2015-09-12T00:00:00.000Z", 3, 21, 10.5)
    assert cursor.fetchmany(5) == [("2015-09-13T00:00:00.000Z", 2, 24, 18.0)]
    assert cursor.fetchone() is None
    assert cursor.rowcount == 0

    cursor.execute("SELECT page FROM wiki WHERE n > 100")
    assert cursor.fetchall() == []


def test_dbapi_parameters(cursor):
    # pyformat parameters, interpolated by pydruid: strings quoted (quotes doubled),
    # numbers as they are, lists joined for IN.
    cursor.execute(
        "SELECT page, n FROM wiki WHERE page = %(page)s OR (n >= %(low)s AND \"user\" IN (%(users)s)) "
        "ORDER BY n",
        {"page": "O'Brien", "low": 12, "users": ["carol", "dave"]},
    )
    assert [tuple(r) for r in cursor.fetchall()] == [("O'Brien", 11), ("Zürich", 13)]
    cursor.execute("SELECT COUNT(*) AS c FROM wiki WHERE score > %(x)s", {"x": 10.0})
    assert cursor.fetchall() == [(4,)]


def test_dbapi_header_and_context(grove):
    # `header=True` makes the first row a header: description is (name, None) pairs.
    conn = connect(host=grove.host, port=grove.port, path="/druid/v2/sql/", scheme="http",
                   header=True, context={"sqlTimeZone": "America/Los_Angeles"})
    cur = conn.cursor()
    cur.execute("SELECT __time, page FROM wiki ORDER BY __time LIMIT 1")
    assert cur.description == [("__time", None), ("page", None)]
    assert cur.fetchall() == [("2015-09-11T17:46:58.771-07:00", "Rust")]
    # An empty result still has its header.
    cur.execute("SELECT page FROM wiki WHERE n > 100")
    assert cur.description == [("page", None)]
    assert cur.fetchall() == []
    conn.close()


def test_dbapi_basic_auth_is_accepted(grove):
    # pydruid sends credentials as HTTP basic auth; Grove has no auth and ignores them.
    conn = connect(host=grove.host, port=grove.port, path="/druid/v2/sql/", scheme="http",
                   user="admin", password="secret")
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) AS c FROM wiki")
    assert cur.fetchall() == [(5,)]


def test_dbapi_errors(cursor):
    # pydruid formats Druid's error JSON as "{error} ({category}): {errorMessage}".
    with pytest.raises(exceptions.ProgrammingError) as e:
        cursor.execute("SELECT nope FROM wiki")
    assert str(e.value).startswith("druidException (INVALID_INPUT): ")
    assert "nope" in str(e.value)
    with pytest.raises(exceptions.ProgrammingError) as e:
        cursor.execute("SELECT * FROM missing_table")
    assert "missing_table" in str(e.value)


def test_dbapi_information_schema(cursor):
    # The queries the SQLAlchemy dialect sends, read here through the DB-API.
    cursor.execute("SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA ORDER BY 1")
    schemas = [r.SCHEMA_NAME for r in cursor.fetchall()]
    assert {"INFORMATION_SCHEMA", "druid", "sys"} <= set(schemas), schemas
    cursor.execute(
        "SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_NAME = 'wiki'"
    )
    assert cursor.fetchall() == [("druid", "druid", "TABLE")]
    cursor.execute(
        "SELECT COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, JDBC_TYPE, IS_NULLABLE "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = 'wiki' "
        "ORDER BY ORDINAL_POSITION"
    )
    cols = [tuple(r) for r in cursor.fetchall()]
    assert [c[0] for c in cols] == ["__time", "page", "n", "user", "score"]
    # As in Druid: ORDINAL_POSITION is a string, counted from 0.
    assert [c[1] for c in cols] == ["0", "1", "2", "3", "4"]
    # JDBC types: TIMESTAMP 93, VARCHAR 12, BIGINT -5, DOUBLE 8.
    assert [(c[2], c[3]) for c in cols] == [
        ("TIMESTAMP", 93), ("VARCHAR", 12), ("BIGINT", -5), ("VARCHAR", 12), ("DOUBLE", 8),
    ]
    assert cols[0][4] == "NO"


def test_sqlalchemy_inspection(engine):
    insp = inspect(engine)
    schemas = insp.get_schema_names()
    assert "druid" in schemas and "sys" in schemas
    assert "INFORMATION_SCHEMA" not in schemas  # pydruid hides it
    assert insp.get_table_names(schema="druid") == ["wiki"]
    all_tables = insp.get_table_names()
    assert "wiki" in all_tables and "segments" in all_tables and "TABLES" in all_tables

    columns = insp.get_columns("wiki")
    assert [c["name"] for c in columns] == ["__time", "page", "n", "user", "score"]
    types = [type(c["type"]) for c in columns]
    assert types == [TIMESTAMP, String, BigInteger, String, Float], types
    assert [c["nullable"] for c in columns] == [False, True, True, True, True]
    assert all(c["default"] is None for c in columns)
    assert [c["name"] for c in insp.get_columns("wiki", schema="druid")] == [
        "__time", "page", "n", "user", "score"]


def test_sqlalchemy_has_table(engine):
    # pydruid's `has_table(connection, table_name, schema=None)` has no `**kw`, and
    # SQLAlchemy 2's `Inspector.has_table` passes `info_cache=`: a TypeError in pydruid,
    # whatever the server. Call the dialect the way SQLAlchemy 1.x did.
    with engine.connect() as conn:
        assert engine.dialect.has_table(conn, "wiki") is True
        assert engine.dialect.has_table(conn, "missing_table") is False


def test_sqlalchemy_queries(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT page, SUM(n) AS s FROM wiki WHERE n > :low GROUP BY page ORDER BY s DESC"),
            {"low": 6},
        ).fetchall()
        assert rows == [("Zürich", 13), ("O'Brien", 11), ("Zig", 9), ("a,b", 7)]

        wiki = Table("wiki", MetaData(), autoload_with=conn)
        assert list(wiki.columns.keys()) == ["__time", "page", "n", "user", "score"]
        query = (
            select(wiki.c.user, func.count().label("c"), func.max(wiki.c.score).label("m"))
            .where(wiki.c.user.is_not(None))
            .where(wiki.c.page != "Rust")
            .group_by(wiki.c.user)
            .order_by(wiki.c.user)
        )
        assert conn.execute(query).fetchall() == [
            ("alice", 1, 16.5), ("bob", 1, 13.5), ("carol", 1, 19.5)]
        result = conn.execute(select(wiki.c.page).where(wiki.c.page.like("Z%")).order_by(wiki.c.page))
        assert list(result.keys()) == ["page"]
        assert result.scalars().all() == ["Zig", "Zürich"]
        assert conn.execute(select(func.count()).select_from(wiki)).scalar() == 5


def test_sqlalchemy_ping(engine):
    # `pool_pre_ping` uses the dialect's do_ping: `SELECT 1` through the DB-API.
    raw = engine.raw_connection()
    try:
        assert engine.dialect.do_ping(raw.dbapi_connection)
    finally:
        raw.close()
