//! The shop's orders service: checks each order against the catalog and keeps it in its
//! database, `orders-db` (PostgreSQL at `ORDERS_DB_URL`), so orders outlive the process
//!
//! - `POST /orders` with `{"sku","quantity","price_cents"}` (and optionally `"customer"`) looks
//!   the product up at `{CATALOG_URL}/products/{sku}` and answers `201` with the order, `422` for
//!   an unknown product or a zero quantity, `409 {"error":"price changed","price_cents":<current>}`
//!   when the client's price is not the catalog's, and `502` when the catalog cannot be reached;
//! - `GET /orders/{id}` answers the order, or `404`;
//! - `GET /orders` answers every order taken, oldest first.
//!
//! Pricing behind a flag: where `new-pricing` is on for the order's customer (the flag's
//! targeting key; `guest` when none is given), an order of [`VOLUME_QUANTITY`] items or more
//! gets `volume-discount` percent off its total (`discount_cents`). Both flags come from the
//! environment's flagd file, read again when it changes.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_platform::{Flags, Logger, Platform};
use slipway_postgres::Client;

const SERVICE: &str = "shop-orders";

/// The fewest items an order needs for the volume discount of new pricing
const VOLUME_QUANTITY: u32 = 10;
/// The discount, in percent, when the `volume-discount` flag gives none
const DEFAULT_DISCOUNT_PERCENT: f64 = 5.0;
/// The targeting key of an order that names no customer
const GUEST: &str = "guest";

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
    #[serde(default)]
    customer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Order {
    id: String,
    customer: String,
    sku: String,
    quantity: u32,
    price_cents: u64,
    /// What the pricing took off: 0 unless new pricing applied
    discount_cents: u64,
    total_cents: u64,
    weight_grams: u64,
}

/// An order's price: what it costs and what was taken off
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Priced {
    total_cents: u64,
    discount_cents: u64,
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

/// Prices a validated request against the catalog's product; `discount_percent` is new
/// pricing's volume discount where it applies to the customer, `None` where it does not
fn price(
    product: &Product,
    request: &OrderRequest,
    discount_percent: Option<u64>,
) -> Result<Priced, ApiError> {
    if request.price_cents != product.price_cents {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            body: json!({ "error": "price changed", "price_cents": product.price_cents }),
        });
    }
    let quantity = u64::from(request.quantity);
    let (Some(list), Some(weight_grams)) =
        (product.price_cents.checked_mul(quantity), product.weight_grams.checked_mul(quantity))
    else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quantity too large"));
    };
    let discount_cents = match discount_percent {
        Some(percent) if request.quantity >= VOLUME_QUANTITY => {
            // u128: no overflow for any total a u64 holds.
            let off = u128::from(list) * u128::from(percent.min(100)) / 100;
            u64::try_from(off).unwrap_or(list)
        }
        _ => 0,
    };
    Ok(Priced { total_cents: list - discount_cents, discount_cents, weight_grams })
}

/// New pricing's volume discount for `customer`, in percent, where the flags turn it on
fn volume_discount(flags: &Flags, customer: &str) -> Option<u64> {
    if !flags.boolean("new-pricing", customer, false) {
        return None;
    }
    let percent = flags.number("volume-discount", customer, DEFAULT_DISCOUNT_PERCENT);
    // A percentage from 0 to 100, whole: anything else in the file falls back to the default.
    let whole = if (0.0..=100.0).contains(&percent) { percent } else { DEFAULT_DISCOUNT_PERCENT };
    Some(whole.floor() as u64)
}

struct AppState {
    http: slipway_platform::http::Client,
    catalog_url: String,
    logger: Logger,
    flags: Flags,
    orders: Client,
}

impl AppState {
    /// Looks a product up in the catalog: `Ok(None)` when the catalog does not know it
    async fn product(&self, sku: &str) -> Result<Option<Product>, String> {
        let url = format!("{}/products/{sku}", self.catalog_url);
        let response = self.http.get(&url).await.map_err(|e| format!("GET {url}: {e}"))?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                response.json().map(Some).map_err(|e| format!("GET {url}: unreadable product: {e}"))
            }
            status => Err(format!("GET {url}: answered {status}")),
        }
    }

    /// Stores an order; the database gives it the next id
    async fn store(
        &self,
        request: OrderRequest,
        customer: String,
        priced: Priced,
    ) -> Result<Order, ApiError> {
        let cents = |value: u64| i64::try_from(value).map_err(|_| too_large());
        let row = self
            .orders
            .query_one(
                "INSERT INTO orders (customer, sku, quantity, price_cents, discount_cents, \
                 total_cents, weight_grams) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &customer,
                    &request.sku,
                    &i32::try_from(request.quantity).map_err(|_| too_large())?,
                    &cents(request.price_cents)?,
                    &cents(priced.discount_cents)?,
                    &cents(priced.total_cents)?,
                    &cents(priced.weight_grams)?,
                ],
            )
            .await
            .map_err(|e| self.unavailable(&e))?;
        let id: i64 = row.get(0);
        Ok(Order {
            id: id.to_string(),
            customer,
            sku: request.sku,
            quantity: request.quantity,
            price_cents: request.price_cents,
            discount_cents: priced.discount_cents,
            total_cents: priced.total_cents,
            weight_grams: priced.weight_grams,
        })
    }

    /// The order with `id`, if there is one
    async fn order(&self, id: i64) -> Result<Option<Order>, ApiError> {
        let query = format!("{SELECT_ORDERS} WHERE id = $1");
        let row = self.orders.query_opt(&query, &[&id]).await.map_err(|e| self.unavailable(&e))?;
        Ok(row.as_ref().map(order_of))
    }

    /// Every order, oldest first
    async fn orders(&self) -> Result<Vec<Order>, ApiError> {
        let query = format!("{SELECT_ORDERS} ORDER BY id");
        let rows = self.orders.query(&query, &[]).await.map_err(|e| self.unavailable(&e))?;
        Ok(rows.iter().map(order_of).collect())
    }

    /// A database error, logged; the client sees `503`
    fn unavailable(&self, error: &slipway_postgres::Error) -> ApiError {
        self.logger.error(&format!("orders-db: {}", slipway_postgres::migrate::message(error)));
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "orders database unavailable")
    }
}

/// The columns an `Order` is read from, in `order_of`'s order.
const SELECT_ORDERS: &str = "SELECT id, customer, sku, quantity, price_cents, discount_cents, \
                             total_cents, weight_grams FROM orders";

/// An order as `SELECT_ORDERS` reads it.
fn order_of(row: &slipway_postgres::Row) -> Order {
    Order {
        id: row.get::<_, i64>(0).to_string(),
        customer: row.get(1),
        sku: row.get(2),
        quantity: u32::try_from(row.get::<_, i32>(3)).unwrap_or_default(),
        price_cents: unsigned(row.get(4)),
        discount_cents: unsigned(row.get(5)),
        total_cents: unsigned(row.get(6)),
        weight_grams: unsigned(row.get(7)),
    }
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "quantity too large")
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
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
    let customer = request.customer.clone().unwrap_or_else(|| GUEST.to_owned());
    let priced = price(&product, &request, volume_discount(&state.flags, &customer))?;
    let order = state.store(request, customer, priced).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_order(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, format!("unknown order {id}"));
    let number: i64 = id.parse().map_err(|_| unknown())?;
    state.order(number).await?.map(Json).ok_or_else(unknown)
}

async fn list_orders(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Order>>, ApiError> {
    state.orders().await.map(Json)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let platform = Platform::from_env(SERVICE)?;
    let state = AppState {
        http: platform.client(),
        catalog_url: platform.dependency_url("catalog")?,
        logger: platform.logger(),
        flags: platform.flags(),
        orders: slipway_postgres::connect(&platform.database_url("orders-db")?).await?,
    };
    let router = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .with_state(Arc::new(state));
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

    fn request(sku: &str, quantity: u32, price_cents: u64) -> OrderRequest {
        OrderRequest { sku: sku.to_owned(), quantity, price_cents, customer: None }
    }

    fn priced(total_cents: u64, discount_cents: u64, weight_grams: u64) -> Priced {
        Priced { total_cents, discount_cents, weight_grams }
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
        assert_eq!(price(&MUG, &request("MUG-2", 3, 899), None), Ok(priced(2697, 0, 930)));
    }

    #[test]
    fn new_pricing_takes_its_percentage_off_volume_orders_only() {
        let volume = request("MUG-2", 12, 899);
        assert_eq!(price(&MUG, &volume, None), Ok(priced(10788, 0, 3720)), "off: list price");
        assert_eq!(price(&MUG, &volume, Some(5)), Ok(priced(10249, 539, 3720)), "on: 5 % off");
        assert_eq!(price(&MUG, &volume, Some(15)), Ok(priced(9170, 1618, 3720)));
        let small = request("MUG-2", 9, 899);
        assert_eq!(price(&MUG, &small, Some(15)), Ok(priced(8091, 0, 2790)), "under 10 items");
    }

    #[test]
    fn the_flags_decide_per_customer_and_absent_flags_mean_list_prices() {
        let dir = std::env::temp_dir().join(format!("shop-orders-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flags.json");
        let logger = Logger::new(SERVICE, "test", slipway_platform::Level::Error);
        let none = Flags::from_file(None, logger.clone());
        assert_eq!(volume_discount(&none, "anyone"), None);
        let on = r#"{"flags":{
            "new-pricing":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"},
            "volume-discount":{"state":"ENABLED","variants":{"five":5,"fifteen":15},"defaultVariant":"fifteen"}}}"#;
        std::fs::write(&file, on).unwrap();
        let flags = Flags::from_file(Some(file.clone()), logger);
        assert_eq!(volume_discount(&flags, "anyone"), Some(15));
        std::fs::write(&file, on.replace(r#""defaultVariant":"on""#, r#""defaultVariant":"off""#))
            .unwrap();
        assert_eq!(volume_discount(&flags, "anyone"), None, "the changed file is read again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_price_is_a_conflict_carrying_the_current_price() {
        let err = price(&MUG, &request("MUG-2", 1, 799), None).unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert_eq!(err.body, json!({"error": "price changed", "price_cents": 899}));
    }

    #[test]
    fn overflow_is_rejected_not_wrapped() {
        let huge = Product { price_cents: u64::MAX / 2, weight_grams: 1 };
        let err = price(&huge, &request("X", 3, u64::MAX / 2), Some(5)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
