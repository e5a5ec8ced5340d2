"""deploy/k8s: every manifest is valid Kubernetes (kubernetes-validate, strict), the ConfigMap's YAML passes our
config schema for every role, and the operational wiring (node ids, probes, drain, PDBs, RBAC) is there."""
import copy
import glob
import os

import pytest
import yaml

from mindspore_federated.config import load_config_dict

kv = pytest.importorskip("kubernetes_validate", reason="the pip package kubernetes-validate is not installed")

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "deploy", "k8s")
VERSION = "1.29.0"


def _docs():
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            out += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    return out


DOCS = _docs()


def _one(kind, name):
    (doc,) = [d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_the_manifests_are_there():
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in DOCS}
    assert {("Deployment", "fl-scheduler"), ("Service", "fl-scheduler"), ("StatefulSet", "fl-server"),
            ("Deployment", "fl-worker"), ("StatefulSet", "fl-redis"), ("ConfigMap", "fl-config"),
            ("Secret", "fl-tls"), ("PodDisruptionBudget", "fl-server")} <= kinds


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_every_manifest_validates_strictly(doc):
    kv.validate(doc, VERSION, strict=True)


def test_the_validator_catches_a_broken_manifest():
    bad = copy.deepcopy(_one("StatefulSet", "fl-server"))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, VERSION, strict=True)
    bad = copy.deepcopy(_one("StatefulSet", "fl-server"))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, VERSION, strict=True)


@pytest.mark.parametrize("role", ["server", "scheduler", "worker"])
def test_the_configmap_yaml_passes_the_schema(role):
    cfg = yaml.safe_load(_one("ConfigMap", "fl-config")["data"]["fl.yaml"])
    load_config_dict(cfg, role=role)


def _container(kind, name):
    return _one(kind, name)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("kind,name", [("StatefulSet", "fl-server"), ("Deployment", "fl-scheduler"),
                                       ("Deployment", "fl-worker")])
def test_every_role_gets_the_secrets_enable_ssl_needs(kind, name):
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in _container(kind, name)["env"]
           if "secretKeyRef" in e.get("valueFrom", {})}
    token = {"MSF_MANAGE_TOKEN": "fl-manage-token"} if name == "fl-scheduler" else {}
    assert env == {"MSF_REDIS_PASSWORD": "fl-redis-auth", "MSF_SSL_SERVER_PASSWORD": "fl-tls-passwords",
                   "MSF_SSL_CLIENT_PASSWORD": "fl-tls-passwords", **token}
    mounts = {m["mountPath"] for m in _container(kind, name)["volumeMounts"]}
    assert "/etc/mindspore-federated/tls" in mounts


def test_servers_keep_their_node_id_and_drain_on_stop():
    sts = _one("StatefulSet", "fl-server")
    c = _container("StatefulSet", "fl-server")
    env = {e["name"]: e for e in c["env"]}
    assert env["MS_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "kill -TERM 1" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] in {m["name"] for m in c["volumeMounts"]}


@pytest.mark.parametrize("kind,name", [("StatefulSet", "fl-server"), ("Deployment", "fl-scheduler")])
def test_probes_use_healthz(kind, name):
    c = _container(kind, name)
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz"


def test_disruption_budgets_select_their_pods():
    for name in ("fl-server", "fl-redis"):
        pdb = _one("PodDisruptionBudget", name)
        labels = _one("StatefulSet", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_scheduler_may_scale_only_the_servers():
    role = _one("Role", "fl-scheduler-scale-servers")
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["statefulsets/scale"],
                              "resourceNames": ["fl-server"], "verbs": ["get", "patch", "update"]}]
    assert _one("Deployment", "fl-scheduler")["spec"]["template"]["spec"]["serviceAccountName"] == "fl-scheduler"
