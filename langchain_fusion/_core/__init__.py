"""The core of llm-fusion: pure functions and pydantic models, no I/O.

Configuration, judge and debate prompts, fencing of candidate text, verdict parsing, the
debate graph, usage and cost arithmetic, and the fusion report. Nothing here calls a model.
"""
