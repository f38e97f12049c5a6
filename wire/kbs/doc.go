// Package kbs holds the key broker wire protocol that sealroot's guest agent
// and its broker share: the JSON request and response types of both dialects,
// the report_data bindings, the public-key formats, and the encryption of the
// secret on its way back to the guest.
//
// Two dialects exist (docs/interop.md §3–4):
//
//   - krun: the protocol of virtee's reference-kbs and libkrun's historical C
//     init (kbs-types 0.2, /auth version "0.0.0"). The guest sends an RSA key
//     as base64 modulus and exponent; report_data is SHA-512 over the nonce
//     text and those two base64 texts; the secret comes back as the hex of an
//     RSA PKCS#1 v1.5 ciphertext inside a JSON string.
//   - trustee: Confidential Containers' KBS protocol 0.4.0. The guest sends a
//     JWK (EC P-256 or P-521 for ECDH-ES+A256KW, or RSA for RSA-OAEP-256); report_data
//     is SHA-384 of the RFC 8785 canonical JSON of the runtime data; secrets
//     come back as flattened JWE JSON with A256GCM content encryption.
//
// It is part of wire/, the leaf layer both the guest and the host import
// (docs/design.md, "Package map"), and the guest init links it, so it
// depends only on the standard library, the SNP report size of
// wire/snpreport and sealroot's dependency-free attest and
// internal/textclip packages. The few primitives a JOSE library would
// otherwise supply are written here and checked against published vectors
// and, in tests only, against go-jose and gowebpki/jcs: the Concat KDF and
// AES Key Wrap (keywrap.go) and RFC 8785 canonical JSON (canon.go). The
// init-data TOML document is read by the broker (host/broker/initdata.go);
// this package keeps its envelope, size limit and digest rule.
//
// Everything here is pure: no I/O, no clocks. Decoders treat their input as
// hostile, bound what they accept, and never put secret bytes into an error.
package kbs
