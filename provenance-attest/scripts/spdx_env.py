"""Writes an SPDX 2.3 JSON document for the installed Python distributions with spdx-tools.

Usage: python spdx_env.py OUT.spdx.json   (run with the interpreter whose packages to list)
"""
import hashlib
import sys
import uuid
from datetime import datetime, timezone
from importlib import metadata

from spdx_tools.spdx.model import (
    Actor, ActorType, Checksum, ChecksumAlgorithm, CreationInfo, Document, ExternalPackageRef,
    ExternalPackageRefCategory, Package, Relationship, RelationshipType, SpdxNoAssertion,
)
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.write_anything import write_file

out = sys.argv[1]
creation = CreationInfo(
    spdx_version="SPDX-2.3",
    spdx_id="SPDXRef-DOCUMENT",
    name="python-environment",
    data_license="CC0-1.0",
    document_namespace=f"https://example.com/spdx/python-environment-{uuid.uuid4()}",
    creators=[Actor(ActorType.TOOL, "spdx-tools-generate-fixtures")],
    created=datetime.now(timezone.utc).replace(microsecond=0),
)
packages, relationships = [], []
for i, dist in enumerate(sorted(metadata.distributions(), key=lambda d: d.metadata["Name"].lower())):
    name, version = dist.metadata["Name"], dist.version
    record = (dist.read_text("RECORD") or "").encode()
    pkg = Package(
        spdx_id=f"SPDXRef-Package-{i}",
        name=name,
        version=version,
        download_location=SpdxNoAssertion(),
        files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, hashlib.sha256(record).hexdigest())],
        external_references=[ExternalPackageRef(
            ExternalPackageRefCategory.PACKAGE_MANAGER, "purl",
            f"pkg:pypi/{name.lower()}@{version}")],
    )
    packages.append(pkg)
    relationships.append(Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, pkg.spdx_id))
doc = Document(creation_info=creation, packages=packages, relationships=relationships)
errors = validate_full_spdx_document(doc)
if errors:
    sys.exit(f"spdx-tools says the document is invalid: {errors[:3]}")
write_file(doc, out, validate=True)
print(f"{out}: {len(packages)} packages")
