//! Real processes a test starts and owns: the services' binaries, a private
//! Tansu broker and a private ClickHouse server (for tests that stop,
//! freeze or restart them). Each is killed when dropped; a failing test
//! prints the tail of the process's log.

use crate::{eventually, scratch_dir};
use citybrain_config::ToEnv;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root (the tests crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A workspace binary built next to the running test (`cargo test` builds
/// a package's binaries for its own integration tests; others are built
/// first by the Makefile).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: cargo build --bin {name}",
        bin.display()
    );
    bin
}

/// The Tansu binary: `TANSU_BIN`, else what `deploy/local/env.sh` says
/// (the one place its version and cache path are written).
pub fn tansu_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return path.into();
    }
    let env_sh = repo_root().join("deploy/local/env.sh");
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && printf %s "$TANSU_BIN""#)
        .arg("bash")
        .arg(&env_sh)
        .output()
        .unwrap_or_else(|err| panic!("bash {}: {err}", env_sh.display()));
    assert!(
        output.status.success(),
        "sourcing {} failed",
        env_sh.display()
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// Whether something accepts connections on `port` of loopback.
pub async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// A child process killed (SIGKILL) when dropped, its output in a log file.
pub struct ChildProcess {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command`, stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|err| panic!("log file {}: {err}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({command:?}): {err}"));
        Self {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The process id (0 once it was stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        if pid != 0 {
            send_signal(signal, &pid.to_string());
        }
    }

    /// Sends `signal` to the process group this process leads (started
    /// with `CommandExt::process_group(0)`), as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: &str) {
        let pid = self.pid();
        if pid > 1 {
            send_signal(signal, &format!("-{pid}"));
        }
    }

    /// SIGKILL: no flush, no commit, no goodbye.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; true when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.signal("CONT");
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_9();
        false
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // A frozen process cannot die of SIGKILL until it is continued.
        self.signal("CONT");
        self.kill_9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- {} (last lines of {}, newest first)",
                self.name,
                self.log.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// kill(1) with the signal named by `-s` and the target after `--`: this
/// machine's procps-ng 4.0.2 reads `kill -INT -1234` as kill(-1, SIGINT),
/// every process there is.
fn send_signal(signal: &str, target: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", target])
        .status()
        .is_ok_and(|status| status.success())
}

/// A service binary started with `config` as its environment
/// ([`ToEnv`]), plus `RUST_LOG` (`CHILD_LOG`, default info).
pub fn spawn_service(
    name: &str,
    binary: &Path,
    config: &impl ToEnv,
    log_dir: &Path,
) -> ChildProcess {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_env())
        .env(
            "RUST_LOG",
            std::env::var("CHILD_LOG").unwrap_or_else(|_| "info".into()),
        );
    ChildProcess::spawn(name, &mut command, log_dir)
}

/// Where a [`PrivateBroker`] keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerStorage {
    /// sqlite in a scratch directory: topics and records survive a restart.
    Sqlite,
    /// In memory: a restart starts empty (topics must be created again).
    Memory,
}

/// A Tansu broker of the test's own, for tests that stop and restart it.
///
/// Like `deploy/local/broker.sh`, a memory-storage broker gets a new cluster
/// id at every start (its logs are new), a sqlite one keeps its id.
pub struct PrivateBroker {
    pub port: u16,
    storage: BrokerStorage,
    dir: PathBuf,
    process: Option<ChildProcess>,
    cluster_id: String,
}

impl PrivateBroker {
    pub async fn start(storage: BrokerStorage) -> Self {
        let mut broker = Self {
            port: free_port(),
            storage,
            dir: scratch_dir("broker"),
            process: None,
            cluster_id: new_cluster_id(),
        };
        broker.resume().await;
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The cluster id the broker reports to clients.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Starts (again) on the same port and storage.
    pub async fn resume(&mut self) {
        if self.storage == BrokerStorage::Memory {
            self.cluster_id = new_cluster_id();
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(tansu_bin());
        command
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--cluster-id",
                &self.cluster_id,
            ])
            .args([
                "--storage-engine",
                match self.storage {
                    BrokerStorage::Sqlite => "sqlite://broker.db",
                    BrokerStorage::Memory => "memory://tansu/",
                },
            ]);
        self.process = Some(ChildProcess::spawn("broker", &mut command, &self.dir));
        let port = self.port;
        eventually(
            Duration::from_secs(30),
            "the private broker to listen",
            || port_open(port),
        )
        .await;
    }

    /// The process, to signal it (`STOP`/`CONT`).
    pub fn process(&self) -> Option<&ChildProcess> {
        self.process.as_ref()
    }

    /// The broker's log so far, for diagnosing a failure.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(ChildProcess::log)
            .unwrap_or_default()
    }

    /// Kills the broker (SIGKILL), keeping its storage.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_9();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_cluster_id() -> String {
    format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A ClickHouse server of the test's own (ports, data dir), for tests that
/// stop, freeze and restart it. Uses the local stack's config template.
pub struct PrivateClickHouse {
    pub http_port: u16,
    tcp_port: u16,
    dir: PathBuf,
    process: Option<ChildProcess>,
}

impl PrivateClickHouse {
    pub async fn start() -> Self {
        let dir = scratch_dir("clickhouse");
        for sub in ["data", "tmp", "log", "user_files", "format_schemas"] {
            std::fs::create_dir_all(dir.join(sub)).expect("clickhouse dirs");
        }
        let template_dir = repo_root().join("deploy/local/clickhouse");
        let mut server = Self {
            http_port: free_port(),
            tcp_port: free_port(),
            dir,
            process: None,
        };
        let config = std::fs::read_to_string(template_dir.join("config.xml.in"))
            .expect("deploy/local/clickhouse/config.xml.in")
            .replace("@DIR@", server.dir.to_str().expect("utf-8 path"))
            .replace("@HTTP_PORT@", &server.http_port.to_string())
            .replace("@TCP_PORT@", &server.tcp_port.to_string());
        std::fs::write(server.dir.join("config.xml"), config).expect("write config");
        std::fs::copy(template_dir.join("users.xml"), server.dir.join("users.xml"))
            .expect("copy users.xml");
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts (again) with the same data.
    pub async fn resume(&mut self) {
        let mut command = Command::new("clickhouse-server");
        command.current_dir(&self.dir).arg(format!(
            "--config-file={}",
            self.dir.join("config.xml").display()
        ));
        self.process = Some(ChildProcess::spawn(
            "clickhouse",
            &mut command,
            &self.dir.join("log"),
        ));
        let client = crate::clickhouse::client(&self.url());
        eventually(
            Duration::from_secs(60),
            "the private ClickHouse to answer",
            || {
                let client = client.clone();
                async move { client.query_raw("SELECT 1").fetch_one::<u8>().await.is_ok() }
            },
        )
        .await;
    }

    /// The process, to signal it (`STOP`/`CONT`).
    pub fn process(&self) -> Option<&ChildProcess> {
        self.process.as_ref()
    }

    /// Stops the server (SIGTERM, as an operator or the OS would) and waits.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(60));
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_9();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A mosquitto of the test's own: its accounts and ACLs generated from
/// `registry` by the stack's own script (`deploy/local/mosquitto.sh
/// config`), its persistence in a scratch directory that survives
/// [`PrivateMosquitto::kill`] and [`PrivateMosquitto::resume`].
pub struct PrivateMosquitto {
    pub port: u16,
    dir: PathBuf,
    process: Option<ChildProcess>,
}

impl PrivateMosquitto {
    pub async fn start(registry: &Path) -> Self {
        let mut broker = Self {
            port: free_port(),
            dir: scratch_dir("mosquitto"),
            process: None,
        };
        let script = repo_root().join("deploy/local/mosquitto.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("config")
            .arg(&broker.dir)
            .arg(broker.port.to_string())
            .arg(registry)
            .status()
            .unwrap_or_else(|err| panic!("bash {}: {err}", script.display()));
        assert!(status.success(), "mosquitto.sh config failed");
        broker.resume().await;
        broker
    }

    /// Starts (again) on the same port, with the same persisted sessions.
    pub async fn resume(&mut self) {
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(self.dir.join("mosquitto.conf"));
        self.process = Some(ChildProcess::spawn("mosquitto", &mut command, &self.dir));
        let port = self.port;
        eventually(Duration::from_secs(20), "mosquitto to listen", || {
            port_open(port)
        })
        .await;
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(ChildProcess::log)
            .unwrap_or_default()
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_9();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
