use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kube::Client;
use tracing_subscriber::{EnvFilter, fmt};

use apitoken_operator::controller::{self, Settings};
use apitoken_operator::{proxy, rotate, verifier, verify};

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
    Run {
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Reconciles that may run at once.
        #[arg(long, default_value_t = 8)]
        workers: u16,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Json, env = "LOG_FORMAT")]
        log_format: LogFormat,
    },
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
        Command::Run {
            namespace,
            workers,
            log_format,
        } => {
            init_logging(log_format);
            let client = Client::try_default().await?;
            let instance = std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .ok();
            tracing::info!(
                namespace = namespace.as_deref().unwrap_or("*"),
                workers,
                "starting"
            );
            // The ApiToken controller and the verifier controller, side by side until SIGTERM.
            let verifiers = verifier::run(client.clone(), namespace.clone(), instance.clone());
            let tokens = controller::run(
                client,
                Settings {
                    namespace,
                    workers,
                    instance,
                },
            );
            tokio::join!(tokens, verifiers);
        }
    }
    Ok(())
}
