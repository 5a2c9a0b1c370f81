//! `cargo xtask test`: Slipway's own test suite, with the Debian tools it needs installed
//! first when running as root, or the exact install line when not.

/// Every external program the test suite runs, with the Debian package that provides it.
pub const TOOLS: &[(&str, &str)] = &[
    ("git", "git"),
    ("umoci", "umoci"),
    ("skopeo", "skopeo"),
    ("oci-image-tool", "oci-image-tool"),
    ("runc", "runc"),
    ("nix-instantiate", "nix-bin"),
    ("openssl", "openssl"),
    ("jq", "jq"),
    ("promtool", "prometheus"),
    ("docker-registry", "docker-registry"),
];

/// Python modules the independent checks import, with the pip requirement providing each.
pub const PYTHON_MODULES: &[(&str, &str)] = &[
    ("securesystemslib.dsse", "securesystemslib[crypto]"),
    ("cyclonedx.validation.json", "cyclonedx-python-lib[json-validation]"),
];

pub use crate::shell::{install_line, on_path};
