//! Running what was built: stored images started as runc containers or processes, stored
//! suites run against them, their JUnit reports, and the waivers that accept a known break.

pub mod data;
pub mod junit;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod replay;
pub mod runc;
pub mod runtime;
pub mod suites;
pub mod waiver;
