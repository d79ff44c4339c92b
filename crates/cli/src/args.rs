//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Confstrata: layered, versioned, validated configuration.
#[derive(Debug, Parser)]
#[command(name = "confstrata", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Directory of the embedded store [default: ./confstrata-data].
    #[arg(long, global = true, env = "CONFSTRATA_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Work on the server at this address (host:port or http://host:port)
    /// instead of the embedded store; every command but `serve`.
    #[arg(long, global = true, env = "CONFSTRATA_ADDR")]
    pub(crate) addr: Option<String>,
    /// Bearer token for the server at --addr (shown once when it was
    /// issued; the first start of `serve` prints the admin's).
    #[arg(long, global = true, env = "CONFSTRATA_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// With --addr: trust this CA (PEM) and connect over TLS.
    #[arg(long, global = true, env = "CONFSTRATA_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// With --tls-ca: present this client certificate (PEM) for mutual TLS...
    #[arg(long, global = true, env = "CONFSTRATA_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// ...with this private key (PEM).
    #[arg(long, global = true, env = "CONFSTRATA_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Output format of read commands.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    /// Author recorded on changes (default: $USER).
    #[arg(long, global = true, env = "CONFSTRATA_AUTHOR")]
    pub(crate) author: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Human-readable table.
    Table,
    /// JSON (stable for scripts).
    Json,
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// `KEY=value` lines (documents only).
    Env,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server: gRPC (with health, reflection and watch) and HTTP (/healthz, /readyz) on one port, on an embedded store.
    Serve(ServeArgs),
    /// Manage namespaces.
    #[command(subcommand)]
    Ns(NsCommand),
    /// Replace a whole layer with a document from a file or stdin.
    Put(PutArgs),
    /// Set keys in a layer: KEY=VALUE, VALUE read as TOML (50, true, "s", [1, 2]) or else as a string.
    Set(SetArgs),
    /// Remove keys from a layer.
    Unset(UnsetArgs),
    /// Delete a whole layer.
    Delete(DeleteArgs),
    /// Show a layer's document.
    Get(GetArgs),
    /// List the layers of a namespace.
    Layers(LayersArgs),
    /// Resolve a namespace for a context.
    Resolve(ResolveArgs),
    /// Explain why a key has its value: every layer that sets it, winner first.
    Explain(ExplainArgs),
    /// Show what differs: two layers, a layer or namespace between revisions, or two contexts.
    Diff(DiffArgs),
    /// Show the history of a namespace or one layer, newest first.
    History(HistoryArgs),
    /// Roll a namespace (or one layer) back to a revision or time, as a new change.
    Rollback(RollbackArgs),
    /// Copy configuration from one place to another, key by key: a layer to
    /// a layer (promote env/staging to env/prod) or a namespace to a
    /// namespace, on this store or from another server (--from-addr).
    /// Shows the difference and the target's validation findings (a dry
    /// run) unless --commit; secrets are copied sealed.
    Sync(SyncArgs),
    /// Commit a change set file (TOML, YAML or JSON) with many operations, atomically.
    Apply(ApplyArgs),
    /// Run the validation chains without committing: on the current state
    /// (every context of NAMESPACE's matrix, or of every namespace), or on
    /// a change set file (`-f`: its diff and what its commit would find).
    /// Exits 6 if anything is an error.
    Validate(ValidateArgs),
    /// Import a namespace directory (namespace.toml and layers/**) as one change.
    Import(ImportArgs),
    /// Export a namespace to a directory (namespace.toml and layers/**).
    Export(ExportArgs),
    /// Drop old history: keep at least N versions per layer and T days.
    Compact(CompactArgs),
    /// Show the store's revision range.
    Status,
    /// The validation library shared by every namespace: schema entries
    /// (`"$ref": "confstrata:<name>"`) and global validators.
    #[command(subcommand)]
    Library(LibraryCommand),
    /// Data keys of sealed values: list, rotate, rewrap, retire.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The tamper-evident audit log: list, verify, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Principals (users and services) and their roles.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Roles: named sets of grants (allow or deny actions on resource
    /// patterns); the built-in ones are fixed.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Groups of principals that hold roles for their members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Ask the policy.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The whole access policy as a file for review in git: export it,
    /// see what a file would change, apply it.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Bearer tokens: issue (shown once) and revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// A server's measurements since it started: each stage's timings
    /// (p50/p90/p99) and the view cache's counters. Needs `audit`.
    Stats,
    /// Print the REST API's OpenAPI 3.1 description (JSON), as a server
    /// serves it at /v1/openapi.json; needs no store or server.
    Openapi,
    /// Backups: take one online (full or incremental), list, verify
    /// end to end, prune, and restore into a new data directory.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Templates: parameterized namespaces from the best-practice library
    /// shipped in the binary (list, show, apply).
    #[command(subcommand)]
    Template(TemplateCommand),
}

/// Where backups are, and the key they are sealed with.
#[derive(Debug, Args)]
pub(crate) struct BackupPlace {
    /// Where the backups are: a directory (`/backups` or `file:///backups`).
    /// Required on the embedded store; with --addr the server's own
    /// `backup_to` is used (a client never names a path on the server).
    #[arg(long, env = "CONFSTRATA_BACKUP_TO")]
    pub(crate) to: Option<String>,
    /// Seal (or open) backups with this key file (32 random bytes, hex or
    /// base64, mode 0600: `openssl rand -hex 32`) instead of the master
    /// key, for copies kept off-site apart from the master key.
    #[arg(long, env = "CONFSTRATA_BACKUP_KEY_FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCommand {
    /// The catalogue: templates (the library shipped in the binary and the
    /// store's user templates), and with --kind schema or all the schema
    /// entries of the validation library (`"$ref": "confstrata:<name>"`).
    List {
        /// What to list.
        #[arg(long, value_enum, default_value_t = CatalogueKind::Template)]
        kind: CatalogueKind,
    },
    /// One template: what it is for, its parameters, what it creates, its
    /// rules.
    Show {
        /// NAME or NAME@VERSION (default: the newest version).
        name: String,
    },
    /// Render a template into a new namespace: parameters checked, the
    /// namespace and its layers shown with the findings of its validation
    /// over the whole matrix (a dry run), created with --commit.
    Apply {
        /// NAME or NAME@VERSION.
        template: String,
        /// The namespace to create.
        namespace: String,
        /// A parameter, NAME=VALUE (repeatable; VALUE read as TOML, else as
        /// a string). Wins over the file.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Parameters from a file (TOML, YAML or JSON: a table of NAME = VALUE).
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// A shared namespace the new one imports as its lowest layers
        /// (repeatable, lowest first), e.g. --import shared/logging.
        #[arg(long = "import", value_name = "NAMESPACE")]
        imports: Vec<String>,
        /// Create the namespace (one change set; refused if it exists).
        #[arg(long)]
        commit: bool,
        /// Change message (default: "from template NAME@VERSION").
        #[arg(short, long)]
        message: Option<String>,
    },
    /// What a namespace made from a template changed relative to it: its
    /// local overrides, key by key (the template's output rendered again
    /// with the recorded version and parameters, against the layers now).
    Diff {
        /// The namespace.
        namespace: String,
    },
    /// Move a namespace made from a template to another version of it: a
    /// three-way merge of the old output, the new output and the layers
    /// now that keeps local overrides and reports conflicts by key. A dry
    /// run (with the findings) unless --commit; refused while there are
    /// conflicts unless --resolve settles them.
    Upgrade {
        /// The namespace.
        namespace: String,
        /// The version to move to (default: the newest).
        #[arg(long)]
        to: Option<u32>,
        /// A parameter of the new version, NAME=VALUE (repeatable); the
        /// others keep their recorded values, new ones their defaults.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Settle every conflict: keep the namespace's value (ours) or take
        /// the new template's (theirs).
        #[arg(long, value_enum)]
        resolve: Option<ResolveSide>,
        /// Apply it (one change set, refused if anything changed since it
        /// was read).
        #[arg(long)]
        commit: bool,
        /// Change message (default: "upgrade to template NAME@VERSION").
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Store a user template (a new version of it; a version is never
    /// replaced): a TOML file, or a directory holding template.toml. The
    /// store checks it first (its parameters, directives and generators,
    /// and its render with the defaults validated clean over its matrix);
    /// a dry run unless --commit.
    Put {
        /// The template file, or a directory with template.toml.
        #[arg(short, long)]
        file: PathBuf,
        /// Store it.
        #[arg(long)]
        commit: bool,
        /// Change message (default: "add template NAME@VERSION").
        #[arg(short, long)]
        message: Option<String>,
    },
}

/// What `template list --kind` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CatalogueKind {
    /// Namespace templates.
    Template,
    /// Schema entries of the validation library (built-in and user).
    Schema,
    /// Both.
    All,
}

/// How `template upgrade --resolve` settles conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ResolveSide {
    /// Keep the namespace's value.
    Ours,
    /// Take the new template's value.
    Theirs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Take a backup now, online: the store as of one revision.
    Create {
        #[command(flatten)]
        place: BackupPlace,
        /// Only what changed since the newest backup of this store there
        /// (full when there is none it can continue; the manifest says why).
        #[arg(long)]
        incremental: bool,
    },
    /// List the backups, oldest first.
    List {
        #[command(flatten)]
        place: BackupPlace,
    },
    /// Check a backup end to end: seals, checksums, the chain, a trial
    /// restore, the audit chain, and every context resolved.
    Verify {
        /// The backup's id (default: the newest).
        id: Option<String>,
        #[command(flatten)]
        place: BackupPlace,
    },
    /// Remove the backups a retention policy does not keep (never one a
    /// kept backup is built on).
    Prune {
        #[command(flatten)]
        place: BackupPlace,
        /// Keep the newest N.
        #[arg(long, default_value_t = 24)]
        keep_last: usize,
        /// Keep the newest backup of each of the last D days.
        #[arg(long, default_value_t = 30)]
        keep_daily_days: u64,
    },
    /// Restore into a new data directory (`--data-dir`, required; it must
    /// not exist or be empty), offline, as of the newest backup, a backup,
    /// a revision or a time.
    Restore {
        /// Where the backups are: a directory.
        #[arg(long = "from", env = "CONFSTRATA_BACKUP_TO")]
        from: String,
        /// The key the backups were sealed with: the master key file (the
        /// default: CONFSTRATA_MASTER_KEY, or this flag) or a backup key file.
        #[arg(long, env = "CONFSTRATA_BACKUP_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// A revision or an RFC 3339 time: the state right after that
        /// revision, or after the last commit at or before that time.
        #[arg(long)]
        at: Option<String>,
        /// Restore the state of this backup (default: the newest).
        #[arg(long, conflicts_with = "at")]
        backup: Option<String>,
        /// The store whose backups to use, when the directory holds several.
        #[arg(long)]
        store: Option<String>,
        /// The restored store resumes this many revisions past the newest
        /// backup, so that no revision a client saw is handed out again.
        #[arg(long, default_value_t = 1_000_000)]
        bump_revision: u64,
    },
}

// The arguments of `confstrata put` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path, e.g. env/prod.
    pub(crate) layer: String,
    /// File to read (`-` for stdin).
    #[arg(short, long, default_value = "-")]
    pub(crate) file: String,
    /// Format of the input (default: from the file extension, else TOML).
    #[arg(long)]
    pub(crate) format: Option<String>,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

// The arguments of `confstrata set` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path.
    pub(crate) layer: String,
    /// KEY=VALUE pairs.
    #[arg(required = true)]
    pub(crate) pairs: Vec<String>,
    /// Take every VALUE as a plain string.
    #[arg(long)]
    pub(crate) string: bool,
    /// Seal the values: stored encrypted, shown only to callers with
    /// `read-secrets`. A VALUE of `-` is read from stdin (keeps it out
    /// of shell history and `ps`). Keys such as `password` or `*_token`
    /// are sealed even without this flag.
    #[arg(long)]
    pub(crate) secret: bool,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

// The arguments of `confstrata unset` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct UnsetArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path.
    pub(crate) layer: String,
    /// Keys to remove.
    #[arg(required = true)]
    pub(crate) keys: Vec<String>,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

// The arguments of `confstrata delete` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path.
    pub(crate) layer: String,
    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

// The arguments of `confstrata get` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path.
    pub(crate) layer: String,
    #[command(flatten)]
    pub(crate) at: AtArg,
}

// The arguments of `confstrata layers` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct LayersArgs {
    /// Namespace.
    pub(crate) namespace: String,
    #[command(flatten)]
    pub(crate) at: AtArg,
}

// The arguments of `confstrata resolve` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Context, e.g. env=prod,region=eu (repeatable).
    #[arg(short, long = "context")]
    pub(crate) context: Vec<String>,
    /// Include each key's layer and revision.
    #[arg(long)]
    pub(crate) provenance: bool,
    /// Only this section (a key path: `db` gives db.*), still under its full path.
    #[arg(long, value_name = "KEY")]
    pub(crate) section: Option<String>,
    #[command(flatten)]
    pub(crate) at: AtArg,
}

// The arguments of `confstrata explain` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Key path, e.g. db.pool.max.
    pub(crate) key: String,
    /// Context, e.g. env=prod,region=eu (repeatable).
    #[arg(short, long = "context")]
    pub(crate) context: Vec<String>,
    #[command(flatten)]
    pub(crate) at: AtArg,
}

// The arguments of `confstrata history` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path (default: all layers).
    pub(crate) layer: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
}

// The arguments of `confstrata rollback` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path (default: the whole namespace).
    pub(crate) layer: Option<String>,
    /// Revision number or RFC 3339 time to go back to.
    #[arg(long)]
    pub(crate) to: String,
    /// Show the change set without committing it.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Read the state to go back to from the backups (a server's
    /// `backup_to`; needs `backup` too), for a revision or time that
    /// retention has removed from the live history.
    #[arg(long)]
    pub(crate) from_backup: bool,
    /// Change message.
    #[arg(short, long, default_value = "")]
    pub(crate) message: String,
}

// The arguments of `confstrata sync` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// What to copy: NAMESPACE (its layers) or NAMESPACE:LAYER.
    pub(crate) from: String,
    /// Where to: NAMESPACE or NAMESPACE:LAYER, the same kind as FROM. The
    /// changes go to the store of --addr (or --data-dir).
    pub(crate) to: String,
    /// Read FROM on this server (e.g. the staging cluster) instead of the
    /// target's store.
    #[arg(long, env = "CONFSTRATA_FROM_ADDR", conflicts_with = "from_data_dir")]
    pub(crate) from_addr: Option<String>,
    /// Bearer token for --from-addr: it needs read, and read-secrets to
    /// copy sealed values.
    #[arg(long, env = "CONFSTRATA_FROM_TOKEN", hide_env_values = true)]
    pub(crate) from_token: Option<String>,
    /// With --from-addr: trust this CA (PEM) and connect over TLS.
    #[arg(long, env = "CONFSTRATA_FROM_TLS_CA")]
    pub(crate) from_tls_ca: Option<PathBuf>,
    /// Read FROM from the embedded store in this directory.
    #[arg(long)]
    pub(crate) from_data_dir: Option<PathBuf>,
    /// Compare only keys under this pattern (repeatable; `db`, `db.*`,
    /// `features.**`, `*.timeout_ms`). Default: every key.
    #[arg(long = "include", value_name = "KEY_PATTERN")]
    pub(crate) include: Vec<String>,
    /// Leave keys under this pattern alone (repeatable; wins over --include).
    #[arg(long = "exclude", value_name = "KEY_PATTERN")]
    pub(crate) exclude: Vec<String>,
    /// In a namespace sync, only layers matching this pattern (repeatable;
    /// `env/*`, `env/prod/**`).
    #[arg(long = "layer", value_name = "LAYER_PATTERN")]
    pub(crate) layers: Vec<String>,
    /// Also remove selected keys (and layers) the source does not have;
    /// by default the target keeps them.
    #[arg(long)]
    pub(crate) delete: bool,
    /// Apply the change (one validated change set, refused if the target
    /// changed after it was read). Without it, a dry run.
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) commit: bool,
    /// Only show the difference and the findings (the default).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// With --commit: apply only if the plan is still the one a dry run
    /// showed with this fingerprint (neither side changed since); else
    /// nothing is changed and the exit code is 3.
    #[arg(long, value_name = "FINGERPRINT", requires = "commit")]
    pub(crate) plan: Option<String>,
    /// Change message (default: "sync TO from FROM").
    #[arg(short, long)]
    pub(crate) message: Option<String>,
}

// The arguments of `confstrata apply` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Change set file (`-` for stdin).
    #[arg(short, long)]
    pub(crate) file: String,
    /// Format of the file (default: from the extension, else TOML).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Override the file's message.
    #[arg(short, long)]
    pub(crate) message: Option<String>,
    /// Check the change set and show the diff it would make, without committing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

// The arguments of `confstrata validate` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Namespace (default: every namespace with a chain).
    pub(crate) namespace: Option<String>,
    /// A change set file to check instead (`-` for stdin).
    #[arg(short, long, conflicts_with = "namespace")]
    pub(crate) file: Option<String>,
    /// Format of the file (default: from the extension, else TOML).
    #[arg(long)]
    pub(crate) format: Option<String>,
}

// The arguments of `confstrata import` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Directory holding namespace.{toml,yaml,json} and a layers/ tree.
    pub(crate) dir: PathBuf,
    /// Change message.
    #[arg(short, long, default_value = "")]
    pub(crate) message: String,
}

// The arguments of `confstrata export` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Target directory (created; existing files are overwritten).
    pub(crate) dir: PathBuf,
    /// Format of the layer files.
    #[arg(long, default_value = "toml")]
    pub(crate) format: String,
    #[command(flatten)]
    pub(crate) at: AtArg,
}

// The arguments of `confstrata compact` (its help is the variant's).
#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    /// Versions to keep per layer (at least 1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keep_versions: u64,
    /// Days to keep.
    #[arg(long, default_value_t = 90)]
    pub(crate) keep_days: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LibraryCommand {
    /// Replace the library with a file: `[schemas.<name>]` tables (JSON
    /// Schema) and `[[validators]]` (name, params, body, description).
    /// Every namespace's chain is re-checked against it first.
    Put {
        /// File (TOML, YAML or JSON; `-` for stdin).
        #[arg(short, long)]
        file: String,
        /// Format of the file (default: from the extension, else TOML).
        #[arg(long)]
        format: Option<String>,
        /// Change message.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// List the library: built-in and user schema entries, global validators.
    Show,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List the data keys and which is current per namespace.
    List,
    /// Add a new current key for a namespace; old values stay readable.
    Rotate {
        /// Namespace.
        namespace: String,
    },
    /// Re-seal every sealed value of a namespace under its current key (one new revision).
    Rewrap {
        /// Namespace.
        namespace: String,
    },
    /// Retire a key no retained version uses any more, e.g. `webshop#1`.
    Retire {
        /// Key id.
        key: String,
    },
    /// Rotate the master key: every data key is wrapped by a new one, the
    /// key file is replaced (crash-safe), the audit chain moves on.
    RotateMaster,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit records, oldest first.
    List {
        /// Only records after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Check every record's MAC and link; names the first bad record.
    Verify,
    /// Write every record as JSON lines (to a file or stdout), for archiving.
    Export {
        /// File to write (`-` for stdout).
        #[arg(short, long, default_value = "-")]
        file: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrincipalCommand {
    /// Add a principal with roles.
    Add {
        /// Id, e.g. alice or svc:billing.
        id: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// A service (a program) rather than a user.
        #[arg(long)]
        service: bool,
        /// Role (repeatable): viewer, editor, publisher, secret-reader, auditor, backup-operator, admin, non-prod-editor.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List principals, their roles and token hashes.
    List,
    /// Show a principal: its roles, groups, tokens and every grant it
    /// holds (directly and through groups), denies first.
    Show {
        /// Principal id.
        id: String,
    },
    /// Grant a role, over everything or only within a pattern (`--on`).
    Grant {
        /// Principal id.
        id: String,
        /// Role.
        role: String,
        /// Only within this resource pattern, e.g. 'payments/**' or
        /// 'payments:env/staging/**'.
        #[arg(long)]
        on: Option<String>,
    },
    /// Take a role binding away (the one over everything, or the one
    /// `--on` names).
    Ungrant {
        /// Principal id.
        id: String,
        /// Role.
        role: String,
        /// The scope the role was granted on.
        #[arg(long)]
        on: Option<String>,
    },
    /// Revoke a principal and all its tokens.
    Revoke {
        /// Principal id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RoleCommand {
    /// List roles and their grants.
    List,
    /// Show one role.
    Show {
        /// Role name.
        name: String,
    },
    /// Create a custom role.
    Create(RoleArgs),
    /// Replace a custom role's description and grants (every holder's
    /// access changes on its next request).
    Update(RoleArgs),
    /// Delete a custom role (refused while anyone holds it).
    Delete {
        /// Role name.
        name: String,
    },
}

// The arguments of `role create` and `role update`.
#[derive(Debug, Args)]
pub(crate) struct RoleArgs {
    /// Role name, e.g. payments-editor.
    pub(crate) name: String,
    /// What it is for.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// An allow grant, ACTIONS=PATTERN (repeatable), e.g.
    /// 'read,write=payments:env/staging/**'.
    #[arg(long = "allow", value_name = "ACTIONS=PATTERN")]
    pub(crate) allow: Vec<String>,
    /// A deny grant, ACTIONS=PATTERN (repeatable); a deny wins over every
    /// allow, e.g. 'write=*:env/prod/**'.
    #[arg(long = "deny", value_name = "ACTIONS=PATTERN")]
    pub(crate) deny: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List groups, their members and roles.
    List,
    /// Create a group.
    Create {
        /// Group name, e.g. payments-team.
        name: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a group; its members lose the roles held through it.
    Delete {
        /// Group name.
        name: String,
    },
    /// Add principals to a group.
    AddMember {
        /// Group name.
        group: String,
        /// Principal ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove principals from a group.
    RemoveMember {
        /// Group name.
        group: String,
        /// Principal ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Grant a role to every member, over everything or within `--on`.
    Grant {
        /// Group name.
        group: String,
        /// Role.
        role: String,
        /// Only within this resource pattern.
        #[arg(long)]
        on: Option<String>,
    },
    /// Take a role binding away from a group.
    Ungrant {
        /// Group name.
        group: String,
        /// Role.
        role: String,
        /// The scope the role was granted on.
        #[arg(long)]
        on: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Write the policy (custom roles, groups, principals and their roles;
    /// never tokens) as TOML, YAML or JSON.
    Export {
        /// File to write (`-` for stdout).
        #[arg(short, long, default_value = "-")]
        file: String,
        /// toml, yaml or json (default: from the file extension, else TOML).
        #[arg(long)]
        format: Option<String>,
    },
    /// Show what applying a policy file would change; change nothing.
    Diff {
        /// The policy file (`-` for stdin).
        #[arg(short, long)]
        file: String,
        /// toml, yaml or json (default: from the file extension, else TOML).
        #[arg(long)]
        format: Option<String>,
    },
    /// Make the policy what a file says, as one audited change: prints
    /// the changes, then applies them (tokens are kept).
    Apply {
        /// The policy file (`-` for stdin).
        #[arg(short, long)]
        file: String,
        /// toml, yaml or json (default: from the file extension, else TOML).
        #[arg(long)]
        format: Option<String>,
        /// Only show the changes (the same as `policy diff`).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// Whether PRINCIPAL may do ACTION on RESOURCE, and the grant that
    /// decides. Exits 0 for yes, 1 for no.
    CanI {
        /// Principal id.
        principal: String,
        /// read, read-secrets, write, publish, admin, audit or backup.
        action: String,
        /// namespace[:layer][#key], e.g. payments:env/prod#db.
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a token for a principal; it is printed once and stored only as a hash.
    Issue {
        /// Principal id.
        id: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token by its hash (or a unique prefix, as `principal list` shows it).
    Revoke {
        /// Hash prefix.
        hash: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NsCommand {
    /// Create a namespace from flags or a spec file.
    Create {
        /// Name, e.g. webshop or shared/logging (taken from the file with -f).
        name: Option<String>,
        /// Level template, general first (repeatable), e.g. --level defaults --level 'env/{env}'.
        #[arg(long = "level")]
        levels: Vec<String>,
        /// Matrix variable and values (repeatable), e.g. --matrix env=dev,staging,prod.
        #[arg(long = "matrix")]
        matrix: Vec<String>,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// A shared namespace whose layers are this one's lowest, for the
        /// same context (repeatable, lowest first), e.g. --import shared/logging.
        #[arg(long = "import")]
        imports: Vec<String>,
        /// Spec file (TOML, YAML or JSON) instead of flags.
        #[arg(short, long, conflicts_with_all = ["levels", "matrix", "imports"])]
        file: Option<String>,
        /// Replace the namespace if it exists.
        #[arg(long)]
        replace: bool,
    },
    /// Delete a namespace: its declaration and every layer, as one change
    /// (the history stays, and `rollback NAME --to REV` brings it back
    /// whole). Refused while another namespace imports it.
    Delete {
        /// Name.
        name: String,
        /// Fail unless the declaration's last change is this revision.
        #[arg(long)]
        expect_revision: Option<u64>,
        /// Change message.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Run the generators a namespace declares over its matrix and write
    /// what differs from its layers as one change set (a dry run unless
    /// --commit). Generators read other namespaces with your grants.
    Generate {
        /// Name.
        name: String,
        /// Commit the change set (validated like any other).
        #[arg(long, conflicts_with = "check")]
        commit: bool,
        /// Change nothing; exit 1 when the layers do not hold what the
        /// generators compute (for CI), 0 when they do.
        #[arg(long)]
        check: bool,
        /// Change message (default: "generated values of NAME").
        #[arg(short, long)]
        message: Option<String>,
    },
    /// List namespaces.
    List {
        #[command(flatten)]
        at: AtArg,
    },
    /// Show a namespace's declaration.
    Show {
        /// Name.
        name: String,
        #[command(flatten)]
        at: AtArg,
    },
    /// Versions of a namespace's declaration (levels, matrix, validation chain), newest first.
    History {
        /// Name.
        name: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Diff a namespace's declaration (levels, matrix, validation chain) between two revisions.
    Diff {
        /// Name.
        name: String,
        /// Old revision or time.
        #[arg(long)]
        from: String,
        /// New revision or time (default: latest).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct WriteArgs {
    /// Fail unless the layer's last change is this revision (0: must not exist).
    #[arg(long)]
    pub(crate) expect_revision: Option<u64>,
    /// Change message.
    #[arg(short, long, default_value = "")]
    pub(crate) message: String,
}

#[derive(Debug, Args)]
pub(crate) struct AtArg {
    /// Read at a revision number or an RFC 3339 time (default: latest).
    #[arg(long)]
    pub(crate) at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// Namespace.
    pub(crate) namespace: String,
    /// Layer path; with two --layer flags, diff two layers instead.
    pub(crate) layer: Option<String>,
    /// Old revision or time (layer or namespace diff).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// New revision or time (default: latest).
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Two layers to compare: --layer A --layer B.
    #[arg(long = "layer", num_args = 1, conflicts_with = "layer")]
    pub(crate) layers: Vec<String>,
    /// Two contexts to compare: -c env=staging -c env=prod.
    #[arg(short, long = "context")]
    pub(crate) contexts: Vec<String>,
}

/// Flags of `confstrata serve`. Settings come from defaults < the TOML file
/// (`--config`) < `CONFSTRATA_*` environment variables < these flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7400]; port 0 picks a free one.
    #[arg(long, env = "CONFSTRATA_LISTEN")]
    pub(crate) listen: Option<String>,
    /// TOML settings file.
    #[arg(long, env = "CONFSTRATA_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, env = "CONFSTRATA_LOG_FORMAT", value_parser = ["text", "json"])]
    pub(crate) log_format: Option<String>,
    /// Log filter, e.g. `info` or `confstrata=debug` [default: info].
    #[arg(long, env = "CONFSTRATA_LOG")]
    pub(crate) log: Option<String>,
}
