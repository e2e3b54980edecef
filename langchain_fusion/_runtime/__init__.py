"""The runtime of llm-fusion: fan-out, waiting rules, cancellation, and the mode runners.

Fan-out with per-member timeouts, quorum and grace, an overall deadline and cancellation of
stragglers, and the four mode runners, as async and sync twins over the pure core.
"""
