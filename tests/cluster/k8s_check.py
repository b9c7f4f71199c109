#!/usr/bin/python3
"""Checks deploy/kubernetes/*.yaml: parses every document (python3-yaml) and checks that the pieces
fit together (selectors, Service ports, the worker's head address, the secret reaching every dray
process, $(VAR) references). With --run BUILD_DIR it then runs the head, two workers and the driver
Job exactly as their manifests say, as local processes on 127.0.0.1 (the pod IP, the Service name and
0.0.0.0 replaced by 127.0.0.1, the Secret by a fresh random one), and checks the driver's result
against a local run, the nodes' task counters, and that a worker with another secret is refused.
Usage: k8s_check.py DEPLOY_DIR [--run BUILD_DIR]; exit 0 when every check passes."""
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml


def fail(msg):
    print("k8s_check: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def load(deploy_dir):
    docs = []
    files = sorted(glob.glob(os.path.join(deploy_dir, "*.yaml")))
    if not files:
        fail("no YAML files in " + deploy_dir)
    for path in files:
        with open(path) as f:
            try:
                parsed = list(yaml.safe_load_all(f))
            except yaml.YAMLError as e:
                fail("%s does not parse: %s" % (path, str(e).replace("\n", " ")))
            for d in parsed:
                if d is None:
                    continue
                for key in ("apiVersion", "kind", "metadata"):
                    if key not in d:
                        fail("%s: a document without %s" % (path, key))
                docs.append(d)
    return docs


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"].get("name") == name]
    if len(found) != 1:
        fail("expected one %s named %s, found %d" % (kind, name, len(found)))
    return found[0]


def arg_after(args, flag):
    if flag not in args or args.index(flag) + 1 >= len(args):
        fail("%s has no %s VALUE" % (args, flag))
    return args[args.index(flag) + 1]


# Field names these manifests may use (a subset of the Kubernetes API): a misspelt one would be
# rejected by the API server, so it fails here too.
KNOWN = {
    "Deployment.spec": {"replicas", "selector", "template", "strategy", "minReadySeconds",
                        "revisionHistoryLimit", "progressDeadlineSeconds"},
    "Job.spec": {"template", "backoffLimit", "completions", "parallelism", "activeDeadlineSeconds",
                 "ttlSecondsAfterFinished"},
    "Service.spec": {"selector", "ports", "type", "clusterIP"},
    "pod": {"containers", "volumes", "restartPolicy", "securityContext", "serviceAccountName",
            "nodeSelector", "tolerations", "affinity", "terminationGracePeriodSeconds"},
    "container": {"name", "image", "imagePullPolicy", "command", "args", "env", "ports",
                  "readinessProbe", "livenessProbe", "startupProbe", "resources", "volumeMounts",
                  "securityContext", "workingDir"},
    "env": {"name", "value", "valueFrom"},
    "valueFrom": {"secretKeyRef", "fieldRef", "resourceFieldRef", "configMapKeyRef"},
}


def known(what, d, where):
    extra = set(d) - KNOWN[what]
    if extra:
        fail("%s: unknown field(s) %s" % (where, ", ".join(sorted(extra))))


def check_fields(d):
    name = "%s %s" % (d["kind"], d["metadata"].get("name"))
    spec = d.get("spec", {})
    if d["kind"] in ("Deployment", "Job", "Service"):
        known(d["kind"] + ".spec", spec, name)
    if d["kind"] in ("Deployment", "Job"):
        pod = spec.get("template", {}).get("spec", {})
        known("pod", pod, name + " pod")
        for c in pod.get("containers", []):
            known("container", c, "%s container %s" % (name, c.get("name")))
            for e in c.get("env", []):
                known("env", e, "%s env %s" % (name, e.get("name")))
                if "valueFrom" in e:
                    known("valueFrom", e["valueFrom"], "%s env %s" % (name, e.get("name")))


def check_container(c, secret_name, secret_key):
    env = {e["name"]: e for e in c.get("env", [])}
    s = env.get("DRAY_SECRET")
    if not s:
        fail("container %s: no DRAY_SECRET" % c["name"])
    ref = s.get("valueFrom", {}).get("secretKeyRef", {})
    if ref.get("name") != secret_name or ref.get("key") != secret_key:
        fail("container %s: DRAY_SECRET does not come from Secret %s key %s" %
             (c["name"], secret_name, secret_key))
    for a in c.get("args", []) + c.get("command", []):
        for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
            if var not in env:
                fail("container %s: $(%s) is not defined in its env" % (c["name"], var))
    for e in env.values():
        rf = e.get("valueFrom", {}).get("resourceFieldRef")
        if rf and rf.get("containerName", c["name"]) != c["name"]:
            fail("container %s: resourceFieldRef names container %s" % (c["name"], rf["containerName"]))


def pod_spec(workload):
    spec = workload["spec"]
    tmpl = spec["template"]
    if workload["kind"] == "Deployment":
        sel = spec["selector"]["matchLabels"]
        labels = tmpl["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in sel.items()):
            fail("Deployment %s: selector %s does not match its pod labels %s" %
                 (workload["metadata"]["name"], sel, labels))
    return tmpl["metadata"].get("labels", {}), tmpl["spec"]["containers"]


def check(docs):
    for d in docs:
        check_fields(d)
    secret = one(docs, "Secret", "dray-cluster")
    if "secret" not in secret.get("stringData", secret.get("data", {})):
        fail("Secret dray-cluster has no key 'secret'")
    head = one(docs, "Deployment", "dray-head")
    svc = one(docs, "Service", "dray-head")
    workers = one(docs, "Deployment", "dray-worker")
    jobs = [d for d in docs if d["kind"] == "Job"]
    if head["spec"].get("replicas", 1) != 1:
        fail("the head Deployment must have exactly one replica")
    hlabels, hcont = pod_spec(head)
    wlabels, wcont = pod_spec(workers)
    sel = svc["spec"]["selector"]
    if any(hlabels.get(k) != v for k, v in sel.items()):
        fail("Service dray-head selects %s, not the head pods %s" % (sel, hlabels))
    if all(wlabels.get(k) == v for k, v in sel.items()):
        fail("Service dray-head also selects the worker pods")
    h = hcont[0]
    hargs = h["command"] + h["args"]
    if "--head" not in hargs:
        fail("the head container does not run `dray start --head`")
    head_port = int(arg_after(hargs, "--port"))
    if arg_after(hargs, "--bind") in ("127.0.0.1", "localhost"):
        fail("the head binds loopback only: pods cannot reach it")
    ports = {p.get("name"): p["containerPort"] for p in h.get("ports", [])}
    sp = svc["spec"]["ports"][0]
    target = sp.get("targetPort", sp["port"])
    if (ports.get(target) if isinstance(target, str) else target) != head_port:
        fail("Service targetPort %s is not the head's --port %d" % (target, head_port))
    service_addr = "%s:%d" % (svc["metadata"]["name"], sp["port"])
    w = wcont[0]
    wargs = w["command"] + w["args"]
    if arg_after(wargs, "--address") != service_addr:
        fail("workers join %s, not the Service %s" % (arg_after(wargs, "--address"), service_addr))
    if arg_after(wargs, "--bind") != "$(POD_IP)":
        fail("workers must listen on their pod IP (--bind $(POD_IP)) for drivers to reach them")
    for c in [h, w]:
        check_container(c, "dray-cluster", "secret")
    for j in jobs:
        for c in j["spec"]["template"]["spec"]["containers"]:
            check_container(c, "dray-cluster", "secret")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if env.get("DRAY_ADDRESS") != service_addr:
                fail("Job %s: DRAY_ADDRESS %s is not %s" %
                     (j["metadata"]["name"], env.get("DRAY_ADDRESS"), service_addr))
    return head, svc, workers, jobs


# ==== The local run ====

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def local_argv(c, build, subst):
    argv = []
    for a in c["command"] + c.get("args", []):
        for k, v in subst.items():
            a = a.replace(k, v)
        argv.append(a)
    exe = os.path.join(build, "bin", argv[0])
    if not os.path.exists(exe):
        fail("%s is not built" % exe)
    argv[0] = exe
    return argv


def local_env(c, secret_hex, extra, subst=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("DRAY_") or k.startswith("OMPI_") or k.startswith("SLURM_") or k.startswith("PMI"):
            del env[k]
    for e in c.get("env", []):
        if "value" in e:
            v = e["value"]
            for k, r in (subst or {}).items():
                v = v.replace(k, r)
            env[e["name"]] = v
        elif "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = secret_hex
    env.update(extra)
    return env


def run(deploy_dir, build):
    docs = load(deploy_dir)
    head, svc, workers, jobs = check(docs)
    build = os.path.abspath(build)
    tmp = tempfile.mkdtemp(prefix="dray-k8s-")
    procs = []
    try:
        secret_hex = secrets.token_hex(32)
        port = free_port()
        hargs = head["spec"]["template"]["spec"]["containers"][0]
        orig_port = arg_after(hargs["command"] + hargs["args"], "--port")
        addr = "127.0.0.1:%d" % port
        subst = {"dray-head:%s" % svc["spec"]["ports"][0]["port"]: addr, "0.0.0.0": "127.0.0.1",
                 "$(POD_IP)": "127.0.0.1", "$(DRAY_NUM_CPUS)": "1"}
        hsub = dict(subst)
        hsub[orig_port] = str(port)
        hc = hargs
        head_log = open(os.path.join(tmp, "head.log"), "w")
        henv = local_env(hc, secret_hex, {"DRAY_CLUSTER_DIR": os.path.join(tmp, "head")})
        procs.append(subprocess.Popen(local_argv(hc, build, hsub), env=henv, stdout=head_log,
                                      stderr=subprocess.STDOUT))
        # The head's readiness probe, as written, until it succeeds.
        probe = [a.replace("127.0.0.1:%s" % orig_port, addr)
                 for a in hc["readinessProbe"]["exec"]["command"]]
        probe[0] = os.path.join(build, "bin", probe[0])
        penv = local_env(hc, secret_hex, {})
        deadline = time.time() + 15
        while subprocess.run(probe, env=penv, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL).returncode != 0:
            if time.time() > deadline or procs[0].poll() is not None:
                fail("the head did not become ready (see its log)")
            time.sleep(0.1)
        wc = workers["spec"]["template"]["spec"]["containers"][0]
        wenv = local_env(wc, secret_hex, {})
        for i in range(workers["spec"]["replicas"]):
            procs.append(subprocess.Popen(local_argv(wc, build, subst), env=wenv,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # A worker with another secret is refused, and the head says so in its log.
        bad = subprocess.run(local_argv(wc, build, subst), env=local_env(wc, secrets.token_hex(32), {}),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        if bad.returncode == 0:
            fail("a worker with a wrong secret was not refused")
        # The driver Job, then the same program alone.
        jc = jobs[0]["spec"]["template"]["spec"]["containers"][0]
        drv = subprocess.run(local_argv(jc, build, subst), env=local_env(jc, secret_hex, {}, subst),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=40, text=True)
        if drv.returncode != 0:
            fail("the driver Job failed: %s %s" % (drv.stdout, drv.stderr))
        alone = subprocess.run(local_argv(jc, build, {}), env=local_env({}, secret_hex, {}),
                               stdout=subprocess.PIPE, timeout=40, text=True)
        pick = lambda out: [l for l in out.splitlines() if l.startswith("  shape ")]
        if not pick(drv.stdout) or pick(drv.stdout) != pick(alone.stdout):
            fail("cluster result %s differs from the local one %s" % (pick(drv.stdout), pick(alone.stdout)))
        if "check: ok" not in drv.stdout:
            fail("the driver's own check failed: " + drv.stdout)
        time.sleep(0.7)  # one heartbeat: the nodes' counters include the last tasks
        st = subprocess.run(probe, env=penv, stdout=subprocess.PIPE, text=True, timeout=10)
        rows = [l.split() for l in st.stdout.splitlines()[2:] if re.match(r"^\d+ ", l)]
        live = [r for r in rows if r[4] == "yes"]
        if len(live) != workers["spec"]["replicas"] or any(int(r[5]) == 0 for r in live):
            fail("expected %d live workers that each ran tasks:\n%s" %
                 (workers["spec"]["replicas"], st.stdout))
        head_log.flush()
        with open(os.path.join(tmp, "head.log")) as f:
            if "refused peer" not in f.read():
                fail("the head did not log the refused worker")
        print("k8s_check: local run ok: %d workers, %s" %
              (len(live), ", ".join("node %s ran %s tasks" % (r[0], r[5]) for r in live)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) == 2:
        check(load(sys.argv[1]))
        print("k8s_check: manifests ok")
    elif len(sys.argv) == 4 and sys.argv[2] == "--run":
        run(sys.argv[1], sys.argv[3])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
