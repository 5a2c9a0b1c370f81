//! Contract tests of shop-orders, run against the live service at `ORDERS_URL` and its catalog at `CATALOG_URL`

use serde_json::{Value, json};
use slipway_platform::{FLAGS_VAR, Flags, Level, Logger};
use slipway_test_support::{get_json, post_json, service_url};

/// The environment's flags as the service reads them: the file `SLIPWAY_FLAGS` names (none:
/// every flag at its default)
fn flags() -> Flags {
    let file = std::env::var_os(FLAGS_VAR).map(std::path::PathBuf::from);
    Flags::from_file(file, Logger::new("shop-orders-tests", "test", Level::Error))
}

fn orders_url(path: &str) -> String {
    format!("{}{path}", service_url("orders"))
}

/// A real product, read from the catalog the orders service uses: (sku, price_cents, weight_grams)
fn a_product() -> (String, u64, u64) {
    let (status, body) = get_json(&format!("{}/products", service_url("catalog")));
    assert_eq!(status, 200, "GET catalog /products: {body}");
    let product = &body[0];
    match (
        product["sku"].as_str(),
        product["price_cents"].as_u64(),
        product["weight_grams"].as_u64(),
    ) {
        (Some(sku), Some(price), Some(weight)) => (sku.to_owned(), price, weight),
        _ => panic!("the catalog listed no usable product: {body}"),
    }
}

fn order_for(customer: &str, sku: &str, quantity: u64, price_cents: u64) -> (u16, Value) {
    let request = json!({ "sku": sku, "quantity": quantity, "price_cents": price_cents, "customer": customer });
    post_json(&orders_url("/orders"), &request)
}

fn order(sku: &str, quantity: u64, price_cents: u64) -> (u16, Value) {
    let request = json!({ "sku": sku, "quantity": quantity, "price_cents": price_cents });
    post_json(&orders_url("/orders"), &request)
}

#[test]
fn health_answers_ok() {
    let (status, body) = get_json(&orders_url("/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "shop-orders");
}

#[test]
fn creates_an_order_and_fetches_it_back() {
    let (sku, price, weight) = a_product();
    let (status, created) = order(&sku, 2, price);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "no id: {created}");
    assert_eq!(created["sku"], sku.as_str());
    assert_eq!(created["quantity"], 2);
    assert_eq!(created["price_cents"], price);
    assert_eq!(created["total_cents"], price * 2);
    assert_eq!(created["weight_grams"], weight * 2);

    let (status, fetched) = get_json(&orders_url(&format!("/orders/{id}")));
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched, created);
}

/// Every order taken — by this version or, on data an earlier version wrote, by that one —
/// is listed and reads back as listed.
#[test]
fn every_order_taken_is_listed_and_reads_back() {
    let (sku, price, _) = a_product();
    let (status, created) = order(&sku, 1, price);
    assert_eq!(status, 201, "{created}");
    let (status, listed) = get_json(&orders_url("/orders"));
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert!(listed.contains(&created), "{created} is not among {} orders", listed.len());
    for taken in &listed {
        let id = taken["id"].as_str().unwrap_or_default();
        let (status, fetched) = get_json(&orders_url(&format!("/orders/{id}")));
        assert_eq!((status, &fetched), (200, taken), "order {id}");
    }
}

#[test]
fn each_order_gets_its_own_id() {
    let (sku, price, _) = a_product();
    let (first_status, first) = order(&sku, 1, price);
    let (second_status, second) = order(&sku, 1, price);
    assert_eq!((first_status, second_status), (201, 201), "{first} {second}");
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn unknown_product_is_unprocessable() {
    let (status, body) = order("NO-SUCH-SKU", 1, 100);
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[test]
fn stale_price_is_a_conflict_with_the_current_price() {
    let (sku, price, _) = a_product();
    let (status, body) = order(&sku, 1, price + 1);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "price changed");
    assert_eq!(body["price_cents"], price);
}

#[test]
fn zero_quantity_is_unprocessable() {
    let (sku, price, _) = a_product();
    let (status, body) = order(&sku, 0, price);
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[test]
fn unknown_order_is_not_found() {
    let (status, body) = get_json(&orders_url("/orders/no-such-order"));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

/// New pricing, both variants: for each of 40 customers the flags decide (on everywhere,
/// off everywhere, or a share), an order of 10 gets `volume-discount` percent off exactly
/// where `new-pricing` is on for that customer, and pays the list price where it is off.
#[test]
fn volume_orders_are_discounted_exactly_for_the_customers_new_pricing_is_on_for() {
    let (sku, price, _) = a_product();
    let flags = flags();
    let mut on_for = 0;
    for i in 0..40 {
        let customer = format!("customer-{i}");
        let on = flags.boolean("new-pricing", &customer, false);
        let list = price * 10;
        let discount = if on {
            on_for += 1;
            list * flags.number("volume-discount", &customer, 5.0) as u64 / 100
        } else {
            0
        };
        let (status, created) = order_for(&customer, &sku, 10, price);
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["customer"], customer.as_str());
        assert_eq!(
            created["discount_cents"], discount,
            "new-pricing {on} for {customer}: {created}"
        );
        assert_eq!(created["total_cents"], list - discount, "{created}");
    }
    println!("new-pricing on for {on_for} of 40 customers");
}

#[test]
fn orders_under_ten_items_pay_the_list_price_whatever_the_flags() {
    let (sku, price, _) = a_product();
    for i in 0..10 {
        let (status, created) = order_for(&format!("customer-{i}"), &sku, 9, price);
        assert_eq!(status, 201, "{created}");
        assert_eq!(
            (created["discount_cents"].as_u64(), created["total_cents"].as_u64()),
            (Some(0), Some(price * 9))
        );
    }
}
