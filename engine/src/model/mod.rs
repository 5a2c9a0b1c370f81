//! The model: what the repository declares and what the source is — digests, the workspace
//! and its services, the environments, the lockfile, the commit — parsed and validated once.

pub mod digest;
pub mod environments;
pub mod flags;
pub mod layout;
pub mod lockfile;
pub mod names;
pub mod reference;
#[cfg(test)]
pub mod sample;
pub mod schema;
pub mod source;
pub mod store;
pub mod units;
pub mod waiver;
pub mod workspace;
