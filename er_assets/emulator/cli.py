"""`er-match`: run one matching job locally (rule-based or ML), as AWS Entity Resolution would.

    er-match --workflow WORKFLOW.json --schema SCHEMA.json --input DATA --output DIR
    er-match --domain customers [--config domains.yaml] --input DATA --output DIR

WORKFLOW.json and SCHEMA.json are GetMatchingWorkflow / GetSchemaMapping responses, e.g.
`aws entityresolution get-matching-workflow --workflow-name X > WORKFLOW.json`, so a real
account's definitions run unchanged. DATA is a .csv or .parquet file, a folder of them or a
glob. The job folder DIR/<workflowName>/<jobId>/ gets success/ and error/ like the
service's output; a JSON summary goes to stdout. Bad input: one line on stderr, exit 2 (an
ML_MATCHING workflow without the `ml` extra installed included).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

EXIT_USAGE = 2


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="er-match", description=__doc__.splitlines()[0])
    definitions = parser.add_argument_group("matching definitions (two JSON documents, or a configured domain)")
    definitions.add_argument("--workflow", type=Path, help="GetMatchingWorkflow response as JSON")
    definitions.add_argument("--schema", type=Path, help="GetSchemaMapping response as JSON")
    definitions.add_argument("--domain", help="domain of the configuration instead of --workflow/--schema")
    definitions.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped one)")
    parser.add_argument("--input", required=True, help=".csv/.parquet file, folder of them, or glob")
    parser.add_argument("--output", required=True, type=Path, help="folder that receives <workflowName>/<jobId>/")
    parser.add_argument("--job-id", default=None, help="job id (default: a new random 32-hex id)")
    return parser


def _read_json(path: Path, what: str) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _UsageError(f"{what} {path} must hold a JSON object")
    return document


def _definitions(args: argparse.Namespace) -> tuple[dict, dict]:
    if args.domain:
        if args.workflow or args.schema:
            raise _UsageError("give either --domain or --workflow and --schema, not both")
        from er_assets.config import ConfigError, load_config
        from er_assets.emulator.aws_shapes import matching_workflow_response, schema_mapping_response

        try:
            config = load_config(args.config)
            domain = config.domain(args.domain)
        except ConfigError as exc:
            raise _UsageError(str(exc)) from None
        return schema_mapping_response(domain, config.settings), matching_workflow_response(domain, config.settings)
    if not (args.workflow and args.schema):
        raise _UsageError("give --workflow and --schema (or --domain)")
    return _read_json(args.schema, "schema"), _read_json(args.workflow, "workflow")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        schema, workflow = _definitions(args)
        from er_assets.emulator.matching import MatchingError, run_matching

        job_id = args.job_id or uuid.uuid4().hex
        name = workflow.get("workflowName")
        if not isinstance(name, str) or not name or "/" in name:
            raise _UsageError("the workflow has no usable workflowName")
        job_dir = args.output / name / job_id
        try:
            metrics = run_matching(args.input, schema, workflow, job_dir, job_id)
        except MatchingError as exc:
            raise _UsageError(str(exc)) from None
        except OSError as exc:
            raise _UsageError(f"cannot write {job_dir}: {exc.strerror}") from None
    except _UsageError as exc:
        print(f"er-match: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"jobId": job_id, "workflowName": name, **metrics, "output": str(job_dir)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
