#!/usr/bin/env python3
"""JSON schemas for kubeconform from our CRDs (crds/*.yaml), so examples/ validate offline.

Usage: crd_schema.py OUT_DIR CRD.yaml...  Writes OUT_DIR/<kind>-<group prefix>-<version>.json,
the file name kubeconform's {{ .ResourceKind }}{{ .KindSuffix }} asks for. Strict like the
Kubernetes schemas: unknown fields are errors. CEL rules (x-kubernetes-validations) are not
checked here; the e2e tests apply the examples to the real API server, which checks them.
"""
import json
import os
import sys

import yaml


def strict(node):
    """OpenAPI v3 (structural CRD schema) -> JSON schema with unknown fields rejected."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def main(out_dir, paths):
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                kind = spec["names"]["kind"].lower()
                group = spec["group"].split(".")[0]
                for version in spec["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # Every object has these; the API server adds them to every CRD schema.
                    schema["properties"].update(
                        apiVersion={"type": "string"},
                        kind={"type": "string", "enum": [spec["names"]["kind"]]},
                        metadata={"type": "object"},
                    )
                    name = f"{kind}-{group}-{version['name']}.json"
                    with open(os.path.join(out_dir, name), "w") as f:
                        json.dump(schema, f, indent=1)
                    written += 1
    if not written:
        sys.exit("no CustomResourceDefinition found in " + " ".join(paths))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
