//! What an environment runs, rendered for the engines that run it: alert rules with their
//! tests (Prometheus), and Kubernetes manifests for GitOps — and for the people who run
//! them, the service catalogue. Rendering is pure and deterministic: the same inputs give
//! the same bytes.

pub mod admission;
pub mod alerts;
pub mod catalog;
pub mod flags;
pub mod k8s;
