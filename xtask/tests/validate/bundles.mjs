// Verifies Sigstore bundles (v0.3) offline with @sigstore/verify and one public key: no
// transparency log, no timestamp, the key found by the bundle's hint. A message signature is
// checked over the image manifest's bytes; a DSSE envelope is checked, then its statement
// must name the manifest's sha256 among its subjects. Usage: node bundles.mjs PUBLIC_KEY.pem
// KEYID IMAGE_MANIFEST BUNDLE...; prints one line per bundle and exits 1 naming each failure.
import { createHash, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { bundleFromJSON } from "@sigstore/bundle";
import { Verifier, toSignedEntity } from "@sigstore/verify";

const [pem, keyid, manifestPath, ...bundles] = process.argv.slice(2);
const publicKey = createPublicKey(readFileSync(pem, "utf8"));
const trust = {
  certificateAuthorities: [],
  timestampAuthorities: [],
  tlogs: [],
  ctlogs: [],
  publicKey: (hint) => {
    if (hint !== keyid) throw new Error(`no trusted key with id ${hint}`);
    return { publicKey, validFor: () => true };
  },
};
const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
const manifest = readFileSync(manifestPath);
const digest = createHash("sha256").update(manifest).digest("hex");
let failed = 0;
for (const file of bundles) {
  try {
    const bundle = bundleFromJSON(JSON.parse(readFileSync(file, "utf8")));
    if (bundle.content.$case === "messageSignature") {
      verifier.verify(toSignedEntity(bundle, manifest));
    } else {
      verifier.verify(toSignedEntity(bundle));
      const envelope = bundle.content.dsseEnvelope;
      const statement = JSON.parse(Buffer.from(envelope.payload).toString("utf8"));
      if (!statement.subject.some((s) => s.digest?.sha256 === digest)) {
        throw new Error(`the statement does not name sha256:${digest}`);
      }
    }
    console.log(`ok   ${file}: ${bundle.content.$case}`);
  } catch (error) {
    failed++;
    console.error(`FAIL ${file}: ${error.message}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
