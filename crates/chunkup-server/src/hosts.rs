//! Which `Host` names the server answers: the defence against DNS
//! rebinding. A page on `http://attacker.example:8080` whose name the
//! attacker re-points at 127.0.0.1 talks to this server as its own origin,
//! but its requests still say `Host: attacker.example:8080`; refusing names
//! the server does not know defeats it.
//!
//! Answered: IP literals (a browser sends one only when the page's URL named
//! that address, so no name was re-pointed), `localhost`, and the names the
//! operator allows (`--allow-host`). The port is not checked: proxies in
//! front of the server (the failover proxy, `chunkup link`) forward the
//! `Host` of their own port.

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The names a server answers besides IP literals and `localhost`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostPolicy {
    /// Lower-case names, without port.
    allowed: Vec<String>,
}

impl HostPolicy {
    /// A policy answering `extra` names (any case, without port) too.
    pub(crate) fn new(extra: &[String]) -> Self {
        HostPolicy {
            allowed: extra
                .iter()
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect(),
        }
    }

    /// Whether a `Host` header value (`name[:port]`, `[v6][:port]`) names
    /// this server.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if name.starts_with('[') {
            return name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        }
        name.parse::<Ipv4Addr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// `None` when the request's `Host` is answered, else the refusal: 400
    /// without a `Host` (RFC 9112 §3.2), 403 for a name this server does
    /// not know.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(host) = headers.get(header::HOST) else {
            return Some((StatusCode::BAD_REQUEST, "a Host header is required\n").into_response());
        };
        let host = host.to_str().unwrap_or_default();
        if self.allows(host) {
            return None;
        }
        tracing::warn!(host, "request refused: unknown Host (DNS rebinding?)");
        let shown: String = host.chars().take(100).collect();
        Some(
            (
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{shown}` is not a name of this server; it answers IP addresses, \
                     localhost and the names given with --allow-host\n"
                ),
            )
                .into_response(),
        )
    }
}

/// The name part of a `Host` value: `[v6]` with its brackets, or the text
/// before `:port`. `None` when the value is malformed (empty name, bad port,
/// characters no host name has).
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')? + 1;
        let rest = &host[end..];
        (
            &host[..end],
            rest.strip_prefix(':').or(rest.is_empty().then_some("")),
        )
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, Some("")),
        }
    };
    let port = port?;
    let port_ok = port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && (name.starts_with('[')
            || name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    (port_ok && name_ok).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ip_literals_localhost_and_allowed_names() {
        let policy = HostPolicy::new(&["Uploads.Test".to_owned()]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
            "192.168.1.20:8080",
            "uploads.test:443",
            "UPLOADS.TEST",
        ] {
            assert!(policy.allows(ok), "{ok}");
        }
        for refused in [
            "",
            ":8080",
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:8080",
            "localhost.",
            "sub.localhost",
            "uploads.test.attacker.example",
            "localhost:80:80",
            "localhost:port",
            "user@localhost",
            "[::1",
            "[::1]x",
            "[attacker.example]",
            "127.0.0.1 ",
        ] {
            assert!(!policy.allows(refused), "{refused:?}");
        }
        assert!(!HostPolicy::default().allows("uploads.test"));
    }
}
