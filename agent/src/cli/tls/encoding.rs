//! PEM armour and the two private-key layouts `roster tls` reads and writes.
//!
//! Consul writes its keys as SEC1 (`EC PRIVATE KEY`, with the curve named inside), and only
//! newer Consul versions read PKCS#8 (`PRIVATE KEY`); rcgen on ring reads and writes only PKCS#8.
//! So keys are converted at the file boundary: written as SEC1 like Consul's, and read from
//! either. The DER handled here is the few fixed structures of RFC 5915 and RFC 5208, so a
//! tag-length-value reader is enough; anything else is refused, not guessed at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// PEM label of a certificate.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// PEM label of a SEC1 EC private key, the form Consul writes.
pub const EC_PRIVATE_KEY: &str = "EC PRIVATE KEY";
/// PEM label of a PKCS#8 private key.
pub const PRIVATE_KEY: &str = "PRIVATE KEY";

/// DER tags used below.
const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` and `[1]` of `ECPrivateKey`: the curve parameters and the public key.
const TAG_EC_PARAMETERS: u8 = 0xa0;
const TAG_EC_PUBLIC_KEY: u8 = 0xa1;
/// The content of the OID `1.2.840.10045.2.1` (id-ecPublicKey).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// The content of the OID `1.2.840.10045.3.1.7` (prime256v1, P-256).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Armours `der` as one PEM block with 64-column base64 lines, as Go's `pem.Encode` does.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and bytes of the first PEM block in `text`; text around it is skipped, as Go's
/// `pem.Decode` skips it. Blocks with headers (encrypted keys) are refused.
pub fn pem_decode_first(text: &str) -> Result<(String, Vec<u8>), String> {
    const NO_PEM: &str = "no PEM-encoded data found";
    let start = text.find("-----BEGIN ").ok_or(NO_PEM)?;
    let after_begin = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = after_begin.split_once("-----").ok_or(NO_PEM)?;
    let end_marker = format!("-----END {label}-----");
    let (body, _) = rest.split_once(&end_marker).ok_or(NO_PEM)?;
    if body.contains(':') {
        return Err(format!("the PEM block {label} has headers (an encrypted key?); give it unencrypted"));
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(compact).map_err(|err| format!("the PEM block {label} is not valid base64: {err}"))?;
    Ok((label.to_owned(), der))
}

/// The SEC1 `ECPrivateKey` of a P-256 PKCS#8 key (as rcgen generates it), with the curve named
/// and the public key included, the layout Go's `x509.MarshalECPrivateKey` writes.
pub fn p256_sec1_from_pkcs8(pkcs8: &[u8], public_key: &[u8]) -> Result<Vec<u8>, String> {
    const BAD: &str = "the generated key is not a P-256 PKCS#8 key";
    let (_, info) = expect(pkcs8, TAG_SEQUENCE).ok_or(BAD)?;
    let (info, _version) = expect(info, TAG_INTEGER).ok_or(BAD)?;
    let (info, algorithm) = expect(info, TAG_SEQUENCE).ok_or(BAD)?;
    let (algorithm, key_type) = expect(algorithm, TAG_OID).ok_or(BAD)?;
    let (_, curve) = expect(algorithm, TAG_OID).ok_or(BAD)?;
    if key_type != OID_EC_PUBLIC_KEY || curve != OID_P256 {
        return Err(BAD.to_owned());
    }
    let (_, inner) = expect(info, TAG_OCTET_STRING).ok_or(BAD)?;
    let (_, ec_key) = expect(inner, TAG_SEQUENCE).ok_or(BAD)?;
    let (ec_key, _version) = expect(ec_key, TAG_INTEGER).ok_or(BAD)?;
    let (_, secret) = expect(ec_key, TAG_OCTET_STRING).ok_or(BAD)?;
    let mut public_bits = vec![0u8]; // no unused bits
    public_bits.extend_from_slice(public_key);
    Ok(tlv(
        TAG_SEQUENCE,
        &[
            tlv(TAG_INTEGER, &[1]),
            tlv(TAG_OCTET_STRING, secret),
            tlv(TAG_EC_PARAMETERS, &tlv(TAG_OID, OID_P256)),
            tlv(TAG_EC_PUBLIC_KEY, &tlv(TAG_BIT_STRING, &public_bits)),
        ]
        .concat(),
    ))
}

/// Wraps a SEC1 `ECPrivateKey` in PKCS#8 so ring can load it. The curve is the one the key
/// names in its `[0]` parameters (P-256 when it names none, which is all Consul makes).
pub fn pkcs8_from_sec1(sec1: &[u8]) -> Result<Vec<u8>, String> {
    const BAD: &str = "the EC PRIVATE KEY block is not a valid SEC1 key";
    let (_, ec_key) = expect(sec1, TAG_SEQUENCE).ok_or(BAD)?;
    let (ec_key, _version) = expect(ec_key, TAG_INTEGER).ok_or(BAD)?;
    let (mut rest, _secret) = expect(ec_key, TAG_OCTET_STRING).ok_or(BAD)?;
    let mut curve = OID_P256;
    while let Some((tag, content, after)) = read_tlv(rest) {
        if tag == TAG_EC_PARAMETERS {
            let (_, named) = expect(content, TAG_OID).ok_or(BAD)?;
            curve = named;
        }
        rest = after;
    }
    let algorithm = tlv(TAG_SEQUENCE, &[tlv(TAG_OID, OID_EC_PUBLIC_KEY), tlv(TAG_OID, curve)].concat());
    Ok(tlv(TAG_SEQUENCE, &[tlv(TAG_INTEGER, &[0]), algorithm, tlv(TAG_OCTET_STRING, sec1)].concat()))
}

/// Reads one element with tag `tag` from the front of `input`: (what follows it, its content).
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = read_tlv(input)?;
    (found == tag).then_some((rest, content))
}

/// Splits the first DER element off `input`: (tag, content, rest). Single-byte tags only, which
/// is every tag of the structures above.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let n_len_bytes = usize::from(first & 0x7f);
        if n_len_bytes == 0 || n_len_bytes > 4 || input.len() < n_len_bytes {
            return None;
        }
        let (len_bytes, input) = input.split_at(n_len_bytes);
        (len_bytes.iter().fold(0usize, |len, byte| (len << 8) | usize::from(*byte)), input)
    };
    (input.len() >= len).then(|| {
        let (content, rest) = input.split_at(len);
        (tag, content, rest)
    })
}

/// One DER element: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|byte| *byte == 0).collect();
        out.push(0x80 | len_bytes.len() as u8);
        out.extend_from_slice(&len_bytes);
    }
    out.extend_from_slice(content);
    out
}
