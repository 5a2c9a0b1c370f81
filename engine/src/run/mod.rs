//! Running what was built: stored images started as processes, stored suites run against
//! them, their JUnit reports, and the waivers that accept a known break.

pub mod junit;
pub mod replay;
pub mod runtime;
pub mod suites;
pub mod waiver;
