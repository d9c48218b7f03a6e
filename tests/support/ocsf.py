"""The required attributes of an OCSF 1.x Detection Finding (class 2004), to check findings against.

Source: the OCSF schema, https://github.com/ocsf/ocsf-schema (rendered at
https://schema.ocsf.io/1.1.0/classes/detection_finding):
- events/base_event.json and its dictionary: `activity_id`, `category_uid`, `class_uid`, `metadata`,
  `severity_id`, `time` and `type_uid` are required on every event;
- events/findings/finding.json: `finding_info` is required on every finding (Detection Finding,
  events/findings/detection_finding.json, extends it and adds no required attribute);
- objects/metadata.json: `product` and `version` (the schema version) are required;
- objects/product.json: `name` in later 1.x, `vendor_name` in 1.1.0; both are checked;
- objects/finding_info.json: `uid` is required (and `title` in 1.1.0);
- objects/analytic.json: `type_id` is required (checked when `analytic` is present).
Enumerations: category 2 is Findings, class 2004 Detection Finding, `type_uid` is
`class_uid * 100 + activity_id`, `activity_id` 1..3 (Create, Update, Close) or 99, `severity_id` 0..6
or 99, finding `status_id` 0..6 or 99, analytic `type_id` 0..4 or 99.
"""

from __future__ import annotations

from typing import Any, Final

REQUIRED: Final = (
    "activity_id",
    "category_uid",
    "class_uid",
    "finding_info",
    "metadata",
    "severity_id",
    "time",
    "type_uid",
)
METADATA_REQUIRED: Final = ("product", "version")
PRODUCT_REQUIRED: Final = ("name", "vendor_name")
FINDING_INFO_REQUIRED: Final = ("uid", "title")
ANALYTIC_REQUIRED: Final = ("type_id",)


def detection_finding_problems(finding: dict[str, Any]) -> list[str]:
    """Every way `finding` falls short of a Detection Finding's required attributes (empty: valid)."""
    problems = [f"missing {key}" for key in REQUIRED if key not in finding]
    for key in ("activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid"):
        if key in finding and (not isinstance(finding[key], int) or isinstance(finding[key], bool)):
            problems.append(f"{key} is not an integer: {finding[key]!r}")
    if problems:
        return problems
    if finding["class_uid"] != 2004:
        problems.append(f"class_uid {finding['class_uid']} is not 2004")
    if finding["category_uid"] != 2:
        problems.append(f"category_uid {finding['category_uid']} is not 2")
    if finding["activity_id"] not in (1, 2, 3, 99):
        problems.append(f"activity_id {finding['activity_id']} is not an enum value")
    if finding["type_uid"] != finding["class_uid"] * 100 + finding["activity_id"]:
        problems.append(f"type_uid {finding['type_uid']} is not class_uid * 100 + activity_id")
    if finding["severity_id"] not in (*range(7), 99):
        problems.append(f"severity_id {finding['severity_id']} is not an enum value")
    if "status_id" in finding and finding["status_id"] not in (*range(7), 99):
        problems.append(f"status_id {finding['status_id']} is not an enum value")
    metadata = finding["metadata"]
    problems += [f"missing metadata.{key}" for key in METADATA_REQUIRED if key not in metadata]
    problems += [
        f"missing metadata.product.{key}"
        for key in PRODUCT_REQUIRED
        if key not in metadata.get("product", {})
    ]
    info = finding["finding_info"]
    problems += [f"missing finding_info.{key}" for key in FINDING_INFO_REQUIRED if not info.get(key)]
    if "analytic" in info:
        analytic = info["analytic"]
        problems += [
            f"missing finding_info.analytic.{key}" for key in ANALYTIC_REQUIRED if key not in analytic
        ]
        if analytic.get("type_id") not in (*range(5), 99):
            problems.append(f"finding_info.analytic.type_id {analytic.get('type_id')!r} is not an enum value")
    return problems
