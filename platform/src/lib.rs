//! The Slipway platform contract: how every service is configured, logs, answers health checks and serves
//!
//! Every service binary reads its whole configuration from the environment, once, at startup:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `LISTEN_ADDR` | socket address to listen on | `0.0.0.0:8080` |
//! | `<ROLE>_URL` | base URL of the dependency with that role: the role upper-cased, `-` replaced by `_` (role `catalog` reads `CATALOG_URL`) | none, required |
//! | `LOG_LEVEL` | `error`, `warn`, `info` or `debug` | `info` |
//! | `SLIPWAY_ENV` | the environment the service runs in (`local`, `ci`, `production`, ...) | `local` |
//! | `SLIPWAY_VERSION` | the build version the service runs (the image's configuration sets it) | `unknown` |
//! | `SLIPWAY_COMMIT` | the source commit of that build (the image's configuration sets it) | `unknown` |
//! | `SLIPWAY_FLAGS` | path of the environment's feature flags, a flagd JSON file, read again when it changes ([`Flags`]) | none: every flag answers the caller's default |
//! | `REQUEST_TIMEOUT` | how long a call to a dependency may take, like `3s` or `500ms` ([`Platform::request_timeout`]) | `3s` |
//! | `RATE_LIMIT` | requests per second one instance serves before answering `429` (`0`: no limit) | `0` |
//!
//! A value that does not parse, or a missing dependency URL, is a startup error naming the variable.
//!
//! [`Platform::serve`] then adds what every service has in common:
//!
//! - `GET /health` answers `200` with `{"status":"ok","service":..,"environment":..}`
//!   (the service's own router must not define `/health`);
//! - `GET /metrics` answers the Prometheus text format: `slipway_http_requests_total` by
//!   route (the route's template, e.g. `/orders/{id}`), method and status class,
//!   `slipway_http_request_duration_seconds` (a histogram by route) and `slipway_build_info`
//!   (service, environment, version, commit); the service writes none of it;
//! - one JSON line per request on stdout, at `info`:
//!   `{"level":"info","service":"shop-orders","env":"ci","method":"POST","path":"/orders","status":201,"ms":3}`;
//!   the service's own errors are logged through [`Logger`] at `error` or `warn`, and lines less
//!   important than `LOG_LEVEL` are dropped;
//! - one startup line (`"message":"listening on <addr>"`), written whatever the level;
//! - graceful shutdown on `SIGTERM` and `SIGINT`: in-flight requests finish, then the process exits.

mod flags;
pub mod http;
mod log;
mod metrics;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::signal::unix::{SignalKind, signal};

pub use flags::Flags;
pub use log::{Level, Logger};
pub use metrics::{BuildInfo, Metrics};
use slipway_contract as contract;
/// The variable holding the path of the flagd file
pub use slipway_contract::FLAGS as FLAGS_VAR;

/// The listen address used when `LISTEN_ADDR` is unset
pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:8080";
/// How long a call to a dependency may take when `REQUEST_TIMEOUT` is unset
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A service's configuration as read from the environment, and the way it serves
#[derive(Debug)]
pub struct Platform {
    service: &'static str,
    environment: String,
    version: String,
    commit: String,
    listen_addr: SocketAddr,
    logger: Logger,
    flags_path: Option<PathBuf>,
    request_timeout: Duration,
    rate_limit: u32,
    vars: HashMap<String, String>,
}

/// Why a service could not start or keep serving
#[derive(Debug)]
pub enum PlatformError {
    /// A variable is unset or set to a value that does not parse; the message names both
    Config { var: String, problem: String },
    /// The listen address could not be bound, or the server failed
    Io { context: String, source: io::Error },
}

impl PlatformError {
    fn invalid(var: &str, value: &str, expected: &str) -> PlatformError {
        let problem = format!("is {value:?}, expected {expected}");
        PlatformError::Config { var: var.to_owned(), problem }
    }
}

/// `value` of the variable `name` through `parse`, none when unset, else an error saying
/// what was `expected`.
fn read<T>(
    value: Option<&str>,
    name: &str,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, PlatformError> {
    value
        .map(|text| parse(text).ok_or_else(|| PlatformError::invalid(name, text, expected)))
        .transpose()
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Config { var, problem } => write!(f, "{var} {problem}"),
            PlatformError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

/// The `Io` message already ends with its source, so no source is reported apart from it
impl std::error::Error for PlatformError {}

/// The variable holding the base URL of the dependency with `role`: `order-history` → `ORDER_HISTORY_URL`
pub use slipway_contract::url_var as dependency_var;

/// An error and all its sources on one line, `outer: inner: root`, for logging
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// What a service's `main` returns for the outcome of its `run`: success, or a failure
/// with the error on one line of standard error, `<service>: <error>`.
pub fn exit_code(
    service: &str,
    outcome: Result<(), impl std::fmt::Display>,
) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{service}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl Platform {
    /// Reads the contract from the process environment; `service` is `<application>-<role>`
    pub fn from_env(service: &'static str) -> Result<Platform, PlatformError> {
        let vars = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        Platform::from_vars(service, vars)
    }

    /// Reads the contract from `vars`, a snapshot of the environment
    pub fn from_vars(
        service: &'static str,
        vars: HashMap<String, String>,
    ) -> Result<Platform, PlatformError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let listen = get(contract::LISTEN_ADDR).unwrap_or(DEFAULT_LISTEN_ADDR);
        let listen_addr = listen.parse().map_err(|_| {
            PlatformError::invalid(
                contract::LISTEN_ADDR,
                listen,
                "a socket address such as 0.0.0.0:8080",
            )
        })?;
        let level = read(
            get(contract::LOG_LEVEL),
            contract::LOG_LEVEL,
            "one of error, warn, info, debug",
            Level::parse,
        )?;
        let environment = get(contract::ENVIRONMENT).unwrap_or("local").to_owned();
        let version = get(contract::VERSION).unwrap_or("unknown").to_owned();
        let commit = get(contract::COMMIT).unwrap_or("unknown").to_owned();
        let logger = Logger::new(service, &environment, level.unwrap_or(Level::Info));
        let flags_path = get(contract::FLAGS).map(PathBuf::from);
        let request_timeout = read(
            get(contract::REQUEST_TIMEOUT),
            contract::REQUEST_TIMEOUT,
            "a duration such as 3s or 500ms",
            contract::parse_duration,
        )?;
        let rate_limit = read(
            get(contract::RATE_LIMIT),
            contract::RATE_LIMIT,
            "requests per second, 0 for no limit",
            |v| v.parse().ok(),
        )?;
        Ok(Platform {
            service,
            environment,
            version,
            commit,
            listen_addr,
            logger,
            flags_path,
            request_timeout: request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            rate_limit: rate_limit.unwrap_or(0),
            vars,
        })
    }

    /// The environment's feature flags, from the file `SLIPWAY_FLAGS` names
    pub fn flags(&self) -> Flags {
        Flags::from_file(self.flags_path.clone(), self.logger.clone())
    }

    /// How long a call to a dependency may take, connection included (`REQUEST_TIMEOUT`)
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A client for calls to the dependencies, each within `REQUEST_TIMEOUT`
    pub fn client(&self) -> http::Client {
        http::Client::new(self.request_timeout)
    }

    /// Requests per second one instance serves (`RATE_LIMIT`; 0: no limit)
    pub fn rate_limit(&self) -> u32 {
        self.rate_limit
    }

    /// The base URL of the dependency with `role`, from `<ROLE>_URL`, without a trailing `/`
    pub fn dependency_url(&self, role: &str) -> Result<String, PlatformError> {
        let (var, value) = self.required(role, "the base URL of the {role} service")?;
        let url = value.trim_end_matches('/');
        match url.split_once("://") {
            Some(("http" | "https", host)) if !host.is_empty() => Ok(url.to_owned()),
            _ => Err(PlatformError::invalid(&var, value, "a base URL such as http://host:port")),
        }
    }

    /// The `postgres://` URL of the data store with `role` (`orders-db` → `ORDERS_DB_URL`).
    pub fn database_url(&self, role: &str) -> Result<String, PlatformError> {
        let (var, value) = self.required(role, "the URL of the {role} database")?;
        match value.split_once("://") {
            Some(("postgres" | "postgresql", rest)) if !rest.is_empty() => Ok(value.to_owned()),
            _ => Err(PlatformError::invalid(
                &var,
                value,
                "a URL such as postgres://user@host:5432/db",
            )),
        }
    }

    /// `<ROLE>_URL` and its value, trimmed, or the error saying it is not set (`what` it is,
    /// `{role}` in it named).
    fn required(&self, role: &str, what: &str) -> Result<(String, &str), PlatformError> {
        let var = dependency_var(role);
        let value = self.vars.get(&var).map(|v| v.trim()).unwrap_or_default();
        if value.is_empty() {
            let problem = format!("is not set: {} is required", what.replace("{role}", role));
            return Err(PlatformError::Config { var, problem });
        }
        Ok((var, value))
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// A logger for the service's own code (cheap to clone into handler state)
    pub fn logger(&self) -> Logger {
        self.logger.clone()
    }

    pub fn log(&self, level: Level, message: &str) {
        self.logger.log(level, message);
    }

    /// The metrics `serve` counts and `GET /metrics` answers.
    pub fn metrics(&self) -> Metrics {
        Metrics::new(BuildInfo {
            service: self.service.to_owned(),
            environment: self.environment.clone(),
            version: self.version.clone(),
            commit: self.commit.clone(),
        })
    }

    /// Serves `router` plus `GET /health` and `GET /metrics` on `LISTEN_ADDR` until
    /// `SIGTERM` or `SIGINT`
    pub async fn serve(self, router: Router) -> Result<(), PlatformError> {
        let health = serde_json::json!({
            "status": "ok",
            "service": self.service,
            "environment": self.environment,
        });
        let metrics = self.metrics();
        let exposed = metrics.clone();
        let app = router
            .route(
                "/health",
                get(move || {
                    let body = health.clone();
                    async move { axum::Json(body) }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let text = exposed.render();
                    async move { ([("content-type", "text/plain; version=0.0.4")], text) }
                }),
            )
            .layer(middleware::from_fn_with_state(Limiter::new(self.rate_limit), limit_rate))
            .layer(middleware::from_fn_with_state(
                Observed { logger: self.logger.clone(), metrics },
                observe_request,
            ));
        let io_error = |context: String| move |source| PlatformError::Io { context, source };
        let mut sigterm =
            signal(SignalKind::terminate()).map_err(io_error("cannot watch SIGTERM".into()))?;
        let mut sigint =
            signal(SignalKind::interrupt()).map_err(io_error("cannot watch SIGINT".into()))?;
        let listener = tokio::net::TcpListener::bind(self.listen_addr)
            .await
            .map_err(io_error(format!("cannot listen on {}", self.listen_addr)))?;
        let addr = listener.local_addr().unwrap_or(self.listen_addr);
        self.logger.always(&format!("listening on {addr}"));
        let logger = self.logger.clone();
        let shutdown = async move {
            let name = tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
            };
            logger.info(&format!("{name} received, shutting down"));
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(io_error("server failed".into()))?;
        self.logger.info("stopped");
        Ok(())
    }
}

/// Where every answered request is recorded: the request log and the metrics.
#[derive(Debug, Clone)]
struct Observed {
    logger: Logger,
    metrics: Metrics,
}

async fn observe_request(
    State(observed): State<Observed>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(metrics::UNMATCHED, |matched| matched.as_str())
        .to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let status = response.status().as_u16();
    observed.logger.request(method.as_str(), &path, status, ms);
    observed.metrics.observe(&route, method.as_str(), status, elapsed);
    response
}

/// A token bucket of `RATE_LIMIT` requests per second, as deep as one second's worth
#[derive(Debug, Clone)]
struct Limiter {
    per_second: u32,
    bucket: Arc<Mutex<(f64, Instant)>>,
}

impl Limiter {
    fn new(per_second: u32) -> Limiter {
        Limiter {
            per_second,
            bucket: Arc::new(Mutex::new((f64::from(per_second), Instant::now()))),
        }
    }

    /// Whether one more request may be served now
    fn admit(&self) -> bool {
        self.admit_at(Instant::now())
    }

    /// Whether one more request may be served at `now`
    fn admit_at(&self, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let rate = f64::from(self.per_second);
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = *bucket;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
        let admitted = tokens >= 1.0;
        *bucket = (if admitted { tokens - 1.0 } else { tokens }, now);
        admitted
    }
}

/// Answers `429` past the rate limit; health checks and metrics are never limited
async fn limit_rate(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/metrics" || limiter.admit() {
        return next.run(request).await;
    }
    let body = axum::Json(serde_json::json!({ "error": "rate limited: try again in a second" }));
    (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn describe_joins_the_source_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(io::Error::other("refused"));
        assert_eq!(describe(&err), "request failed: refused");
    }

    #[test]
    fn defaults_when_unset() {
        let p = Platform::from_vars("shop-catalog", vars(&[])).unwrap();
        assert_eq!(p.listen_addr(), DEFAULT_LISTEN_ADDR.parse().unwrap());
        assert_eq!(p.logger().level(), Level::Info);
        assert_eq!(p.environment(), "local");
        assert_eq!(p.service(), "shop-catalog");
    }

    #[test]
    fn reads_set_values() {
        let env = [("LISTEN_ADDR", "127.0.0.1:9000"), ("LOG_LEVEL", "warn"), ("SLIPWAY_ENV", "ci")];
        let p = Platform::from_vars("shop-orders", vars(&env)).unwrap();
        assert_eq!(p.listen_addr(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(p.logger().level(), Level::Warn);
        assert_eq!(p.environment(), "ci");
    }

    #[test]
    fn bad_log_level_names_variable_and_value() {
        let err = Platform::from_vars("shop-orders", vars(&[("LOG_LEVEL", "loud")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("LOG_LEVEL") && text.contains("loud"), "{text}");
    }

    #[test]
    fn operational_settings_parse_or_name_the_variable() {
        let env = [("REQUEST_TIMEOUT", "500ms"), ("RATE_LIMIT", "20")];
        let p = Platform::from_vars("shop-orders", vars(&env)).unwrap();
        assert_eq!(p.request_timeout(), Duration::from_millis(500));
        assert_eq!(p.rate_limit(), 20);
        let p = Platform::from_vars("shop-orders", vars(&[])).unwrap();
        assert_eq!((p.request_timeout(), p.rate_limit()), (DEFAULT_REQUEST_TIMEOUT, 0));
        for (var, value) in
            [("REQUEST_TIMEOUT", "3"), ("REQUEST_TIMEOUT", "fast"), ("RATE_LIMIT", "-1")]
        {
            let err = Platform::from_vars("shop-orders", vars(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn the_rate_limiter_admits_a_second_s_worth_then_refuses() {
        let limiter = Limiter::new(5);
        let now = Instant::now();
        let admitted = (0..20).filter(|_| limiter.admit_at(now)).count();
        assert_eq!(admitted, 5);
        assert!(Limiter::new(0).admit());
    }

    #[test]
    fn the_rate_limiter_refills_at_its_rate() {
        let limiter = Limiter::new(5);
        let now = Instant::now();
        while limiter.admit_at(now) {}
        let later = now + Duration::from_millis(300);
        assert_eq!((0..20).filter(|_| limiter.admit_at(later)).count(), 1);
    }

    #[test]
    fn bad_listen_addr_names_variable_and_value() {
        let err =
            Platform::from_vars("shop-orders", vars(&[("LISTEN_ADDR", "localhost")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("LISTEN_ADDR") && text.contains("localhost"), "{text}");
    }

    #[test]
    fn dependency_url_is_trimmed_or_a_clear_error() {
        let env = [
            ("CATALOG_URL", "http://catalog:8080/"),
            ("ORDER_HISTORY_URL", "catalog:8080"),
            ("ORDERS_URL", " "),
        ];
        let p = Platform::from_vars("shop-orders", vars(&env)).unwrap();
        assert_eq!(p.dependency_url("catalog").unwrap(), "http://catalog:8080");
        let missing = p.dependency_url("shipping").unwrap_err().to_string();
        assert!(missing.contains("SHIPPING_URL"), "{missing}");
        let empty = p.dependency_url("orders").unwrap_err().to_string();
        assert!(empty.contains("ORDERS_URL"), "{empty}");
        let invalid = p.dependency_url("order-history").unwrap_err().to_string();
        assert!(invalid.contains("ORDER_HISTORY_URL"), "{invalid}");
    }

    #[test]
    fn a_database_url_is_a_postgres_url_or_a_clear_error() {
        let env = [
            ("ORDERS_DB_URL", "postgres://slipway@127.0.0.1:5432/postgres"),
            ("CATALOG_URL", "http://c"),
        ];
        let p = Platform::from_vars("shop-orders", vars(&env)).unwrap();
        assert_eq!(
            p.database_url("orders-db").unwrap(),
            "postgres://slipway@127.0.0.1:5432/postgres"
        );
        assert!(p.database_url("catalog").unwrap_err().to_string().contains("CATALOG_URL"));
        assert!(p.database_url("stock-db").unwrap_err().to_string().contains("STOCK_DB_URL"));
    }
}
