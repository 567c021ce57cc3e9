//! `health = { command = [...] | http = "URL" | tcp = "HOST:PORT", interval,
//! timeout, retries, start_period }`: the probe herd runs against each
//! running instance of a service.

use std::time::Duration;

use crate::fields::command;
use crate::model::{HealthCheck, Probe};
use crate::named::read_keys;
use crate::value::{set, Cx, Value};

/// The keys of a `health` table, in the order errors list them.
const KEYS: &[&str] = &[
    "command",
    "http",
    "tcp",
    "interval",
    "timeout",
    "retries",
    "start_period",
];

/// Most consecutive failures `retries` may ask for.
const MAX_RETRIES: i64 = 1000;

/// Reads `health` (at `key`); `None` after reporting every error in it.
pub(crate) fn health(cx: &mut Cx, key: &str, value: &Value) -> Option<HealthCheck> {
    let table = cx.table(key, value)?;
    let mut check = HealthCheck {
        probe: Probe::Tcp(String::new()),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        retries: 3,
        start_period: Duration::ZERO,
    };
    let mut probes: Vec<&'static str> = Vec::new();
    let mut valid = true;
    read_keys(cx, key, table, KEYS, |cx, field, key, value| {
        let name: &str = field.get_ref();
        let probe = match name {
            "command" => command(cx, key, value).map(Probe::Command),
            "http" => cx
                .string(key, value)
                .and_then(|url| http(cx, key, value, url)),
            "tcp" => cx
                .string(key, value)
                .and_then(|addr| tcp(cx, key, value, addr)),
            "interval" => {
                set(&mut check.interval, cx.positive_duration(key, value));
                return true;
            }
            "timeout" => {
                set(&mut check.timeout, cx.positive_duration(key, value));
                return true;
            }
            "retries" => {
                set(
                    &mut check.retries,
                    cx.integer_in(key, value, 1..=MAX_RETRIES),
                );
                return true;
            }
            "start_period" => {
                set(&mut check.start_period, cx.duration(key, value));
                return true;
            }
            _ => return false,
        };
        let name = match &probe {
            Some(Probe::Command(_)) | None => "command",
            Some(Probe::Http(_)) => "http",
            Some(Probe::Tcp(_)) => "tcp",
        };
        if let Some(first) = probes.first() {
            let message =
                format!("a probe is one of command, http or tcp: `{first}` is already set");
            cx.error(field.span(), key, message);
            valid = false;
        }
        probes.push(name);
        match probe {
            Some(probe) => check.probe = probe,
            None => valid = false,
        }
        true
    });
    if probes.is_empty() {
        let message = "missing the probe: one of `command`, `http` or `tcp`";
        cx.error(value.span(), key, message);
        return None;
    }
    valid.then_some(check)
}

/// `http = "http://HOST[:PORT][/PATH]"`, checked with `{instance}` as 0.
fn http(cx: &mut Cx, key: &str, value: &Value, url: &str) -> Option<Probe> {
    match HttpTarget::parse(&url.replace("{instance}", "0")) {
        Ok(_) => Some(Probe::Http(url.to_string())),
        Err(message) => {
            cx.error(value.span(), key, message);
            None
        }
    }
}

/// `tcp = "HOST:PORT"`, checked with `{instance}` as 0.
fn tcp(cx: &mut Cx, key: &str, value: &Value, address: &str) -> Option<Probe> {
    match host_port(&address.replace("{instance}", "0"), None) {
        Ok(_) => Some(Probe::Tcp(address.to_string())),
        Err(message) => {
            cx.error(value.span(), key, message);
            None
        }
    }
}

/// An `http` probe's URL, taken apart: where to connect and what to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port` to connect to (`[::1]:80` for IPv6).
    pub address: String,
    /// The `Host:` header: the URL's authority as written.
    pub host: String,
    /// The request target, `/` when the URL has none.
    pub path: String,
}

impl HttpTarget {
    /// Parses `http://HOST[:PORT][/PATH]` (no TLS, no user info).
    pub fn parse(url: &str) -> Result<HttpTarget, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "expected a URL like \"http://127.0.0.1:8080/healthz\" (got {url:?})"
            ));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("not a plain http URL (got {url:?})"));
        }
        let address = host_port(authority, Some(80))?;
        Ok(HttpTarget {
            address,
            host: authority.to_string(),
            path,
        })
    }
}

/// `host:port`, `[v6]:port`, or a host alone when `default` gives the port;
/// the address to connect to.
fn host_port(text: &str, default: Option<u16>) -> Result<String, String> {
    let expected = || format!("expected HOST:PORT like \"127.0.0.1:8080\" (got {text:?})");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(expected());
    }
    let port = match (port, default) {
        (Some(port), _) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("invalid port {port:?} in {text:?}"))?,
        (None, Some(port)) => port,
        (None, None) => return Err(expected()),
    };
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_address_host_header_and_path() {
        let target = HttpTarget::parse("http://127.0.0.1:9000/healthz?x=1").unwrap();
        assert_eq!(target.address, "127.0.0.1:9000");
        assert_eq!(target.host, "127.0.0.1:9000");
        assert_eq!(target.path, "/healthz?x=1");
        let target = HttpTarget::parse("http://localhost").unwrap();
        assert_eq!(
            (target.address.as_str(), target.path.as_str()),
            ("localhost:80", "/")
        );
        let target = HttpTarget::parse("http://[::1]:81/").unwrap();
        assert_eq!(target.address, "[::1]:81");
        for bad in [
            "https://x/",
            "http://",
            "http://a:0/",
            "http://a:99999/",
            "http://u@a/",
            "http://a b/",
            "ftp://a",
        ] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_addresses_need_a_port() {
        assert_eq!(host_port("db:5432", None).unwrap(), "db:5432");
        assert_eq!(host_port("[::1]:5432", None).unwrap(), "[::1]:5432");
        for bad in ["db", ":5432", "db:", "db:x", "[::1]", "a b:1"] {
            assert!(host_port(bad, None).is_err(), "{bad}");
        }
    }
}
