//! Helpers for black-box integration tests: find a service through `<ROLE>_URL` and talk JSON to it
//!
//! Tests reach services only through these variables, never by linking a service crate, so a test
//! binary built today runs against any later version of the services. The helpers panic with a
//! clear message on a missing variable or a transport failure (this is test code); an HTTP error
//! status is not a failure here, it is returned for the test to check.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

/// How long one request may take, connection included
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The variable naming the base URL of the service with `role`: `order-history` → `ORDER_HISTORY_URL`
pub use slipway_contract::url_var;

/// The base URL of the service with `role`, from `<ROLE>_URL`, without a trailing `/`
///
/// # Panics
/// When the variable is unset or empty.
pub fn service_url(role: &str) -> String {
    let var = url_var(role);
    match std::env::var(&var) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => panic!("{var} is not set: point it at the base URL of the running {role} service"),
    }
}

fn agent() -> &'static Agent {
    static AGENT: OnceLock<Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .new_agent()
    })
}

/// `GET url`: the status and the body as JSON (`Value::String` with the raw text if it is not JSON)
///
/// # Panics
/// When the request cannot be sent or its response read.
pub fn get_json(url: &str) -> (u16, Value) {
    let response = agent()
        .get(url)
        .header("accept", "application/json")
        .call()
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    read(response, "GET", url)
}

/// `POST url` with a JSON body: the status and the body as JSON (as in [`get_json`])
///
/// # Panics
/// When the request cannot be sent or its response read.
pub fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = agent()
        .post(url)
        .header("accept", "application/json")
        .send_json(body)
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    read(response, "POST", url)
}

fn read(mut response: ureq::http::Response<ureq::Body>, method: &str, url: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {url}: cannot read the response body: {e}"));
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
