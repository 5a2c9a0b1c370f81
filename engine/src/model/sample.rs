//! A sample like the repository's own (shop: catalog ← orders ← shipping, orders keeping its
//! data in the orders-db store) as a validated
//! `Workspace`, with declarations of its own — never the repository's `infra/`, which a team
//! edits (a trusted key, a bake time) without breaking these tests — for unit and snapshot
//! tests that need a whole model without running cargo.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::model::environments::Environments;
use crate::model::flags::Flags;
use crate::model::workspace::{Package, Workspace, validate};

/// The sample's environments (an `infra/environments.toml`).
pub const ENVIRONMENTS: &str = r#"[kubernetes]
registry = "registry.example.com/shop"
repo-url = "https://example.invalid/slipway.git"
pull-requests = "github:example/slipway"

[defaults]
replicas = { min = 1, max = 1 }
log-level = "info"
resources = { cpu = "100m", memory = "64Mi" }
alerts = { error-ratio = 0.05, latency-p99 = "1s" }

[[environment]]
name = "dev"
accept-local-keys = true
trust = []
bake-time = "0s"
log-level = "debug"

[[environment]]
name = "staging"
accept-local-keys = false
trust = []
bake-time = "10m"
replicas = { min = 1, max = 2 }

[[environment]]
name = "prod"
accept-local-keys = false
require-tested = true
trust = []
bake-time = "1h"
delivery = { strategy = "canary", steps = [10, 50], pause = "2m" }
log-level = "warn"
replicas = { min = 2, max = 6 }
resources = { cpu = "250m", memory = "128Mi" }
alerts = { error-ratio = 0.01, latency-p99 = "500ms" }

[environment.services.shop-orders]
replicas = { min = 3, max = 10 }
resources = { memory = "256Mi" }

[environment.services.shop-orders-db]
storage = "20Gi"
backups = "30d"
"#;

/// The sample's flags (an `infra/flags.toml`).
pub const FLAGS: &str = r#"[[flag]]
name = "new-pricing"
type = "boolean"
description = "orders applies the new volume-discount rule"
owner = "shop-orders"
variants = { on = true, off = false }
default = "off"
environments = { dev = "on", staging = "off", prod = "10%" }

[[flag]]
name = "volume-discount"
type = "number"
description = "the percentage new pricing takes off an order of 10 items or more"
owner = "shop-orders"
variants = { five = 5, fifteen = 15 }
default = "five"
"#;

/// The sample's root: the store's migrations are there, and no service has alert rules of
/// its own.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model/sample")
}

fn package(name: &str, folder: &str, metadata: Value) -> Package {
    Package {
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        description: None,
        manifest: PathBuf::from(format!("{folder}/{name}/Cargo.toml")),
        metadata,
        binaries: vec![name.to_owned()],
        path_dependencies: Vec::new(),
    }
}

/// The sample with `environments` (the text of an `infra/environments.toml`).
pub fn workspace_with(environments: &str) -> Workspace {
    let service = |role: &str, depends_on: &[&str], extra: Value| {
        let mut table = json!({"application": "shop", "role": role, "health": "/health",
                               "depends-on": depends_on});
        if let (Some(table), Value::Object(extra)) = (table.as_object_mut(), extra) {
            table.extend(extra);
        }
        package(&format!("shop-{role}"), "services", json!({ "service": table }))
    };
    let suite = |role: &str| {
        let metadata = json!({"integration-tests": {"service": format!("shop-{role}")}});
        package(&format!("shop-{role}-tests"), "integration-tests", metadata)
    };
    let packages = [
        service("catalog", &[], json!({})),
        service("orders", &["catalog", "orders-db"], json!({"owns": ["orders-db"]})),
        package(
            "shop-orders-db",
            "services",
            json!({"service": {"application": "shop", "role": "orders-db", "kind": "postgres",
                               "environments": {"dev": {"backups": "0"}}}}),
        ),
        service(
            "shipping",
            &["orders"],
            json!({"environments": {"prod": {"replicas": {"min": 4, "max": 8}}}}),
        ),
        suite("catalog"),
        suite("orders"),
        suite("shipping"),
    ];
    let declared = Environments::parse(environments).expect("the sample's environments are valid");
    let mut workspace =
        validate(&root(), "0.1.0".to_owned(), None, &packages, declared).expect("a valid sample");
    workspace.flags = Flags::parse(FLAGS, &workspace.environments, &workspace.service_ids())
        .expect("the sample's flags are valid");
    workspace
}

/// The sample as the repository declares it.
pub fn workspace() -> Workspace {
    workspace_with(ENVIRONMENTS)
}
