#!/usr/bin/env python3
"""What the local node changes on the host, recorded before `up` and undone and checked by `down`.

    hoststate.py snapshot FILE       record the host state the node may touch
    hoststate.py restore FILE        undo every difference to FILE that the node can have made
    hoststate.py check FILE          print what still differs from FILE; exit 1 if anything does

Covered: network interfaces and namespaces, nftables tables and iptables/ip6tables rules and
chains, mounts, cgroups, the sysctls kubelet, kube-proxy and the CNI plugins set, and the host
paths containerd, the CNI plugins and kubelet create outside the cluster directory. Only one node
cluster runs on a machine at a time (cluster.sh refuses a second), so every difference is ours.
"""
import json
import os
import subprocess
import sys

SYSCTLS = [
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
]
# Places containerd, runc, the CNI plugins and kubelet use by default; the cluster points all of
# them into its own directory, and this proves none slipped out.
HOST_PATHS = [
    "/run/containerd", "/run/netns", "/var/run/netns", "/run/runc", "/var/lib/cni",
    "/var/lib/kubelet", "/var/lib/containerd", "/var/log/pods", "/var/log/containers",
    "/etc/cni", "/opt/cni", "/opt/containerd", "/etc/kubernetes", "/usr/libexec/kubernetes",
    "/var/lib/kube-proxy", "/run/kubernetes",
]
CGROUP_ROOT = "/sys/fs/cgroup"


def run(*cmd, check=False):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"hoststate: {' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout if r.returncode == 0 else ""


def iptables_rules(save_cmd):
    """{table: {"chains": [...], "rules": [...]}} without counters."""
    tables, table = {}, None
    for line in run(save_cmd).splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {"chains": [], "rules": []})
        elif line.startswith(":") and table is not None:
            table["chains"].append(line[1:].split()[0])
        elif line.startswith("-A") and table is not None:
            table["rules"].append(line)
    return tables


def cgroups():
    found = []
    if not os.path.isdir(CGROUP_ROOT):
        return found
    for ctl in sorted(os.listdir(CGROUP_ROOT)):
        base = os.path.join(CGROUP_ROOT, ctl)
        if os.path.isdir(base) and not os.path.islink(base):
            found += [f"{ctl}/{d}" for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))]
    return found


def sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def snapshot():
    return {
        "links": sorted(l.split(":")[1].strip().split("@")[0] for l in run("ip", "-o", "link", "show").splitlines()),
        "netns": sorted(l.split()[0] for l in run("ip", "netns", "list").splitlines() if l.strip()),
        "nft": sorted(l.strip() for l in run("nft", "list", "tables").splitlines() if l.strip()),
        "iptables": iptables_rules("iptables-save"),
        "ip6tables": iptables_rules("ip6tables-save"),
        "mounts": sorted({l.split()[4] for l in open("/proc/self/mountinfo")}),
        "cgroups": cgroups(),
        "sysctls": {name: sysctl(name) for name in SYSCTLS},
        "paths": [p for p in HOST_PATHS if os.path.lexists(p)],
    }


def differences(before, now):
    out = []
    for key in ("links", "netns", "nft", "mounts", "cgroups", "paths"):
        for item in sorted(set(now[key]) - set(before[key])):
            out.append(f"{key}: {item} added")
    for fam in ("iptables", "ip6tables"):
        for table, spec in now[fam].items():
            old = before[fam].get(table, {"chains": [], "rules": []})
            out += [f"{fam} {table}: chain {c} added" for c in spec["chains"] if c not in old["chains"]]
            out += [f"{fam} {table}: {r}" for r in spec["rules"] if r not in old["rules"]]
    for name, value in now["sysctls"].items():
        if value != before["sysctls"].get(name):
            out.append(f"sysctl {name} = {value} (was {before['sysctls'].get(name)})")
    return out


def kill_cgroup_tree(path):
    for root, dirs, _ in os.walk(path, topdown=False):
        try:
            pids = open(os.path.join(root, "cgroup.procs")).read().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
    for _ in range(50):
        try:
            for root, dirs, _ in os.walk(path, topdown=False):
                os.rmdir(root)
            return
        except FileNotFoundError:
            return
        except OSError:
            subprocess.run(["sleep", "0.1"])


def restore(before):
    now = snapshot()
    # Mounts first (deepest first), so namespaces, cgroups and paths can go.
    for m in sorted(set(now["mounts"]) - set(before["mounts"]), key=len, reverse=True):
        run("umount", "-l", m)
    for c in sorted(set(now["cgroups"]) - set(before["cgroups"])):
        kill_cgroup_tree(os.path.join(CGROUP_ROOT, c))
    for ns in set(now["netns"]) - set(before["netns"]):
        run("ip", "netns", "delete", ns)
    for link in set(now["links"]) - set(before["links"]):
        run("ip", "link", "delete", link)
    # Whole nftables tables that did not exist (iptables-nft creates e.g. `ip nat` on first use).
    for table in set(now["nft"]) - set(before["nft"]):
        run("nft", "delete", "table", *table.split()[1:])
    for fam, restore_cmd in (("iptables", "iptables-restore"), ("ip6tables", "ip6tables-restore")):
        script = []
        for table, spec in iptables_rules(fam + "-save").items():
            old = before[fam].get(table)
            if old is None:
                continue
            added_rules = [r for r in spec["rules"] if r not in old["rules"]]
            added_chains = [c for c in spec["chains"] if c not in old["chains"]]
            if not added_rules and not added_chains:
                continue
            script.append("*" + table)
            script += ["-D" + r[2:] for r in added_rules]
            script += [f"-F {c}" for c in added_chains] + [f"-X {c}" for c in added_chains]
            script.append("COMMIT")
        if script:
            subprocess.run([restore_cmd, "-n"], input="\n".join(script) + "\n", text=True, check=False)
    for name, value in before["sysctls"].items():
        if value is not None and sysctl(name) != value:
            try:
                with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                    f.write(value)
            except OSError as e:
                print(f"hoststate: cannot restore {name}: {e}", file=sys.stderr)
    for path in set(now["paths"]) - set(before["paths"]):
        run("rm", "-rf", "--one-file-system", path)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("snapshot", "restore", "check"):
        raise SystemExit(__doc__)
    cmd, file = sys.argv[1:]
    if cmd == "snapshot":
        with open(file, "w") as f:
            json.dump(snapshot(), f, indent=1)
        return
    with open(file) as f:
        before = json.load(f)
    if cmd == "restore":
        restore(before)
        return
    left = differences(before, snapshot())
    for line in left:
        print("left behind: " + line, file=sys.stderr)
    sys.exit(1 if left else 0)


if __name__ == "__main__":
    main()
