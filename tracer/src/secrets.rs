//! Secret hygiene: which names carry credentials, and how to show a URL without its password.
//!
//! The decoders copy only a fixed allow-list of fields into events, so secrets cannot leak by
//! default; these helpers guard the remaining paths (HTTP headers, free-form attributes, URLs in
//! logs) and are what the tests check the output against.

/// True when a field or header name may carry a credential (token, password, secret, key, cookie,
/// service catalog with embedded tokens). Matching is case-insensitive and on substrings, so
/// `_context_auth_token`, `X-Auth-Token`, `X-Subject-Token` and `admin_password` all match.
pub fn is_secret_name(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "token",
        "password",
        "passwd",
        "secret",
        "authorization",
        "cookie",
        "credential",
        "service_catalog",
        "api_key",
        "apikey",
        "private_key",
    ];
    let lower = name.to_ascii_lowercase();
    MARKERS.iter().any(|marker| lower.contains(marker))
}

/// An AMQP or HTTP URL with the password shown as `***`, for logs and summaries: the workspace's
/// one redaction, re-exported where the tracer's users look for it.
pub use userinput::echo::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognized() {
        for name in [
            "_context_auth_token",
            "X-Auth-Token",
            "x-subject-token",
            "password",
            "_context_service_catalog",
            "Authorization",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "_context_request_id",
            "x-openstack-request-id",
            "method",
            "user_id",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("amqp://openstack:osbedpass@127.0.0.1:5672/%2f"),
            "amqp://openstack:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
