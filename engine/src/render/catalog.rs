//! The service catalogue: one self-contained HTML page (no script, no network) of every
//! service — what it is, what it calls as an SVG graph, what it owns, its flags and alerts,
//! and per environment what runs, since when and by whom, with differences and quarantined
//! builds marked — and one Backstage `catalog-info.yaml` per service with the same facts.
//! Pure: the same ledger and declarations give the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::determinism::{SourceDateEpoch, yaml};
use crate::error::Result;
use crate::ledger::{Change, Ledger, Quarantine};
use crate::model::digest::Digest;
use crate::model::flags::describe;
use crate::model::workspace::{Kind, Service, Workspace};
use crate::project::Project;

/// What the catalogue shows, read beforehand.
#[derive(Debug)]
pub struct Catalog<'a> {
    pub workspace: &'a Workspace,
    /// Every environment of the chain, in order, with what its ledger commit holds.
    pub environments: Vec<(String, Option<Change>)>,
    pub quarantined: BTreeMap<Digest, Quarantine>,
    /// Each service's alerts (standard and its own), by service name.
    pub alerts: BTreeMap<String, Vec<String>>,
    /// The source commit it was made from.
    pub commit: String,
}

/// Each service's alerts (standard and its own), by service name, as the first environment
/// renders them.
fn alert_names(
    root: &Path,
    workspace: &Workspace,
) -> Result<BTreeMap<String, Vec<String>>, crate::render::alerts::AlertsError> {
    let mut alerts = BTreeMap::new();
    let Some(first) = workspace.environments.chain().first() else { return Ok(alerts) };
    let own_rules = crate::render::alerts::read_own(root, &workspace.services)?;
    for service in &workspace.services {
        let name = service.id.to_string();
        let thresholds = workspace.environments.resolve(first, &service.id.name()).alerts;
        let own = own_rules.get(&name);
        let rules = crate::render::alerts::rules(own, first, service, &thresholds)?;
        let names =
            rules.groups.iter().flat_map(|g| g.rules.iter().filter_map(|r| r.alert.clone()));
        alerts.insert(name, names.collect());
    }
    Ok(alerts)
}

/// The files `write` makes under its folder: the page, and a Backstage entity per service.
pub const PAGE: &str = "index.html";
pub const BACKSTAGE: &str = "backstage";

impl<'a> Catalog<'a> {
    /// The catalogue of `workspace` as the ledger holds it now (offline: as last fetched,
    /// when shared).
    pub fn read(project: &Project, workspace: &'a Workspace) -> Result<Catalog<'a>> {
        let ledger = Ledger::of(project, workspace, None).pin_offline()?;
        let mut environments = Vec::new();
        for environment in workspace.environments.chain() {
            let name = environment.name.to_string();
            let current = ledger.current(&name)?;
            environments.push((name, current));
        }
        let alerts = alert_names(&project.root, workspace)?;
        let source = crate::model::source::Source::inspect(&project.shell, &project.layout)?;
        Ok(Catalog {
            workspace,
            environments,
            quarantined: ledger.quarantined()?,
            alerts,
            commit: source.commit,
        })
    }

    /// Every file of the catalogue, by path under its folder: `index.html`, then
    /// `backstage/<service>/catalog-info.yaml`.
    pub fn files(&self) -> Vec<(String, String)> {
        let mut files = vec![(PAGE.to_owned(), html(self))];
        for service in &self.workspace.services {
            files.push((
                format!("{BACKSTAGE}/{}/catalog-info.yaml", service.id),
                backstage(self, service),
            ));
        }
        files
    }
}

/// `<`, `>`, `&` and quotes escaped for HTML text and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #fff; }
body { margin: 0 auto; padding: 1rem; max-width: 72rem; line-height: 1.45; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin: 0 0 .25rem; }
.muted { color: #57606a; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eaeef2; vertical-align: top; }
code { font-size: .85em; word-break: break-all; }
.differs { color: #9a6700; font-weight: 600; }
.quarantined { color: #cf222e; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 1rem; }
.card { border: 1px solid #d0d7de; border-radius: .5rem; padding: .75rem 1rem; }
.card dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .75rem; margin: .5rem 0; }
.card dt { color: #57606a; }
.card dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
svg { max-width: 100%; height: auto; }
svg .node rect { fill: #f6f8fa; stroke: #57606a; }
svg .node text { font: 13px system-ui, sans-serif; fill: #1b1f24; }
svg .edge { stroke: #57606a; stroke-width: 1.5; marker-end: url(#arrow); }
@media (max-width: 40rem) { body { padding: .5rem; } .cards { grid-template-columns: 1fr; } }
@media print {
  :root { background: #fff; }
  .card, table, svg { break-inside: avoid; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
";

/// The page.
pub fn html(catalog: &Catalog) -> String {
    let ws = catalog.workspace;
    let mut page = String::new();
    let title =
        format!("Service catalogue — {}", ws.repository.as_deref().unwrap_or("this repository"));
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"muted\">{} services, {} environments, from source commit <code>{}</code>. \
         What runs where comes from the ledger (<code>manifests/</code>).</p>\n",
        esc(&title),
        esc(&title),
        ws.services.len(),
        catalog.environments.len(),
        esc(&catalog.commit),
    );
    page.push_str(&runs_where(catalog));
    page.push_str("<h2 id=\"graph\">Dependencies</h2>\n");
    page.push_str(&graph(ws));
    page.push_str("<h2 id=\"services\">Services</h2>\n<div class=\"cards\">\n");
    for service in &ws.services {
        page.push_str(&card(catalog, service));
    }
    page.push_str("</div>\n");
    if !ws.flags.flags.is_empty() {
        page.push_str(&flags(catalog));
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// The table of environment × service: version, image digest, since when and by whom.
fn runs_where(catalog: &Catalog) -> String {
    let mut out = String::from(
        "<h2 id=\"environments\">What runs where</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>service</th>",
    );
    for (env, change) in &catalog.environments {
        let when = change.as_ref().map_or_else(
            || "nothing yet".to_owned(),
            |c| {
                format!(
                    "{} by {}",
                    SourceDateEpoch(c.state.promoted_at).rfc3339(),
                    c.state.promoted_by
                )
            },
        );
        let _ = write!(
            out,
            "<th data-environment=\"{}\">{}<br><span class=\"muted\">{}</span></th>",
            esc(env),
            esc(env),
            esc(&when)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for service in &catalog.workspace.services {
        let name = service.id.to_string();
        let running: Vec<Option<&crate::ledger::ServiceState>> = catalog
            .environments
            .iter()
            .map(|(_, change)| change.as_ref().and_then(|c| c.state.service(&service.id)))
            .collect();
        let first = running.first().copied().flatten().map(|s| &s.image);
        let differs = running.iter().any(|s| s.map(|s| &s.image) != first);
        let _ = write!(
            out,
            "<tr data-row=\"{}\"><th><a href=\"#{}\">{}</a>{}</th>",
            esc(&name),
            esc(&name),
            esc(&name),
            if differs { " <span class=\"differs\">differs</span>" } else { "" }
        );
        for state in running {
            out.push_str(&cell(catalog, state));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// One environment's cell of a service's row: its version and image, marked when its build
/// is quarantined; a dash where it does not run.
fn cell(catalog: &Catalog, state: Option<&crate::ledger::ServiceState>) -> String {
    let Some(state) = state else { return "<td class=\"muted\">—</td>".to_owned() };
    let mark = match catalog.quarantined.get(&state.build) {
        Some(q) => format!(
            "<br><span class=\"quarantined\" title=\"{}\">quarantined</span>",
            esc(&format!("by {}: {}", q.by, q.reason))
        ),
        None => String::new(),
    };
    format!(
        "<td>{}<br><code title=\"{}\">{}</code>{mark}</td>",
        esc(state.reference.tag.as_str()),
        esc(&state.image.to_string()),
        esc(state.image.short()),
    )
}

/// The dependency graph: one column per depth (services that call nothing first), an
/// arrow from each service to each service it calls.
fn graph(ws: &Workspace) -> String {
    const WIDTH: i64 = 170;
    const HEIGHT: i64 = 40;
    const GAP_X: i64 = 70;
    const GAP_Y: i64 = 24;
    let (at, rows) = layout(ws, (WIDTH + GAP_X, HEIGHT + GAP_Y));
    let columns = rows.len() as i64;
    let most = rows.values().copied().max().unwrap_or(0);
    let (w, h) = (20 + columns * (WIDTH + GAP_X) - GAP_X, 20 + most * (HEIGHT + GAP_Y) - GAP_Y);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"Dependencies between services\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#57606a\"/></marker></defs>\n"
    );
    for service in &ws.services {
        let from = service.id.to_string();
        for role in &service.depends_on {
            let to = format!("{}-{role}", service.id.application);
            let (Some(&(fx, fy)), Some(&(tx, ty))) = (at.get(&from), at.get(&to)) else {
                continue;
            };
            let _ = writeln!(
                svg,
                "<line class=\"edge\" data-from=\"{}\" data-to=\"{}\" x1=\"{fx}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                esc(&from),
                esc(&to),
                fy + HEIGHT / 2,
                tx + WIDTH,
                ty + HEIGHT / 2
            );
        }
    }
    for (name, (x, y)) in &at {
        let _ = writeln!(
            svg,
            "<a href=\"#{}\"><g class=\"node\" data-node=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"6\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g></a>",
            esc(name),
            esc(name),
            x + WIDTH / 2,
            y + HEIGHT / 2 + 5,
            esc(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Where each service's box goes, `step` apart: a column per depth (services that call
/// nothing first), a row per service in it; and how many rows each column has.
fn layout(
    ws: &Workspace,
    (step_x, step_y): (i64, i64),
) -> (BTreeMap<String, (i64, i64)>, BTreeMap<i64, i64>) {
    let mut depth: BTreeMap<String, i64> = BTreeMap::new();
    // Services come in dependency order: every dependency's depth is known first.
    for service in &ws.services {
        let deepest = service
            .depends_on
            .iter()
            .filter_map(|role| depth.get(&format!("{}-{role}", service.id.application)))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(service.id.to_string(), deepest);
    }
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    let mut at: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for service in &ws.services {
        let name = service.id.to_string();
        let column = depth[&name];
        let row = rows.entry(column).or_insert(0);
        at.insert(name, (10 + column * step_x, 10 + *row * step_y));
        *row += 1;
    }
    (at, rows)
}

/// One service's card: identity, contract, ownership, flags, alerts.
fn card(catalog: &Catalog, service: &Service) -> String {
    let name = service.id.to_string();
    let mut facts: Vec<(&str, String)> = vec![
        ("application", esc(service.id.application.as_str())),
        ("role", esc(service.id.role.as_str())),
        kind_fact(&service.kind),
    ];
    let calls: Vec<String> = service
        .depends_on
        .iter()
        .map(|role| {
            let to = format!("{}-{role}", service.id.application);
            format!("<a href=\"#{}\">{}</a>", esc(&to), esc(&to))
        })
        .collect();
    facts.push(("calls", if calls.is_empty() { "nothing".to_owned() } else { calls.join(", ") }));
    let owns: Vec<String> = service.owns.iter().map(|o| esc(o.as_str())).collect();
    facts.push(("owns", if owns.is_empty() { "nothing".to_owned() } else { owns.join(", ") }));
    let flags: Vec<String> = catalog
        .workspace
        .flags
        .flags
        .iter()
        .filter(|f| f.owner == service.id)
        .map(|f| format!("<a href=\"#flag-{}\">{}</a>", esc(f.name.as_str()), esc(f.name.as_str())))
        .collect();
    if !flags.is_empty() {
        facts.push(("flags", flags.join(", ")));
    }
    if let Some(alerts) = catalog.alerts.get(&name).filter(|a| !a.is_empty()) {
        let names: Vec<String> = alerts.iter().map(|a| esc(a)).collect();
        facts.push(("alerts", names.join(", ")));
    }
    if service.kind.is_store() {
        facts.extend(store_facts(catalog, service));
    }
    let mut out = format!(
        "<section class=\"card\" id=\"{}\" data-service=\"{}\">\n<h3>{}</h3>\n<p class=\"muted\">{}</p>\n<dl>",
        esc(&name),
        esc(&name),
        esc(&name),
        esc(service.description.as_deref().unwrap_or("no description in its Cargo.toml"))
    );
    for (term, value) in facts {
        let _ = write!(out, "<dt>{term}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n</section>\n");
    out
}

/// What kind of service it is: an HTTP service's health path, a store's migrations.
fn kind_fact(kind: &Kind) -> (&'static str, String) {
    match kind {
        Kind::Http { health } => ("health", format!("<code>GET {}</code>", esc(health))),
        Kind::Postgres { migrations } => {
            let files: Vec<String> =
                migrations.iter().map(|m| format!("<code>{}</code>", esc(&m.file))).collect();
            ("data store", format!("PostgreSQL, migrations {}", files.join(", ")))
        }
    }
}

/// A data store's owner, and its migration level in each environment.
fn store_facts(catalog: &Catalog, store: &Service) -> Vec<(&'static str, String)> {
    let owner = catalog
        .workspace
        .services
        .iter()
        .find(|s| s.id.application == store.id.application && s.owns.contains(&store.id.role));
    let owner = owner.map_or_else(
        || "nobody".to_owned(),
        |o| format!("<a href=\"#{}\">{}</a>", esc(&o.id.to_string()), esc(&o.id.to_string())),
    );
    let levels: Vec<String> = catalog
        .environments
        .iter()
        .map(|(env, change)| {
            let level = change
                .as_ref()
                .and_then(|c| c.state.service(&store.id))
                .and_then(|s| s.migrations.last())
                .map_or_else(|| "—".to_owned(), |m| format!("V{}", m.version));
            format!("{} {level}", esc(env))
        })
        .collect();
    vec![("owner", owner), ("migrated", levels.join(", "))]
}

/// Every flag's state per environment, as each environment's ledger commit holds it.
fn flags(catalog: &Catalog) -> String {
    let mut out = String::from(
        "<h2 id=\"flags\">Feature flags</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>flag</th>",
    );
    for (env, _) in &catalog.environments {
        let _ = write!(out, "<th>{}</th>", esc(env));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for flag in &catalog.workspace.flags.flags {
        let states: Vec<String> = catalog
            .environments
            .iter()
            .map(|(_, change)| {
                change
                    .as_ref()
                    .and_then(|c| c.state.flags.get(flag.name.as_str()))
                    .map_or_else(|| "—".to_owned(), describe)
            })
            .collect();
        let differs = states.iter().any(|s| s != &states[0]);
        let _ = write!(
            out,
            "<tr id=\"flag-{}\"><th>{}{}<br><span class=\"muted\">{} (owner {})</span></th>",
            esc(flag.name.as_str()),
            esc(flag.name.as_str()),
            if differs { " <span class=\"differs\">differs</span>" } else { "" },
            esc(&flag.description),
            esc(&flag.owner.to_string())
        );
        for state in states {
            let _ = write!(out, "<td>{}</td>", esc(&state));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// A Backstage entity: a `Component`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entity {
    api_version: &'static str,
    kind: &'static str,
    metadata: EntityMetadata,
    spec: ComponentSpec,
}

#[derive(Debug, Serialize)]
struct EntityMetadata {
    name: String,
    description: String,
    annotations: BTreeMap<String, String>,
    tags: [String; 2],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentSpec {
    #[serde(rename = "type")]
    kind: &'static str,
    lifecycle: &'static str,
    owner: String,
    system: String,
    depends_on: Vec<String>,
}

/// A service's Backstage `catalog-info.yaml`: a `Component` of `spec.type: service`, owned
/// by its application's group, `production` once the last environment runs it.
pub fn backstage(catalog: &Catalog, service: &Service) -> String {
    let name = service.id.to_string();
    let last = catalog.environments.last();
    let in_production = last
        .and_then(|(_, change)| change.as_ref())
        .is_some_and(|c| c.state.service(&service.id).is_some());
    let mut annotations = BTreeMap::from([(
        "slipway.dev/manifest".to_owned(),
        service.manifest.display().to_string(),
    )]);
    if let Some(health) = service.kind.health() {
        annotations.insert("slipway.dev/health".to_owned(), health.to_owned());
    }
    for (env, change) in &catalog.environments {
        if let Some(state) = change.as_ref().and_then(|c| c.state.service(&service.id)) {
            annotations.insert(format!("slipway.dev/{env}-image"), state.image.to_string());
        }
    }
    let depends_on: Vec<String> = service
        .depends_on
        .iter()
        .map(|role| format!("component:default/{}-{role}", service.id.application))
        .collect();
    let application = service.id.application.as_str();
    let entity = Entity {
        api_version: "backstage.io/v1alpha1",
        kind: "Component",
        metadata: EntityMetadata {
            name,
            description: service.description.clone().unwrap_or_default(),
            annotations,
            tags: [application.to_owned(), service.id.role.to_string()],
        },
        spec: ComponentSpec {
            kind: "service",
            lifecycle: if in_production { "production" } else { "experimental" },
            owner: format!("group:default/{application}"),
            system: application.to_owned(),
            depends_on,
        },
    };
    yaml::to_string(&entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    /// The sample's catalogue before anything was promoted: the page and each Backstage
    /// entity, as snapshots (`catalog@<file>`).
    #[test]
    fn the_catalogue_of_the_sample_matches_its_snapshots() {
        let workspace = crate::model::sample::workspace();
        let alerts = alert_names(&crate::model::sample::root(), &workspace)
            .expect("the sample's rules render");
        let catalog = Catalog {
            workspace: &workspace,
            environments: workspace.environments.names().map(|n| (n.to_string(), None)).collect(),
            quarantined: BTreeMap::new(),
            alerts,
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        };
        for (path, text) in catalog.files() {
            insta::assert_snapshot!(format!("catalog@{}", path.replace('/', "_")), text);
        }
    }
}
