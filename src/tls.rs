//! CA bundles for backends behind a private CA: the gateway verifies such a backend's
//! certificate against its bundle alone, and the controller checks the bundle parses, so a
//! broken one shows in the backend's Ready condition rather than as failed requests only.

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The trust anchors of a PEM bundle: every `CERTIFICATE` block, at least one, each a
/// usable CA certificate. The error says what is wrong without quoting the bundle.
pub fn ca_roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut found = 0;
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM ({e})", i + 1))?;
        roots
            .add(cert)
            .map_err(|e| format!("certificate {} cannot be a trust anchor ({e})", i + 1))?;
        found += 1;
    }
    if found == 0 {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::ca_roots;

    #[test]
    fn a_bundle_needs_at_least_one_valid_certificate() {
        let ca = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let two = format!("{}{}", ca.pem(), ca.pem());
        assert_eq!(ca_roots(two.as_bytes()).unwrap().len(), 2);
        assert!(ca_roots(b"").unwrap_err().contains("no PEM certificate"));
        assert!(
            ca_roots(b"sk-not-a-cert")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(
            ca_roots(broken.as_bytes())
                .unwrap_err()
                .contains("certificate 1")
        );
    }
}
