"""Sigma correlation rules: windows over the detections of other rules, grouped by field values.

The parsed rule is `rsigma.rules.correlation.CorrelationRule` (loaded with the detection rules);
`engine` holds the state and the evaluation, `sharding` runs it across processes.
"""
