//! How a client checks the server it reached: against the CA only (Consul's RPC default), against the CA and a
//! name (`verify_server_hostname`, or the HTTPS client's usual check), or not at all (`verify_outgoing` off).

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Whether the leaf (first) certificate of `chain` is valid for the DNS name `name` (a SAN, wildcards as webpki
/// reads them). Servers use it on a peer's chain after a handshake, e.g. to require `server.<dc>.<domain>`.
pub fn leaf_has_dns_san(chain: &[CertificateDer<'_>], name: &str) -> bool {
    let (Some(leaf), Ok(name)) = (chain.first(), ServerName::try_from(name)) else {
        return false;
    };
    match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(parsed) => rustls::client::verify_server_name(&parsed, &name).is_ok(),
        Err(_) => false,
    }
}

/// What the client checks about the server's certificate, with the provider's signature algorithms.
#[derive(Debug)]
pub(crate) struct ServerCheck {
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
    /// `None`: nothing but the handshake signatures, because `verify_outgoing` is off.
    pub(crate) chain: Option<(Arc<WebPkiServerVerifier>, NameCheck)>,
}

/// Which name the server's certificate must carry.
#[derive(Debug)]
pub(crate) enum NameCheck {
    /// None: any certificate the CA signed will do.
    Ignore,
    /// The name the client connected with (its SNI).
    Connected,
    /// This fixed name, whatever the client connected with.
    Fixed(ServerName<'static>),
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((webpki, name)) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        let checked_name = match name {
            NameCheck::Fixed(fixed) => fixed,
            NameCheck::Connected | NameCheck::Ignore => server_name,
        };
        match webpki.verify_server_cert(end_entity, intermediates, checked_name, ocsp_response, now) {
            // webpki checks the name last, so a name error means the chain itself was good.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) if matches!(name, NameCheck::Ignore) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
