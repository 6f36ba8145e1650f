"""Local stand-in for AWS Entity Resolution.

`matching` is the matching engine (DuckDB SQL; `rules` compiles the AWS documents,
`normalize` holds the per-type SQL, `components` the numpy union-find, `ml` the
probabilistic model that stands in for ML_MATCHING),
`aws_shapes` builds the GetSchemaMapping / GetMatchingWorkflow responses from the domain
configuration, `cli` is the `er-match` command. Nothing is imported here: the CLI and the
boto3 hook import only what they use, so start-up stays fast.
"""
