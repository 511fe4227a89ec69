//! Which appliances a subcommand talks to, how it trusts them (`--addr`, `--fingerprint`,
//! `--ca`) and how it proves itself to appliances that require mutual TLS (`--client-cert`,
//! `--client-key`), shared by `demo` and `bench`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use umbrald_client::{ClientIdentity, ClientOptions, Fingerprint, NodeSpec, Trust};

use crate::duration::parse_duration;
use crate::error::CliError;

/// Appliance addresses and trust settings.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Appliance QUIC address (HOST:PORT). Repeat for several appliances. Without it the
    /// command starts its own appliance(s) in this process.
    #[arg(long = "addr", value_name = "HOST:PORT", value_parser = parse_addr)]
    pub addrs: Vec<SocketAddr>,

    /// SHA-256 fingerprint of the appliance's certificate, as printed by `umbrald serve`
    /// (64 hex digits, colons allowed). Give one for all appliances, or one per --addr in the
    /// same order (comma-separated or repeated).
    #[arg(
        long = "fingerprint",
        value_name = "HEX",
        env = "UMBRALD_FINGERPRINT",
        value_delimiter = ','
    )]
    pub fingerprints: Vec<Fingerprint>,

    /// PEM file of CA certificates to trust instead of pinning a fingerprint (the appliance's
    /// certificate must then name --server-name).
    #[arg(long, value_name = "PEM", conflicts_with = "fingerprints")]
    pub ca: Option<PathBuf>,

    /// PEM certificate chain to present to appliances that require client certificates
    /// (mutual TLS); needs --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// Server name for SNI and CA verification.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub server_name: String,

    /// Give up on an appliance whose handshake takes longer than this.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Ask for whole cfrags (381 bytes each) instead of their compact form (the 197
    /// capsule-specific bytes, completed here from the request's kfrags into the same cfrags).
    #[arg(long)]
    pub whole_cfrags: bool,

    /// Send concurrent requests on a connection each whole in turn instead of interleaving
    /// them packet by packet (QUIC fair queuing, the default).
    #[arg(long)]
    pub fifo_streams: bool,
}

impl TargetArgs {
    /// One [`NodeSpec`] per `--addr` (empty when no address was given).
    pub fn node_specs(&self) -> Result<Vec<NodeSpec>, CliError> {
        let trusts: Vec<Trust> = match (&self.ca, self.fingerprints.len()) {
            (Some(ca), _) => vec![Trust::CaFile(ca.clone()); self.addrs.len()],
            (None, 0) if self.addrs.is_empty() => Vec::new(),
            (None, 0) => {
                return Err(CliError::Usage(
                    "--addr needs --fingerprint (printed by `umbrald serve`) or --ca".to_owned(),
                ))
            }
            (None, 1) => vec![Trust::Fingerprint(self.fingerprints[0]); self.addrs.len()],
            (None, n) if n == self.addrs.len() => self
                .fingerprints
                .iter()
                .map(|f| Trust::Fingerprint(*f))
                .collect(),
            (None, n) => {
                return Err(CliError::Usage(format!(
                    "{n} fingerprints for {} addresses: give one for all, or one per --addr",
                    self.addrs.len()
                )))
            }
        };
        Ok(self
            .addrs
            .iter()
            .zip(trusts)
            .map(|(addr, trust)| NodeSpec { addr: *addr, trust })
            .collect())
    }

    /// Client options reflecting these arguments (reads the client certificate and key, if
    /// given).
    pub fn client_options(&self) -> Result<ClientOptions, CliError> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(
                ClientIdentity::from_files(cert, key)
                    .map_err(|e| CliError::Usage(format!("--client-cert/--client-key: {e}")))?,
            ),
            _ => None,
        };
        Ok(ClientOptions {
            server_name: self.server_name.clone(),
            connect_timeout: self.connect_timeout,
            identity,
            compact_cfrags: !self.whole_cfrags,
            send_fairness: !self.fifo_streams,
            ..ClientOptions::default()
        })
    }
}

/// Resolves `HOST:PORT` to its first socket address.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        target: TargetArgs,
    }

    fn parse(args: &[&str]) -> TargetArgs {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .expect("parses")
            .target
    }

    #[test]
    fn client_cert_and_key_come_together_and_must_load() {
        let lone = Cli::try_parse_from(["t", "--client-cert", "c.pem"]);
        assert!(lone.is_err(), "--client-cert without --client-key");
        let lone = Cli::try_parse_from(["t", "--client-key", "k.pem"]);
        assert!(lone.is_err(), "--client-key without --client-cert");
        let missing = parse(&[
            "--client-cert",
            "/nonexistent/c.pem",
            "--client-key",
            "/nonexistent/k.pem",
        ]);
        assert!(matches!(missing.client_options(), Err(CliError::Usage(_))));
        assert!(parse(&[])
            .client_options()
            .expect("no identity")
            .identity
            .is_none());
    }

    #[test]
    fn one_fingerprint_applies_to_every_address() {
        let fp = "11".repeat(32);
        let t = parse(&[
            "--addr",
            "127.0.0.1:1",
            "--addr",
            "127.0.0.1:2",
            "--fingerprint",
            &fp,
        ]);
        let specs = t.node_specs().expect("specs");
        assert_eq!(specs.len(), 2);
        assert!(specs
            .iter()
            .all(|s| s.trust == Trust::Fingerprint(Fingerprint([0x11; 32]))));
    }

    #[test]
    fn fingerprints_pair_with_addresses_in_order() {
        let (a, b) = ("11".repeat(32), "22".repeat(32));
        let both = format!("{a},{b}");
        let t = parse(&[
            "--addr",
            "127.0.0.1:1",
            "--addr",
            "127.0.0.1:2",
            "--fingerprint",
            &both,
        ]);
        let specs = t.node_specs().expect("specs");
        assert_eq!(specs[1].trust, Trust::Fingerprint(Fingerprint([0x22; 32])));
        assert_eq!(specs[1].addr.port(), 2);
    }

    #[test]
    fn an_address_without_trust_is_a_usage_error() {
        if std::env::var_os("UMBRALD_FINGERPRINT").is_some() {
            return; // the environment supplies a fingerprint
        }
        let t = parse(&["--addr", "127.0.0.1:1"]);
        assert!(matches!(t.node_specs(), Err(CliError::Usage(_))));
        assert!(parse(&[]).node_specs().expect("no addrs").is_empty());
    }

    #[test]
    fn host_names_resolve() {
        assert_eq!(parse_addr("localhost:4433").map(|a| a.port()), Ok(4433));
        assert!(parse_addr("no-port").is_err());
    }
}
