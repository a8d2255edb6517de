use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use kube::Client;
use tracing_subscriber::{EnvFilter, fmt};

use apitoken_operator::api::DeletionPolicy;
use apitoken_operator::controller::{self, Settings};
use apitoken_operator::{release, rotate};

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
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Without the operator (e.g. before uninstalling it): apply every ApiToken's deletionPolicy
    /// as far as Kubernetes can finish it alone (Retain: the Secret loses this ApiToken's
    /// ownerReference; Delete: garbage collection deletes it) and remove the finalizer.
    ReleaseFinalizers {
        /// Only this namespace (default: all namespaces).
        #[arg(short, long)]
        namespace: Option<String>,
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
        Command::Crd => print!("{}", apitoken_operator::crd_yaml()),
        Command::ReleaseFinalizers { namespace } => {
            let client = Client::try_default().await?;
            for r in release::release_all(&client, namespace.as_deref()).await? {
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
            controller::run(
                client,
                Settings {
                    namespace,
                    workers,
                    instance,
                },
            )
            .await;
        }
    }
    Ok(())
}
