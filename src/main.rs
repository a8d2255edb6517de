use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::Client;
use tracing_subscriber::{EnvFilter, fmt};

use apitoken_operator::api::DeletionPolicy;
use apitoken_operator::app::{self, ElectionOptions, Options};
use apitoken_operator::{namespaces, proxy, release, rotate, verify};

/// Manages API tokens as Kubernetes custom resources.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig from the environment or the in-cluster service account).
    Run(Box<RunArgs>),
    /// Check a token read from stdin against a mounted key set; prints one line, exits 0 only
    /// when the token is valid.
    Verify {
        /// Where the key-set Secret is mounted (the directory holding keyset.json).
        #[arg(long, value_name = "DIR")]
        keyset: PathBuf,
        /// A scope the token must hold (repeatable).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
    },
    /// A verifying reverse proxy: checks X-API-KEY, answers 401/403 itself, forwards the rest.
    Proxy(Box<ProxyArgs>),
    /// Print the CustomResourceDefinitions (ApiToken, ApiTokenVerifier) as YAML.
    Crd,
    /// Without the operator (e.g. before uninstalling it): apply every ApiToken's deletionPolicy
    /// as far as Kubernetes can finish it alone (Retain: the Secret loses this ApiToken's
    /// ownerReference; Delete: garbage collection deletes it) and remove the finalizer.
    ReleaseFinalizers {
        /// Only these namespaces (repeatable or comma-separated; default: all namespaces).
        #[arg(short, long, value_delimiter = ',')]
        namespace: Vec<String>,
        /// First stop the operator: scale this Deployment (in the kubeconfig's namespace) to zero
        /// and wait until it runs no Pod and `--lease` is free (the chart's pre-delete hook).
        #[arg(long, value_name = "NAME", requires = "lease")]
        stop_deployment: Option<String>,
        /// The operator's leader-election Lease (`--lease-name` of `run`).
        #[arg(long, value_name = "NAME")]
        lease: Option<String>,
        /// How long to wait for the operator to stop, in seconds.
        #[arg(long, default_value_t = 120)]
        stop_timeout: u64,
    },
    /// Ask for one rotation, the GitOps-safe way: sets the apitoken.dev/rotate annotation to a new value.
    Rotate {
        /// The ApiToken.
        name: String,
        /// Namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Drop the previous value at once instead of keeping it for the grace period (leaked token).
        #[arg(long)]
        invalidate_previous: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace; repeat the flag or separate with commas. Default: all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Reconciles that may run at once.
    #[arg(long, default_value_t = 8)]
    workers: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json, env = "LOG_FORMAT")]
    log_format: LogFormat,
    /// Serve /metrics, /healthz and /readyz on this address (port 0: any free port, logged as
    /// `metrics_addr`). Not served when unset.
    #[arg(long, env = "METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Elect a leader through a coordination.k8s.io Lease; only the leader writes.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "apitoken-operator")]
    lease_name: String,
    /// The Lease's namespace (default: the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a claim lasts after its last renewal; the leader renews after two thirds of it and
    /// stops writing a fifth of it before the end, and a standby takes over when it has passed.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    lease_duration: u64,
}

#[derive(clap::Args)]
struct ProxyArgs {
    #[command(flatten)]
    options: proxy::Options,
    /// Log format (diagnostics on stderr; access log lines on stdout are always JSON).
    #[arg(long, value_enum, default_value_t = LogFormat::Json, env = "LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!(
            "{}---\n{}",
            apitoken_operator::crd_yaml(),
            apitoken_operator::verifier_crd_yaml()
        ),
        Command::Verify { keyset, scopes } => {
            // Exit codes: 0 valid, 1 refused, 2 could not check (as for usage errors).
            match verify::verify(&keyset, &scopes, std::io::stdin().lock()) {
                Ok(verdict) => {
                    println!("{verdict}");
                    std::process::exit(if verdict.is_valid() { 0 } else { 1 });
                }
                Err(error) => {
                    eprintln!("apitoken-operator verify: {error:#}");
                    std::process::exit(2);
                }
            }
        }
        Command::Proxy(args) => {
            init_logging(args.log_format);
            proxy::run(args.options).await?;
        }
        Command::ReleaseFinalizers {
            namespace,
            stop_deployment,
            lease,
            stop_timeout,
        } => {
            let client = Client::try_default().await?;
            if let (Some(deployment), Some(lease)) = (stop_deployment, lease) {
                let ns = client.default_namespace().to_owned();
                let timeout = Duration::from_secs(stop_timeout);
                release::stop::stop_operator(&client, &ns, &deployment, &lease, timeout).await?;
                println!("deployment {ns}/{deployment}: scaled to 0, lease {lease} free");
            }
            let scopes: Vec<Option<&str>> = if namespace.is_empty() {
                vec![None]
            } else {
                namespace.iter().map(|ns| Some(ns.as_str())).collect()
            };
            let mut released = Vec::new();
            for scope in scopes {
                released.extend(release::release_all(&client, scope).await?);
            }
            for r in released {
                let what = match (r.policy, r.disowned) {
                    (DeletionPolicy::Retain, true) => "Secret disowned, kept",
                    (DeletionPolicy::Retain, false) => "no Secret of its own to keep",
                    (DeletionPolicy::Delete, _) => "Secret left to garbage collection",
                };
                println!(
                    "apitoken {}/{}: finalizer released; {what}",
                    r.namespace, r.name
                );
            }
        }
        Command::Rotate {
            name,
            namespace,
            invalidate_previous,
        } => {
            let client = Client::try_default().await?;
            let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
            let request = rotate::request(&client, &namespace, &name, invalidate_previous).await?;
            println!("apitoken {namespace}/{name}: rotation requested ({request})");
        }
        Command::Run(args) => {
            let args = *args;
            init_logging(args.log_format);
            let instance = std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .ok();
            let election = args.leader_elect.then(|| ElectionOptions {
                lease_name: args.lease_name,
                lease_namespace: args.lease_namespace,
                lease_duration: Duration::from_secs(args.lease_duration),
            });
            app::run(Options {
                namespaces: namespaces::parse(&args.namespaces),
                workers: args.workers,
                instance,
                metrics_addr: args.metrics_addr,
                election,
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from([&["apitoken-operator", "run"], args].concat()).unwrap();
        match cli.command {
            Command::Run(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn namespaces_may_be_repeated_or_comma_separated() {
        let args = run_args(&["--namespace", "a,b", "--namespace", "c"]);
        assert_eq!(namespaces::parse(&args.namespaces), ["a", "b", "c"]);
        assert!(run_args(&[]).namespaces.is_empty(), "none: all namespaces");
    }

    #[test]
    fn defaults_serve_no_metrics_and_elect_no_leader() {
        let args = run_args(&[]);
        assert_eq!(args.metrics_addr, None);
        assert!(!args.leader_elect);
        assert_eq!(
            (args.lease_name.as_str(), args.lease_duration),
            ("apitoken-operator", 15)
        );
        let args = run_args(&[
            "--metrics-addr",
            "127.0.0.1:0",
            "--leader-elect",
            "--lease-duration",
            "6",
        ]);
        assert_eq!(args.metrics_addr, Some("127.0.0.1:0".parse().unwrap()));
        assert!(args.leader_elect && args.lease_duration == 6);
        assert!(
            Cli::try_parse_from(["apitoken-operator", "run", "--lease-duration", "2"]).is_err()
        );
    }
}
