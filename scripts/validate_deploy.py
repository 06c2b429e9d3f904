#!/usr/bin/env python3
"""Validates deploy/k8s offline against the Kubernetes JSON schemas that the
`kubernetes-validate` package ships (strict: unknown fields are errors).

The Knative Service is a custom resource without a bundled schema: its
revision template is validated as a core PodSpec (what Knative builds its
pods from) and the scaling settings of the design are checked: container
concurrency 100, min scale 4, max scale 20.
"""
import glob
import json
import re
import sys

import kubernetes_validate
import yaml

VERSION = "1.30.0"


def fail(msg):
    print(f"FAIL {msg}")
    return 1


def check_knative(path, doc):
    errors = 0
    tmpl = doc["spec"]["template"]
    ann = tmpl.get("metadata", {}).get("annotations", {})
    spec = tmpl["spec"]
    if spec.get("containerConcurrency") != 100:
        errors += fail(f"{path}: containerConcurrency must be 100")
    if ann.get("autoscaling.knative.dev/min-scale") != "4":
        errors += fail(f"{path}: min-scale must be 4")
    if ann.get("autoscaling.knative.dev/max-scale") != "20":
        errors += fail(f"{path}: max-scale must be 20")
    for c in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                errors += fail(f"{path}: container {c['name']} has no {probe}")
    # Knative-only fields are not part of a core PodSpec.
    pod_spec = {k: v for k, v in spec.items() if k not in ("containerConcurrency", "timeoutSeconds")}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace")},
        "spec": pod_spec,
    }
    try:
        kubernetes_validate.validate(pod, VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        errors += fail(f"{path}: revision template: {e.message} at {list(e.path)}")
    return errors


def check_metric_names():
    """Every hts_* metric the dashboard and rules use is a documented one."""
    with open("docs/operations.md") as f:
        documented = set(re.findall(r"^\| `(hts_[a-z_]+)`", f.read(), re.M))
    errors = 0 if documented else fail("no metrics documented in docs/operations.md")
    used = {}
    with open("deploy/grafana/hts-dashboard.json") as f:
        for panel in json.load(f)["panels"]:
            for t in panel["targets"]:
                used.setdefault("deploy/grafana/hts-dashboard.json", []).append(t["expr"])
    for path in glob.glob("deploy/prometheus/rules/*.yml"):
        with open(path) as f:
            for group in yaml.safe_load(f)["groups"]:
                used.setdefault(path, []).extend(r["expr"] for r in group["rules"])
    for path, exprs in used.items():
        for expr in exprs:
            for name in re.findall(r"\b(hts_[a-z_]+)", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in documented and base not in documented:
                    errors += fail(f"{path}: {name} is not a documented metric")
    return errors


def check_postgres_budget():
    """Patroni settings of the design, and the pools fit max_connections."""
    errors = 0
    with open("deploy/postgres/patroni.yml") as f:
        dcs = yaml.safe_load(f)["bootstrap"]["dcs"]
    params = dcs["postgresql"]["parameters"]
    if params.get("synchronous_commit") != "on" or dcs.get("synchronous_mode") is not True:
        errors += fail("patroni.yml: synchronous_mode and synchronous_commit=on are required")
    max_conn = params.get("max_connections")
    if max_conn != 200:
        errors += fail("patroni.yml: max_connections must be 200")
    with open("deploy/k8s/config.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    pool = next(int(d["data"]["DB_POOL_SIZE"]) for d in docs
                if d["metadata"]["name"] == "hts-order-service-config")
    with open("deploy/k8s/order-service.yaml") as f:
        ksvc = next(d for d in yaml.safe_load_all(f)
                    if d and d.get("apiVersion") == "serving.knative.dev/v1")
    max_scale = int(ksvc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"])
    reserved = 30
    if pool * max_scale > (max_conn or 0) - reserved:
        errors += fail(f"order-service pools {max_scale} x {pool} exceed max_connections {max_conn} - {reserved} reserved")
    return errors


def main():
    errors = check_metric_names() + check_postgres_budget()
    count = 0
    for path in sorted(glob.glob("deploy/k8s/*.yaml")):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            count += 1
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if doc.get("apiVersion") == "serving.knative.dev/v1":
                errors += check_knative(path, doc)
                continue
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                errors += fail(f"{path} {name}: {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError as e:
                errors += fail(f"{path} {name}: no schema: {e}")
    if count == 0:
        errors += fail("no manifests found")
    print(f"{count} resources checked, {errors} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
