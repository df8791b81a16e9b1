#!/usr/bin/env node
// Generates examples/ai-workloads/registry/ (an OCI image layout) offline with real tools:
//
// - small synthetic images (a tiny config + one uncompressed tar layer, built here, byte for
//   byte deterministic) for model servers, a GPU app, a training image and a model artifact;
// - cosign legacy `.sig` signatures (simple-signing layers with cosign's annotations), keyless
//   (the real @sigstore/sign client against @sigstore/mock's Fulcio, CT log and Rekor v1, served
//   in-process through nock) and key-based (a local ECDSA P-256 key, logged to the mock Rekor);
// - SLSA v1, SPDX 2.3, CycloneDX 1.5 and model-card in-toto attestations, signed as DSSE Sigstore
//   bundles v0.3 and attached as OCI 1.1 referrers (artifactType
//   application/vnd.dev.sigstore.bundle.v0.3+json, `subject` = the image), and for some images
//   as cosign `.att` layers (DSSE envelope + cosign annotations, Rekor `intoto` entry);
// - registry/trusted_root.json for the mock services, and the release public key written into
//   policies/verify-gpu-image-sbom.yaml (between its BEGIN/END PUBLIC KEY lines).
//
// Keys are new on every run (so signatures and the trust root change); images do not.
// Usage: ./generate.sh (installs the pinned npm packages of scripts/fixtures/sigstore).
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const mockLib = require('@sigstore/mock');
const nock = require('nock');
const x509 = require('@peculiar/x509');
const { generateKeyPair } = require('@sigstore/mock/dist/util/key');
const {
  FulcioSigner, RekorWitness, MessageSignatureBundleBuilder, DSSEBundleBuilder,
} = require('@sigstore/sign');
const { bundleToJSON } = require('@sigstore/bundle');

const HERE = __dirname;
const OUT = path.join(HERE, 'registry');
const HOST = 'registry.example.com';
const FULCIO = 'https://fulcio.provenance.test';
const REKOR = 'https://rekor.provenance.test';
const ISSUER = 'https://accounts.google.com';
const ML_TEAM = 'ml-team@example.com';
const INTERN = 'intern@example.com';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EPOCH = '2026-01-01T00:00:00Z';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const digestOf = (b) => 'sha256:' + sha256(b).toString('hex');
const b64 = (b) => Buffer.from(b.buffer ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : b).toString('base64');
const spki = (k) => k.export({ format: 'der', type: 'spki' });
const pemWrap = (der) => '-----BEGIN CERTIFICATE-----\n' + der.toString('base64').match(/.{1,64}/g).join('\n') + '\n-----END CERTIFICATE-----\n';

function mock(base, handler) {
  nock(base).persist().post(handler.path).reply(async (_, body) => {
    const req = typeof body === 'string' ? body : JSON.stringify(body);
    const { statusCode, response, contentType } = await handler.fn(req);
    return [statusCode, response, { 'Content-Type': contentType || 'text/plain' }];
  });
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
  return { repo, name: `${HOST}/${repo}`, desc: manifest };
}

(async () => {
  // -------------------------------------------------------------- mock Sigstore services
  // @sigstore/mock's Fulcio writes every subject as a URI SAN; Fulcio writes an email
  // identity (Google accounts) as an rfc822Name. Make the SAN an email when it is one.
  const OrigSan = x509.SubjectAlternativeNameExtension;
  x509.SubjectAlternativeNameExtension = class extends OrigSan {
    constructor(names, critical) {
      const fix = (n) => (n.type === 'url' && /^[^:/]+@[^:/]+$/.test(n.value) ? { type: 'email', value: n.value } : n);
      super(Array.isArray(names) ? names.map(fix) : names, critical);
    }
  };
  const ctKey = generateKeyPair('prime256v1');
  const caKey = generateKeyPair('prime256v1');
  const rekorKey = generateKeyPair('prime256v1');
  const ctlog = await mockLib.initializeCTLog(ctKey);
  const ca = await mockLib.initializeCA(caKey, ctlog);
  const tlog = await mockLib.initializeTLog(REKOR, rekorKey);
  mock(FULCIO, mockLib.fulcioHandler(ca));
  // Rekor canonicalizes dsse 0.0.1 entries; the mock stores the proposed content as sent.
  const origLog = tlog.log.bind(tlog);
  tlog.log = (pe) => {
    if (pe.kind === 'dsse' && pe.spec.proposedContent) {
      const envStr = pe.spec.proposedContent.envelope;
      const env = JSON.parse(envStr);
      const hex = (b) => sha256(b).toString('hex');
      pe = {
        apiVersion: '0.0.1', kind: 'dsse', spec: {
          envelopeHash: { algorithm: 'sha256', value: hex(Buffer.from(envStr)) },
          payloadHash: { algorithm: 'sha256', value: hex(Buffer.from(env.payload, 'base64')) },
          signatures: env.signatures.map((s, i) => ({
            signature: s.sig,
            verifier: pe.spec.proposedContent.verifiers[i] || pe.spec.proposedContent.verifiers[0],
          })),
        },
      };
    }
    return origLog(pe);
  };
  mock(REKOR, mockLib.rekorHandler(tlog));

  const keyless = (email) => {
    const claims = { iss: ISSUER, sub: email, email, email_verified: true, aud: 'sigstore' };
    const jwt = [{ alg: 'none' }, claims].map((o) => Buffer.from(JSON.stringify(o)).toString('base64url')).join('.') + '.';
    return new FulcioSigner({ fulcioBaseURL: FULCIO, identityProvider: { getToken: async () => jwt } });
  };
  const keySigner = () => {
    const k = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = k.publicKey.export({ format: 'pem', type: 'spki' });
    return {
      pem,
      signer: {
        sign: async (data) => ({
          signature: crypto.sign('sha256', data, k.privateKey),
          key: { $case: 'publicKey', publicKey: pem, hint: sha256(spki(k.publicKey)).toString('hex') },
        }),
      },
    };
  };
  const signers = {
    mlTeam: keyless(ML_TEAM),
    intern: keyless(INTERN),
    release: keySigner(),
    rogue: keySigner(),
  };
  const witnesses = (entryType) => [new RekorWitness({ rekorBaseURL: REKOR, entryType })];
  const signerOf = (who) => (who === 'release' || who === 'rogue' ? signers[who].signer : signers[who]);

  const start = { start: '2000-01-01T00:00:00Z' };
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: REKOR, hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: b64(spki(rekorKey.publicKey)), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: start },
      logId: { keyId: b64(sha256(spki(rekorKey.publicKey))) },
    }],
    certificateAuthorities: [{
      subject: { organization: 'provenance-mock', commonName: 'provenance-mock' }, uri: FULCIO,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] }, validFor: start,
    }],
    ctlogs: [{
      baseUrl: FULCIO, hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: b64(ctlog.publicKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: start },
      logId: { keyId: b64(ctlog.logID) },
    }],
    timestampAuthorities: [],
  };

  // -------------------------------------------------------------- cosign `.sig` signatures
  const cosignSet = (entry) => JSON.stringify({
    SignedEntryTimestamp: entry.inclusionPromise.signedEntryTimestamp,
    Payload: {
      body: entry.canonicalizedBody,
      integratedTime: Number(entry.integratedTime),
      logIndex: Number(entry.logIndex),
      logID: Buffer.from(entry.logId.keyId, 'base64').toString('hex'),
    },
  });
  // One `.sig` manifest per image with one simple-signing layer per signer.
  async function cosignSign(img, whos) {
    const payload = Buffer.from(JSON.stringify({
      critical: {
        identity: { 'docker-reference': img.name },
        image: { 'docker-manifest-digest': img.desc.digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }));
    const layers = [];
    for (const who of whos) {
      const bj = bundleToJSON(await new MessageSignatureBundleBuilder({ signer: signerOf(who), witnesses: witnesses('hashedrekord') })
        .create({ data: payload }));
      const vm = bj.verificationMaterial;
      const annotations = { 'dev.cosignproject.cosign/signature': bj.messageSignature.signature };
      const cert = vm.certificate || (vm.x509CertificateChain && vm.x509CertificateChain.certificates[0]);
      if (cert) {
        annotations['dev.sigstore.cosign/certificate'] = pemWrap(Buffer.from(cert.rawBytes, 'base64'));
        annotations['dev.sigstore.cosign/chain'] = pemWrap(Buffer.from(ca.rootCertificate));
      }
      annotations['dev.sigstore.cosign/bundle'] = cosignSet(vm.tlogEntries[0]);
      layers.push({ ...blob(payload, 'application/vnd.dev.cosign.simplesigning.v1+json'), annotations });
    }
    const config = blob('{}', 'application/vnd.oci.image.config.v1+json');
    const m = blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }), OCI_MANIFEST);
    listManifest(m, `${img.name}:${img.desc.digest.replace(':', '-')}.sig`);
  }

  // -------------------------------------------------------------- attestations
  // As a Sigstore bundle v0.3 referrer (`bundle`, Rekor `dsse` entry) and/or as a layer of
  // cosign's `.att` manifest (`att`: the DSSE envelope as the layer, cosign's annotations, a
  // Rekor `intoto` 0.0.2 entry's SET), as `cosign attest` writes them.
  const empty = blob('{}', 'application/vnd.oci.empty.v1+json');
  const attLayers = new Map(); // image name -> { img, layers }
  async function attest(img, who, predicateType, predicate, formats = ['bundle']) {
    const statement = Buffer.from(JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: img.name, digest: { sha256: img.desc.digest.slice('sha256:'.length) } }],
      predicateType, predicate,
    }));
    const sign = async (entryType) => {
      const bundle = await new DSSEBundleBuilder({ signer: signerOf(who), witnesses: witnesses(entryType) })
        .create({ data: statement, type: 'application/vnd.in-toto+json' });
      const bj = bundleToJSON(bundle);
      for (const e of bj.verificationMaterial.tlogEntries || []) {
        if (e.inclusionProof) { e.inclusionProof.logIndex ??= '0'; e.inclusionProof.hashes ??= []; }
      }
      return bj;
    };
    if (formats.includes('bundle')) {
      const bj = await sign('dsse');
      // v0.3 carries the leaf certificate alone.
      const { x509CertificateChain, ...vm } = bj.verificationMaterial;
      const v03 = {
        ...bj, mediaType: BUNDLE_V03,
        verificationMaterial: x509CertificateChain ? { certificate: x509CertificateChain.certificates[0], ...vm } : vm,
      };
      const layer = blob(JSON.stringify(v03), BUNDLE_V03);
      const m = blob(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: BUNDLE_V03, config: empty, layers: [layer],
        subject: img.desc,
        annotations: {
          'dev.sigstore.bundle.content': 'dsse-envelope',
          'dev.sigstore.bundle.predicateType': predicateType,
          'org.opencontainers.image.created': EPOCH,
        },
      }), OCI_MANIFEST);
      listManifest(m, null);
    }
    if (formats.includes('att')) {
      const bj = await sign('intoto');
      const vm = bj.verificationMaterial;
      const annotations = { 'dev.cosignproject.cosign/signature': '', predicateType };
      const cert = vm.certificate || (vm.x509CertificateChain && vm.x509CertificateChain.certificates[0]);
      if (cert) {
        annotations['dev.sigstore.cosign/certificate'] = pemWrap(Buffer.from(cert.rawBytes, 'base64'));
        annotations['dev.sigstore.cosign/chain'] = pemWrap(Buffer.from(ca.rootCertificate));
      }
      annotations['dev.sigstore.cosign/bundle'] = cosignSet(vm.tlogEntries[0]);
      const layer = { ...blob(JSON.stringify(bj.dsseEnvelope), 'application/vnd.dsse.envelope.v1+json'), annotations };
      if (!attLayers.has(img.name)) attLayers.set(img.name, { img, layers: [] });
      attLayers.get(img.name).layers.push(layer);
    }
  }
  function writeAttManifests() {
    const config = blob('{}', 'application/vnd.oci.image.config.v1+json');
    for (const { img, layers } of attLayers.values()) {
      const m = blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }), OCI_MANIFEST);
      listManifest(m, `${img.name}:${img.desc.digest.replace(':', '-')}.att`);
    }
  }

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

  writeAttManifests();

  // -------------------------------------------------------------- write
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(path.join(OUT, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of blobs) fs.writeFileSync(path.join(OUT, 'blobs', 'sha256', d.slice(7)), b);
  fs.writeFileSync(path.join(OUT, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(OUT, 'index.json'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries,
  }, null, 1) + '\n');
  fs.writeFileSync(path.join(OUT, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 1) + '\n');

  // The release key goes into the policy that names it.
  const policy = path.join(HERE, 'policies', 'verify-gpu-image-sbom.yaml');
  const text = fs.readFileSync(policy, 'utf8');
  const indent = (text.match(/\n( *)-----BEGIN PUBLIC KEY-----/) || [null, '                  '])[1];
  const keyBlock = signers.release.pem.trim().split('\n').map((l) => indent + l).join('\n');
  const replaced = text.replace(/ *-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/, keyBlock);
  if (replaced === text && !text.includes(signers.release.pem.trim().split('\n')[1])) {
    throw new Error(`${policy}: no PUBLIC KEY block to replace`);
  }
  fs.writeFileSync(policy, replaced);
  fs.writeFileSync(path.join(OUT, 'keys.json'), JSON.stringify({
    note: 'Public keys only. release signs the GPU images and SBOMs; rogue is the "wrong key".',
    release: signers.release.pem, rogue: signers.rogue.pem,
  }, null, 1) + '\n');
  console.log(`wrote ${entries.length} manifests, ${blobs.size} blobs to ${OUT}`);
})().catch((e) => { console.error(e); process.exit(1); });
