//! TLS certificates that clients would refuse or soon will: issued for `localhost`, or expiring within
//! [`EXPIRY_DAYS`]. Read from PEM files on the controller (what the inventory points at, the certificates
//! a state directory holds) and from the common name a task would issue a certificate for.

use super::{Finding, Severity};
use crate::model::location::Location;
use std::path::Path;

/// A certificate expiring within this many days is a finding.
pub const EXPIRY_DAYS: i64 = 30;

/// Files larger than this are no certificate anyone points at; they are not read.
const MAX_SIZE: u64 = 1 << 20;

/// Findings for the PEM certificates in `file`, reported at `loc` (for `host`, when a task of one
/// reads it); nothing when it holds none.
pub fn check_file(file: &Path, loc: &Location, now: i64, host: Option<&str>) -> Vec<Finding> {
    let hosts: Vec<String> = host.into_iter().map(str::to_string).collect();
    let small = std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() <= MAX_SIZE);
    let Some(bytes) = small.then(|| std::fs::read(file).ok()).flatten() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes).map_while(Result::ok) {
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let Ok(cert) = pem.parse_x509() else { continue };
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string();
        let shown = format!("{} (CN={cn})", file.display());
        if cn.eq_ignore_ascii_case("localhost") {
            out.push(Finding {
                hosts: hosts.clone(),
                ..localhost(loc.clone(), &shown, "")
            });
        }
        let left = (cert.validity().not_after.timestamp() - now).div_euclid(86_400);
        if left < EXPIRY_DAYS {
            out.push(Finding {
                severity: if left < 0 {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                check: "tls-expiry",
                loc: loc.clone(),
                why: if left < 0 {
                    format!("the certificate {shown} has expired")
                } else {
                    format!("the certificate {shown} expires in {left} days (under {EXPIRY_DAYS})")
                },
                fix: "issue a new certificate before it expires and point the inventory at it"
                    .into(),
                hosts: hosts.clone(),
            });
        }
    }
    out
}

/// The finding for a certificate (a file, or one a task issues on `host`; empty: none) whose common
/// name is `localhost`.
pub fn localhost(loc: Location, what: &str, host: &str) -> Finding {
    Finding {
        severity: Severity::Warning,
        check: "tls-localhost",
        loc,
        why: format!("{what}: a certificate for CN=localhost names no host a client connects to"),
        fix: "issue it for the name clients use (the load balancer's or the node's host name)"
            .into(),
        hosts: (!host.is_empty())
            .then(|| host.to_string())
            .into_iter()
            .collect(),
    }
}
