//! The shop's catalog service: serves a fixed, in-memory list of products and their prices
//!
//! - `GET /products` lists every product;
//! - `GET /products/{sku}` answers one product, or `404 {"error":"unknown product <sku>"}`.

use std::process::ExitCode;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use slipway_platform::{Platform, PlatformError};

const SERVICE: &str = "shop-catalog";

/// A product as the catalog serves it
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Product {
    sku: &'static str,
    name: &'static str,
    price_cents: u64,
    weight_grams: u64,
}

const PRODUCTS: &[Product] = &[
    Product { sku: "KETTLE-1", name: "Stovetop kettle", price_cents: 3499, weight_grams: 1200 },
    Product { sku: "MUG-2", name: "Enamel mug", price_cents: 899, weight_grams: 310 },
    Product { sku: "LAMP-3", name: "Camping lamp", price_cents: 2450, weight_grams: 540 },
    Product { sku: "ROPE-4", name: "Climbing rope, 30 m", price_cents: 12900, weight_grams: 2100 },
    Product { sku: "SOCKS-5", name: "Wool socks", price_cents: 1299, weight_grams: 95 },
];

fn find(sku: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.sku == sku)
}

async fn list_products() -> Json<&'static [Product]> {
    Json(PRODUCTS)
}

async fn get_product(Path(sku): Path<String>) -> Response {
    match find(&sku) {
        Some(product) => Json(product).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("unknown product {sku}") })),
        )
            .into_response(),
    }
}

fn router() -> Router {
    Router::new().route("/products", get(list_products)).route("/products/{sku}", get(get_product))
}

async fn run() -> Result<(), PlatformError> {
    let platform = Platform::from_env(SERVICE)?;
    platform.serve(router()).await
}

#[tokio::main]
async fn main() -> ExitCode {
    slipway_platform::exit_code(SERVICE, run().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_unique_and_path_safe() {
        assert!(PRODUCTS.len() >= 4);
        for (i, p) in PRODUCTS.iter().enumerate() {
            assert!(PRODUCTS[i + 1..].iter().all(|q| q.sku != p.sku), "{}", p.sku);
            assert!(p.sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert!(p.price_cents > 0 && p.weight_grams > 0);
        }
    }

    #[test]
    fn finds_by_exact_sku() {
        assert_eq!(find("MUG-2").map(|p| p.price_cents), Some(899));
        assert_eq!(find("mug-2"), None);
        assert_eq!(find(""), None);
    }
}
