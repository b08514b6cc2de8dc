#!/usr/bin/env python3
"""Checks that the alert rules speak about metrics the services export.

For every rule expression in alerts.yml:
- each `citybrain_*` metric is a constant in services/<svc>/src/metrics.rs
  (histograms also as `_bucket`, `_sum`, `_count`);
- each label in a selector or a `by (...)` clause is one the service's
  metrics.rs attaches to that metric (or job/instance/le);
- each label value matched (`label="v"`, `label=~"a|b"`) appears as a string
  literal in the service's source (or the proto crate, for kinds);
- every payload kind of proto/src/feed.rs is watched by exactly one
  feed-silence rule;
- every alert's runbook annotation names a `### Alert` section of
  deploy/README.md.
Exits 1 with one line per problem. Needs PyYAML.
"""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "deploy/prometheus/alerts.yml"
ALWAYS = {"job", "instance", "le", "__name__"}
FEED_SILENCE_RULES = {"CitybrainFeedSilent", "CitybrainSparseFeedSilent"}


def exported_metrics():
    """name -> (service, set of label names, is_histogram)."""
    metrics = {}
    for path in sorted(ROOT.glob("services/*/src/metrics.rs")):
        service = path.parts[-3]
        text = path.read_text()
        consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "(citybrain_[a-z0-9_]+)";', text))
        for const, name in consts.items():
            labels = set()
            for call in re.finditer(r"(counter|gauge|histogram)!\(\s*" + const + r"\b([^;]*?)\)\s*\.(?:set|increment|record)\(", text, re.S):
                labels |= set(re.findall(r'"([a-z_]+)"\s*=>', call.group(2)))
            histogram = re.search(r"histogram!\(\s*" + const + r"\b", text) is not None
            metrics[name] = (service, labels, histogram)
    return metrics


def source_text(service):
    text = "".join(p.read_text() for p in (ROOT / "services" / service / "src").rglob("*.rs"))
    return text + "".join(p.read_text() for p in (ROOT / "proto/src").rglob("*.rs"))


def kinds():
    # The one table of kinds: `kinds! { Name => "name", Feed; ... }`.
    text = (ROOT / "proto/src/feed.rs").read_text()
    body = text[text.index("kinds! {"):]
    body = body[: body.index("}")]
    return set(re.findall(r'=> "([a-z_]+)"', body))


def main():
    metrics = exported_metrics()
    if not metrics:
        print("no metric constants found in services/*/src/metrics.rs")
        return 1
    literals = {}
    problems = []
    watched = {}
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        name = rule.get("alert") or rule.get("record")
        expr = rule["expr"]
        used = []
        for match in re.finditer(r"\b(citybrain_[a-z0-9_]+)\b(\{[^}]*\})?", expr):
            metric, selector = match.group(1), match.group(2) or ""
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            if metric in metrics:
                base = metric
            elif base not in metrics or not metrics[base][2]:
                problems.append(f"{name}: metric {metric} is not exported by any service's metrics.rs")
                continue
            service, labels, _ = metrics[base]
            used.append(metrics[base])
            for label, op, value in re.findall(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector):
                if label not in labels | ALWAYS:
                    problems.append(f"{name}: {metric} has no label {label!r} (it has {sorted(labels)})")
                    continue
                if label in ALWAYS:
                    continue
                known = literals.setdefault(service, source_text(service))
                values = value.split("|") if op in ("=~", "!~") else [value]
                for v in values:
                    if f'"{v}"' not in known:
                        problems.append(f"{name}: {metric}{{{label}}} never takes the value {v!r} in services/{service}")
                if label == "kind" and name in FEED_SILENCE_RULES and "offset" in expr[match.end():match.end() + 40]:
                    for v in values:
                        watched.setdefault(v, []).append(name)
        allowed = set().union(*(labels for _, labels, _ in used)) | ALWAYS if used else ALWAYS
        for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
            for label in filter(None, (l.strip() for l in clause.split(","))):
                if label not in allowed:
                    problems.append(f"{name}: groups by {label!r}, which none of its metrics carries")
    guide = (ROOT / "deploy/README.md").read_text()
    sections = {h.lower() for h in re.findall(r"^### (\S+)\s*$", guide, re.M)}
    for rule in rules:
        runbook = rule.get("annotations", {}).get("runbook", "")
        if "alert" in rule and runbook.partition("#")[2] not in sections:
            problems.append(f"{rule['alert']}: runbook {runbook!r} has no section in deploy/README.md")
    for kind in sorted(kinds()):
        owners = watched.get(kind, [])
        if len(owners) != 1:
            problems.append(f"kind {kind!r} is watched by {len(owners)} feed-silence rules ({owners}); expected 1")
    for problem in problems:
        print(problem)
    print(f"{len(rules)} rules, {len(metrics)} exported metrics, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
