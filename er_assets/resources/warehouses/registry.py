"""The entity registry: durable entity ids across partitions, in the warehouse, written once.

A MatchID labels a group inside one matching job; it says nothing about the next job (AWS
documents no stability of MatchIDs between jobs of a Manual workflow). The registry gives every
record (keyed by its unique id) a durable `entity_id` that follows membership, never MatchIDs:

- `<target>_ENTITY_GROUPS`: each loaded partition's job groups (record, MatchID, whether the
  record was context), kept so that the registry can be replayed in partition order.
- `<target>_ENTITY_MEMBERS`: which entity each record belongs to, with history: the partition
  and run that put it there (`from_*`) and the one that moved it on (`until_*`, NULL while it
  is current).
- `<target>_ENTITY_EVENTS`: created, absorbed (new records joined a known entity), merged (the
  loser points at the winner in `other_entity_id`), split (records moved from `entity_id` to
  `other_entity_id`), each with its partition, run and number of records.
- `<target>_ENTITY_KEYS`: per loaded record version the hashes of its blocking keys, so the
  next extract finds the known entities its records could match without re-reading the
  target (a 64-bit hash joins several times faster than the text over millions of rows; a
  collision only offers one more candidate as context).
- `<target>_ENTITY_PLAN`: one load's changes while it runs (rows keyed by the run).

Applying a partition (`Registry.apply`), all in bulk SQL inside the load's transaction:
1. undo every partition from this one on (a re-run, or a partition loaded after later ones):
   their membership rows are deleted and the rows they closed reopened;
2. assign this partition's groups by overlap: an existing entity survives in the group holding
   most of its records (ties: the group holding its smallest record id); a group several entities
   survive into merges them (the winner has most records, then is oldest, then has the smallest
   id; the losers' other records follow it); an entity whose records sit in other groups than
   its own loses them (split); a group no entity survives into gets a new id derived from this
   partition and its smallest own record id (context records only where it has none). Same
   membership, same ids: a re-run moves nothing;
3. replay, in order, the partitions after it from their stored groups, so the ids are those of
   loading every partition in order;
4. write the current ids onto the target rows of every record that changed.

The SQL is rendered for a `queries.Dialect`: DuckDB runs it locally, Snowflake in production,
with the same statements (both document QUALIFY, COUNT_IF, MD5, UPDATE ... FROM and
IS DISTINCT FROM alike). The warehouse serialises loads per domain: DuckDB holds its file for
one connection at a time, Snowflake takes `lock_sql` first in the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from er_assets.config import Domain
from er_assets.resources.warehouses.base import IdentityFigures
from er_assets.resources.warehouses.queries import Dialect, blank_sql
from er_assets.resources.warehouses.queries import columns_sql as queries_columns
from er_assets.resources.warehouses.queries import table_exists_sql as queries_table_exists

# A new entity's id: "E" and 20 hex digits (80 bits) of MD5 over its partition and smallest own
# record id; both engines' MD5 return lower-case hex.
ENTITY_ID_PREFIX = "E"
# Replayed partitions' rows in the plan are told apart from this marker's (the undo's).
UNDONE = "~undone"
# A rebuild's note of each record's entity before it, to count what moved.
BEFORE = "~before"


@dataclass(frozen=True)
class Tables:
    """The registry's table names for a domain, derived from its target table."""

    groups: str
    members: str
    events: str
    keys: str
    plan: str
    lock: str

    @classmethod
    def of(cls, domain: Domain) -> Tables:
        base = domain.target.table
        return cls(*(f"{base}_entity_{name}" for name in ("groups", "members", "events", "keys", "plan", "lock")))


def create_sql(dialect: Dialect, domain: Domain) -> list[str]:
    """The registry's tables (IF NOT EXISTS): run before the load's transaction, since DDL
    commits an open transaction in Snowflake."""
    t, q = Tables.of(domain), dialect.ident
    return [
        f"CREATE TABLE IF NOT EXISTS {q(t.groups)} (partition_key VARCHAR, record_id VARCHAR, match_id VARCHAR, "
        "is_context BOOLEAN)",
        f"CREATE TABLE IF NOT EXISTS {q(t.members)} (record_id VARCHAR, entity_id VARCHAR, from_partition VARCHAR, "
        "from_run VARCHAR, until_partition VARCHAR, until_run VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS {q(t.events)} (partition_key VARCHAR, run_id VARCHAR, event VARCHAR, "
        f"entity_id VARCHAR, other_entity_id VARCHAR, records BIGINT, recorded_at TIMESTAMP)",
        f"CREATE TABLE IF NOT EXISTS {q(t.keys)} (partition_key VARCHAR, record_id VARCHAR, block_hash BIGINT)",
        f"CREATE TABLE IF NOT EXISTS {q(t.plan)} (run_id VARCHAR, step VARCHAR, record_id VARCHAR, "
        "old_entity VARCHAR, new_entity VARCHAR, new_entity_size BIGINT, kind VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS {q(t.lock)} (domain VARCHAR, held_by VARCHAR)",
    ]


def lock_sql(dialect: Dialect, domain: Domain) -> str:
    """The first statement of a load's transaction in Snowflake: "UPDATE, DELETE and MERGE
    statements hold locks that generally prevent them from running in parallel with other
    UPDATE, DELETE and MERGE statements" (Snowflake, Transactions: resource locking), so two
    loads of a domain take turns. It updates the row `Registry.create` puts there."""
    return f"UPDATE {dialect.ident(Tables.of(domain).lock)} SET held_by = {dialect.param.format('run')}"


def version_sql(dialect: Dialect, domain: Domain) -> str:
    """How far the registry has moved for a partition (bound as `partition`): its membership
    rows made by the other partitions. An extract records it with its fingerprint, and an
    unchanged slice reuses its extract only while it is the same: the context of an extract
    made before other partitions were loaded is stale. The partition's own load does not count,
    so a re-run of a loaded partition still reuses its extract (and its matching job)."""
    t = Tables.of(domain)
    return (
        f"SELECT COUNT(*) FROM {dialect.ident(t.members)} WHERE from_partition <> {dialect.param.format('partition')}"
    )


# --- blocking keys --------------------------------------------------------------------------


def blocking_keys(domain: Domain) -> dict[str, list[list[str]]]:
    """Per blocking key name, its parts, each the fields of one match key (in schema order).

    For exact rules, a key per rule over all its matching keys: two records a rule could match
    have equal values of all of them, so they share the rule's key. Fuzzy conditions and ML
    matching compare values that need not be equal, so there a key per match key: records that
    share any one value are candidates (records alike in every value but equal in none are not
    found: the documented limit of blocking)."""
    fields: dict[str, list[str]] = {}
    for f in domain.schema.mappedInputFields:
        if f.matchKey:
            fields.setdefault(f.matchKey, []).append(f.fieldName)
    rules = domain.resolution.ruleBasedProperties
    if rules is not None:
        return {rule.ruleName: [fields[k] for k in rule.matchingKeys] for rule in rules.rules}
    return {key: [names] for key, names in sorted(fields.items())}


def _coarse(dialect: Dialect, column: str) -> str:
    """A value made coarser than any normalisation the service applies: lower case without
    ASCII punctuation and white space (letters of every script kept), NULL when nothing is
    left. Equal normalised values stay equal here, so a key never misses a candidate the
    service's exact comparison would link (it may add some it would not)."""
    text = f"LOWER({dialect.column_text(column)})"
    return f"NULLIF({dialect.strip.format(text)}, '')"


def _has(columns: Collection[str] | None, names: Iterable[str]) -> bool:
    return columns is None or {n.upper() for n in names} <= {c.upper() for c in columns}


def keys_select(dialect: Dialect, domain: Domain, rows: str, columns: Collection[str] | None = None) -> str:
    """(record_id, block_key) of every record of `rows` (a SELECT with the schema columns, or
    only `columns` of them: the target keeps the fields the workflow outputs), one row per
    blocking key the record has; a key needs a value for every one of its parts (a NULL part
    makes the whole concatenation NULL in both engines), and a key over a field `rows` lacks
    is left out."""
    uid = dialect.column_text(domain.schema.unique_id)
    branches = ["SELECT CAST(NULL AS VARCHAR) AS record_id, CAST(NULL AS VARCHAR) AS block_key"]
    for name, parts in blocking_keys(domain).items():
        if not _has(columns, [c for part in parts for c in part]):
            continue
        values = [
            "NULLIF(" + " || ".join(f"COALESCE({_coarse(dialect, c)}, '')" for c in part) + ", '')" for part in parts
        ]
        key = f"'{name}:' || " + " || '|' || ".join(values)
        branches.append(f"SELECT {uid} AS record_id, {key} AS block_key FROM ({rows})")
    return "SELECT * FROM (" + " UNION ALL ".join(branches) + ") WHERE block_key IS NOT NULL"


def context_sql(
    dialect: Dialect,
    domain: Domain,
    slice_rows: str,
    target: str,
    partition_column: str,
    columns: Collection[str] | None = None,
) -> str:
    """The context a partition's job needs: the latest version of each record of every known
    entity one of the slice's records could match (it shares a blocking key learnt from an
    earlier partition), at most `identity.context_per_entity` records per entity (its latest),
    never a record the slice itself carries. Schema columns only, as the extract writes them;
    a schema column the target lacks (`columns`: the target's) is NULL."""
    t, q = Tables.of(domain), dialect.ident
    uid = q(domain.schema.unique_id)
    selected = ", ".join(
        q(c) if _has(columns, [c]) else f"CAST(NULL AS VARCHAR) AS {q(c)}" for c in domain.schema.columns
    )
    per_entity = int(domain.identity.context_per_entity)
    return f"""
WITH new_keys AS (
    SELECT DISTINCT {dialect.hash.format("block_key")} AS block_hash
    FROM ({keys_select(dialect, domain, slice_rows, columns)})
),
candidates AS (
    SELECT DISTINCT m.entity_id FROM {q(t.keys)} k
    JOIN new_keys n ON n.block_hash = k.block_hash
    JOIN {q(t.members)} m ON m.record_id = k.record_id AND m.until_partition IS NULL
),
records AS (
    SELECT m.record_id, m.entity_id FROM {q(t.members)} m
    WHERE m.until_partition IS NULL AND m.entity_id IN (SELECT entity_id FROM candidates)
      AND NOT EXISTS (SELECT 1 FROM ({slice_rows}) s WHERE {dialect.column_text(domain.schema.unique_id)} = m.record_id)
),
latest AS (
    SELECT t.*, r.entity_id AS er_entity FROM {q(target)} t JOIN records r ON r.record_id = t.{uid}
    QUALIFY ROW_NUMBER() OVER (PARTITION BY t.{uid} ORDER BY t.{q(partition_column)} DESC) = 1
)
SELECT {selected} FROM latest
QUALIFY ROW_NUMBER() OVER (PARTITION BY er_entity ORDER BY {q(partition_column)} DESC, {uid}) <= {per_entity}
"""


# --- applying a partition -------------------------------------------------------------------


def _assign_sql(dialect: Dialect, domain: Domain) -> str:
    """One partition's changes into the plan (run `run`, step and partition `partition`):
    (record, old entity, new entity, kind) for each record whose entity the partition's
    groups change; see the module's docstring for the rules."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    return f"""
INSERT INTO {q(t.plan)} (run_id, step, record_id, old_entity, new_entity, new_entity_size, kind)
WITH job AS (
    SELECT g.record_id, CASE WHEN {blank_sql("g.match_id")} THEN '#' || g.record_id ELSE g.match_id END AS grp,
           g.is_context, m.entity_id AS prior
    FROM {q(t.groups)} g LEFT JOIN {q(t.members)} m ON m.record_id = g.record_id AND m.until_partition IS NULL
    WHERE g.partition_key = {p("partition")}
      -- A context record the registry does not hold (yet: a partition replayed before the later
      -- one it came from) takes no part; its own partition places it.
      AND (NOT g.is_context OR m.entity_id IS NOT NULL)
    -- A record the job lists twice (only when the id checks are warnings) counts once.
    QUALIFY ROW_NUMBER() OVER (PARTITION BY g.record_id ORDER BY g.is_context, grp) = 1
),
-- A new entity's id comes from the partition's own records: the same whatever context it had.
anchors AS (
    SELECT grp, COALESCE(MIN(CASE WHEN NOT is_context THEN record_id END), MIN(record_id)) AS anchor
    FROM job GROUP BY grp
),
overlap AS (
    SELECT prior AS entity_id, grp, COUNT(*) AS n, MIN(record_id) AS first_record
    FROM job WHERE prior IS NOT NULL GROUP BY prior, grp
),
-- A tie goes to the group holding the entity's smallest record id: its oldest, where ids grow.
home AS (
    SELECT entity_id, grp FROM overlap
    QUALIFY ROW_NUMBER() OVER (PARTITION BY entity_id ORDER BY n DESC, first_record) = 1
),
touched AS (  -- the membership of the known entities in the job, read once
    SELECT record_id, entity_id, from_partition, until_partition FROM {q(t.members)}
    WHERE entity_id IN (SELECT entity_id FROM home)
),
sizes AS (
    SELECT entity_id, COUNT_IF(until_partition IS NULL) AS size, MIN(from_partition) AS since
    FROM touched GROUP BY entity_id
),
ranked AS (
    SELECT h.grp, h.entity_id,
           ROW_NUMBER() OVER (PARTITION BY h.grp ORDER BY s.size DESC, s.since, h.entity_id) AS place
    FROM home h JOIN sizes s ON s.entity_id = h.entity_id
),
group_entity AS (
    SELECT a.grp, r.entity_id IS NULL AS created, COALESCE(s.size, 0) AS size,
           COALESCE(r.entity_id,
                    '{ENTITY_ID_PREFIX}' || SUBSTR(MD5({p("partition")} || ':' || a.anchor), 1, 20)) AS entity_id
    FROM anchors a LEFT JOIN ranked r ON r.grp = a.grp AND r.place = 1 LEFT JOIN sizes s ON s.entity_id = r.entity_id
),
losers AS (
    SELECT r.entity_id AS loser, w.entity_id AS winner, w.size AS winner_size
    FROM ranked r JOIN group_entity w ON w.grp = r.grp WHERE r.place > 1
),
changes AS (
    SELECT j.record_id, j.prior AS old_entity, e.entity_id AS new_entity, e.created, e.size
    FROM job j JOIN group_entity e ON e.grp = j.grp
    WHERE j.prior IS NULL OR j.prior <> e.entity_id
    UNION ALL
    SELECT m.record_id, m.entity_id, l.winner, FALSE, l.winner_size
    FROM touched m JOIN losers l ON l.loser = m.entity_id
    WHERE m.until_partition IS NULL AND NOT EXISTS (SELECT 1 FROM job j WHERE j.record_id = m.record_id)
)
SELECT {p("run")}, {p("partition")}, c.record_id, c.old_entity, c.new_entity, c.size,
       CASE WHEN c.old_entity IS NULL AND c.created THEN 'created'
            WHEN c.old_entity IS NULL THEN 'absorbed'
            WHEN l.loser IS NOT NULL THEN 'merged'
            ELSE 'split' END
FROM changes c LEFT JOIN losers l ON l.loser = c.old_entity AND l.winner = c.new_entity
"""


def _step_sql(dialect: Dialect, domain: Domain) -> list[str]:
    """After `_assign_sql`: close the changed records' membership, open the new one, record the
    events; all for run `run`, partition `partition`."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    this = f"run_id = {p('run')} AND step = {p('partition')}"
    return [
        f"UPDATE {q(t.members)} SET until_partition = {p('partition')}, until_run = {p('run')} "
        f"WHERE until_partition IS NULL AND record_id IN "
        f"(SELECT record_id FROM {q(t.plan)} WHERE {this} AND old_entity IS NOT NULL)",
        f"INSERT INTO {q(t.members)} (record_id, entity_id, from_partition, from_run, until_partition, until_run) "
        f"SELECT record_id, new_entity, {p('partition')}, {p('run')}, NULL, NULL FROM {q(t.plan)} WHERE {this}",
        f"INSERT INTO {q(t.events)} (partition_key, run_id, event, entity_id, other_entity_id, records, recorded_at) "
        f"SELECT {p('partition')}, {p('run')}, kind, "
        "CASE WHEN kind IN ('created', 'absorbed') THEN new_entity ELSE old_entity END, "
        "CASE WHEN kind IN ('merged', 'split') THEN new_entity END, COUNT(*), CURRENT_TIMESTAMP "
        f"FROM {q(t.plan)} WHERE {this} GROUP BY 1, 2, 3, 4, 5",
    ]


def _undo_sql(dialect: Dialect, domain: Domain) -> list[str]:
    """Take back every partition from `partition` on, noting in the plan (step UNDONE) the
    records it touches with the entity they had (a record's open membership is its newest, so
    it is among those taken back): their target rows are rewritten, and the churn is judged
    against what was committed. Their groups stay for the replay."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    since = p("partition")
    return [
        f"INSERT INTO {q(t.plan)} (run_id, step, record_id, old_entity, new_entity, kind) "
        f"SELECT {p('run')}, '{UNDONE}', record_id, entity_id, NULL, '{UNDONE}' FROM {q(t.members)} "
        f"WHERE from_partition >= {since} AND until_partition IS NULL",
        f"DELETE FROM {q(t.members)} WHERE from_partition >= {since}",
        f"UPDATE {q(t.members)} SET until_partition = NULL, until_run = NULL WHERE until_partition >= {since}",
        f"DELETE FROM {q(t.events)} WHERE partition_key >= {since}",
    ]


def _groups_sql(
    dialect: Dialect,
    domain: Domain,
    staged: str,
    context: str,
    target: str,
    partition_column: str,
    columns: Collection[str] | None = None,
) -> list[str]:
    """Replace the partition's stored groups with those of the staged job output (`staged`: a
    SELECT of its rows; `context`: a SELECT of the context record ids, as `record_id`), and its
    blocking keys with those of its rows in the target (already swapped in): context records
    gave theirs when their own partition was loaded."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    own_rows = f"SELECT * FROM {q(target)} WHERE {q(partition_column)} = {p('partition')}"
    return [
        f"DELETE FROM {q(t.groups)} WHERE partition_key = {p('partition')}",
        # A join, not IN in the select list: Snowflake documents subqueries there only as scalar.
        f"INSERT INTO {q(t.groups)} (partition_key, record_id, match_id, is_context) "
        f"SELECT {p('partition')}, s.{q(domain.schema.unique_id)}, s.{q('MatchID')}, c.record_id IS NOT NULL "
        f"FROM ({staged}) s LEFT JOIN (SELECT DISTINCT record_id FROM ({context})) c "
        f"ON c.record_id = {dialect.text.format('s.' + q(domain.schema.unique_id))}",
        f"DELETE FROM {q(t.keys)} WHERE partition_key = {p('partition')}",
        f"INSERT INTO {q(t.keys)} (partition_key, record_id, block_hash) "
        f"SELECT {p('partition')}, record_id, {dialect.hash.format('block_key')} "
        f"FROM ({keys_select(dialect, domain, own_rows, columns)})",
    ]


def _target_sql(dialect: Dialect, domain: Domain, target: str, partition_column: str) -> list[str]:
    """Write the current entity onto the target rows: the partition's own (`partition`), and
    every row of a record the run changed or took back."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    uid = q(domain.schema.unique_id)
    current = f"{q(t.members)} m"
    return [
        f"UPDATE {q(target)} SET entity_id = m.entity_id FROM {current} "
        f"WHERE {q(target)}.{q(partition_column)} = {p('partition')} AND m.record_id = {q(target)}.{uid} "
        "AND m.until_partition IS NULL",
        f"UPDATE {q(target)} SET entity_id = m.entity_id FROM {current} "
        f"WHERE m.until_partition IS NULL AND m.record_id = {q(target)}.{uid} "
        # The partition's new records are its own: the first statement wrote them.
        f"AND m.record_id IN (SELECT record_id FROM {q(t.plan)} WHERE run_id = {p('run')} "
        f"AND (old_entity IS NOT NULL OR step <> {p('partition')})) "
        f"AND {q(target)}.entity_id IS DISTINCT FROM m.entity_id",
    ]


def committed_figures_sql(dialect: Dialect, domain: Domain) -> dict[str, str]:
    """`figures_sql`'s churn and oversized entities for a load that took back or replayed
    partitions (run `run`): each record's entity before the load is the one the undo noted, or
    else the one its first change in the plan moved it from; the churn counts those whose
    entity now differs, and the oversized figure sizes, from the membership, every entity any
    step of the run gave records to. Both read the members: only such loads pay for it."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    run = f"run_id = {p('run')}"
    undone = f"SELECT record_id FROM {q(t.plan)} WHERE {run} AND step = '{UNDONE}'"
    return {
        "churn": f"WITH first_change AS (SELECT record_id, old_entity FROM {q(t.plan)} WHERE {run} "
        f"AND step NOT IN ('{UNDONE}', '{BEFORE}') AND old_entity IS NOT NULL AND record_id NOT IN ({undone}) "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY record_id ORDER BY step) = 1), "
        f"before AS (SELECT record_id, old_entity FROM {q(t.plan)} WHERE {run} AND step = '{UNDONE}' "
        "UNION ALL SELECT record_id, old_entity FROM first_change) "
        f"SELECT COUNT(*) FROM before b JOIN {q(t.members)} m ON m.record_id = b.record_id "
        "AND m.until_partition IS NULL WHERE m.entity_id <> b.old_entity",
        "oversized": f"SELECT entity_id, COUNT(*) FROM {q(t.members)} WHERE until_partition IS NULL AND entity_id IN "
        f"(SELECT new_entity FROM {q(t.plan)} WHERE {run} AND new_entity IS NOT NULL) "
        f"GROUP BY entity_id HAVING COUNT(*) > {p('max_size')} ORDER BY 2 DESC, 1 LIMIT 5",
        "undone": f"SELECT COUNT(*) FROM ({undone})",
    }


def figures_sql(dialect: Dialect, domain: Domain, target: str, partition_column: str) -> dict[str, str]:
    """What the load's identity checks judge, after `Registry.apply` and before COMMIT:
    - `records`: the partition's target rows and those without an entity;
    - `changes`: the entities this partition created (a split's new ones included), the
      records that joined a known entity, and the known records it moved (the churn);
    - `entities`: entities merged away and entities split;
    - `oversized`: (entity, records) of the entities this run touched holding more than
      `max_size` records, the largest first, at most 5."""
    t, q, p = Tables.of(domain), dialect.ident, dialect.param.format
    this = f"run_id = {p('run')} AND step = {p('partition')}"
    return {
        "records": f"SELECT COUNT(*), COUNT_IF(entity_id IS NULL) FROM {q(target)} "
        f"WHERE {q(partition_column)} = {p('partition')}",
        # A new entity is one the step gave records to and that had none before it.
        "changes": "SELECT COUNT(DISTINCT CASE WHEN new_entity_size = 0 THEN new_entity END), "
        f"COUNT_IF(kind = 'absorbed'), COUNT_IF(old_entity IS NOT NULL) FROM {q(t.plan)} WHERE {this}",
        "entities": "SELECT COUNT(DISTINCT CASE WHEN event = 'merged' THEN entity_id END), "
        "COUNT(DISTINCT CASE WHEN event = 'split' THEN entity_id END) "
        f"FROM {q(t.events)} WHERE partition_key = {p('partition')}",
        # From the plan alone: an entity's size before the step, plus the records it gained,
        # minus those it lost (no scan of the members: it costs with the registry's size).
        "oversized": f"WITH gained AS (SELECT new_entity AS entity_id, MAX(new_entity_size) AS before, "
        f"COUNT(*) AS n FROM {q(t.plan)} WHERE {this} GROUP BY new_entity), "
        f"lost AS (SELECT old_entity AS entity_id, COUNT(*) AS n FROM {q(t.plan)} WHERE {this} "
        "AND old_entity IS NOT NULL GROUP BY old_entity), "
        "sized AS (SELECT g.entity_id, g.before + g.n - COALESCE(l.n, 0) AS size FROM gained g "
        "LEFT JOIN lost l ON l.entity_id = g.entity_id) "
        f"SELECT entity_id, size FROM sized WHERE size > {p('max_size')} ORDER BY 2 DESC, 1 LIMIT 5",
    }


def nothing_rebuilt() -> dict:
    """`Registry.rebuild`'s answer when no partition is loaded."""
    return {"partitions": [], "records": 0, "moved": 0, "new": 0}


# --- the driver -----------------------------------------------------------------------------


class Registry:
    """A domain's registry on one warehouse connection. `execute(sql, params)` runs a statement
    and returns a cursor (fetchone/fetchall); the caller owns the transaction."""

    def __init__(
        self,
        dialect: Dialect,
        domain: Domain,
        execute: Callable,
        target: str,
        partition_column: str,
        catalogue: Callable[[str], str] = str,
    ):
        self.dialect, self.domain, self._execute, self.catalogue = dialect, domain, execute, catalogue
        self.target, self.partition_column = target, partition_column
        self.tables = Tables.of(domain)

    def execute(self, sql: str, params: dict):
        # Only the parameters the statement names: DuckDB refuses any other.
        return self._execute(sql, {k: v for k, v in params.items() if self.dialect.param.format(k) in sql})

    def create(self) -> None:
        """The tables, and the lock's one row (an UPDATE of a row surely locks; outside the
        load's transaction, as the DDL)."""
        for statement in create_sql(self.dialect, self.domain):
            self.execute(statement, {})
        lock = self.dialect.ident(self.tables.lock)
        self.execute(
            f"INSERT INTO {lock} (domain, held_by) SELECT {self.dialect.param.format('domain')}, NULL "
            f"WHERE NOT EXISTS (SELECT 1 FROM {lock})",
            {"domain": self.domain.name},
        )

    def _run(self, statements: Iterable[str], params: dict) -> None:
        for statement in statements:
            self.execute(statement, params)

    def apply(self, partition: str, run_id: str, staged: str, context: str) -> IdentityFigures:
        """Apply the partition's staged job output (its target rows already swapped in), then
        replay the partitions loaded after it; see the module's docstring."""
        params = {"partition": partition, "run": run_id}
        self._run(
            _groups_sql(
                self.dialect,
                self.domain,
                staged,
                context,
                self.target,
                self.partition_column,
                self._columns(self.target),
            ),
            params,
        )
        replayed = self._replay(partition, run_id)
        figures = self._figures(params, len(replayed) > 1)
        self._forget(run_id)
        return IdentityFigures(**{**figures.__dict__, "replayed": tuple(replayed[1:])})

    def rebuild(self, run_id: str) -> dict:
        """Replay every loaded partition in order from its stored groups (a partition loaded
        before the registry existed gives its target rows' MatchIDs as its groups, without
        context), and rewrite the target's entity ids. Returns what moved: records whose entity
        changed, records that had none, the partitions replayed."""
        d, q, t = self.dialect, self.dialect.ident, self.tables
        part = q(self.partition_column)
        unknown = f"{part} NOT IN (SELECT partition_key FROM {q(t.groups)})"
        self.execute(
            f"INSERT INTO {q(t.groups)} (partition_key, record_id, match_id, is_context) "
            f"SELECT {part}, {d.column_text(self.domain.schema.unique_id)}, {d.column_text('MatchID')}, FALSE "
            f"FROM {q(self.target)} WHERE {unknown}",
            {},
        )
        without_keys = (
            f"SELECT DISTINCT {part} FROM {q(self.target)} WHERE {part} NOT IN "
            f"(SELECT partition_key FROM {q(t.keys)}) ORDER BY 1"
        )
        for (partition,) in self.execute(without_keys, {}).fetchall():
            rows = f"SELECT * FROM {q(self.target)} WHERE {part} = {d.param.format('partition')}"
            self.execute(
                f"INSERT INTO {q(t.keys)} (partition_key, record_id, block_hash) "
                f"SELECT {d.param.format('partition')}, record_id, {d.hash.format('block_key')} "
                f"FROM ({keys_select(d, self.domain, rows, self._columns(self.target))})",
                {"partition": partition},
            )
        first = self.execute(f"SELECT MIN(partition_key) FROM {q(t.groups)}", {}).fetchone()[0]
        if first is None:
            return nothing_rebuilt()
        self.execute(f"DELETE FROM {q(t.plan)} WHERE step = '{BEFORE}'", {})
        self.execute(
            f"INSERT INTO {q(t.plan)} (run_id, step, record_id, old_entity, new_entity, kind) "
            f"SELECT {d.param.format('run')}, '{BEFORE}', record_id, entity_id, NULL, '{BEFORE}' "
            f"FROM {q(t.members)} WHERE until_partition IS NULL",
            {"run": run_id},
        )
        replayed = self._replay(first, run_id)
        records, moved, new = self.execute(
            f"SELECT COUNT(*), COUNT_IF(b.old_entity IS NOT NULL AND b.old_entity <> m.entity_id), "
            f"COUNT_IF(b.old_entity IS NULL) FROM {q(t.members)} m LEFT JOIN {q(t.plan)} b "
            f"ON b.record_id = m.record_id AND b.run_id = {d.param.format('run')} AND b.step = '{BEFORE}' "
            "WHERE m.until_partition IS NULL",
            {"run": run_id},
        ).fetchone()
        self._forget(run_id)
        return {"partitions": replayed, "records": int(records or 0), "moved": int(moved or 0), "new": int(new or 0)}

    def show(self, ident: str, limit: int = 200) -> dict:
        """One entity, by its id or one of its records' ids: the entities it absorbed by merges
        (`merged_into` when it was merged away: followed to the current one), its current
        records with the partition and rule that linked each, and its events. Ids only, never
        record values."""
        d, q, t, p = self.dialect, self.dialect.ident, self.tables, self.dialect.param.format
        if not self.execute(queries_table_exists(d), {"name": self.catalogue(t.members)}).fetchone()[0]:
            return {}
        row = self.execute(
            f"SELECT entity_id FROM {q(t.members)} WHERE until_partition IS NULL AND record_id = {p('id')}",
            {"id": ident},
        ).fetchone()
        entity = row[0] if row else ident
        trail: list[str] = []
        while len(trail) < 100:  # a chain of merges, one entity per step
            winner = self.execute(
                f"SELECT other_entity_id FROM {q(t.events)} WHERE event = 'merged' AND "
                f"entity_id = {p('id')} ORDER BY partition_key DESC LIMIT 1",
                {"id": entity},
            ).fetchone()
            alive = self.execute(
                f"SELECT COUNT(*) FROM {q(t.members)} WHERE until_partition IS NULL AND entity_id = {p('id')}",
                {"id": entity},
            ).fetchone()[0]
            if alive or not winner:
                break
            trail.append(entity)
            entity = winner[0]
        uid, part = q(self.domain.schema.unique_id), q(self.partition_column)
        columns = {c.upper() for c in self._columns(self.target)}
        rule = (
            "t.MatchRule"
            if "MATCHRULE" in columns
            else ("t.ConfidenceLevel" if "CONFIDENCELEVEL" in columns else "NULL")
        )
        records = self.execute(
            f"SELECT m.record_id, t.{part}, t.MatchID, {rule}, m.from_partition FROM {q(t.members)} m "
            f"LEFT JOIN {q(self.target)} t ON t.{uid} = m.record_id "
            f"WHERE m.until_partition IS NULL AND m.entity_id = {p('id')} "
            f"ORDER BY t.{part}, m.record_id LIMIT {int(limit)}",
            {"id": entity},
        ).fetchall()
        size = self.execute(
            f"SELECT COUNT(*) FROM {q(t.members)} WHERE until_partition IS NULL AND entity_id = {p('id')}",
            {"id": entity},
        ).fetchone()[0]
        events = self.execute(
            f"SELECT partition_key, run_id, event, entity_id, other_entity_id, records FROM {q(t.events)} "
            f"WHERE entity_id = {p('id')} OR other_entity_id = {p('id')} ORDER BY partition_key, event",
            {"id": entity},
        ).fetchall()
        return {
            "entity_id": entity,
            "asked": ident,
            "merged_from_trail": trail,
            "records": int(size),
            "rows": [dict(zip(("record_id", "partition", "match_id", "rule", "since"), r)) for r in records],
            "events": [
                dict(zip(("partition", "run_id", "event", "entity_id", "other_entity_id", "records"), e))
                for e in events
            ],
        }

    def _columns(self, table: str) -> list[str]:
        return [r[0] for r in self.execute(queries_columns(self.dialect), {"name": self.catalogue(table)}).fetchall()]

    def _replay(self, since: str, run_id: str) -> list[str]:
        """Take back every partition from `since` on and apply each again, in order, from its
        stored groups; then write the current ids onto the target rows that changed."""
        d, q = self.dialect, self.dialect.ident
        params = {"partition": since, "run": run_id}
        steps = [
            row[0]
            for row in self.execute(
                f"SELECT DISTINCT partition_key FROM {q(self.tables.groups)} WHERE partition_key >= "
                f"{d.param.format('partition')} ORDER BY 1",
                params,
            ).fetchall()
        ]
        self._run(_undo_sql(d, self.domain), params)
        for step in steps:
            step_params = {"partition": step, "run": run_id}
            self.execute(_assign_sql(d, self.domain), step_params)
            self._run(_step_sql(d, self.domain), step_params)
        self._run(_target_sql(d, self.domain, self.target, self.partition_column), params)
        return steps

    def _forget(self, run_id: str) -> None:
        self.execute(
            f"DELETE FROM {self.dialect.ident(self.tables.plan)} WHERE run_id = {self.dialect.param.format('run')}",
            {"run": run_id},
        )

    def _figures(self, params: dict, replayed: bool) -> IdentityFigures:
        """What the load did. A first load in order is judged from its step in the plan alone;
        a re-run or a late load (it took partitions back) against what was committed before."""
        sql = figures_sql(self.dialect, self.domain, self.target, self.partition_column)
        params = {**params, "max_size": self.domain.identity.max_entity_size}
        records, without = self.execute(sql["records"], params).fetchone()
        created, absorbed, churn = self.execute(sql["changes"], params).fetchone()
        merged, split = self.execute(sql["entities"], params).fetchone()
        committed = committed_figures_sql(self.dialect, self.domain)
        if replayed or self.execute(committed["undone"], params).fetchone()[0]:
            sql = {**sql, **committed}
            churn = self.execute(sql["churn"], params).fetchone()[0]
        oversized = self.execute(sql["oversized"], params)
        return IdentityFigures(
            records=int(records or 0),
            without_entity=int(without or 0),
            created=int(created or 0),
            absorbed_records=int(absorbed or 0),
            merged=int(merged or 0),
            split=int(split or 0),
            churn=int(churn or 0),
            replayed=(),
            oversized=tuple((str(e), int(n)) for e, n in oversized.fetchall()),
        )
