//! `loadtest`: command-line front end to [`vigil_loadtest::run`].

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vigil_loadtest::{Config, Protocol, Reference, Shift};

/// Constant-rate model-traffic generator (KServe V2 / TF-Serving V1 REST) with
/// coordinated-omission-corrected latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct Cli {
    /// Base URL of the model server or proxy.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: http::Uri,
    /// Request protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::V2)]
    protocol: ProtocolArg,
    /// Model name used in the request path.
    #[arg(long, default_value = "demo")]
    model: String,
    /// Requests per second (open model: sent on schedule whatever the latency).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to run, e.g. 30s, 500ms, 2m. Omitted: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Rows per request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Maximum requests in flight (= HTTP/1 connection-pool size).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Seed for row sampling (random if omitted; printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// x-request-id prefix: ids are PREFIX followed by the request number. Default: lt-SEED-
    #[arg(long)]
    request_id_prefix: Option<String>,
    /// CSV reference (header + numeric rows, resampled whole). Default: built-in demo
    /// features age, income, debt_ratio, tenure_months.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Drift scenario: shift a feature by SDS reference standard deviations, from AFTER on
    /// (e.g. `income=1.0@60s`; repeatable).
    #[arg(long, value_name = "NAME=SDS[@AFTER]")]
    shift: Vec<String>,
    /// Use HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    http2: bool,
    /// Tokio worker threads for the generator (the pacer is one more thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtocolArg {
    V2,
    V1,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let reference = match &cli.reference {
        None => Reference::default(),
        Some(path) => match Reference::from_csv_path(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("loadtest: reference: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let cfg = Config {
        target: cli.target.clone(),
        protocol: match cli.protocol {
            ProtocolArg::V2 => Protocol::V2,
            ProtocolArg::V1 => Protocol::V1,
        },
        model: cli.model.clone(),
        rate: cli.rate,
        duration: cli.duration,
        batch: cli.batch,
        connections: cli.connections,
        timeout: cli.timeout,
        seed: cli.seed.unwrap_or_else(|| u64::from(fastrand::u32(..))),
        request_id_prefix: cli.request_id_prefix.clone(),
        transform: if cli.shift.is_empty() {
            None
        } else {
            match Shift::parse(&cli.shift, &reference) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    eprintln!("loadtest: {e}");
                    return ExitCode::from(2);
                }
            }
        },
        reference: Arc::new(reference),
        http2: cli.http2,
    };
    if let Err(e) = cfg.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    if cli.threads == 0 {
        eprintln!("loadtest: --threads must be at least 1");
        return ExitCode::from(2);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let report = runtime.block_on(async {
        if !cli.json {
            let how_long = cfg.duration.map_or("until Ctrl-C".to_string(), |d| {
                format!("for {} (Ctrl-C stops early)", humantime::format_duration(d))
            });
            eprintln!("loadtest: {} req/s to {} {how_long}", cfg.rate, cfg.url().expect("validated"));
        }
        let stop = async {
            if tokio::signal::ctrl_c().await.is_err() {
                return std::future::pending().await;
            }
            eprintln!("loadtest: stopping, draining in-flight requests (Ctrl-C again to abort)");
            tokio::spawn(async {
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            });
        };
        vigil_loadtest::run(cfg, stop).await
    });
    if cli.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    // Do not wait for idle pooled connections or the blocking pool.
    runtime.shutdown_background();
    ExitCode::SUCCESS
}
