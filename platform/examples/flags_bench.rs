//! How long one flag evaluation takes in a service: a fixed variant, and a fractional
//! rollout (flagd's targeting, compiled and run per call). `cargo run --release -p
//! slipway-platform --example flags_bench` prints nanoseconds per evaluation.

use std::time::Instant;

use slipway_platform::{Flags, Level, Logger};

const FILE: &str = r#"{"flags":{
  "fixed":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"},
  "tenth":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
           "targeting":{"fractional":[["on",10],["off",90]]}}}}"#;

fn main() -> std::io::Result<()> {
    let dir = std::env::temp_dir().join(format!("flags-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("flags.json");
    std::fs::write(&path, FILE)?;
    let flags = Flags::from_file(Some(path), Logger::new("bench", "bench", Level::Error));
    let keys: Vec<String> = (0..10_000).map(|i| format!("customer-{i}")).collect();
    for flag in ["fixed", "tenth"] {
        let started = Instant::now();
        let on = keys.iter().filter(|key| flags.boolean(flag, key, false)).count();
        let per = started.elapsed().as_nanos() / keys.len() as u128;
        println!("{flag:<6} {per:>7} ns per evaluation ({on} of {} on)", keys.len());
    }
    std::fs::remove_dir_all(&dir)
}
