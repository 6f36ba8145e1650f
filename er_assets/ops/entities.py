"""`autosys-bridge entities`: look at one durable entity, or rebuild a domain's registry.

    autosys-bridge entities show DOMAIN ID       an entity by its id or one of its records' ids
    autosys-bridge entities rebuild DOMAIN       replay every loaded partition in order

`show` prints ids, partitions, MatchIDs, rules and events, never record values. `rebuild`
is the way out when partitions were loaded out of order outside the load (or before the
registry existed): it replays the stored groups in partition order in one transaction,
rewrites the target's entity ids and reports how many records changed entity (the churn).
"""

from __future__ import annotations

import argparse
import sys
import uuid

from er_assets import exit_codes


def _warehouse(config):
    from er_assets.ops.doctor import initialised
    from er_assets.resources.deployment import resources

    return initialised({"warehouse": resources(config)["warehouse"]})


def render_entity(found: dict) -> str:
    if not found.get("rows") and not found.get("events"):
        return f"no entity or record {found.get('asked')!r} in the registry"
    lines = []
    if found["merged_from_trail"]:
        lines.append(f"{found['asked']} was merged: {' -> '.join([*found['merged_from_trail'], found['entity_id']])}")
    lines.append(f"entity {found['entity_id']}: {found['records']} records")
    lines.append(f"  {'record':<24} {'partition':<12} {'match id':<36} rule")
    for row in found["rows"]:
        lines.append(f"  {row['record_id']!s:<24} {row['partition']!s:<12} {row['match_id']!s:<36} {row['rule'] or ''}")
    if found["records"] > len(found["rows"]):
        lines.append(f"  ... {found['records'] - len(found['rows'])} more")
    lines.append("events:")
    for e in found["events"]:
        other = f" -> {e['other_entity_id']}" if e["other_entity_id"] else ""
        lines.append(
            f"  {e['partition']} {e['event']:<8} {e['entity_id']}{other} ({e['records']} records, run {e['run_id']})"
        )
    return "\n".join(lines)


def cmd_entities(args) -> int:
    from er_assets.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        domain = config.domain(args.domain)
    except (ConfigError, ValueError) as exc:
        print(f"autosys-bridge: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exit_codes.USAGE
    with _warehouse(config) as ready:
        warehouse = ready["warehouse"]
        if isinstance(warehouse, Exception):
            print(f"autosys-bridge: error: the warehouse cannot be configured: {warehouse}", file=sys.stderr)
            return exit_codes.SERVICE_UNAVAILABLE
        if args.action == "show":
            found = warehouse.show_entity(domain, args.id)
            print(render_entity({"asked": args.id, **found}))
            return exit_codes.OK if found.get("rows") or found.get("events") else exit_codes.USAGE
        moved = warehouse.rebuild_entities(domain, f"rebuild-{uuid.uuid4().hex[:12]}")
    print(
        f"{domain.name}: replayed {len(moved['partitions'])} partitions"
        + (f" ({moved['partitions'][0]} to {moved['partitions'][-1]})" if moved["partitions"] else "")
        + f"; {moved['records']} records, {moved['moved']} changed entity, {moved['new']} had none before"
    )
    return exit_codes.OK


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "entities",
        help="show a durable entity, or rebuild a domain's entity registry",
        description=__doc__.splitlines()[0],
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="one entity by its id or one of its records' ids")
    show.add_argument("domain")
    show.add_argument("id", help="an entity id (E...) or a record's unique id")
    rebuild = actions.add_parser("rebuild", help="replay every loaded partition in order; reports the churn")
    rebuild.add_argument("domain")
    for p in (show, rebuild):
        p.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped domains.yaml)")
        p.set_defaults(func=cmd_entities)
    return parser
