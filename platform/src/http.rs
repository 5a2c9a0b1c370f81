//! Calls from a service to its dependencies: `GET` over HTTP/1.1 to a `<ROLE>_URL`, one
//! connection per call, the whole call within `REQUEST_TIMEOUT`.

use std::fmt;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// A client for a service's dependencies ([`crate::Platform::client`])
#[derive(Debug, Clone)]
pub struct Client {
    timeout: Duration,
}

/// A dependency's answer: its status and whole body
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a call got no answer: the URL, the connection, the exchange or the time limit
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError(String);

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

impl Reply {
    /// The body as JSON
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

impl Client {
    /// A client whose calls each take at most `timeout`, connection included
    pub fn new(timeout: Duration) -> Client {
        Client { timeout }
    }

    /// `GET url` (an `http://` URL): the answer, whatever its status, or why there is none
    pub async fn get(&self, url: &str) -> Result<Reply, CallError> {
        match tokio::time::timeout(self.timeout, get(url)).await {
            Ok(reply) => reply,
            Err(_) => Err(CallError(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }
}

async fn get(url: &str) -> Result<Reply, CallError> {
    let target = Target::parse(url)?;
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| CallError(format!("cannot connect to {}: {e}", target.authority)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| CallError(crate::describe(&e)))?;
    // Drives the connection; it ends when the exchange below is over.
    tokio::spawn(connection);
    let request = Request::get(target.path)
        .header(header::HOST, target.authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| CallError(e.to_string()))?;
    let response =
        sender.send_request(request).await.map_err(|e| CallError(crate::describe(&e)))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| CallError(crate::describe(&e)))?;
    Ok(Reply { status, body: body.to_bytes() })
}

/// Where an `http://host[:port][/path]` URL points.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `host[:port]`, as the `Host` header carries it.
    authority: String,
    /// The path and query, `/` at least.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, CallError> {
        let uri: Uri = url.parse().map_err(|e| CallError(format!("`{url}` is not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(CallError(format!(
                "`{url}`: only http:// URLs are called (a `<ROLE>_URL` names a service of the same application)"
            )));
        }
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            return Err(CallError(format!("`{url}` names no host")));
        };
        Ok(Target {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: uri.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_host_port_and_path() {
        let target = Target::parse("http://127.0.0.1:8081/products/sku-1?x=1").unwrap();
        assert_eq!(
            target,
            Target {
                host: "127.0.0.1".to_owned(),
                port: 8081,
                authority: "127.0.0.1:8081".to_owned(),
                path: "/products/sku-1?x=1".to_owned(),
            }
        );
        let bare = Target::parse("http://catalog").unwrap();
        assert_eq!((bare.port, bare.path.as_str()), (80, "/"));
        assert_eq!(Target::parse("http://[::1]:9000/").unwrap().host, "::1");
    }

    #[test]
    fn only_http_urls_are_called() {
        let refused = Target::parse("https://catalog/products").unwrap_err();
        assert!(refused.0.contains("only http://"), "{refused}");
        assert!(Target::parse("not a url").is_err());
    }

    #[tokio::test]
    async fn a_call_gets_the_status_and_body_of_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = axum::Router::new().route(
            "/products/{sku}",
            axum::routing::get(
                |axum::extract::Path(sku): axum::extract::Path<String>| async move {
                    axum::Json(serde_json::json!({ "sku": sku }))
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = Client::new(Duration::from_secs(5));
        let found = client.get(&format!("http://127.0.0.1:{port}/products/a-1")).await.unwrap();
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.json::<serde_json::Value>().unwrap()["sku"], "a-1");
        let missing = client.get(&format!("http://127.0.0.1:{port}/nothing")).await.unwrap();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_call_that_gets_no_answer_in_time_says_so() {
        // Accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _held = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let client = Client::new(Duration::from_millis(200));
        let error = client.get(&format!("http://127.0.0.1:{port}/")).await.unwrap_err();
        assert_eq!(error.to_string(), "no answer within 200 ms");
    }
}
