#!/usr/bin/env python3
"""Structural checks of the compose deployment, without a Docker engine.

Reads the output of `docker-compose config` (paths resolved, anchors merged)
from the file given as argument and checks what a `docker-compose up` would
only reveal at run time:
- every bind-mounted file or folder exists;
- every image is pinned to a version (no `latest`, no bare name);
- every Prometheus scrape target is `<compose service>:<its admin port>`, its
  job is named after the binary that service runs, and the rule files resolve;
- Grafana's datasources have the uids the dashboards use, point at compose
  services, and the dashboard provider's folder is mounted with the dashboards;
- every CITYBRAIN_* variable a service sets is one its binary reads;
- the topics created are the feeds' topics plus the dead-letter topic, with at
  least as many partitions as sink instances;
- the API key file each service mounts accepts the key the simulator sends
  and has no key in clear when CITYBRAIN_ENV=production;
- the Dockerfile builds every binary the compose runs, with the pinned Rust
  toolchain, and runs as a non-root user.
Prints one line per problem; exits 1 if any.
"""
import hashlib
import json
import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARIES = {
    "citybrain-ingest": "ingest",
    "citybrain-sink": "sink",
    "citybrain-query": "query",
    "citybrain-simulator": "simulator",
}
problems = []


def problem(text):
    problems.append(text)


def env_vars_read(crate):
    """CITYBRAIN_* names that appear as string literals in the crate or the shared libraries."""
    text = ""
    for folder in (ROOT / "services" / crate / "src", ROOT / "services/lib"):
        text += "".join(p.read_text() for p in folder.rglob("*.rs"))
    return set(re.findall(r'"(CITYBRAIN_[A-Z0-9_]+)"', text))


def binary_of(service):
    command = service.get("command") or []
    if isinstance(command, str):
        command = command.split()
    return command[0] if command and command[0] in BINARIES else None


def mounts(service):
    """(source, target) of bind mounts."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                out.append((volume["source"], volume["target"]))
            continue
        parts = volume.split(":")
        if parts[0].startswith("/"):
            out.append((parts[0], parts[1]))
    return out


def mounted_file(service, target):
    for source, tgt in mounts(service):
        if tgt == target:
            return pathlib.Path(source)
        if target.startswith(tgt.rstrip("/") + "/"):
            return pathlib.Path(source) / target[len(tgt.rstrip("/")) + 1:]
    return None


def admin_port(service):
    env = service.get("environment", {})
    for name, value in env.items():
        if name.endswith("_ADMIN_ADDR"):
            return int(str(value).rsplit(":", 1)[1])
    return None


def check_mounts_and_images(services):
    for name, service in services.items():
        for source, target in mounts(service):
            if not pathlib.Path(source).exists():
                problem(f"{name}: mounts {source} (at {target}), which does not exist")
        image = service.get("image", "")
        if "build" in service:
            build = service["build"]
            dockerfile = pathlib.Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                problem(f"{name}: builds with {dockerfile}, which does not exist")
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        if not tag or tag == "latest":
            problem(f"{name}: image {image!r} is not pinned to a version")


def check_prometheus(services):
    prom = services.get("prometheus")
    if not prom:
        problem("no prometheus service")
        return
    config_path = mounted_file(prom, "/etc/prometheus/prometheus.yml")
    if not config_path or not config_path.exists():
        problem("prometheus: /etc/prometheus/prometheus.yml is not mounted")
        return
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config.get("rule_files", []):
        path = rule_file if rule_file.startswith("/") else "/etc/prometheus/" + rule_file
        host = mounted_file(prom, path)
        if not host or not host.exists():
            problem(f"prometheus: rule file {rule_file} is not mounted into the container")
    scraped = set()
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, port = target.rsplit(":", 1)
                if host == "localhost" and job["job_name"] == "prometheus":
                    continue
                service = services.get(host)
                if service is None:
                    problem(f"scrape target {target} (job {job['job_name']}): no compose service {host!r}")
                    continue
                if admin_port(service) != int(port):
                    problem(f"scrape target {target}: {host}'s admin port is {admin_port(service)}")
                if binary_of(service) != job["job_name"]:
                    problem(f"scrape target {target}: job {job['job_name']} but {host} runs {binary_of(service)}")
                scraped.add(host)
    for name, service in services.items():
        if binary_of(service) in ("citybrain-ingest", "citybrain-sink", "citybrain-query") and name not in scraped:
            problem(f"{name} runs {binary_of(service)} but Prometheus does not scrape it")


def check_grafana(services):
    grafana = services.get("grafana")
    if not grafana:
        problem("no grafana service")
        return
    env = grafana.get("environment", {})
    if "grafana-clickhouse-datasource" not in str(env.get("GF_INSTALL_PLUGINS", "")):
        problem("grafana: the ClickHouse plugin is not installed (GF_INSTALL_PLUGINS)")
    used = set()
    for dashboard in (ROOT / "dashboards").glob("*.json"):
        used |= set(re.findall(r'"uid":\s*"(citybrain-(?:clickhouse|prometheus))"', dashboard.read_text()))
    repo = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/citybrain.yaml").read_text())
    repo_uids = {d["uid"] for d in repo["datasources"]}
    ds_dir = "/etc/grafana/provisioning/datasources/"
    files = [(s, t) for s, t in mounts(grafana) if t.startswith(ds_dir)]
    if not files:
        problem("grafana: no datasource provisioning file mounted")
    uids = set()
    for source, _ in files:
        for ds in yaml.safe_load(pathlib.Path(source).read_text())["datasources"]:
            uids.add(ds["uid"])
            host = ds.get("jsonData", {}).get("host") or re.sub(r"^https?://([^:/]+).*", r"\1", ds.get("url", ""))
            if host and host not in services:
                problem(f"grafana datasource {ds['uid']}: host {host!r} is not a compose service")
    if uids != repo_uids:
        problem(f"grafana datasource uids {sorted(uids)} differ from dashboards/provisioning's {sorted(repo_uids)}")
    if not used <= uids:
        problem(f"dashboards use datasource uids {sorted(used - uids)} that are not provisioned")
    providers = [(s, t) for s, t in mounts(grafana) if t.startswith("/etc/grafana/provisioning/dashboards/")]
    if not providers:
        problem("grafana: no dashboard provider mounted")
    for source, _ in providers:
        for provider in yaml.safe_load(pathlib.Path(source).read_text())["providers"]:
            folder = mounted_file(grafana, provider["options"]["path"])
            if not folder or not list(folder.glob("*.json")):
                problem(f"grafana: provider path {provider['options']['path']} holds no mounted dashboards")


def check_env(services):
    read = {crate: env_vars_read(crate) for crate in BINARIES.values()}
    for name, service in services.items():
        binary = binary_of(service)
        if not binary:
            continue
        for var in service.get("environment", {}):
            if var.startswith("CITYBRAIN_") and var not in read[BINARIES[binary]]:
                problem(f"{name}: sets {var}, which {binary} never reads")


def check_topics(services):
    script = ROOT / "deploy/compose/kafka/create-topics.sh"
    text = script.read_text()
    listed = set(re.findall(r"^\s+(citybrain\.[a-z_]+\.v\d+)\s*$", text, re.M))
    feeds = set(re.findall(r'=> "(citybrain\.[a-z_]+\.v\d+)"', (ROOT / "proto/src/feed.rs").read_text()))
    dead = re.findall(r'pub const DEAD_LETTER_TOPIC: &str = "([^"]+)"', (ROOT / "proto/src/feed.rs").read_text())
    expected = feeds | set(dead)
    if not feeds or not dead:
        problem("could not read the feed topics or the dead-letter topic from the source")
    if listed != expected:
        problem(f"create-topics.sh creates {sorted(listed)}, the services use {sorted(expected)}")
    init = services.get("kafka-init", {})
    partitions = int(init.get("environment", {}).get("PARTITIONS", 0))
    groups = {}
    for name, service in services.items():
        if binary_of(service) == "citybrain-sink":
            group = service.get("environment", {}).get("CITYBRAIN_SINK_GROUP_ID", "citybrain-sink")
            groups[group] = groups.get(group, 0) + 1
    for group, count in groups.items():
        if count > partitions:
            problem(f"{count} sinks in group {group} but only {partitions} partitions per topic")


def check_keys(services):
    sim_keys = [s.get("environment", {}).get("CITYBRAIN_SIMULATOR_API_KEY") for s in services.values()
                if binary_of(s) == "citybrain-simulator"]
    for name, service in services.items():
        env = service.get("environment", {})
        for var in ("CITYBRAIN_INGEST_API_KEYS", "CITYBRAIN_QUERY_API_KEYS"):
            if var not in env:
                continue
            path = mounted_file(service, env[var])
            if not path or not path.exists():
                problem(f"{name}: {var}={env[var]} is not a mounted file")
                continue
            keys = tomllib.loads(path.read_text()).get("keys", [])
            digests = {k.get("sha256") for k in keys}
            if env.get("CITYBRAIN_ENV") == "production" and any("key" in k for k in keys):
                problem(f"{name}: {path} has a key in clear, which production refuses")
            if var == "CITYBRAIN_INGEST_API_KEYS":
                for key in filter(None, sim_keys):
                    if hashlib.sha256(key.encode()).hexdigest() not in digests:
                        problem(f"{name}: the simulator's API key is not in {path}")


def check_dockerfile(services):
    built = {s["build"]["context"] + "/" + s["build"].get("dockerfile", "Dockerfile")
             for s in services.values() if "build" in s}
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    for path in map(pathlib.Path, built):
        text = path.read_text()
        stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
        rust = [s for s in stages if s.startswith("rust:")]
        if not rust or not rust[0].startswith(f"rust:{channel}-"):
            problem(f"{path}: builder {rust} does not use the pinned toolchain {channel}")
        final = text[text.rindex("\nFROM "):]
        user = re.findall(r"^USER\s+(\S+)", final, re.M)
        if not user or user[-1].split(":")[0] in ("0", "root"):
            problem(f"{path}: the runtime stage does not switch to a non-root USER")
        for name, service in services.items():
            binary = binary_of(service)
            if "build" in service and (not binary or f"-p {binary}" not in text):
                problem(f"{name}: runs {binary}, which {path} does not build")


def main():
    rendered = yaml.safe_load(pathlib.Path(sys.argv[1]).read_text())
    services = rendered["services"]
    check_mounts_and_images(services)
    check_prometheus(services)
    check_grafana(services)
    check_env(services)
    check_topics(services)
    check_keys(services)
    check_dockerfile(services)
    for line in problems:
        print(line)
    print(f"{len(services)} services, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
