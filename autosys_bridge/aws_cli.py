"""`autosys-bridge aws export`: the configuration as AWS requests and a CloudFormation template.

    autosys-bridge aws export [--domain D ...] [-o DIR] [--config FILE]

writes DIR/<domain>/create-schema-mapping.json and create-matching-workflow.json (for
`aws entityresolution create-schema-mapping --cli-input-json file://...`) and
DIR/entity-resolution.template.json (Glue database and tables, schema mappings, matching
workflows and their IAM role; per domain an SNS topic and the CloudWatch alarms on the
pipeline's metrics), so the AWS account runs exactly the configured definitions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from er_assets import exit_codes


def cmd_export(args) -> int:
    from er_assets.config import ConfigError, load_config
    from er_assets.ops.cloudformation import export

    try:
        config = load_config(args.config)
        domains = [config.domain(name) for name in args.domain] if args.domain else list(config.domains.values())
    except ConfigError as exc:
        print(f"autosys-bridge: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    try:
        written = export(config, domains, Path(args.output))
    except OSError as exc:
        print(f"autosys-bridge: error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return exit_codes.USAGE
    except ValueError as exc:  # ER_METRICS_NAMESPACE, the alarms' namespace, is no CloudWatch namespace
        print(f"autosys-bridge: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    for path in written:
        print(path)
    return exit_codes.OK


def add_parser(subparsers) -> None:
    aws = subparsers.add_parser(
        "aws", help="Turn the configuration into AWS resources.", description=__doc__.splitlines()[0]
    )
    commands = aws.add_subparsers(dest="aws_command", required=True, metavar="COMMAND")
    export = commands.add_parser(
        "export",
        help="write request JSON per domain and one CloudFormation template",
        description=" ".join(__doc__.split("\n\n")[2].split()),
    )
    export.add_argument("--domain", action="append", help="only this domain (repeatable; default: all)")
    export.add_argument("-o", "--output", default="aws-export", help="folder to write into (default: aws-export)")
    export.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped domains.yaml)")
    export.set_defaults(func=cmd_export)
