//! Contract tests of shop-shipping, run against the live service at `SHIPPING_URL`
//!
//! Orders to quote are created through `ORDERS_URL` at prices read from `CATALOG_URL`.

use serde_json::{Value, json};
use slipway_test_support::{get_json, post_json, service_url};

fn shipping_url(path: &str) -> String {
    format!("{}{path}", service_url("shipping"))
}

/// The catalog's cheapest product: (sku, price_cents)
fn cheapest_product() -> (String, u64) {
    let (status, body) = get_json(&format!("{}/products", service_url("catalog")));
    assert_eq!(status, 200, "GET catalog /products: {body}");
    body.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["sku"].as_str()?.to_owned(), p["price_cents"].as_u64()?)))
        .min_by_key(|(_, price)| *price)
        .unwrap_or_else(|| panic!("the catalog listed no usable product: {body}"))
}

/// Creates an order through the orders service and answers it
fn create_order(sku: &str, quantity: u64, price_cents: u64) -> Value {
    let request = json!({ "sku": sku, "quantity": quantity, "price_cents": price_cents });
    let (status, body) = post_json(&format!("{}/orders", service_url("orders")), &request);
    assert_eq!(status, 201, "POST orders /orders {request}: {body}");
    body
}

fn quote(order: &Value) -> Value {
    let id = order["id"].as_str().unwrap_or_default();
    let (status, body) = get_json(&shipping_url(&format!("/quotes/{id}")));
    assert_eq!(status, 200, "GET /quotes/{id}: {body}");
    assert_eq!(body["order_id"], id);
    assert_eq!(body["weight_grams"], order["weight_grams"]);
    body
}

#[test]
fn health_answers_ok() {
    let (status, body) = get_json(&shipping_url("/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "shop-shipping");
}

#[test]
fn quotes_base_plus_weight_for_a_small_order() {
    let (sku, price) = cheapest_product();
    assert!(price <= 10_000, "the cheapest product ships free: {price}");
    let order = create_order(&sku, 1, price);
    let weight = order["weight_grams"].as_u64().unwrap_or_default();
    let body = quote(&order);
    assert_eq!(body["cost_cents"], 499 + weight.div_ceil(10), "{body}");
}

#[test]
fn orders_above_ten_thousand_cents_ship_free() {
    let (sku, price) = cheapest_product();
    let order = create_order(&sku, 10_000 / price + 1, price);
    let body = quote(&order);
    assert_eq!(body["cost_cents"], 0, "{body}");
}

#[test]
fn unknown_order_is_not_found() {
    for id in ["99999999999", "no-such-order"] {
        let (status, body) = get_json(&shipping_url(&format!("/quotes/{id}")));
        assert_eq!(status, 404, "GET /quotes/{id}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}
