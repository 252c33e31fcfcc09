//! The `vigil` command: `run`, `demo`, `check-config`, `drift`, `audit verify`, `backup`,
//! `restore`, `healthcheck`.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::config::{Config, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Inference sidecar proxy: forwards to your model server, watches every exchange"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: proxy on --listen, control plane on --admin-listen.
    Run(RunArgs),
    /// A built-in model server (two versions), vigil in front of it, and light traffic.
    Demo(DemoArgs),
    /// Validate a config file and print the effective configuration's summary.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Compare two data sets offline with the live drift machinery; print the report as JSON.
    /// Exit 0 when nothing drifted, 1 when something did, 2 on bad input.
    Drift {
        /// The reference data set (.csv, .jsonl or .parquet).
        #[arg(long)]
        reference: PathBuf,
        /// The data to compare with it, same columns.
        #[arg(long)]
        current: PathBuf,
        /// A config file whose [schema], [reference] and [drift] sections apply.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// The audit trail (<state dir>/audit.jsonl): `vigil audit verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Archive the state dir (routes, audit trail, saved reference, prediction log) into one tar
    /// file, consistently, while vigil may be running. Exit 0 listing what was saved, 1 on failure.
    Backup {
        /// The archive to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// The state dir to back up (default: the config's state.dir, `vigil-state`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// A config file whose state.dir applies.
        #[arg(long, short = 'c', env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Restore a `vigil backup` archive into a state dir (vigil stopped). Every file is checked
    /// against the archive's manifest before any is written. Exit 0 when restored and its audit
    /// trail verifies; 1 when refused, corrupt, or restored with a broken trail.
    Restore {
        /// The archive written by `vigil backup`.
        file: PathBuf,
        /// The state dir to restore into (default: the config's state.dir, `vigil-state`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// A config file whose state.dir applies.
        #[arg(long, short = 'c', env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// Replace the state files the target already holds.
        #[arg(long)]
        force: bool,
    },
    /// Exit 0 when vigil's control plane answers /healthz with 200 (for container HEALTHCHECKs).
    Healthcheck {
        /// The control-plane address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
    /// Serve the built-in demo model alone (a fast V2 upstream for tests and benchmarks).
    #[command(hide = true)]
    DemoModel {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// v1 or v2.
        #[arg(long = "model-version", default_value = "v1")]
        model_version: String,
        #[arg(long, default_value = "demo")]
        model: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Answer 500 to this share of inference requests (a broken build, for rollout demos).
        #[arg(long = "error-ratio", default_value_t = 0.0)]
        error_ratio: f64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every line of the audit trail: it parses, seq counts up by one, prev is the SHA-256 of
    /// the line before. Exit 0 printing `ok: N entries, head <hash>`; 1 naming the first bad line
    /// and what is wrong with it; 2 when there is no trail to read.
    Verify {
        /// The state dir holding audit.jsonl (default: the config's state.dir, `vigil-state`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// A config file whose state.dir applies.
        #[arg(long, short = 'c', env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML config file (every key documented in config/vigil.toml).
    #[arg(long, short = 'c', env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Proxy listen address (proxy.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Control-plane listen address (admin.listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// An upstream version, NAME=URL; repeat for several. Replaces the file's [[versions]].
    #[arg(long = "upstream", value_name = "NAME=URL")]
    upstreams: Vec<String>,
    /// The active version (routing.active); default the first.
    #[arg(long)]
    active: Option<String>,
    /// Where state, audit trail, the saved reference and logs live (state.dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Reference data set for drift: a .csv, .jsonl or .parquet file (reference.file).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Drift window: the last N records ("1000") or the last T ("5m") (drift.window).
    #[arg(long, value_name = "N|DURATION")]
    drift_window: Option<String>,
    /// Mirror this fraction (0-1) of live requests to a candidate version, as shadow traffic:
    /// its answers are compared with the live ones (GET /admin/shadow), never sent to clients.
    /// Repeat for several candidates (shadow.mirror.candidates).
    #[arg(long = "mirror", value_name = "NAME=FRACTION")]
    mirrors: Vec<String>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin_listen: SocketAddr,
    /// Requests per second of demo traffic (0: none).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C.
    #[arg(long)]
    duration: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(Some(&file), &Overrides::default()) {
            Ok(c) => {
                println!(
                    "{}: ok: proxy on {}, admin on {}, {} version(s), active {:?}, state in {}",
                    file.display(),
                    c.proxy.listen,
                    c.admin.listen,
                    c.versions.len(),
                    c.active_name(),
                    c.state.dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vigil: {e}");
                ExitCode::from(2)
            }
        },
        Command::Drift { reference, current, config } => drift_offline(&reference, &current, config.as_deref()),
        Command::Run(args) => {
            let overrides = Overrides {
                listen: args.listen,
                admin_listen: args.admin_listen,
                upstreams: args.upstreams,
                active: args.active,
                state_dir: args.state_dir,
                reference: args.reference,
                drift_window: args.drift_window,
                mirrors: args.mirrors,
            };
            let config = match Config::load(args.config.as_deref(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigil: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&config.log.format, &config.log.level);
            runtime(config.runtime.worker_threads).block_on(run(config))
        }
        Command::Demo(args) => {
            init_logging(&LogFormat::Text, "info");
            let duration = match args.duration.as_deref().map(vigil::config::parse_duration).transpose() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("vigil: --duration: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = vigil::demo::DemoOptions {
                listen: args.listen,
                admin_listen: args.admin_listen,
                rate: args.rate,
                duration,
            };
            runtime(0).block_on(vigil::demo::run(opts))
        }
        Command::Audit { command: AuditCommand::Verify { state_dir, config } } => audit_verify(state_dir, config),
        Command::Backup { out, state_dir, config } => backup(&out, state_dir, config),
        Command::Restore { file, state_dir, config, force } => restore(&file, state_dir, config, force),
        Command::Healthcheck { admin } => healthcheck(admin),
        Command::DemoModel { listen, model_version, model, threads, error_ratio } => {
            init_logging(&LogFormat::Text, "warn");
            runtime(threads).block_on(async move {
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("vigil: cannot listen on {listen}: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                eprintln!("demo model {model} {model_version} listening on {}", listener.local_addr().unwrap());
                let m = vigil::demo::model::DemoModel::new(&model, &model_version).with_error_ratio(error_ratio);
                vigil::demo::model::serve(listener, m).await;
                ExitCode::SUCCESS
            })
        }
    }
}

/// `vigil audit verify`: the hash chain of the state dir's audit trail, checked line by line.
fn audit_verify(state_dir: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let dir = match state_dir {
        Some(d) => d,
        None => match config.as_deref().map(Config::read).transpose() {
            Ok(c) => c.unwrap_or_default().state.dir,
            Err(e) => {
                eprintln!("vigil audit verify: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let path = dir.join("audit.jsonl");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "vigil audit verify: cannot read {}: {e} (state dir from --state-dir or state.dir)",
                path.display()
            );
            return ExitCode::from(2);
        }
    };
    match vigil::store::audit::verify(&bytes) {
        Ok(v) => {
            print!("ok: {} entries, head {}", v.entries, v.head);
            match v.starts_at_line {
                Some(line) if v.unchained > 0 => println!(
                    " (the chain starts at line {line}; the {} line(s) before it predate the chain and are not covered)",
                    v.unchained
                ),
                None if v.unchained > 0 => {
                    println!(" (all {} line(s) predate the chain and are not covered)", v.unchained)
                }
                _ => println!(),
            }
            ExitCode::SUCCESS
        }
        Err(broken) => {
            println!("broken: {}: {broken}", path.display());
            ExitCode::from(1)
        }
    }
}

/// --state-dir, else the config's state.dir, else the default; a config that does not read is a
/// usage error (exit 2), reported as `vigil <cmd>: ...`.
fn state_dir_of(cmd: &str, state_dir: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    match state_dir {
        Some(d) => Ok(d),
        None => match config.as_deref().map(Config::read).transpose() {
            Ok(c) => Ok(c.unwrap_or_default().state.dir),
            Err(e) => {
                eprintln!("vigil {cmd}: {e}");
                Err(ExitCode::from(2))
            }
        },
    }
}

/// `vigil backup`: see vigil::store::backup.
fn backup(out: &std::path::Path, state_dir: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let dir = match state_dir_of("backup", state_dir, config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match vigil::store::backup::backup(&dir, out) {
        Ok(m) => {
            println!("saved {} to {} (vigil {}, {}):", dir.display(), out.display(), m.vigil_version, m.created);
            for f in &m.files {
                println!("  {:<16} {:>12} bytes  sha256 {}", f.name, f.size, f.sha256);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil backup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `vigil restore`: see vigil::store::backup.
fn restore(file: &std::path::Path, state_dir: Option<PathBuf>, config: Option<PathBuf>, force: bool) -> ExitCode {
    let dir = match state_dir_of("restore", state_dir, config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match vigil::store::backup::restore(file, &dir, force) {
        Ok(r) => {
            let m = &r.manifest;
            println!(
                "restored {} into {} (written by vigil {} at {}):",
                file.display(),
                dir.display(),
                m.vigil_version,
                m.created
            );
            for f in &m.files {
                println!("  {:<16} {:>12} bytes  sha256 {}", f.name, f.size, f.sha256);
            }
            match r.audit {
                None => println!("audit: no audit.jsonl in the archive"),
                Some(Ok(v)) => println!("audit: ok: {} entries, head {}", v.entries, v.head),
                Some(Err(broken)) => {
                    println!("audit: broken: {broken} (the files are restored as archived)");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil restore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A plain HTTP/1.1 GET over a blocking socket: no runtime, no dependencies, 2 s at most.
fn healthcheck(admin: SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let answer = std::net::TcpStream::connect_timeout(&admin, timeout).and_then(|mut s| {
        s.set_read_timeout(Some(timeout))?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head)
    });
    match answer {
        Ok(head) if head.starts_with(b"HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(head) => {
            eprintln!("vigil healthcheck: {admin} answered {:?}", String::from_utf8_lossy(&head));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vigil healthcheck: {admin}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> ExitCode {
    let app = match vigil::app::start(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("vigil: {e}");
            return match e {
                vigil::app::StartError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    shutdown_signal().await;
    tracing::info!("shutdown signal received: draining");
    if app.shutdown().await {
        tracing::info!("drained; bye");
    } else {
        tracing::warn!("drain timeout reached with connections still open");
    }
    ExitCode::SUCCESS
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// One worker thread: tokio's current-thread scheduler, every task on one thread with no
/// work-stealing and no cross-thread wake-ups (nginx's one-worker shape). More: the
/// multi-thread scheduler. 0: one worker per available core.
fn runtime(worker_threads: usize) -> tokio::runtime::Runtime {
    let mut b = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if worker_threads > 1 {
            b.worker_threads(worker_threads);
        }
        b
    };
    b.enable_all().thread_name("vigil-worker").build().expect("tokio runtime")
}

fn init_logging(format: &LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `vigil drift`: the live evaluation over two files.
fn drift_offline(reference: &std::path::Path, current: &std::path::Path, config: Option<&std::path::Path>) -> ExitCode {
    use vigil::monitor::reference as table;
    let fail = |e: String| {
        eprintln!("vigil drift: {e}");
        ExitCode::from(2)
    };
    let config = match config.map(Config::read).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return fail(e.to_string()),
    };
    let reference = match table::load_sampled(reference, config.reference.max_rows, 0) {
        Ok(t) => t,
        Err(e) => return fail(format!("--reference: {e}")),
    };
    let current = match table::load(current) {
        Ok(t) => t,
        Err(e) => return fail(format!("--current: {e}")),
    };
    match vigil::monitor::compare_tables(reference, current, &config) {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report).expect("reports serialize"));
            let drifted = report.dataset.drifted > 0
                || report.predictions.iter().any(|p| p.drift)
                || report.covariate_shift.as_ref().is_some_and(|c| c.drift);
            if drifted {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(e),
    }
}
