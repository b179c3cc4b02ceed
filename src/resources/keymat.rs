//! Telling key material from other content: whatever its source (an inline value, a controller file, a
//! rendered template), content that is a private key or a key store is sensitive and never shown.

/// The DER prefix of a PKCS#12 PFX: `SEQUENCE { INTEGER 3, ContentInfo { OID pkcs7-data ...`.
const PKCS7_DATA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// True for a PEM private key of any kind (PKCS#1, PKCS#8, encrypted, EC, OpenSSH, PGP), a JKS or JCEKS
/// key store, a PKCS#12 bundle or a DER PKCS#8 key.
pub fn is_key_material(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let pem_key = text.match_indices("-----BEGIN ").any(|(i, _)| {
        let rest = &text[i + 11..];
        rest.find("-----")
            .map(|end| rest[..end].contains("PRIVATE KEY"))
            .unwrap_or(false)
    });
    pem_key
        || bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed])
        || bytes.starts_with(&[0xce, 0xce, 0xce, 0xce])
        || is_pkcs12(bytes)
        || is_der_pkcs8(bytes)
}

/// Skips a DER `SEQUENCE` header, returning what follows it.
fn sequence_body(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&0x30) {
        return None;
    }
    let len = *bytes.get(1)?;
    let skip = if len < 0x80 {
        2
    } else {
        2 + usize::from(len & 0x7f)
    };
    bytes.get(skip..)
}

fn is_pkcs12(bytes: &[u8]) -> bool {
    match sequence_body(bytes) {
        Some(body) => {
            body.starts_with(&[0x02, 0x01, 0x03])
                && body
                    .get(3..)
                    .and_then(sequence_body)
                    .is_some_and(|ci| ci.starts_with(PKCS7_DATA_OID))
        }
        None => false,
    }
}

fn is_der_pkcs8(bytes: &[u8]) -> bool {
    // PrivateKeyInfo: SEQUENCE { INTEGER 0|1, SEQUENCE { OID algorithm ... }, OCTET STRING key }
    match sequence_body(bytes) {
        Some(body) => {
            (body.starts_with(&[0x02, 0x01, 0x00]) || body.starts_with(&[0x02, 0x01, 0x01]))
                && body
                    .get(3..)
                    .and_then(sequence_body)
                    .is_some_and(|alg| alg.first() == Some(&0x06))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_stores_are_key_material_and_certificates_are_not() {
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n";
        let p8 = "x\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n";
        for k in [rsa, ssh, p8] {
            assert!(is_key_material(k.as_bytes()), "{k}");
        }
        assert!(is_key_material(&[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]));
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(!is_key_material(cert.as_bytes()));
        assert!(!is_key_material(b"password = \"x\"\n"));
        assert!(!is_key_material(&[0x30, 0x03, 0x02, 0x01, 0x05]));
    }

    #[test]
    fn real_pkcs12_and_pkcs8_der_are_recognised() {
        let key = rcgen::KeyPair::generate().unwrap();
        assert!(is_key_material(&key.serialize_der()));
        assert!(is_key_material(key.serialize_pem().as_bytes()));
        let cert = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(!is_key_material(cert.der()));
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1; 20],
            p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
            vec![p12_keystore::Certificate::from_der(cert.der()).unwrap()],
        );
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("k", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let p12 = store.writer("changeit").write().unwrap();
        assert!(is_key_material(&p12));
    }
}
