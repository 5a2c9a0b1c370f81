//! The shop's shipping service: quotes what shipping an order costs
//!
//! `GET /quotes/{order_id}` fetches `{ORDERS_URL}/orders/{order_id}` and answers
//! `200 {"order_id","weight_grams","cost_cents"}`, `404` for an unknown order, or `502` when the
//! orders service cannot be reached. The tariff is in [`shipping_cost`].

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use slipway_platform::{Logger, Platform};

const SERVICE: &str = "shop-shipping";

/// The base cost of shipping any order, in cents
const BASE_CENTS: u64 = 499;
/// Orders whose total is strictly above this ship free
const FREE_ABOVE_CENTS: u64 = 10_000;

/// The tariff: free when the order total is above 10 000 cents; otherwise 499 cents plus
/// 1 cent per started 10 g
fn shipping_cost(total_cents: u64, weight_grams: u64) -> u64 {
    if total_cents > FREE_ABOVE_CENTS {
        0
    } else {
        BASE_CENTS.saturating_add(weight_grams.div_ceil(10))
    }
}

/// An order as the orders service serves it (only the fields a quote needs)
#[derive(Debug, Deserialize)]
struct Order {
    total_cents: u64,
    weight_grams: u64,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct Quote {
    order_id: String,
    weight_grams: u64,
    cost_cents: u64,
}

/// Order ids are sequential numbers; anything else cannot name an order
fn plausible_order_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

struct AppState {
    http: slipway_platform::http::Client,
    orders_url: String,
    logger: Logger,
}

impl AppState {
    /// Fetches an order: `Ok(None)` when the orders service does not know it
    async fn order(&self, id: &str) -> Result<Option<Order>, String> {
        let url = format!("{}/orders/{id}", self.orders_url);
        let response = self.http.get(&url).await.map_err(|e| format!("GET {url}: {e}"))?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                response.json().map(Some).map_err(|e| format!("GET {url}: unreadable order: {e}"))
            }
            status => Err(format!("GET {url}: answered {status}")),
        }
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn quote(State(state): State<Arc<AppState>>, Path(order_id): Path<String>) -> Response {
    if !plausible_order_id(&order_id) {
        return error(StatusCode::NOT_FOUND, format!("unknown order {order_id}"));
    }
    match state.order(&order_id).await {
        Ok(Some(order)) => Json(Quote {
            cost_cents: shipping_cost(order.total_cents, order.weight_grams),
            weight_grams: order.weight_grams,
            order_id,
        })
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown order {order_id}")),
        Err(message) => {
            state.logger.error(&format!("orders unavailable: {message}"));
            error(StatusCode::BAD_GATEWAY, "orders unavailable".to_owned())
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let platform = Platform::from_env(SERVICE)?;
    let state = AppState {
        http: platform.client(),
        orders_url: platform.dependency_url("orders")?,
        logger: platform.logger(),
    };
    let router = Router::new().route("/quotes/{order_id}", get(quote)).with_state(Arc::new(state));
    platform.serve(router).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    slipway_platform::exit_code(SERVICE, run().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_plus_one_cent_per_started_ten_grams() {
        assert_eq!(shipping_cost(899, 0), 499);
        assert_eq!(shipping_cost(899, 310), 530);
        assert_eq!(shipping_cost(899, 311), 531);
        assert_eq!(shipping_cost(10_000, 2100), 709);
    }

    #[test]
    fn free_strictly_above_ten_thousand_cents() {
        assert_eq!(shipping_cost(10_001, 2100), 0);
        assert_eq!(shipping_cost(u64::MAX, u64::MAX), 0);
        assert_eq!(shipping_cost(0, u64::MAX), BASE_CENTS + u64::MAX.div_ceil(10));
    }

    #[test]
    fn only_numeric_ids_are_looked_up() {
        assert!(plausible_order_id("1"));
        assert!(plausible_order_id("42"));
        for id in ["", "x", "1/2", "../health", "-1", "123456789012345678901"] {
            assert!(!plausible_order_id(id), "{id}");
        }
    }
}
