#!/usr/bin/env python3
"""AdmissionReview helpers for scripts/check-own-images.sh (Python 3 standard library, plus
PyYAML to read the manifests: Debian python3-yaml).

  admission-review.py review MANIFEST KIND NAME IMAGE UID
      An AdmissionReview v1 (CREATE) of the object KIND/NAME from the YAML stream MANIFEST,
      with its first container's image set to IMAGE.
  admission-review.py patch REVIEW MUTATE_ANSWER
      REVIEW with /mutate's JSONPatch applied to its object (replace operations); prints the
      patched review.
  admission-review.py image REVIEW
      The first container image of the review's object.
  admission-review.py expect ANSWER allowed|denied [TEXT...]
      Fails unless the AdmissionReview answer has that decision and its message contains every
      TEXT; prints the message.
"""

import base64
import json
import sys


def die(msg):
    print(f"admission-review: {msg}", file=sys.stderr)
    sys.exit(1)


def pod_spec(obj):
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def review(manifest, kind, name, image, uid):
    try:
        import yaml
    except ImportError:
        die("PyYAML is needed to read the manifests (apt-get install python3-yaml)")
    with open(manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    found = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        die(f"{manifest}: expected one {kind} {name}, found {len(found)}")
    obj = found[0]
    pod_spec(obj)["containers"][0]["image"] = image
    group, _, version = obj["apiVersion"].rpartition("/")
    resource = kind.lower() + "s"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": name,
            "namespace": obj["metadata"].get("namespace", "default"),
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:deployment-controller"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


def apply_patch(doc, ops):
    for op in ops:
        if op.get("op") not in ("replace", "add"):
            die(f"unexpected JSONPatch operation {op}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target[p]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = op["value"]
        else:
            target[last] = op["value"]


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "review" and len(args) == 5:
        print(json.dumps(review(*args)))
    elif cmd == "patch" and len(args) == 2:
        rev = json.load(open(args[0]))
        answer = json.load(open(args[1]))["response"]
        if not answer.get("allowed"):
            die(f"/mutate did not allow the request: {answer}")
        if answer.get("patch"):
            if answer.get("patchType") != "JSONPatch":
                die(f"unexpected patchType {answer.get('patchType')}")
            apply_patch(rev["request"]["object"], json.loads(base64.b64decode(answer["patch"])))
        print(json.dumps(rev))
    elif cmd == "image" and len(args) == 1:
        print(pod_spec(json.load(open(args[0]))["request"]["object"])["containers"][0]["image"])
    elif cmd == "expect" and len(args) >= 2:
        answer = json.load(open(args[0]))["response"]
        want = args[1] == "allowed"
        status = answer.get("status") or {}
        message = status.get("message", "")
        causes = [c.get("reason", "") for c in (status.get("details") or {}).get("causes", [])]
        shown = message + (f" (causes: {', '.join(causes)})" if causes else "")
        if bool(answer.get("allowed")) != want:
            die(f"expected {args[1]}, got {'allowed' if answer.get('allowed') else 'denied'}: {shown}")
        for text in args[2:]:
            if text not in message:
                die(f"expected the message to say {text!r}: {shown}")
        print(shown or args[1])
    else:
        die(__doc__)


if __name__ == "__main__":
    main()
