#!/usr/bin/env python3
"""Checks every manifest in deploy/kubernetes: a schema check, then Baton's
own consistency rules. Run through deploy/kubernetes/validate.sh, which
installs the validator (kubernetes-validate, from PyPI: it bundles the
Kubernetes JSON schemas, so nothing else is fetched).

1. Schema: every resource of every *.yaml (but kustomization.yaml) against
   the bundled Kubernetes schemas, strictly (unknown fields are errors), for
   the oldest version the manifests claim (1.32) and the newest bundled.
   A deliberately broken copy must fail, so the check cannot pass vacuously.
2. Consistency: controller.toml in the ConfigMap parses and uses only keys
   deploy/config/controller.toml documents; its peers are exactly the
   StatefulSet's pod DNS names, raft ids = pod ordinals; probes are HTTP /healthz on
   the served port; the headless Service and the PodDisruptionBudget select
   the pods; the agent sidecar's --controllers names the same members;
   containers run as non-root without privilege escalation; the
   kustomization lists every manifest.

Prints one line per check and ends with "manifests: N passed, N failed".
"""
import copy
import glob
import os
import sys
import re
import tomllib

import yaml
import kubernetes_validate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VERSIONS = ["1.32.0", kubernetes_validate.utils.latest_version()]

results = []


def record(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")


def check(name, fn):
    try:
        fn()
        record(name, True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        record(name, False, f"{type(e).__name__}: {e}")


def load_all():
    docs = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        with open(path) as f:
            docs[path] = [d for d in yaml.safe_load_all(f) if d]
    return docs


def schema_errors(resource, version):
    try:
        kubernetes_validate.validate(resource, version, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in getattr(e, "path", [])) or "<root>"
        return f"{path}: {getattr(e, 'message', e)}"
    except Exception as e:  # noqa: BLE001 - unknown kind/version etc.
        return f"{type(e).__name__}: {e}"


def find(docs, kind, name):
    for resources in docs.values():
        for r in resources:
            if r["kind"] == kind and r["metadata"]["name"] == name:
                return r
    raise AssertionError(f"no {kind} {name}")


def assert_eq(a, b, what):
    if a != b:
        raise AssertionError(f"{what}: {a!r} != {b!r}")


def main():
    docs = load_all()
    if not docs:
        record("manifests found", False, HERE)
        return

    # ---- 1. schemas
    for path, resources in docs.items():
        for r in resources:
            for v in VERSIONS:
                name = f"schema {os.path.basename(path)} {r.get('kind')}/{r.get('metadata', {}).get('name')} k8s {v}"
                err = schema_errors(r, v)
                record(name, err is None, err or "")

    def broken_copy_is_rejected():
        sts = copy.deepcopy(find(docs, "StatefulSet", "baton-controller"))
        sts["spec"]["replica"] = 3  # typo: an unknown field
        sts["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "7101"  # wrong type
        assert schema_errors(sts, VERSIONS[-1]) is not None, "a broken StatefulSet passed the schema check"

    check("schema check rejects a broken StatefulSet", broken_copy_is_rejected)

    # ---- 2. consistency
    sts = find(docs, "StatefulSet", "baton-controller")
    pod = sts["spec"]["template"]
    ctr = next(c for c in pod["spec"]["containers"] if c["name"] == "controller")
    grpc_port = next(p["containerPort"] for p in ctr["ports"] if p["name"] == "grpc")
    cm = find(docs, "ConfigMap", "baton-controller")
    toml_text = cm["data"]["controller.toml"]
    start = sts["spec"].get("ordinals", {}).get("start", 0)
    replicas = sts["spec"]["replicas"]
    expected_peers = {
        start + i: f"{sts['metadata']['name']}-{start + i}.{sts['spec']['serviceName']}:{grpc_port}"
        for i in range(replicas)
    }

    def config_keys_known():
        conf = tomllib.loads(toml_text)
        with open(os.path.join(ROOT, "deploy", "config", "controller.toml"), "rb") as f:
            raw = f.read()
        reference = tomllib.loads(raw.decode())
        # Options off by default are documented commented out: `# key = ...`.
        commented = set(re.findall(r"^# ([a-z_]+) = ", raw.decode(), re.MULTILINE))
        for key, value in conf.items():
            assert key in reference or key in commented, f"unknown key {key!r}"
            if isinstance(value, dict):
                unknown = set(value) - set(reference[key])
                assert not unknown, f"unknown keys in [{key}]: {sorted(unknown)}"
        assert "id" not in conf, "id must come from the pod (BATON_ID), not the shared file"
        assert conf["listen"].endswith(f":{grpc_port}"), "listen port differs from the container port"

    def peers_are_pod_names():
        conf = tomllib.loads(toml_text)
        peers = {}
        for item in conf["peers"].split(","):
            i, addr = item.strip().split("=", 1)
            peers[int(i)] = addr
        assert_eq(peers, expected_peers, "peers vs StatefulSet pods")
        assert start >= 1, "raft ids start at 1: ordinals.start must be >= 1"
        env = {e["name"]: e for e in ctr.get("env", [])}
        assert_eq(
            env["BATON_ID"]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['apps.kubernetes.io/pod-index']",
            "BATON_ID source",
        )

    def probes_are_http_healthz():
        # The gRPC port requires client certificates, which the kubelet
        # cannot present: probes use /healthz on the metrics port, which
        # must be the port metrics_listen serves.
        http_port = next(p["containerPort"] for p in ctr["ports"] if p["name"] == "http")
        metrics = tomllib.loads(toml_text).get("metrics_listen", "")
        assert metrics.endswith(f":{http_port}"), f"metrics_listen {metrics!r} is not the http port {http_port}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in ctr, f"{probe} missing"
            get = ctr[probe].get("httpGet", {})
            assert_eq(get.get("path"), "/healthz", f"{probe} path")
            assert_eq(get.get("port"), "http", f"{probe} port")

    def tls_is_configured():
        env = {e["name"]: e.get("value", "") for e in ctr.get("env", [])}
        for key in ("BATON_TLS__CA_FILE", "BATON_TLS__CERT_FILE", "BATON_TLS__KEY_FILE"):
            assert env.get(key, "").startswith("/etc/baton/tls/"), f"{key} not set to the mounted Secret"
        assert "$(BATON_ID)" in env["BATON_TLS__CERT_FILE"], "each pod must present its own controller certificate"
        mounts = {m["name"]: m["mountPath"] for m in ctr.get("volumeMounts", [])}
        assert_eq(mounts.get("tls"), "/etc/baton/tls", "tls mount")
        assert "plaintext" not in toml_text, "the ConfigMap must not turn TLS off"

    def services_and_pdb_select_pods():
        labels = pod["metadata"]["labels"]
        svc = find(docs, "Service", sts["spec"]["serviceName"])
        assert_eq(svc["spec"].get("clusterIP"), "None", "headless service clusterIP")
        assert svc["spec"].get("publishNotReadyAddresses") is True, "peers must resolve before ready"
        for k, v in svc["spec"]["selector"].items():
            assert_eq(labels.get(k), v, f"service selector {k}")
        for k, v in sts["spec"]["selector"]["matchLabels"].items():
            assert_eq(labels.get(k), v, f"statefulset selector {k}")
        pdb = find(docs, "PodDisruptionBudget", "baton-controller")
        assert_eq(pdb["spec"].get("maxUnavailable"), 1, "PDB maxUnavailable")
        for k, v in pdb["spec"]["selector"]["matchLabels"].items():
            assert_eq(labels.get(k), v, f"PDB selector {k}")
        assert sts["spec"].get("volumeClaimTemplates"), "no volumeClaimTemplates"
        mounts = {m["name"]: m["mountPath"] for m in ctr["volumeMounts"]}
        data_dir = tomllib.loads(toml_text)["data_dir"]
        claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        assert data_dir.startswith(mounts[claim] + "/"), "data_dir must be a subfolder of the persistent volume"
        assert ctr.get("resources", {}).get("requests"), "controller has no resource requests"

    def agent_names_the_quorum():
        broker = find(docs, "StatefulSet", "example-broker")
        spec = broker["spec"]["template"]["spec"]
        agent = next(c for c in spec.get("initContainers", []) if c["name"] == "baton-agent")
        assert_eq(agent.get("restartPolicy"), "Always", "agent sidecar restartPolicy")
        args = dict(a.removeprefix("--").split("=", 1) for a in agent["args"] if a.startswith("--"))
        assert_eq(set(args["controllers"].split(",")), set(expected_peers.values()), "agent --controllers")
        assert args["listen"].startswith("127.0.0.1:"), "the agent API must stay on loopback"

    def non_root_everywhere():
        for resources in docs.values():
            for r in resources:
                if r["kind"] not in ("StatefulSet", "Deployment", "Pod"):
                    continue
                spec = r["spec"]["template"]["spec"] if r["kind"] != "Pod" else r["spec"]
                assert spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{r['metadata']['name']}: runAsNonRoot"
                for c in spec.get("containers", []) + spec.get("initContainers", []):
                    sc = c.get("securityContext", {})
                    assert sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: allowPrivilegeEscalation"

    def kustomization_complete():
        with open(os.path.join(HERE, "kustomization.yaml")) as f:
            listed = set(yaml.safe_load(f)["resources"])
        assert_eq(listed, {os.path.basename(p) for p in docs}, "kustomization resources")

    check("controller.toml keys are documented options, no per-pod id", config_keys_known)
    check("peers = StatefulSet pod DNS names, raft id = pod index", peers_are_pod_names)
    check("startup/readiness/liveness probes are HTTP /healthz on the metrics port", probes_are_http_healthz)
    check("mTLS: per-pod controller certificate from the mounted Secret", tls_is_configured)
    check("headless Service, StatefulSet and PDB select the controller pods", services_and_pdb_select_pods)
    check("agent sidecar names the same controllers, API on loopback", agent_names_the_quorum)
    check("every workload runs as non-root without privilege escalation", non_root_everywhere)
    check("kustomization lists every manifest", kustomization_complete)


if __name__ == "__main__":
    main()
    failed = results.count(False)
    print(f"manifests: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
