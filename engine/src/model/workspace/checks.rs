//! What holds across services: one owner per data store, unique roles, names that fit a
//! DNS label in every environment, dependencies that exist and form no cycle, and the
//! order they start in.

use std::collections::{BTreeMap, BTreeSet};

use super::{DNS_LABEL_MAX, SERVICE_TABLE, Service, error};
use crate::model::environments::Environments;
use crate::model::names::{MetadataError, Name, ServiceId};

/// Each resource has one owner.
pub(super) fn check_owners(services: &[Service], errors: &mut Vec<MetadataError>) {
    let mut owners: BTreeMap<&Name, &Service> = BTreeMap::new();
    for service in services {
        for (i, resource) in service.owns.iter().enumerate() {
            if let Some(owner) = owners.insert(resource, service) {
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.owns[{i}]"),
                    format!("`{resource}` is already owned by {} ({}): a resource has one owner, the service that writes to it", owner.id, owner.manifest.display()),
                ));
            }
        }
    }
}

/// Each data store is owned by one service that depends on it.
pub(super) fn check_stores(services: &[Service], errors: &mut Vec<MetadataError>) {
    for store in services.iter().filter(|s| s.kind.is_store()) {
        let owners: Vec<(String, bool)> = services
            .iter()
            .filter(|s| s.id.application == store.id.application && s.owns.contains(&store.id.role))
            .map(|s| (s.id.to_string(), s.depends_on.contains(&store.id.role)))
            .collect();
        let owners: Vec<(&str, bool)> = owners.iter().map(|(o, d)| (o.as_str(), *d)).collect();
        if let Err(why) = crate::model::store::check_owned(&store.id.role, &owners) {
            errors.push(error(&store.manifest, format!("{SERVICE_TABLE}.kind"), why));
        }
    }
}

pub(super) fn check_unique_roles(services: &[Service], errors: &mut Vec<MetadataError>) {
    let mut seen: BTreeMap<&ServiceId, &Service> = BTreeMap::new();
    for service in services {
        if let Some(first) = seen.insert(&service.id, service) {
            errors.push(error(
                &service.manifest,
                format!("{SERVICE_TABLE}.role"),
                format!(
                    "role `{}` of application `{}` is already declared by {}: a role is unique within its application",
                    service.id.role,
                    service.id.application,
                    first.manifest.display()
                ),
            ));
        }
    }
}

pub(super) fn check_dns_labels(
    services: &[Service],
    environments: &Environments,
    errors: &mut Vec<MetadataError>,
) {
    for service in services {
        for environment in environments.names() {
            let label = service.id.in_environment(environment);
            if label.len() > DNS_LABEL_MAX {
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.role"),
                    format!(
                        "`{label}` is {} characters: `<environment>-<application>-<role>` must fit a DNS label ({DNS_LABEL_MAX}); shorten the application or role",
                        label.len()
                    ),
                ));
                break;
            }
        }
    }
}

pub(super) fn check_dependencies(services: &[Service], errors: &mut Vec<MetadataError>) {
    let ids: BTreeSet<&ServiceId> = services.iter().map(|s| &s.id).collect();
    let mut known = true;
    for service in services {
        for (i, role) in service.depends_on.iter().enumerate() {
            let target =
                ServiceId { application: service.id.application.clone(), role: role.clone() };
            if !ids.contains(&target) {
                known = false;
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.depends-on[{i}]"),
                    format!(
                        "no service `{target}`: application `{}` has roles {}",
                        service.id.application,
                        roles_of(services, &service.id.application)
                    ),
                ));
            } else if role == &service.id.role {
                known = false;
                errors.push(error(
                    &service.manifest,
                    format!("{SERVICE_TABLE}.depends-on[{i}]"),
                    "a service cannot depend on itself",
                ));
            }
        }
    }
    if known && let Some(cycle) = find_cycle(services) {
        let names: Vec<String> = cycle.iter().map(|s| s.id.to_string()).collect();
        errors.push(error(
            &cycle[0].manifest,
            format!("{SERVICE_TABLE}.depends-on"),
            format!(
                "dependency cycle: {}: break it so services can start in order",
                names.join(" → ")
            ),
        ));
    }
}

pub(super) fn roles_of(services: &[Service], application: &Name) -> String {
    let roles: Vec<String> = services
        .iter()
        .filter(|s| &s.id.application == application)
        .map(|s| format!("`{}`", s.id.role))
        .collect();
    roles.join(", ")
}

pub(super) fn dependencies<'a>(
    services: &'a [Service],
    service: &'a Service,
) -> impl Iterator<Item = &'a Service> {
    service.depends_on.iter().filter_map(move |role| {
        services.iter().find(|s| s.id.application == service.id.application && &s.id.role == role)
    })
}

/// A dependency cycle, as the services along it (the first repeated at the end).
pub(super) fn find_cycle(services: &[Service]) -> Option<Vec<&Service>> {
    fn visit<'a>(
        services: &'a [Service],
        service: &'a Service,
        path: &mut Vec<&'a Service>,
        done: &mut BTreeSet<&'a ServiceId>,
    ) -> Option<Vec<&'a Service>> {
        if let Some(start) = path.iter().position(|s| s.id == service.id) {
            let mut cycle = path[start..].to_vec();
            cycle.push(service);
            return Some(cycle);
        }
        if done.contains(&service.id) {
            return None;
        }
        path.push(service);
        for dependency in dependencies(services, service) {
            if let Some(cycle) = visit(services, dependency, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(&service.id);
        None
    }
    let mut done = BTreeSet::new();
    services.iter().find_map(|s| visit(services, s, &mut Vec::new(), &mut done))
}

/// Sorts services so each comes after its dependencies, ties by name.
pub(super) fn dependency_order(mut services: Vec<Service>) -> Vec<Service> {
    services.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ordered: Vec<Service> = Vec::with_capacity(services.len());
    while !services.is_empty() {
        let ready = services.iter().position(|s| dependencies(&services, s).next().is_none());
        // Validation rejected cycles, so some service is always ready.
        let index = ready.unwrap_or(0);
        let service = services.remove(index);
        ordered.push(service);
    }
    ordered
}
