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
mod test;
mod verify;
