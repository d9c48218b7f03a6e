"""Sigma correlation rules: windows over the detections of other rules, grouped by field values.

`model` (the parsed rule) has no dependencies; `engine` holds the state and the evaluation.
"""
