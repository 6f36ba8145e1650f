"""Deterministic sample records for a domain's source table, generated in DuckDB SQL.

Values follow each schema field's AWS attribute type (and, for free-form STRING fields, its
name: sku, upc, brand, tax_id ...). A share of records are true duplicates of an earlier
entity with realistic noise: case and punctuation changes, abbreviations, re-formatted phone
numbers, typos and missing values. The ground truth is kept in an `entity_id` column, which
is not a schema field and so never reaches matching.

Everything is one INSERT ... SELECT over `range(n)`: a million customers take seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from er_assets.config import Domain

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
         "Wei", "Aisha", "Olga", "Hiroshi", "Fatima", "Liam", "Noah", "Emma", "Sofia", "Mateo", "Priya", "Chen"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
        "O'Brien", "Nguyen", "Patel", "Kowalski", "Schmidt", "Rossi"]
STREETS = ["Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset",
           "Ridge", "River", "Church", "Highland", "Mill", "Forest", "Spring", "Center", "Union"]
CITIES = [("New York", "NY", "100"), ("Boston", "MA", "021"), ("Chicago", "IL", "606"), ("Houston", "TX", "770"),
          ("Phoenix", "AZ", "850"), ("Seattle", "WA", "981"), ("Denver", "CO", "802"), ("Atlanta", "GA", "303"),
          ("Miami", "FL", "331"), ("Portland", "OR", "972"), ("Newark", "NJ", "071"), ("Austin", "TX", "787")]
MAIL_DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "inbox.example.com"]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay", "Soylent"]
PRODUCTS = ["Widget", "Gadget", "Sprocket", "Gizmo", "Bracket", "Valve", "Sensor", "Adapter", "Cable", "Filter"]
CATEGORIES = ["Hardware", "Electronics", "Plumbing", "Automotive", "Garden", "Office"]
COMPANY_SUFFIX = ["Inc", "LLC", "Corp", "Ltd", "Co"]

DUPLICATE_SHARE = 0.2  # records that re-describe an earlier entity


def _pick(values: list[str], salt: str, key: str = "entity") -> str:
    items = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"[{items}][CAST(1 + hash({key}, '{salt}', $seed) % {len(values)} AS BIGINT)]"


def _noisy(expr: str, salt: str, kinds: tuple[str, ...]) -> str:
    """On duplicates, apply one of the noise kinds (chosen by hash) to a clean value."""
    forms = {
        "upper": f"upper({expr})",
        "lower": f"lower({expr})",
        "pad": f"'  ' || {expr} || ' '",
        "typo": f"CASE WHEN length({expr}) > 3 THEN left({expr}, length({expr}) - 2) || right({expr}, 1) ELSE {expr} END",
        "null": "NULL",
        "punct": f"replace({expr}, ' ', '.')",
    }
    arms = " ".join(f"WHEN {i} THEN {forms[k]}" for i, k in enumerate(kinds))
    # Two of three duplicates keep the value untouched, so rules have something to match on.
    return f"CASE WHEN dup AND hash(rec, '{salt}', $seed) % 3 = 0 THEN (CASE hash(rec, '{salt}n', $seed) % {len(kinds)} {arms} END) ELSE {expr} END"


def _phone(salt: str) -> str:
    digits = f"lpad(CAST(2000000000 + hash(entity, '{salt}', $seed) % 7999999999 AS VARCHAR), 10, '0')"
    clean = f"'(' || substr({digits}, 1, 3) || ') ' || substr({digits}, 4, 3) || '-' || substr({digits}, 7, 4)"
    dashed = f"substr({digits}, 1, 3) || '-' || substr({digits}, 4, 3) || '-' || substr({digits}, 7, 4)"
    return f"CASE WHEN dup AND hash(rec, '{salt}f', $seed) % 2 = 0 THEN {dashed} ELSE {clean} END"


def _field_sql(name: str, attr_type: str, id_prefix: str) -> str:
    lname = name.lower()
    first, last = _pick(FIRST, "first"), _pick(LAST, "last")
    city = f"CAST(hash(entity, 'city', $seed) % {len(CITIES)} AS BIGINT)"
    if attr_type == "UNIQUE_ID":
        return f"'{id_prefix}' || CAST($id_offset + rec + 1 AS VARCHAR)"
    if attr_type == "NAME_FIRST":
        return _noisy(first, "nf", ("upper", "lower", "pad", "typo"))
    if attr_type == "NAME_LAST":
        return _noisy(last, "nl", ("upper", "lower", "pad", "typo"))
    if attr_type in ("NAME", "NAME_MIDDLE") or lname in ("vendor_name", "company_name"):
        company = f"{last} || ' ' || {_pick(PRODUCTS, 'cw')} || ' ' || {_pick(COMPANY_SUFFIX, 'cs')}"
        return _noisy(company, "cn", ("upper", "lower", "punct", "pad"))
    if attr_type == "EMAIL_ADDRESS":
        email = f"lower({first}) || '.' || lower(replace({last}, '''', '')) || CAST(entity % 1000 AS VARCHAR) || '@' || {_pick(MAIL_DOMAINS, 'md')}"
        return _noisy(email, "em", ("upper", "pad", "null"))
    if attr_type in ("PHONE", "PHONE_NUMBER"):
        return _noisy(_phone("ph"), "phn", ("null", "pad"))
    if attr_type == "ADDRESS_STREET1" or attr_type == "ADDRESS":
        number = "CAST(1 + hash(entity, 'no', $seed) % 9899 AS VARCHAR)"
        street = f"{number} || ' ' || {_pick(STREETS, 'st')}"
        return f"CASE WHEN dup AND hash(rec, 'abbr', $seed) % 2 = 0 THEN {street} || ' St.' ELSE {street} || ' Street' END"
    if attr_type == "ADDRESS_CITY":
        return _noisy(f"[{', '.join(repr(c[0]) for c in CITIES)}][1 + {city}]", "ci", ("upper", "lower"))
    if attr_type == "ADDRESS_STATE":
        return f"[{', '.join(repr(c[1]) for c in CITIES)}][1 + {city}]"
    if attr_type == "ADDRESS_POSTALCODE":
        return f"[{', '.join(repr(c[2]) for c in CITIES)}][1 + {city}] || lpad(CAST(hash(entity, 'zip', $seed) % 100 AS VARCHAR), 2, '0')"
    if attr_type == "ADDRESS_COUNTRY":
        return "'US'"
    if attr_type == "DATE":
        return "CAST(DATE '1950-01-01' + CAST(hash(entity, 'dob', $seed) % 20000 AS INTEGER) AS VARCHAR)"
    if "upc" in lname:
        return _noisy("lpad(CAST(hash(entity, 'upc', $seed) % 999999999999 AS VARCHAR), 12, '0')", "upc", ("null",))
    if "sku" in lname:
        sku = f"upper(left({_pick(BRANDS, 'brand')}, 3)) || '-' || lpad(CAST(hash(entity, 'sku', $seed) % 100000 AS VARCHAR), 5, '0')"
        return _noisy(sku, "sk", ("lower", "pad"))
    if "brand" in lname:
        return _noisy(_pick(BRANDS, "brand"), "br", ("upper", "lower"))
    if "tax" in lname:
        tin = "lpad(CAST(hash(entity, 'tin', $seed) % 999999999 AS VARCHAR), 9, '0')"
        return f"CASE WHEN dup AND hash(rec, 'tinf', $seed) % 2 = 0 THEN {tin} ELSE substr({tin}, 1, 2) || '-' || substr({tin}, 3) END"
    if "category" in lname:
        return _pick(CATEGORIES, "cat")
    if "name" in lname:  # product names and other free-form names
        name = f"{_pick(BRANDS, 'brand')} || ' ' || {_pick(PRODUCTS, 'pw')} || ' ' || CAST(entity % 500 AS VARCHAR)"
        return _noisy(name, "pn", ("upper", "lower", "punct"))
    return f"'{lname}-' || CAST(hash(entity, '{lname}', $seed) % 100000 AS VARCHAR)"


def generate_sql(domain: Domain) -> str:
    """SELECT producing $n records dated in [$start, $end), with $seed fixing the output."""
    id_prefix = domain.name[:1].upper()
    fields = ",\n       ".join(
        f"{_field_sql(f.fieldName, f.type, id_prefix)} AS \"{f.fieldName}\"" for f in domain.schema.mappedInputFields
    )
    return f"""
WITH recs AS (
    SELECT rec,
           rec >= $entities AS dup,
           CASE WHEN rec < $entities THEN rec ELSE hash(rec, 'of', $seed) % $entities END AS entity
    FROM range($n) AS t(rec)
)
SELECT {fields},
       CAST($start AS DATE) + CAST(hash(rec, 'day', $seed) % $days AS INTEGER) AS "{domain.source.partition_column}",
       '{id_prefix}E' || CAST(entity AS VARCHAR) AS entity_id
FROM recs
"""


def seed_source(con, domain: Domain, start: dt.date, end: dt.date, records: int, seed: int = 7) -> int:
    """Replace the source rows dated in [start, end) with `records` generated ones.

    Unique ids start from an offset derived from the period's start, so that seeding several
    periods never produces the same id twice.
    """
    table = f'"{domain.source.table}"'
    part = f'"{domain.source.partition_column}"'
    days = (end - start).days
    entities = max(1, round(records * (1 - DUPLICATE_SHARE)))
    params = {
        "n": records,
        "entities": entities,
        "seed": seed + start.toordinal(),
        "start": start,
        "days": days,
        "id_offset": start.toordinal() * 10_000_000,
    }
    select = generate_sql(domain)
    con.execute("BEGIN")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM ({select}) LIMIT 0", params)
        con.execute(f"DELETE FROM {table} WHERE {part} >= $start AND {part} < $end", {"start": start, "end": end})
        con.execute(f"INSERT INTO {table} BY NAME {select}", params)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return records


# Defects the demo plants in a seeded period, each caught by one check: the number of records
# is scaled (0 = the feed never arrived), or a bulk UPDATE spoils the period's rows.
VOLUME_DEFECTS = {"missing_feed": 0.0, "volume_spike": 4.0, "volume_drop": 0.2}
SQL_DEFECTS = ("null_required", "duplicate_ids")


def _spoil(con, domain: Domain, start: dt.date, end: dt.date, defect: str) -> None:
    table, part, uid = f'"{domain.source.table}"', f'"{domain.source.partition_column}"', f'"{domain.schema.unique_id}"'
    period = f"{part} >= $start AND {part} < $end"
    if defect == "null_required":  # one record in 20 loses a required value
        field = next(f for f in domain.dq.required_fields if f != domain.schema.unique_id)
        con.execute(f'UPDATE {table} SET "{field}" = NULL WHERE {period} AND hash({uid}) % 20 = 0',
                    {"start": start, "end": end})
    elif defect == "duplicate_ids":  # three records re-use the period's first id
        con.execute(f"""UPDATE {table} SET {uid} = (SELECT min({uid}) FROM {table} WHERE {period})
                        WHERE {uid} IN (SELECT {uid} FROM {table} WHERE {period} ORDER BY {uid} LIMIT 3 OFFSET 1)""",
                    {"start": start, "end": end})
    else:
        raise ValueError(f"unknown defect {defect!r}")


def seed_partition(domain: Domain, partition: str, records: int, warehouse: Path, defect: str | None = None) -> int:
    """Seed one partition's period of the domain's source table in a DuckDB file, with an
    optional planted defect (VOLUME_DEFECTS, SQL_DEFECTS); the number of records seeded."""
    import duckdb

    from er_assets.partitions import business_dates

    start, end = business_dates(domain, partition)
    records = round(records * VOLUME_DEFECTS.get(defect, 1.0))
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    try:
        seed_source(con, domain, start, end, records)
        if defect in SQL_DEFECTS:
            _spoil(con, domain, start, end, defect)
    finally:
        con.close()
    return records
