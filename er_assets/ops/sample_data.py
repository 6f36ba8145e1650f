"""Deterministic sample records for a domain's source table, generated in DuckDB SQL.

Values follow each schema field's AWS attribute type (and, for free-form STRING fields, its
name: sku, upc, brand, tax_id ...). A share of records are true duplicates of an earlier
entity with realistic noise: case and punctuation changes, abbreviations, re-formatted phone
numbers, typos and missing values. Another share re-describe, with the same noise, entities
that earlier periods of the domain created, as a feed does when a customer comes back: an
entity's values follow from its global number and the seed alone, never from the period. The
ground truth is kept in a `true_entity` column, the same in every period for the same entity,
which is not a schema field and so never reaches matching.

Everything is one INSERT ... SELECT over `range(n)`: a million customers take seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from er_assets.config import Domain

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Wei",
    "Aisha",
    "Olga",
    "Hiroshi",
    "Fatima",
    "Liam",
    "Noah",
    "Emma",
    "Sofia",
    "Mateo",
    "Priya",
    "Chen",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "O'Brien",
    "Nguyen",
    "Patel",
    "Kowalski",
    "Schmidt",
    "Rossi",
]
STREETS = [
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Ridge",
    "River",
    "Church",
    "Highland",
    "Mill",
    "Forest",
    "Spring",
    "Center",
    "Union",
]
CITIES = [
    ("New York", "NY", "100"),
    ("Boston", "MA", "021"),
    ("Chicago", "IL", "606"),
    ("Houston", "TX", "770"),
    ("Phoenix", "AZ", "850"),
    ("Seattle", "WA", "981"),
    ("Denver", "CO", "802"),
    ("Atlanta", "GA", "303"),
    ("Miami", "FL", "331"),
    ("Portland", "OR", "972"),
    ("Newark", "NJ", "071"),
    ("Austin", "TX", "787"),
]
MAIL_DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "inbox.example.com"]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay", "Soylent"]
PRODUCTS = ["Widget", "Gadget", "Sprocket", "Gizmo", "Bracket", "Valve", "Sensor", "Adapter", "Cable", "Filter"]
CATEGORIES = ["Hardware", "Electronics", "Plumbing", "Automotive", "Garden", "Office"]
COMPANY_SUFFIX = ["Inc", "LLC", "Corp", "Ltd", "Co"]

DUPLICATE_SHARE = 0.2  # records that re-describe an entity earlier in the period
RETURNING_SHARE = 0.15  # records that re-describe an entity of an earlier period
# A returning entity comes from 1 to RETURNING_WINDOW periods back, each period 2/3 as likely as
# the next one: most come back soon, as customers do, so a short seeded history holds most of them.
RETURNING_WINDOW, RETURNING_DECAY = 30, 2 / 3
# ... and is one of the first RETURNING_POOL of the entities that period created, which assumes
# that it was seeded with a similar volume: a quiet weekend still created that many.
RETURNING_POOL = 0.5
# Entity numbers are the period start's ordinal day times this plus the entity's number in its
# period, unique across periods as long as a period has fewer entities.
PERIOD_ENTITIES = 10_000_000
# Periods back from a period start, by cadence (`back` counts periods).
PERIOD_STEP = {"daily": "to_days(back)", "weekly": "to_days(7 * back)", "monthly": "to_months(back)"}


def _draw(salt: str, key: str = "entity") -> str:
    """A uniform 64-bit draw for `key` (an entity, or a record or slot of the period) and `salt`.

    An entity's draws use the global $seed, so that it has the same values in every period it
    appears in; a record's use the period's seed, so that periods draw different duplicates
    and noise. The hash is hashed again: DuckDB combines a multi-argument hash's parts so
    plainly that the low bits of two salts' draws are tied (an entity's first name all but
    fixed its last name and city, and unrelated entities shared all three far beyond chance).
    """
    seed = "$seed" if key == "entity" else "period_seed"
    return f"hash(hash({key}, '{salt}', {seed}))"


def _pick(values: list[str], salt: str, key: str = "entity") -> str:
    items = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"[{items}][CAST(1 + {_draw(salt, key)} % {len(values)} AS BIGINT)]"


def _noisy(expr: str, salt: str, kinds: tuple[str, ...]) -> str:
    """On duplicates, apply one of the noise kinds (chosen by hash) to a clean value."""
    forms = {
        "upper": f"upper({expr})",
        "lower": f"lower({expr})",
        "pad": f"'  ' || {expr} || ' '",
        "typo": (
            f"CASE WHEN length({expr}) > 3 THEN left({expr}, length({expr}) - 2) || right({expr}, 1) ELSE {expr} END"
        ),
        "null": "NULL",
        "punct": f"replace({expr}, ' ', '.')",
    }
    arms = " ".join(f"WHEN {i} THEN {forms[k]}" for i, k in enumerate(kinds))
    # Two of three duplicates keep the value untouched, so rules have something to match on.
    kind = f"{_draw(salt + 'n', 'rec')} % {len(kinds)}"
    return f"CASE WHEN dup AND {_draw(salt, 'rec')} % 3 = 0 THEN (CASE {kind} {arms} END) ELSE {expr} END"


def _phone(salt: str) -> str:
    digits = f"lpad(CAST(2000000000 + {_draw(salt)} % 7999999999 AS VARCHAR), 10, '0')"
    clean = f"'(' || substr({digits}, 1, 3) || ') ' || substr({digits}, 4, 3) || '-' || substr({digits}, 7, 4)"
    dashed = f"substr({digits}, 1, 3) || '-' || substr({digits}, 4, 3) || '-' || substr({digits}, 7, 4)"
    return f"CASE WHEN dup AND {_draw(salt + 'f', 'rec')} % 2 = 0 THEN {dashed} ELSE {clean} END"


def _field_sql(name: str, attr_type: str, id_prefix: str) -> str:
    lname = name.lower()
    first, last = _pick(FIRST, "first"), _pick(LAST, "last")
    city = f"CAST({_draw('city')} % {len(CITIES)} AS BIGINT)"
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
        # A number from a range wide enough that entities of many periods rarely share an email.
        number = f"CAST({_draw('mn')} % 100000 AS VARCHAR)"
        local = f"lower({first}) || '.' || lower(replace({last}, '''', '')) || {number}"
        email = f"{local} || '@' || {_pick(MAIL_DOMAINS, 'md')}"
        return _noisy(email, "em", ("upper", "pad", "null"))
    if attr_type in ("PHONE", "PHONE_NUMBER"):
        return _noisy(_phone("ph"), "phn", ("null", "pad"))
    if attr_type == "ADDRESS_STREET1" or attr_type == "ADDRESS":
        number = f"CAST(1 + {_draw('no')} % 9899 AS VARCHAR)"
        street = f"{number} || ' ' || {_pick(STREETS, 'st')}"
        abbreviated = f"dup AND {_draw('abbr', 'rec')} % 2 = 0"
        return f"CASE WHEN {abbreviated} THEN {street} || ' St.' ELSE {street} || ' Street' END"
    if attr_type == "ADDRESS_CITY":
        return _noisy(f"[{', '.join(repr(c[0]) for c in CITIES)}][1 + {city}]", "ci", ("upper", "lower"))
    if attr_type == "ADDRESS_STATE":
        return f"[{', '.join(repr(c[1]) for c in CITIES)}][1 + {city}]"
    if attr_type == "ADDRESS_POSTALCODE":
        zip3 = f"[{', '.join(repr(c[2]) for c in CITIES)}][1 + {city}]"
        return f"{zip3} || lpad(CAST({_draw('zip')} % 100 AS VARCHAR), 2, '0')"
    if attr_type == "ADDRESS_COUNTRY":
        return "'US'"
    if attr_type == "DATE":
        return f"CAST(DATE '1950-01-01' + CAST({_draw('dob')} % 20000 AS INTEGER) AS VARCHAR)"
    if "upc" in lname:
        return _noisy(f"lpad(CAST({_draw('upc')} % 999999999999 AS VARCHAR), 12, '0')", "upc", ("null",))
    if "sku" in lname:
        number = f"lpad(CAST({_draw('sku')} % 1000000 AS VARCHAR), 6, '0')"  # as emails' numbers
        sku = f"upper(left({_pick(BRANDS, 'brand')}, 3)) || '-' || {number}"
        return _noisy(sku, "sk", ("lower", "pad"))
    if "brand" in lname:
        return _noisy(_pick(BRANDS, "brand"), "br", ("upper", "lower"))
    if "tax" in lname:
        tin = f"lpad(CAST({_draw('tin')} % 999999999 AS VARCHAR), 9, '0')"
        dashed = f"substr({tin}, 1, 2) || '-' || substr({tin}, 3)"
        return f"CASE WHEN dup AND {_draw('tinf', 'rec')} % 2 = 0 THEN {tin} ELSE {dashed} END"
    if "category" in lname:
        return _pick(CATEGORIES, "cat")
    if "name" in lname:  # product names and other free-form names
        number = f"CAST({_draw('pnn')} % 100000 AS VARCHAR)"  # as emails' numbers
        name = f"{_pick(BRANDS, 'brand')} || ' ' || {_pick(PRODUCTS, 'pw')} || ' ' || {number}"
        return _noisy(name, "pn", ("upper", "lower", "punct"))
    return f"'{lname}-' || CAST({_draw(lname)} % 100000 AS VARCHAR)"


def _ordinal(date: str) -> str:
    """The ordinal day of a date expression, as Python's date.toordinal()."""
    return f"(CAST({date} AS DATE) - DATE '0001-01-01' + 1)"


def generate_sql(domain: Domain, returning: float = RETURNING_SHARE) -> str:
    """SELECT producing $n records of $entities entities dated in [$start, $end), with $seed
    fixing every entity's values in whichever period it appears.

    The period's entities take slots 0 to $entities - 1: records beyond those re-describe one
    of them. The last `returning` share of the slots stand for entities of earlier periods,
    whose global number is computed rather than looked up, so that no period depends on the
    table's contents: a period starting `back` periods earlier, and one of the first
    RETURNING_POOL of the entities created then (which were new there as long as `returning`
    stays below 1 - RETURNING_POOL).
    """
    id_prefix = domain.name[:1].upper()
    fields = ",\n       ".join(
        f'{_field_sql(f.fieldName, f.type, id_prefix)} AS "{f.fieldName}"' for f in domain.schema.mappedInputFields
    )
    # back = 1 + floor(ln u / ln decay), u uniform in (0, 1): k with probability decay^(k-1) (1 - decay).
    uniform = f"({_draw('back', 'slot')} % 1000000 + 0.5) / 1000000"
    back = f"least({RETURNING_WINDOW}, 1 + CAST(floor(ln({uniform}) / ln({RETURNING_DECAY})) AS BIGINT))"
    earlier = _ordinal(f"CAST($start AS DATE) - {PERIOD_STEP[domain.schedule.cadence]}")
    pool = f"greatest(1, CAST(floor($entities * {RETURNING_POOL}) AS BIGINT))"
    return f"""
WITH period AS (
    SELECT day, $seed + day AS period_seed, $entities - CAST(round($entities * {returning}) AS BIGINT) AS fresh
    FROM (SELECT {_ordinal("$start")} AS day)
),
slots AS (
    SELECT rec, day, period_seed, fresh,
           CAST(CASE WHEN rec < $entities THEN rec ELSE {_draw("of", "rec")} % $entities END AS BIGINT) AS slot
    FROM range($n) AS t(rec), period
),
draws AS (
    SELECT *, {back} AS back FROM slots
),
recs AS (
    SELECT rec, period_seed,
           rec >= $entities OR slot >= fresh AS dup,
           CASE WHEN slot < fresh THEN day * {PERIOD_ENTITIES} + slot
                ELSE {earlier} * {PERIOD_ENTITIES} + CAST({_draw("pick", "slot")} % {pool} AS BIGINT) END AS entity
    FROM draws
)
SELECT {fields},
       CAST($start AS DATE) + CAST({_draw("day", "rec")} % $days AS INTEGER) AS "{domain.source.partition_column}",
       '{id_prefix}E' || CAST(entity AS VARCHAR) AS true_entity
FROM recs
"""


def seed_source(
    con, domain: Domain, start: dt.date, end: dt.date, records: int, seed: int = 7, returning: float = RETURNING_SHARE
) -> int:
    """Replace the source rows dated in [start, end) with `records` generated ones, a `returning`
    share of them re-describing entities of earlier periods.

    Unique ids start from an offset derived from the period's start, so that seeding several
    periods never produces the same id twice; entity numbers too, and since a returning entity's
    number is computed, periods may be seeded in any order with the same result.
    """
    table = f'"{domain.source.table}"'
    part = f'"{domain.source.partition_column}"'
    days = (end - start).days
    entities = max(1, round(records * (1 - DUPLICATE_SHARE)))
    params = {
        "n": records,
        "entities": entities,
        "seed": seed,
        "start": start,
        "days": days,
        "id_offset": start.toordinal() * 10_000_000,
    }
    select = generate_sql(domain, returning)
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
SQL_DEFECTS = ("null_required", "duplicate_ids", "glue_value")
# glue_value: records given one placeholder value, well over the 500 records that make an
# entity oversized by default.
GLUE_RECORDS = 600


def glue_field(domain: Domain) -> tuple[str, str]:
    """The field a placeholder glues records on, and the placeholder: the first email (a feed's
    classic 'noemail@example.com'), else the first field that alone makes a match key some rule
    matches on alone: only such a field joins unrelated records into one entity by itself."""
    fields = domain.schema.mappedInputFields
    email = next((f.fieldName for f in fields if f.type == "EMAIL_ADDRESS"), None)
    if email:
        return email, "noemail@example.com"
    rules = domain.resolution.ruleBasedProperties
    alone = {r.matchingKeys[0] for r in rules.rules if len(r.matchingKeys) == 1} if rules else set()
    keys = [f.matchKey for f in fields]
    field = next((f.fieldName for f in fields if f.matchKey in alone and keys.count(f.matchKey) == 1), None)
    if field is None:
        raise ValueError(f"domain {domain.name!r} has no email and no field that matches alone: nothing to glue on")
    return field, "N/A"


def _spoil(con, domain: Domain, start: dt.date, end: dt.date, defect: str) -> None:
    table, part, uid = f'"{domain.source.table}"', f'"{domain.source.partition_column}"', f'"{domain.schema.unique_id}"'
    period = f"{part} >= $start AND {part} < $end"
    if defect == "null_required":  # one record in 20 loses a required value
        field = next(f for f in domain.dq.required_fields if f != domain.schema.unique_id)
        con.execute(
            f'UPDATE {table} SET "{field}" = NULL WHERE {period} AND hash({uid}) % 20 = 0', {"start": start, "end": end}
        )
    elif defect == "duplicate_ids":  # three records re-use the period's first id
        con.execute(
            f"""UPDATE {table} SET {uid} = (SELECT min({uid}) FROM {table} WHERE {period})
                        WHERE {uid} IN (SELECT {uid} FROM {table} WHERE {period} ORDER BY {uid} LIMIT 3 OFFSET 1)""",
            {"start": start, "end": end},
        )
    elif defect == "glue_value":  # GLUE_RECORDS records (all, if fewer) share a placeholder
        field, placeholder = glue_field(domain)
        # Records that already share their entity with another go first: they were matched anyway,
        # so the match rate barely moves and the oversized entity is left for the load check to find.
        matched_first = f"count(*) OVER (PARTITION BY true_entity) > 1 DESC, hash({uid})"
        chosen = f"SELECT {uid} FROM {table} WHERE {period} ORDER BY {matched_first} LIMIT {GLUE_RECORDS}"
        con.execute(
            f'UPDATE {table} SET "{field}" = $placeholder WHERE {uid} IN ({chosen})',
            {"start": start, "end": end, "placeholder": placeholder},
        )
    else:
        raise ValueError(f"unknown defect {defect!r}")


def seed_partition(domain: Domain, partition: str, records: int, warehouse: Path, defect: str | None = None) -> int:
    """Seed one partition's period of the domain's source table in a DuckDB file, with an
    optional planted defect (VOLUME_DEFECTS, SQL_DEFECTS); the number of records seeded."""
    import duckdb

    from er_assets.partitions import business_dates

    start, end = business_dates(domain, partition)
    records = round(records * (1.0 if defect is None else VOLUME_DEFECTS.get(defect, 1.0)))
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    try:
        seed_source(con, domain, start, end, records)
        if defect in SQL_DEFECTS:
            _spoil(con, domain, start, end, defect)
    finally:
        con.close()
    return records
