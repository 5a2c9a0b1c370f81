//! What an environment runs, rendered for the engines that run it: alert rules with their
//! tests (Prometheus), and Kubernetes manifests for GitOps — and for the people who run
//! them, the service catalogue. Rendering is deterministic: the same inputs give the same
//! bytes; what it reads (keys, the registry, the services' own alert files) is gathered by
//! `k8s::for_state` and `k8s::preview` before the documents are made.

pub mod admission;
pub mod alerts;
pub mod catalog;
pub mod flags;
pub mod k8s;
