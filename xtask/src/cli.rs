//! The command line: every command and flag, parsed by clap; `main.rs` only dispatches.

use clap::{Parser, Subcommand};
use slipway::project::RuntimeChoice;
use slipway::store::Location;

/// Slipway: build, test, sign and promote the services of this repository.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", arg_required_else_help = true, version)]
pub struct Cli {
    /// The artifact store: a directory (one OCI image layout per repository) or a registry,
    /// `registry://HOST[:PORT][/NAMESPACE]` [default: .slipway/store]
    #[arg(long, global = true, env = "SLIPWAY_STORE", value_name = "DIR|registry://…")]
    pub store: Option<Location>,

    /// What runs stored images in `ci` and `promote`: `runc` (containers), `process`, or
    /// `auto` (runc where installed and usable, else processes)
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_RUNTIME",
        default_value = "auto",
        value_name = "auto|process|runc"
    )]
    pub runtime: RuntimeChoice,

    /// An existing PostgreSQL server for every data store of `ci`'s integration run and of
    /// each replay, instead of a throwaway server Slipway starts (checks of old logic on new
    /// data keep servers of their own)
    #[arg(long, global = true, env = "SLIPWAY_DATABASE", value_name = "postgres://…", value_parser = database_url)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, build every service into an OCI image, run the unit and integration tests
    Ci(Ci),
    /// Build the static binaries and images only, into the store
    Images(Images),
    /// Check a signed build manifest and every artifact it names, offline
    Verify(Verify),
    /// Run stored test packs against running services; needs only the store
    RunTests(RunTests),
    /// Move a signed build into an environment, after its gates and a replay of every stored suite
    Promote(Promote),
    /// Put an environment back to an earlier state from its ledger, verified, with no rebuild
    Rollback(Rollback),
    /// Feature flags: set one in an environment, replayed and recorded like a promotion
    Flag(Flag),
    /// Operational settings: set one for a service in an environment, replayed and recorded
    Config(Config),
    /// Stop a build from being promoted or rolled back to, by anyone, until released
    Quarantine(Quarantine),
    /// What each environment runs now, from the ledger
    Status(Status),
    /// Show the promotion chain and every service's resolved configuration per environment
    Environments(Environments),
    /// What differs between two environments: per service, versions, commits and suites
    Changes(Changes),
    /// Make a signing key pair: the private key outside the repository, the public key in infra/keys/
    Keygen(Keygen),
    /// Scaffold a service and its integration tests, and add both to the workspace
    NewService(NewService),
    /// Run Slipway's own test suite (cargo-nextest), installing the tools it needs when root
    Test(Test),
    /// The git pre-commit hook: format, declarations and the secrets scan of staged files
    Hooks(Hooks),
    /// Render what an environment runs as Kubernetes manifests (as its ledger commit holds them), without promoting
    Render(Render),
    /// Start a preview environment: a build's services (or what an environment runs), left running under a name
    Up(Up),
    /// Stop a preview environment and remove what it left
    Down(Down),
    /// The service catalogue: a static HTML page of every service and what runs where, and Backstage catalog-info.yaml files
    Catalog(Catalog),
    /// Copy a build (its signed manifest, images, test packs, SBOMs, attestations) between two stores, digests unchanged
    Copy(Copy),
    /// The store itself: `store check` re-hashes every blob and repairs what it can
    Store(Store),
}

#[derive(Debug, clap::Args)]
pub struct Ci {
    /// Print a machine-readable summary on standard output (progress stays on standard error)
    #[arg(long)]
    pub json: bool,
    /// Validate the metadata and print the plan, without building anything
    #[arg(long)]
    pub dry_run: bool,
    /// Accept an intended break of a recorded suite: `<service>@<version>:<test>` (repeat
    /// it); needs --reason; signed into the build manifest
    #[arg(long, value_name = "SERVICE@VERSION:TEST", requires = "reason")]
    pub waive: Vec<String>,
    /// Why the waived tests may fail
    #[arg(long, value_name = "TEXT", requires = "waive")]
    pub reason: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Images {
    /// Print a machine-readable summary on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Verify {
    /// A manifest file, or a build in the store by `sha256:` digest or version [default: .slipway/builds/latest.dsse.json]
    pub manifest: Option<String>,
    /// Print the checks as JSON on standard output
    #[arg(long)]
    pub json: bool,
    /// Also check out the recorded commit in a temporary work tree, rebuild, compare every digest
    #[arg(long)]
    pub rebuild: bool,
    /// Trust only infra/keys/, not the local development key
    #[arg(long)]
    pub no_local_keys: bool,
    /// Verify what this environment runs now, end to end: its ledger entry, every build it
    /// came from, every artifact, the replay's test-result attestation
    #[arg(long, value_name = "ENV", conflicts_with_all = ["manifest", "rebuild"])]
    pub env: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunTests {
    /// `<repository>@sha256:<hex>` (one test pack) or `<repository>:<tag>` (every test pack of that image)
    pub pack: String,
    /// A variable the tests read, e.g. `--env CATALOG_URL=http://127.0.0.1:8080` (repeat it)
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The value of SLIPWAY_ENV the tests see
    #[arg(long, default_value = "local")]
    pub environment: String,
    /// Where to write each suite's output and JUnit XML [default: .]
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct Keygen {
    /// The key's name: the public key goes to infra/keys/<name>.pub
    pub name: String,
    /// Where to write the private key, outside the repository [default: ~/.config/slipway/keys/<name>.key]
    #[arg(long, value_name = "PATH")]
    pub out: Option<std::path::PathBuf>,
    /// Encrypt the private key in cosign's format, with the password in SLIPWAY_KEY_PASSWORD
    #[arg(long)]
    pub encrypt: bool,
    /// Add the key to these environments' trusted keys in infra/environments.toml
    #[arg(long, value_name = "ENV", num_args = 1..)]
    pub trust: Vec<String>,
    /// Add the key to every environment's trusted keys: a release key for the whole chain
    #[arg(long, conflicts_with = "trust")]
    pub trust_all: bool,
}

#[derive(Debug, clap::Args)]
pub struct Environments {
    /// Print the resolved configuration as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NewService {
    /// The application the service belongs to, e.g. `shop`
    pub application: String,
    /// The service's role in its application, e.g. `payments`
    pub role: String,
}

#[derive(Debug, clap::Args)]
pub struct Test {
    /// Arguments passed on to `cargo nextest run`, e.g. a test name filter
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct Promote {
    /// The environment to promote into, e.g. `staging`
    pub environment: String,
    /// The build to promote: a `sha256:` digest in slipway-builds, or its version [default: what the previous environment runs; for the first, the newest ci build]
    #[arg(long, value_name = "BUILD")]
    pub build: Option<String>,
    /// Promote only these services of the build (`<application>-<role>`)
    #[arg(long, value_name = "SERVICE", num_args = 1..)]
    pub only: Vec<String>,
    /// Accept a known, intended break: `<service>@<version>:<test>` (repeat it); needs --reason
    #[arg(long, value_name = "SERVICE@VERSION:TEST", requires = "reason")]
    pub waive: Vec<String>,
    /// Why the waived tests may fail; recorded, signed, in the ledger entry
    #[arg(long, value_name = "TEXT", requires = "waive")]
    pub reason: Option<String>,
    /// Change no image: apply the committed flags (infra/flags.toml) and settings
    /// (infra/environments.toml, the services' own) to what the environment runs, after a
    /// replay of its suites with them
    #[arg(long, conflicts_with_all = ["build", "only"])]
    pub config_only: bool,
    #[command(flatten)]
    pub ledger: LedgerChange,
}

#[derive(Debug, clap::Args)]
pub struct Flag {
    #[command(subcommand)]
    pub command: FlagCommand,
}

#[derive(Debug, clap::Args)]
pub struct Store {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-hash every blob in the local store; replace a corrupt one by an intact copy of the
    /// same digest, else remove it (the next `ci` writes it again); fail while any is left
    Check(StoreCheck),
}

#[derive(Debug, clap::Args)]
pub struct StoreCheck {
    /// Report what is damaged, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was found as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FlagCommand {
    /// Set a flag's state in one environment: the declaration (infra/flags.toml) and a
    /// signed ledger entry, in one commit, after every suite of the environment passed with it
    Set(FlagSet),
}

#[derive(Debug, clap::Args)]
pub struct FlagSet {
    /// The environment, e.g. `staging`
    pub environment: String,
    /// The flag, as infra/flags.toml names it
    pub flag: String,
    /// `off`, a variant (`on`), or a boolean flag's share of `true`: `10%`
    pub value: String,
    #[command(flatten)]
    pub change: ConfigChange,
}

/// What every configuration-only change takes besides its edit.
#[derive(Debug, clap::Args)]
pub struct ConfigChange {
    /// Accept a known, intended break: `<service>@<version>:<test>` (repeat it); needs --reason
    #[arg(long, value_name = "SERVICE@VERSION:TEST", requires = "reason")]
    pub waive: Vec<String>,
    /// Why the waived tests may fail; recorded, signed, in the ledger entry
    #[arg(long, value_name = "TEXT", requires = "waive")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerChange,
}

#[derive(Debug, clap::Args)]
pub struct Config {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set one service's setting in one environment (`timeout`, `rate-limit`, `log-level`,
    /// `replicas.min`…): infra/environments.toml and a signed ledger entry, in one commit,
    /// after every suite of the environment passed with it
    Set(ConfigSet),
}

#[derive(Debug, clap::Args)]
pub struct ConfigSet {
    /// The environment, e.g. `prod`
    pub environment: String,
    /// The service, `<application>-<role>`
    pub service: String,
    /// The setting: log-level, timeout, rate-limit, replicas.min, replicas.max,
    /// resources.cpu, resources.memory, alerts.error-ratio, alerts.latency-p99
    pub key: String,
    /// Its new value, e.g. `500ms`, `20`, `warn`
    pub value: String,
    #[command(flatten)]
    pub change: ConfigChange,
}

#[derive(Debug, clap::Args)]
pub struct Quarantine {
    /// The build: a `sha256:` digest in slipway-builds, or its version (`<semver>-<commit12>`)
    pub build: String,
    /// Why (required): recorded in the ledger
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Release the build from quarantine instead
    #[arg(long)]
    pub release: bool,
    #[command(flatten)]
    pub ledger: LedgerChange,
}

#[derive(Debug, clap::Args)]
pub struct Rollback {
    /// The environment to roll back
    pub environment: String,
    /// The ledger commit of the earlier state [default: the state before the current one]
    #[arg(long, value_name = "COMMIT")]
    pub to: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerChange,
}

#[derive(Debug, clap::Args)]
pub struct Status {
    /// Print the ledger's current state of every environment as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Changes {
    /// The environment to compare from, e.g. `prod`
    pub from: String,
    /// The environment to compare to, e.g. `staging`: its commits that `from` lacks are listed
    pub to: String,
    /// Print the comparison as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Hooks {
    #[command(subcommand)]
    pub action: HookAction,
}

#[derive(Debug, Subcommand)]
pub enum HookAction {
    /// Write the pre-commit hook (never over a hook Slipway did not write)
    Install,
    /// Remove the pre-commit hook Slipway wrote
    Uninstall,
    /// Run the hook's checks now, on what is staged
    Run,
}

/// What every command that changes the ledger takes: where the ledger is shared, and whether
/// to show the plan instead of acting.
#[derive(Debug, clap::Args)]
pub struct LedgerChange {
    /// Share the ledger through this git remote: fetch its ledger branch, decide on it, push
    /// fast-forward only (default: `[ledger]` in infra/environments.toml, else this clone only)
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// Show the plan (gates, what would run and be replayed, or the state that would be
    /// recorded) without starting, signing or writing anything
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: the plan as JSON on standard output
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Copy {
    /// The store to copy from: a directory or `registry://HOST[:PORT][/NAMESPACE]`
    pub from: Location,
    /// The store to copy to
    pub to: Location,
    /// The build: its version or the `sha256:` digest of its manifest [default: the newest ci build]
    pub build: Option<String>,
    /// Show what would be copied, and copy nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print a machine-readable summary on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Up {
    /// The preview's name: services run as `<name>-<application>-<role>` [default: the
    /// current branch, made DNS-safe]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The build to run: a `sha256:` digest in slipway-builds, or its version [default: the newest ci build]
    #[arg(long, value_name = "BUILD", conflicts_with = "env")]
    pub build: Option<String>,
    /// Run what this environment runs, with its settings and flags
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// List the previews that are up, with their URLs
    #[arg(long, conflicts_with_all = ["name", "build", "env"])]
    pub list: bool,
    /// Show what would start, and start nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the preview (or the list) as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct Down {
    /// The preview's name, as `up` printed it
    pub name: String,
    /// Show what would stop, and stop nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct Catalog {
    /// Where to write `index.html` and `backstage/<service>/catalog-info.yaml`
    /// [default: .slipway/catalog]
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// List the files it would write, and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct Render {
    /// The environment, e.g. `prod`
    #[arg(required_unless_present_any = ["preview", "application_set"])]
    pub environment: Option<String>,
    /// Render a preview for a cluster instead: the first environment's objects in
    /// namespace NAME, named `NAME-<application>-<role>`, for the build of this commit
    #[arg(long, value_name = "NAME", conflicts_with_all = ["environment", "application_set", "check"])]
    pub preview: Option<String>,
    /// With --preview: the build to render (a version or `sha256:` digest) [default: the
    /// build of the checked-out commit]
    #[arg(long, value_name = "BUILD", requires = "preview")]
    pub build: Option<String>,
    /// Render the Argo CD ApplicationSet that previews every pull request
    /// (`[kubernetes] pull-requests`), and the plugin configuration it renders with
    #[arg(long, conflicts_with_all = ["environment", "check"])]
    pub application_set: bool,
    /// Write the files under this directory (`k8s/…`, `argocd-application.yaml`) instead of printing them
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Fail unless the ledger's committed files are exactly what rendering gives now
    #[arg(long, conflicts_with = "out")]
    pub check: bool,
}

/// `--database`: a `postgres://` or `postgresql://` URL.
fn database_url(text: &str) -> Result<String, String> {
    match text.split_once("://") {
        Some(("postgres" | "postgresql", rest)) if !rest.is_empty() => Ok(text.to_owned()),
        _ => Err(format!(
            "`{text}` is not a PostgreSQL URL: expected postgres://user@host:port/database"
        )),
    }
}
