// Custody console: optional enhancements. Every page works without this file.
// The CSP allows scripts only from this origin; nothing here is inline.
"use strict";

(function () {
  function b64ToBytes(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  async function sha256(parts) {
    let length = 0;
    for (const part of parts) length += part.length;
    const joined = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) { joined.set(part, offset); offset += part.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
  }

  // RFC 6962: a leaf hash is SHA-256(0x00 || leaf), a node hash SHA-256(0x01 || left || right).
  const leafHash = (leaf) => sha256([new Uint8Array([0]), leaf]);
  const nodeHash = (left, right) => sha256([new Uint8Array([1]), left, right]);

  // The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), as
  // crates/custody-log's root_from_inclusion_proof computes it.
  async function rootFromInclusionProof(hash, index, size, proof) {
    if (index >= size) throw new Error("index out of range");
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    let r = hash;
    for (const p of proof) {
      if (sn === 0n) throw new Error("proof too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("proof too short");
    return r;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  // The checkpoint's body: origin, size, base64 root hash (C2SP tlog-checkpoint).
  function parseCheckpoint(text) {
    const lines = text.split("\n");
    const size = Number(lines[1]);
    if (!Number.isSafeInteger(size)) throw new Error("the checkpoint's size line is not a number");
    return { size: size, root: b64ToBytes(lines[2]) };
  }

  async function verifyAll() {
    const verdict = document.getElementById("browser-verdict");
    const checkpointText = document.getElementById("checkpoint").textContent;
    let checkpoint;
    try { checkpoint = parseCheckpoint(checkpointText); } catch (error) {
      verdict.textContent = "Cannot read the checkpoint: " + error.message;
      verdict.className = "bad";
      return;
    }
    let ok = 0, bad = 0;
    for (const row of document.querySelectorAll("#proofs tr.proof")) {
      const cell = row.querySelector("td.browser");
      try {
        const proofText = row.dataset.proof || "";
        const proof = proofText ? proofText.split(" ").map(b64ToBytes) : [];
        const hash = await leafHash(b64ToBytes(row.dataset.leaf));
        const root = await rootFromInclusionProof(hash, Number(row.dataset.index), checkpoint.size, proof);
        if (equal(root, checkpoint.root)) { cell.textContent = "included"; cell.className = "browser ok"; ok++; }
        else { cell.textContent = "root mismatch"; cell.className = "browser bad"; bad++; }
      } catch (error) {
        cell.textContent = "failed: " + error.message; cell.className = "browser bad"; bad++;
      }
    }
    verdict.textContent = bad === 0
      ? "Verified in this browser: " + ok + " events lead to the checkpoint's root."
      : "This browser could NOT verify " + bad + " of " + (ok + bad) + " events.";
    verdict.className = bad === 0 ? "ok" : "bad";
    verdict.dataset.result = bad === 0 ? "ok" : "failed";
  }

  document.addEventListener("DOMContentLoaded", function () {
    const button = document.getElementById("verify-in-browser");
    if (button && window.crypto && crypto.subtle) {
      button.hidden = false;
      button.addEventListener("click", verifyAll);
    }
  });
})();
