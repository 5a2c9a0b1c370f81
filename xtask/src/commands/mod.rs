//! One module per command of the command line: each reads its flags and calls the engine.

mod catalog;
mod changes;
mod ci;
mod configure;
mod copy;
mod environments;
mod hooks;
mod images;
mod keygen;
mod new_service;
mod preview;
mod promote;
mod quarantine;
mod render;
mod rollback;
mod run_tests;
mod status;
mod store;
mod test;
mod verify;

/// Writes `files` (path under `out`, text) under `out`, each atomically, folders made.
pub fn write_files(out: &std::path::Path, files: &[(String, String)]) -> slipway::Result<()> {
    for (path, text) in files {
        let file = out.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|source| slipway::Error::Io {
                action: "create",
                path: parent.to_owned(),
                source,
            })?;
        }
        slipway::store::write_atomically(&file, text.as_bytes())?;
    }
    Ok(())
}

/// A dry run's plan, if the command made one: as JSON on standard output, or in words on
/// standard error; then refused as the change itself would be.
pub fn show_plan(plan: Option<slipway::promote::Plan>, json: bool) -> slipway::Result<()> {
    let Some(plan) = plan else { return Ok(()) };
    if json {
        slipway::report::print_json(&plan)?;
    } else {
        for line in plan.lines() {
            eprintln!("{line}");
        }
    }
    plan.verdict()
}
