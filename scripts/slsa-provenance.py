#!/usr/bin/env python3
"""A SLSA provenance v1 predicate for one image built by scripts/build-images.sh.

Usage: scripts/slsa-provenance.py BUILD_INFO IMAGE [--builder-id URI] [--out FILE]

BUILD_INFO is the build-info.json that scripts/build-images.sh writes beside the images (the
git commit, the Cargo.lock digest, SOURCE_DATE_EPOCH, the toolchain, the start and finish of the
build and, per image, its package, binary digest and manifest digest). The predicate is what
`provenance attest IMAGE --type slsaprovenance1 --predicate FILE` signs; the Statement's subject
is the image digest, added by `provenance attest`. Python 3 standard library only.
"""

import argparse
import json
import sys
from pathlib import Path

BUILD_TYPE = "https://github.com/provenance-rs/provenance/blob/main/scripts/build-images.sh#v1"
DEFAULT_BUILDER = "https://github.com/provenance-rs/provenance/scripts/build-images.sh"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_info", help="build-info.json written by scripts/build-images.sh")
    ap.add_argument("image", help="image name in build-info.json (provenance-webhook, model-verifier)")
    ap.add_argument("--builder-id", default=DEFAULT_BUILDER,
                    help=f"runDetails.builder.id (default: {DEFAULT_BUILDER})")
    ap.add_argument("--out", help="output file (default: standard output)")
    args = ap.parse_args()

    info = json.loads(Path(args.build_info).read_text())
    image = info["images"].get(args.image)
    if image is None:
        print(f"slsa-provenance: error: {args.image} is not in {args.build_info} "
              f"(has {', '.join(sorted(info['images']))})", file=sys.stderr)
        sys.exit(1)

    source = info["source"]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": {"uri": f"git+{source}", "digest": {"gitCommit": info["revision"]}},
                "image": args.image,
                "package": image["package"],
                "binary": image["binary"],
                "version": info["version"],
            },
            "internalParameters": {
                "cargoProfile": "release",
                "cargoCommand": info["cargoCommand"],
                "rustc": info["rustc"],
                "sourceDateEpoch": info["sourceDateEpoch"],
            },
            "resolvedDependencies": [
                {"uri": f"git+{source}@{info['revision']}",
                 "digest": {"gitCommit": info["revision"]}},
                {"uri": f"git+{source}@{info['revision']}#Cargo.lock", "name": "Cargo.lock",
                 "digest": {"sha256": info["cargoLockSha256"]}},
            ],
        },
        "runDetails": {
            "builder": {"id": args.builder_id},
            "metadata": {
                "invocationId": f"{info['revision']}/{args.image}/{info['startedOn']}",
                "startedOn": info["startedOn"],
                "finishedOn": info["finishedOn"],
            },
            "byproducts": [
                {"name": f"/usr/local/bin/{image['binary']}",
                 "digest": {"sha256": image["binarySha256"]}},
            ],
        },
    }
    text = json.dumps(predicate, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
