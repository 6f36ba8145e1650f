"""Dagster wiring: the asset factory, the sensors, the instance set-up and the definitions.

Only this folder (and the tools above it) builds Dagster objects out of the stages in
`er_assets.pipeline` and the resources in `er_assets.resources`."""
