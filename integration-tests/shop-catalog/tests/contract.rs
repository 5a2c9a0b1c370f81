//! Contract tests of shop-catalog, run against the live service at `CATALOG_URL`

use serde_json::Value;
use slipway_test_support::{get_json, service_url};

fn url(path: &str) -> String {
    format!("{}{path}", service_url("catalog"))
}

fn products() -> Vec<Value> {
    let (status, body) = get_json(&url("/products"));
    assert_eq!(status, 200, "GET /products: {body}");
    body.as_array().unwrap_or_else(|| panic!("GET /products is not a list: {body}")).clone()
}

#[test]
fn health_answers_ok() {
    let (status, body) = get_json(&url("/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "shop-catalog");
    assert!(body["environment"].is_string(), "{body}");
}

#[test]
fn lists_products_with_prices_and_weights() {
    let products = products();
    assert!(products.len() >= 4, "{products:?}");
    for product in &products {
        assert!(product["sku"].as_str().is_some_and(|s| !s.is_empty()), "{product}");
        assert!(product["name"].as_str().is_some_and(|s| !s.is_empty()), "{product}");
        assert!(product["price_cents"].as_u64().is_some_and(|p| p > 0), "{product}");
        assert!(product["weight_grams"].as_u64().is_some_and(|w| w > 0), "{product}");
    }
}

#[test]
fn serves_each_listed_product_by_sku() {
    for product in products() {
        let sku = product["sku"].as_str().unwrap_or_default().to_owned();
        let (status, body) = get_json(&url(&format!("/products/{sku}")));
        assert_eq!(status, 200, "GET /products/{sku}: {body}");
        assert_eq!(body, product);
    }
}

#[test]
fn unknown_sku_is_not_found() {
    let (status, body) = get_json(&url("/products/NO-SUCH-SKU"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown product NO-SUCH-SKU");
}
