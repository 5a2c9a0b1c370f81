//! The repository's own sample (shop: catalog ← orders ← shipping) as a validated
//! `Workspace`, with its `infra/` declarations, for unit and snapshot tests that need a
//! whole model without running cargo.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::model::environments::Environments;
use crate::model::flags::Flags;
use crate::model::workspace::{Package, Workspace, validate};

/// The declared environments, as `infra/environments.toml` has them.
pub const ENVIRONMENTS: &str = include_str!("../../../infra/environments.toml");
/// The declared flags, as `infra/flags.toml` has them.
pub const FLAGS: &str = include_str!("../../../infra/flags.toml");

/// The repository's root, where the services' own alert rules are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn package(name: &str, folder: &str, metadata: Value) -> Package {
    Package {
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        description: None,
        manifest: PathBuf::from(format!("{folder}/{name}/Cargo.toml")),
        metadata,
        binaries: vec![name.to_owned()],
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
        service("orders", &["catalog"], json!({"owns": ["orders"]})),
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
    let names: Vec<String> = workspace.services.iter().map(|s| s.id.to_string()).collect();
    workspace.flags =
        Flags::parse(FLAGS, &workspace.environments, &names).expect("the sample's flags are valid");
    workspace
}

/// The sample as the repository declares it.
pub fn workspace() -> Workspace {
    workspace_with(ENVIRONMENTS)
}
