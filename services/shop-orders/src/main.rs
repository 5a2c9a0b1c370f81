//! The shop's orders service: checks each order against the catalog and keeps it in memory
//!
//! - `POST /orders` with `{"sku","quantity","price_cents"}` looks the product up at
//!   `{CATALOG_URL}/products/{sku}` and answers `201` with the order, `422` for an unknown
//!   product or a zero quantity, `409 {"error":"price changed","price_cents":<current>}` when the
//!   client's price is not the catalog's, and `502` when the catalog cannot be reached;
//! - `GET /orders/{id}` answers the order, or `404`.

use std::error::Error;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_platform::{Logger, Platform, describe};

const SERVICE: &str = "shop-orders";

/// How long a call to the catalog may take, connection included
const CATALOG_TIMEOUT: Duration = Duration::from_secs(3);

/// A product as the catalog serves it (only the fields an order needs)
#[derive(Clone, Debug, Deserialize)]
struct Product {
    price_cents: u64,
    weight_grams: u64,
}

#[derive(Debug, Deserialize)]
struct OrderRequest {
    sku: String,
    quantity: u32,
    price_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Order {
    id: String,
    sku: String,
    quantity: u32,
    price_cents: u64,
    total_cents: u64,
    weight_grams: u64,
}

/// An error answer: a status and a JSON body with at least `error`
#[derive(Debug, PartialEq)]
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, body: json!({ "error": message.into() }) }
    }

    fn unknown_product(sku: &str) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("unknown product {sku}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Checks what can be checked without the catalog; a sku must also be safe in a URL path
fn validate(request: &OrderRequest) -> Result<(), ApiError> {
    let sku_ok = !request.sku.is_empty()
        && request.sku.len() <= 64
        && request.sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !sku_ok {
        return Err(ApiError::unknown_product(&request.sku));
    }
    if request.quantity == 0 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quantity must be at least 1"));
    }
    Ok(())
}

/// Prices a validated request against the catalog's product: `(total_cents, weight_grams)`
fn price(product: &Product, request: &OrderRequest) -> Result<(u64, u64), ApiError> {
    if request.price_cents != product.price_cents {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            body: json!({ "error": "price changed", "price_cents": product.price_cents }),
        });
    }
    let quantity = u64::from(request.quantity);
    match (product.price_cents.checked_mul(quantity), product.weight_grams.checked_mul(quantity)) {
        (Some(total), Some(weight)) => Ok((total, weight)),
        _ => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quantity too large")),
    }
}

struct AppState {
    http: reqwest::Client,
    catalog_url: String,
    logger: Logger,
    orders: Mutex<Vec<Order>>,
}

impl AppState {
    /// Looks a product up in the catalog: `Ok(None)` when the catalog does not know it
    async fn product(&self, sku: &str) -> Result<Option<Product>, String> {
        let url = format!("{}/products/{sku}", self.catalog_url);
        let response =
            self.http.get(&url).send().await.map_err(|e| format!("GET {url}: {}", describe(&e)))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => response
                .json()
                .await
                .map(Some)
                .map_err(|e| format!("GET {url}: unreadable product: {e}")),
            status => Err(format!("GET {url}: answered {status}")),
        }
    }

    /// Stores an order under the next sequential id
    fn store(&self, request: OrderRequest, total_cents: u64, weight_grams: u64) -> Order {
        let mut orders = self.orders.lock().unwrap_or_else(PoisonError::into_inner);
        let order = Order {
            id: (orders.len() + 1).to_string(),
            sku: request.sku,
            quantity: request.quantity,
            price_cents: request.price_cents,
            total_cents,
            weight_grams,
        };
        orders.push(order.clone());
        order
    }
}

async fn create_order(
    State(state): State<Arc<AppState>>,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let Json(request) = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    validate(&request)?;
    let product = match state.product(&request.sku).await {
        Ok(Some(product)) => product,
        Ok(None) => return Err(ApiError::unknown_product(&request.sku)),
        Err(message) => {
            state.logger.error(&format!("catalog unavailable: {message}"));
            return Err(ApiError::new(StatusCode::BAD_GATEWAY, "catalog unavailable"));
        }
    };
    let (total_cents, weight_grams) = price(&product, &request)?;
    let order = state.store(request, total_cents, weight_grams);
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_order(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    let orders = state.orders.lock().unwrap_or_else(PoisonError::into_inner);
    match orders.iter().find(|o| o.id == id) {
        Some(order) => Ok(Json(order.clone())),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown order {id}"))),
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let platform = Platform::from_env(SERVICE)?;
    let state = AppState {
        http: reqwest::Client::builder().timeout(CATALOG_TIMEOUT).build()?,
        catalog_url: platform.dependency_url("catalog")?,
        logger: platform.logger(),
        orders: Mutex::new(Vec::new()),
    };
    let router = Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(Arc::new(state));
    platform.serve(router).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{SERVICE}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sku: &str, quantity: u32, price_cents: u64) -> OrderRequest {
        OrderRequest { sku: sku.to_owned(), quantity, price_cents }
    }

    const MUG: Product = Product { price_cents: 899, weight_grams: 310 };

    #[test]
    fn validation_rejects_zero_quantity_and_unsafe_skus() {
        assert!(validate(&request("MUG-2", 1, 899)).is_ok());
        for sku in ["", "../health", "a/b", "a?b", "été"] {
            let err = validate(&request(sku, 1, 899)).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{sku}");
        }
        let err = validate(&request("MUG-2", 0, 899)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn total_and_weight_scale_with_quantity() {
        assert_eq!(price(&MUG, &request("MUG-2", 3, 899)), Ok((2697, 930)));
    }

    #[test]
    fn stale_price_is_a_conflict_carrying_the_current_price() {
        let err = price(&MUG, &request("MUG-2", 1, 799)).unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert_eq!(err.body, json!({"error": "price changed", "price_cents": 899}));
    }

    #[test]
    fn overflow_is_rejected_not_wrapped() {
        let huge = Product { price_cents: u64::MAX / 2, weight_grams: 1 };
        let err = price(&huge, &request("X", 3, u64::MAX / 2)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
