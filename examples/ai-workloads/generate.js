#!/usr/bin/env node
// Generates examples/ai-workloads/registry/ (an OCI image layout) offline. The images are built
// here; every signature and attestation is written by the project's own CLI (`provenance sign
// image`, `provenance attest`), as a platform team's pipeline would:
//
// - small synthetic images (a tiny config + one uncompressed tar layer, byte for byte
//   deterministic) for model servers, a GPU app, a training image and a model artifact;
// - keyless cosign `.sig` signatures and attestations (`provenance ... --keyless`: a Fulcio
//   certificate for ml-team@example.com or intern@example.com, issuer accounts.google.com, a
//   Rekor entry) and key-based ones (`--key release.key --tlog-upload`: a local ECDSA P-256
//   key, the signature logged in Rekor), against @sigstore/mock's Fulcio, CT log and Rekor v1
//   served on loopback by scripts/fixtures/sigstore/mock-services.js;
// - SLSA v1, SPDX 2.3, CycloneDX 1.5 and model-card in-toto attestations, as Sigstore bundle
//   v0.3 referrers (`--new-bundle-format`, `subject` = the image) and/or cosign `.att` layers;
// - registry/trusted_root.json for the mock services (naming https://rekor.provenance.test and
//   https://fulcio.provenance.test), registry/keys.json, and the release public key written
//   into policies/verify-gpu-image-sbom.yaml (between its BEGIN/END PUBLIC KEY lines).
//
// Keys are new on every run (so signatures and the trust root change); images do not.
// Usage: ./generate.sh [OUT]   (builds the CLI, installs the pinned npm packages of
// scripts/fixtures/sigstore). With OUT, the layout goes to OUT/registry and the policies, with
// the new release key, to OUT/policies; the committed files are left alone.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawn, execFileSync } = require('child_process');

const HERE = __dirname;
const OUT_ROOT = process.argv[2] ? path.resolve(process.argv[2]) : null;
const OUT = OUT_ROOT ? path.join(OUT_ROOT, 'registry') : path.join(HERE, 'registry');
const POLICIES_OUT = OUT_ROOT ? path.join(OUT_ROOT, 'policies') : path.join(HERE, 'policies');
const PROVENANCE = process.env.PROVENANCE_BIN;
const MOCK = path.join(HERE, '../../scripts/fixtures/sigstore/mock-services.js');
const HOST = 'registry.example.com';
const ISSUER = 'https://accounts.google.com';
const IDENTITIES = { mlTeam: 'ml-team@example.com', intern: 'intern@example.com' };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const EPOCH = '2026-01-01T00:00:00Z';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const digestOf = (b) => 'sha256:' + sha256(b).toString('hex');

if (!PROVENANCE) {
  console.error('PROVENANCE_BIN is not set: run ./generate.sh');
  process.exit(2);
}

// ---------------------------------------------------------------- the OCI layout being written
const blobs = new Map(); // digest -> bytes
const entries = []; // index.json descriptors
function blob(bytes, mediaType) {
  const b = Buffer.from(bytes);
  const d = digestOf(b);
  blobs.set(d, b);
  return { mediaType, digest: d, size: b.length };
}
function listManifest(desc, name) {
  const e = { ...desc };
  if (name) e.annotations = { 'org.opencontainers.image.ref.name': name };
  entries.push(e);
}

// A ustar archive of `files` ({name: Buffer}), mtime 0, owner 0, mode 0644: deterministic.
function tar(files) {
  const parts = [];
  for (const [name, data] of Object.entries(files)) {
    const h = Buffer.alloc(512, 0);
    const put = (s, off, len) => h.write(s, off, len, 'ascii');
    put(name, 0, 100);
    put('0000644\0', 100, 8);
    put('0000000\0', 108, 8);
    put('0000000\0', 116, 8);
    put(data.length.toString(8).padStart(11, '0') + '\0', 124, 12);
    put('00000000000\0', 136, 12);
    put('        ', 148, 8);
    put('0', 156, 1);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const c of h) sum += c;
    put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

// Builds an image (config + one layer), lists it as `HOST/repo:tag`; returns its manifest descriptor.
function image(repo, tag, files, extraAnnotations = {}) {
  const layerBytes = tar(files);
  const layer = blob(layerBytes, 'application/vnd.oci.image.layer.v1.tar');
  const config = blob(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: EPOCH,
    config: { Labels: { 'org.opencontainers.image.title': repo } },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  }), 'application/vnd.oci.image.config.v1+json');
  const manifest = blob(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer],
    annotations: { 'org.opencontainers.image.created': EPOCH, ...extraAnnotations },
  }), OCI_MANIFEST);
  listManifest(manifest, `${HOST}/${repo}:${tag}`);
  return { repo, tag, name: `${HOST}/${repo}`, desc: manifest };
}

(async () => {
  // -------------------------------------------------------------- the unsigned images
  const steps = []; // what to sign, in order
  const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'ai-workloads-'));
  const cosignSign = async (img, whos) => { for (const who of whos) steps.push({ kind: 'sign', img, who }); };
  const attest = async (img, who, predicateType, predicate, formats = ['bundle']) => {
    const file = path.join(WORK, `predicate-${steps.length}.json`);
    fs.writeFileSync(file, JSON.stringify(predicate));
    for (const f of formats) steps.push({ kind: 'attest', img, who, predicateType, file, bundle: f === 'bundle' });
  };
  const SLSA = 'https://slsa.dev/provenance/v1';
  const slsa = (img, builderId) => ({
    buildDefinition: {
      buildType: 'https://actions.github.io/buildtypes/workflow/v1',
      externalParameters: { workflow: { ref: 'refs/heads/main', repository: 'https://github.com/example/ml', path: '.github/workflows/release.yml' } },
      resolvedDependencies: [{ uri: 'git+https://github.com/example/ml@refs/heads/main', digest: { gitCommit: 'a'.repeat(40) } }],
    },
    runDetails: { builder: { id: builderId }, metadata: { invocationId: `https://github.com/example/ml/actions/runs/1/${img.repo}` } },
  });
  const SPDX = 'https://spdx.dev/Document';
  const spdx = (img) => ({
    spdxVersion: 'SPDX-2.3', dataLicense: 'CC0-1.0', SPDXID: 'SPDXRef-DOCUMENT', name: img.repo,
    documentNamespace: `https://example.com/spdx/${img.repo}`,
    creationInfo: { created: EPOCH, creators: ['Tool: provenance-ai-workloads-generator'] },
    packages: [
      { name: 'cuda-runtime', SPDXID: 'SPDXRef-cuda', versionInfo: '12.4.1', downloadLocation: 'NOASSERTION', licenseConcluded: 'NOASSERTION' },
      { name: 'torch', SPDXID: 'SPDXRef-torch', versionInfo: '2.3.0', downloadLocation: 'NOASSERTION', licenseConcluded: 'BSD-3-Clause' },
    ],
  });
  const CDX = 'https://cyclonedx.org/bom';
  const cdx = (img, withLibraries) => ({
    bomFormat: 'CycloneDX', specVersion: '1.5', version: 1,
    metadata: { timestamp: EPOCH, component: { type: 'container', name: img.repo } },
    components: withLibraries
      ? [
        { type: 'library', name: 'torch', version: '2.3.0', purl: 'pkg:pypi/torch@2.3.0' },
        { type: 'library', name: 'numpy', version: '1.26.4', purl: 'pkg:pypi/numpy@1.26.4' },
        { type: 'machine-learning-model', name: 'llama-3-8b-instruct', version: '1.0' },
      ]
      : [{ type: 'machine-learning-model', name: 'llama-3-8b-instruct', version: '1.0' }],
  });
  const MODEL_CARD = 'https://mlcommons.org/model-card/v1';
  const modelCard = () => ({
    name: 'llama-3-8b-instruct', version: '1.0', license: 'llama3',
    modelCardUrl: 'https://models.example.com/llama-3-8b-instruct/card',
    datasets: [{ name: 'instruct-mix', digest: { sha256: 'b'.repeat(64) } }],
  });

  // Evidence a fully trusted image carries.
  // `formats`: attestations as bundle referrers, cosign `.att` layers, or both.
  async function trusted(img, { model = false, formats = ['bundle'] } = {}) {
    await cosignSign(img, ['mlTeam', 'release']);
    await attest(img, 'mlTeam', SLSA, slsa(img, 'https://github.com/actions/runner'), formats);
    await attest(img, 'release', SPDX, spdx(img), formats);
    await attest(img, 'release', CDX, cdx(img, true), formats);
    if (model) await attest(img, 'mlTeam', MODEL_CARD, modelCard(), formats);
  }
  const bin = (s) => Buffer.from(s);

  // Passing images.
  await trusted(image('ml/llm-server', '1.0', { 'app/server.py': bin('print("serving")\n') }));
  await trusted(image('ml/tokenizer', '1.0', { 'app/tokenize.py': bin('print("tokenizing")\n') }), { formats: ['att'] });
  await trusted(image('ml/models/llama-3-8b', '1.0', { 'model/model.safetensors': bin('synthetic weights stand-in\n'), 'model/config.json': bin('{"arch":"llama"}\n') },
    { 'org.opencontainers.image.title': 'llama-3-8b-instruct' }), { model: true });
  await trusted(image('gpu/cuda-app', '1.0', { 'app/kernel.cu': bin('// kernel\n') }), { formats: ['att', 'bundle'] });
  await trusted(image('ml/trainer', '1.0', { 'app/train.py': bin('print("training")\n') }));

  // verify-ai-images failures.
  image('ml/unsigned', '1.0', { 'app/server.py': bin('print("unsigned")\n') });
  {
    const img = image('ml/wrong-identity', '1.0', { 'app/server.py': bin('print("intern")\n') });
    await cosignSign(img, ['intern']);
    await attest(img, 'intern', SLSA, slsa(img, 'https://github.com/actions/runner'));
  }
  {
    const img = image('ml/missing-slsa', '1.0', { 'app/server.py': bin('print("no provenance")\n') });
    await cosignSign(img, ['mlTeam']);
  }
  {
    const img = image('ml/wrong-builder', '1.0', { 'app/server.py': bin('print("laptop build")\n') });
    await cosignSign(img, ['mlTeam']);
    await attest(img, 'mlTeam', SLSA, slsa(img, 'https://jenkins.example.com/job/ml'));
  }
  // verify-gpu-image-sbom failures.
  {
    const img = image('gpu/wrong-key', '1.0', { 'app/kernel.cu': bin('// rogue\n') });
    await cosignSign(img, ['rogue']);
    await attest(img, 'rogue', SPDX, spdx(img));
    await attest(img, 'rogue', CDX, cdx(img, true));
  }
  {
    const img = image('gpu/no-libraries', '1.0', { 'app/kernel.cu': bin('// model only\n') });
    await cosignSign(img, ['release']);
    await attest(img, 'release', SPDX, spdx(img), ['att']);
    await attest(img, 'release', CDX, cdx(img, false), ['att']);
  }
  {
    const img = image('gpu/missing-sbom', '1.0', { 'app/kernel.cu': bin('// no sbom\n') });
    await cosignSign(img, ['release']);
  }

  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(path.join(OUT, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of blobs) fs.writeFileSync(path.join(OUT, 'blobs', 'sha256', d.slice(7)), b);
  fs.writeFileSync(path.join(OUT, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(OUT, 'index.json'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries,
  }, null, 1) + '\n');

  // -------------------------------------------------------------- the mock Sigstore services
  const mock = spawn('node', [MOCK, '--tlog-url', 'https://rekor.provenance.test', '--fulcio-url', 'https://fulcio.provenance.test'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await new Promise((resolve, reject) => {
    let buf = '';
    mock.stdout.on('data', (c) => { buf += c; if (buf.includes('\n')) resolve(buf.split('\n')[0]); });
    mock.on('exit', (code) => reject(new Error(`mock-services.js exited (${code})`)));
  });
  const { url, trusted_root: trustedRoot } = JSON.parse(first);
  const rootFile = path.join(WORK, 'trusted_root.json');
  fs.writeFileSync(rootFile, JSON.stringify(trustedRoot, null, 1) + '\n');
  const tokens = {};
  for (const [who, email] of Object.entries(IDENTITIES)) {
    const r = await fetch(`${url}/token?email=${encodeURIComponent(email)}&iss=${encodeURIComponent(ISSUER)}`);
    if (!r.ok) throw new Error(`token for ${email}: HTTP ${r.status}`);
    tokens[who] = (await r.text()).trim();
  }
  const keys = {};
  for (const who of ['release', 'rogue']) {
    execFileSync(PROVENANCE, ['generate-key-pair', '--unencrypted', '--output-key-prefix', who], { cwd: WORK, stdio: 'ignore' });
    keys[who] = fs.readFileSync(path.join(WORK, `${who}.pub`), 'utf8');
  }

  // -------------------------------------------------------------- signing with the CLI
  const services = ['--fulcio-url', url, '--rekor-url', url, '--trust-root', rootFile, '--allow-insecure-http'];
  const signer = (who) => (who in IDENTITIES
    ? ['--keyless', '--identity-token', tokens[who]]
    : ['--key', path.join(WORK, `${who}.key`), '--tlog-upload']);
  try {
    for (const s of steps) {
      const image = `${s.img.name}:${s.img.tag}`;
      const args = s.kind === 'sign'
        ? ['sign', 'image', image]
        : ['attest', image, '--predicate', s.file, '--type', s.predicateType, ...(s.bundle ? ['--new-bundle-format'] : [])];
      execFileSync(PROVENANCE, [...args, ...signer(s.who), ...services, '--registry-layout', OUT], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
  } finally {
    mock.stdin.end();
    mock.kill();
  }

  // -------------------------------------------------------------- trust root, keys, policy
  fs.writeFileSync(path.join(OUT, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 1) + '\n');
  fs.writeFileSync(path.join(OUT, 'keys.json'), JSON.stringify({
    note: 'Public keys only. release signs the GPU images and SBOMs; rogue is the "wrong key".',
    release: keys.release, rogue: keys.rogue,
  }, null, 1) + '\n');
  // The release key goes into the policy that names it.
  if (OUT_ROOT) fs.cpSync(path.join(HERE, 'policies'), POLICIES_OUT, { recursive: true });
  const policy = path.join(POLICIES_OUT, 'verify-gpu-image-sbom.yaml');
  const text = fs.readFileSync(policy, 'utf8');
  const indent = (text.match(/\n( *)-----BEGIN PUBLIC KEY-----/) || [null, '                  '])[1];
  const keyBlock = keys.release.trim().split('\n').map((l) => indent + l).join('\n');
  const replaced = text.replace(/ *-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/, keyBlock);
  if (replaced === text && !text.includes(keys.release.trim().split('\n')[1])) {
    throw new Error(`${policy}: no PUBLIC KEY block to replace`);
  }
  fs.writeFileSync(policy, replaced);
  fs.rmSync(WORK, { recursive: true, force: true });
  console.log(`wrote ${steps.length} signatures and attestations with ${path.basename(PROVENANCE)} into ${OUT}`);
})().catch((e) => { console.error(e); process.exit(1); });
