//! The moto AWS emulator, one server per guard.
//!
//! moto closes the connection after every response and takes milliseconds per call: its
//! timings are not AWS's, so tests count calls, never time them against moto.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_root};

/// Region every test uses unless it says otherwise.
pub const REGION: &str = "us-east-1";

/// A running moto server; stopped on drop.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    child: Option<Child>,
}

fn moto_bin() -> PathBuf {
    let p = workspace_root().join(".venv/bin/moto_server");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Moto {
        let mut m = Moto {
            port: free_port(),
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new(moto_bin())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "moto did not start listening on port {} within 30 s",
            self.port
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (to test outages). [`Moto::restart`] brings it back on the same port,
    /// with empty state.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Environment variables that point an AWS SDK (ours or the test's) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("NO_PROXY", "127.0.0.1,localhost"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// An SDK configuration for the test's own calls (creating secrets and keys).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "testing", "testing", None, None, "rig",
            ))
            .load()
            .await
    }

    /// A Secrets Manager client for the test's own calls.
    pub async fn secrets_client(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config().await)
    }

    /// A Parameter Store client for the test's own calls.
    pub async fn ssm_client(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config().await)
    }

    /// A KMS client for the test's own calls.
    pub async fn kms_client(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config().await)
    }

    /// Creates a symmetric KMS key and returns its ARN.
    pub async fn create_kms_key(&self) -> String {
        create_key_with(&self.kms_client().await).await
    }
}

/// Creates a symmetric KMS key with `client` and returns its ARN.
pub async fn create_key_with(client: &aws_sdk_kms::Client) -> String {
    client
        .create_key()
        .send()
        .await
        .ok()
        .and_then(|k| k.key_metadata)
        .and_then(|m| m.arn)
        .expect("moto CreateKey")
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
