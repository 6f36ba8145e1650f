"""The JIL side of the AutoSys bridge: model, condition and file parsers, emitter, graph, drift.

Only the standard library and `er_assets.config` are imported here, so the CLI starts fast.
"""
