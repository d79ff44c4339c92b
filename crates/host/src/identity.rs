//! Client certificates as identities (mutual TLS): the rule that maps a
//! verified certificate to a principal id, as etcd (the subject's common
//! name) and SPIFFE (a URI SAN) do.

use std::str::FromStr;

use confstrata_engine::CertificateIdentity;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// How a client certificate names its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIdentity {
    /// The subject's common name is the principal id (`CN=billing-svc`).
    CommonName,
    /// The first URI subject alternative name that starts with this
    /// prefix; what follows it is the principal id
    /// (`spiffe://corp.example/svc/billing-svc` with the prefix
    /// `spiffe://corp.example/svc/`).
    UriPrefix(String),
}

impl FromStr for ClientIdentity {
    type Err = String;

    /// `cn`, or `uri:PREFIX` (e.g. `uri:spiffe://corp.example/svc/`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cn" => Ok(ClientIdentity::CommonName),
            _ => match s.strip_prefix("uri:") {
                // The prefix must end at a separator: `spiffe://corp/svc`
                // would also take `spiffe://corp/svc-evil/x` as `-evil/x`.
                Some(prefix) if prefix.ends_with('/') || prefix.ends_with(':') => {
                    Ok(ClientIdentity::UriPrefix(prefix.to_owned()))
                }
                Some(prefix) if !prefix.is_empty() => Err(format!(
                    "the client identity rule {s:?} must end with `/` or `:` (e.g. uri:{prefix}/), \
                     so that it cannot match a longer name that merely starts the same"
                )),
                _ => Err(format!(
                    "{s:?} is not a client identity rule; write `cn` (the subject's common name is the principal) \
                     or `uri:PREFIX` (a URI SAN starting with PREFIX, e.g. uri:spiffe://corp.example/svc/)"
                )),
            },
        }
    }
}

impl std::fmt::Display for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientIdentity::CommonName => f.write_str("cn"),
            ClientIdentity::UriPrefix(p) => write!(f, "uri:{p}"),
        }
    }
}

impl ClientIdentity {
    /// What `leaf` (a certificate the TLS handshake verified) names.
    pub fn read(&self, leaf: &CertificateDer<'_>) -> CertificateIdentity {
        let none = |why: String, via: String| CertificateIdentity {
            principal: Err(why),
            via,
        };
        let cert = match x509_parser::parse_x509_certificate(leaf.as_ref()) {
            Ok((_, cert)) => cert,
            Err(e) => {
                return none(
                    format!("the certificate does not parse: {e}"),
                    "certificate".to_owned(),
                );
            }
        };
        match self {
            ClientIdentity::CommonName => {
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok());
                match cn {
                    Some(cn) => CertificateIdentity {
                        principal: Ok(cn.to_owned()),
                        via: format!("certificate CN={cn}"),
                    },
                    None => none(
                        "its subject has no common name (rule `cn`)".to_owned(),
                        format!("certificate {}", cert.subject()),
                    ),
                }
            }
            ClientIdentity::UriPrefix(prefix) => {
                let uris: Vec<&str> = match cert.subject_alternative_name() {
                    Ok(Some(san)) => san
                        .value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                match uris
                    .iter()
                    .find_map(|u| u.strip_prefix(prefix.as_str()).map(|rest| (u, rest)))
                {
                    Some((uri, rest)) => CertificateIdentity {
                        principal: Ok(rest.to_owned()),
                        via: format!("certificate URI {uri}"),
                    },
                    None => none(
                        format!("no URI SAN starts with {prefix:?} (rule `uri:{prefix}`)"),
                        format!("certificate {}", cert.subject()),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientIdentity;

    #[test]
    fn rules_are_cn_or_a_uri_prefix() {
        assert_eq!("cn".parse(), Ok(ClientIdentity::CommonName));
        assert_eq!(
            "uri:spiffe://corp.example/svc/".parse(),
            Ok(ClientIdentity::UriPrefix(
                "spiffe://corp.example/svc/".into()
            ))
        );
        for bad in ["", "CN", "uri:", "subject", "san:x"] {
            let e = bad.parse::<ClientIdentity>().unwrap_err();
            assert!(e.contains("is not a client identity rule"), "{bad}: {e}");
        }
        let e = "uri:spiffe://corp.example/svc"
            .parse::<ClientIdentity>()
            .unwrap_err();
        assert!(e.contains("must end with `/` or `:`"), "{e}");
        assert!("uri:urn:corp:".parse::<ClientIdentity>().is_ok());
        let der = tokio_rustls::rustls::pki_types::CertificateDer::from(vec![1, 2, 3]);
        let read = ClientIdentity::CommonName.read(&der);
        assert!(read.principal.unwrap_err().contains("does not parse"));
    }
}
